"""Least privilege of tpm_containers: capabilities, image references, isolation options, the base directory."""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import compose as tc
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import compose_policy as cp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_compose import COMPOSE_CLI, GROUPS, compose_config, plan, project, service

AT = "tpm_containers_projects[0].services[0]"
NAMES = "(project attest, service agent)"


def errors_of(svc, **settings):
    """The input errors of one service; the plan must refuse the same and build nothing."""
    errors = tc.compose_input_errors([project(svc)], settings)
    result = plan([project(svc)], "direct", **settings)
    assert result["errors"] == errors
    if errors:
        assert result["projects"] == [] and result["env_files"] == []
    return errors


def rendered(svc, **settings):
    result = plan([project(svc)], "kernel_rm", **settings)
    assert result["errors"] == []
    return result, result["projects"][0]["document"]["services"]["agent"]


# --- capabilities ----------------------------------------------------------------------------------


def test_the_capability_lists_cover_every_linux_capability_once():
    assert len(cp.ALL_CAPABILITIES) == len(set(cp.ALL_CAPABILITIES)) == 41  # CAP_LAST_CAP 40 (CHECKPOINT_RESTORE)
    assert not set(cp.DANGEROUS_CAPABILITIES) & set(cp.SAFE_CAPABILITIES)


@pytest.mark.parametrize("name", sorted(cp.DANGEROUS_CAPABILITIES))
def test_each_dangerous_capability_is_refused_and_accepted_with_the_opt_in(name):
    errors = errors_of(service(cap_add=[name]))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{AT}.cap_add {NAMES}: {name} ")
    assert f"tpm_containers_allow_capabilities: [{name}]" in errors[0]
    # The opt-in, in any spelling, on either side.
    _, svc = rendered(service(cap_add=[f"cap_{name.lower()}"]), allow_capabilities=[f"CAP_{name}"])
    assert svc["cap_add"] == [name] and svc["cap_drop"] == ["ALL"]
    _, svc = rendered(service(cap_add=[name]), allow_capabilities=[name.lower()])
    assert svc["cap_add"] == [name]


@pytest.mark.parametrize("name", sorted(cp.SAFE_CAPABILITIES))
def test_capabilities_that_stay_in_the_container_need_no_opt_in(name):
    _, svc = rendered(service(cap_add=[f"CAP_{name}", name.lower()]))
    assert svc["cap_add"] == [name]


def test_one_message_per_refused_capability_and_unknown_names_are_refused():
    errors = errors_of(service(cap_add=["SYS_ADMIN", "net_admin", "CAP_NET_BIND_SERVICE", "SYS_WIZARD", 7]))
    assert [e.split(": ", 1)[1].split(" ", 1)[0] for e in errors] == ["unknown", "SYS_ADMIN", "NET_ADMIN"], errors
    assert f'{AT}.cap_add {NAMES}: unknown capabilities ["SYS_WIZARD", 7]' in errors[0]


def test_all_is_refused_unless_listed():
    assert any("ALL gives the container every capability" in e for e in errors_of(service(cap_add=["cap_all"])))
    _, svc = rendered(service(cap_add=["ALL"]), allow_capabilities=["ALL"])
    assert svc["cap_add"] == ["ALL"]
    # ALL in the opt-in allows each single capability too.
    _, svc = rendered(service(cap_add=["SYS_ADMIN"]), allow_capabilities=["all"])
    assert svc["cap_add"] == ["SYS_ADMIN"]


@pytest.mark.parametrize("allowed", ["SYS_ADMIN", ["SYS_WIZARD"], [None], {"SYS_ADMIN": True}])
def test_a_bad_allow_list_is_refused(allowed):
    errors = tc.compose_input_errors([project()], {"allow_capabilities": allowed})
    assert any(e.startswith("tpm_containers_allow_capabilities must list capabilities") for e in errors), errors


_SPELLING = st.sampled_from(cp.ALL_CAPABILITIES).flatmap(
    lambda name: st.tuples(
        st.just(name),
        st.booleans(),
        st.lists(st.booleans(), min_size=len(name), max_size=len(name)),
    )
)


def _spell(drawn):
    name, prefix, upper = drawn
    text = "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    return ("cAp_" if prefix else "") + text


@settings(max_examples=300, deadline=None)
@given(_SPELLING, st.lists(st.sampled_from(cp.ALL_CAPABILITIES), max_size=4))
def test_any_spelling_of_a_capability_is_one_name_and_refused_exactly_when_dangerous_and_not_allowed(drawn, allowed):
    written = _spell(drawn)
    name = drawn[0]
    assert cp.capability(written) == name
    errors = cp.capability_errors("w", [written], set(allowed))
    assert bool(errors) == (name in cp.DANGEROUS_CAPABILITIES and name not in allowed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.integers(), st.none(), st.booleans()), max_size=5))
def test_capability_checks_never_raise_and_refuse_what_names_no_capability(caps):
    errors = cp.capability_errors("w", caps, set())
    unknown = [c for c in caps if cp.capability(c) is None]
    assert any(e.startswith("w: unknown capabilities") for e in errors) == bool(unknown)
    for value in caps:
        known = isinstance(value, str) and re.sub("(?i)^cap_", "", value.strip()).upper() in {
            *cp.ALL_CAPABILITIES,
            "ALL",
        }
        assert (cp.capability(value) is not None) == known


# --- image references ---------------------------------------------------------------------------

# Built from the grammar's productions (distribution/reference), not from the regex under test.
_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
_path_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=3),
)
_letters_digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_domain_component = st.one_of(
    st.text(alphabet=_letters_digits, min_size=1, max_size=1),
    st.builds(
        lambda a, mid, b: a + mid + b,
        st.text(alphabet=_letters_digits, min_size=1, max_size=1),
        st.text(alphabet=_letters_digits + "-", max_size=8),
        st.text(alphabet=_letters_digits, min_size=1, max_size=1),
    ),
)
_host = st.one_of(
    st.builds(".".join, st.lists(_domain_component, min_size=1, max_size=3)),
    st.builds(lambda h: f"[{h}]", st.text(alphabet="0123456789abcdefABCDEF:", min_size=1, max_size=12)),
)
_domain = st.builds(lambda h, p: h + (f":{p}" if p is not None else ""), _host, st.none() | st.integers(0, 65535))
_name = st.builds(
    lambda d, parts: (d + "/" if d else "") + "/".join(parts),
    st.none() | _domain,
    st.lists(_path_component, min_size=1, max_size=4),
)
_word = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_tag = st.builds(
    lambda a, b: a + b, st.text(alphabet=_word, min_size=1, max_size=1), st.text(alphabet=_word + ".-", max_size=127)
)
_algorithm = st.builds(
    lambda first, rest: first + "".join(s + c for s, c in rest),
    st.sampled_from(["sha256", "sha512", "blake3", "A1"]),
    st.lists(st.tuples(st.sampled_from("-_+."), st.sampled_from(["b64", "x", "Z9"])), max_size=2),
)
_digest = st.builds(
    lambda a, h: f"{a}:{h}", _algorithm, st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=128)
)
REFERENCES = st.builds(
    lambda n, t, d: n + (f":{t}" if t else "") + (f"@{d}" if d else ""), _name, st.none() | _tag, st.none() | _digest
)
GRAMMAR_CHARS = set(_letters_digits + "._-/:@[]+")


@settings(max_examples=500, deadline=None)
@given(REFERENCES)
def test_every_reference_of_the_grammar_is_accepted(reference):
    name = reference.split("@")[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    expected = "" if len(name) <= cp.NAME_MAX else "longer than 255"
    error = cp.image_reference_error("w", reference)
    assert (error == "") if not expected else (expected in error), (reference, error)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40), st.characters().filter(lambda c: c not in GRAMMAR_CHARS), st.text(max_size=40))
def test_a_character_outside_the_grammar_is_refused(before, bad, after):
    image = before + bad + after
    error = cp.image_reference_error("w", image)
    assert error.startswith("w: ") and json.dumps(image, ensure_ascii=False) in error


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
def test_the_image_check_never_raises(value):
    assert isinstance(cp.image_reference_error("w", value), str)


@pytest.mark.parametrize(
    "image",
    [
        "busybox$(reboot)",
        "busybox;reboot",
        "Busybox",
        "registry.example.net/Agent:1",
        "agent:1.2\n",
        " agent",
        "agent:",
        "agent@sha256:abc",
        "agent:" + "x" * 129,
        "-agent",
        "agent//x",
        "http://registry/agent",
        "a" * 256,
    ],
)
def test_invalid_image_references_are_refused_naming_the_service_and_the_fix(image):
    errors = errors_of(service(image=image))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{AT}.image {NAMES}: ")
    assert json.dumps(image) in errors[0] or "longer than 255" in errors[0]
    assert "registry.example.net/keylime/agent:7.12" in errors[0] or "longer than 255" in errors[0]


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "library/busybox:1.36",
        "localhost:5000/agent",
        "registry.example.net/keylime/agent:7.12",
        "REGISTRY.example.net:443/a__b/c--d.e:v1_x",
        "[fd00::1]:5000/agent:1",
        "quay.io/keylime/keylime_agent@sha256:" + "a" * 64,
        "agent:1.2@sha256:" + "0" * 64,
    ],
)
def test_valid_image_references_are_written_as_given(image):
    _, svc = rendered(service(image=image))
    assert svc["image"] == image


# --- other isolation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("privileged", True),
        ("pid", "host"),
        ("ipc", "host"),
        ("uts", "host"),
        ("userns_mode", "host"),
        ("cgroup", "host"),
        ("cgroup_parent", "/"),
        ("security_opt", ["seccomp=unconfined"]),
        ("security_opt", ["apparmor=unconfined"]),
        ("security_opt", ["label=disable"]),
        ("devices", ["/dev/mem:/dev/mem"]),
        ("device_cgroup_rules", ["c 1:1 rwm"]),
        ("sysctls", {"kernel.core_pattern": "|/evil"}),
        ("volumes_from", ["other"]),
        ("runtime", "runc"),
        ("cap_drop", []),
    ],
)
def test_options_that_switch_off_an_isolation_are_refused_with_the_reason(key, value):
    errors = errors_of(service(**{key: value}))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{AT}.{key} {NAMES}: {key} ")
    assert "not offered" in errors[0]


def test_host_network_needs_the_opt_in():
    errors = errors_of(service(network_mode="host"))
    assert errors and errors[0].startswith(f"{AT}.network_mode {NAMES}: host puts the container")
    assert "tpm_containers_allow_host_network: true" in errors[0]
    _, svc = rendered(service(network_mode="host"), allow_host_network=True)
    assert svc["network_mode"] == "host"


@pytest.mark.parametrize("mode", ["none", "bridge", "service:db", "container:proxy", "backend_net"])
def test_other_network_modes_pass(mode):
    _, svc = rendered(service(network_mode=mode))
    assert svc["network_mode"] == mode


@pytest.mark.parametrize("mode", ["", "ns:/proc/1/ns/net", "service:", "host ", 3])
def test_malformed_network_modes_are_refused(mode):
    errors = errors_of(service(network_mode=mode))
    assert errors == [f"{AT}.network_mode {NAMES} must be none, bridge, service:NAME, container:NAME or the name of a "
                      f"network (got {json.dumps(mode)})."]  # fmt: skip


def test_a_bad_host_network_flag_is_refused():
    errors = tc.compose_input_errors([project()], {"allow_host_network": "maybe"})
    assert 'tpm_containers_allow_host_network must be true or false (got "maybe").' in errors


def test_a_relative_long_syntax_bind_is_checked_where_compose_puts_it():
    volume = {"type": "bind", "source": "etc/../../../../etc", "target": "/x"}
    errors = errors_of(service(volumes=[volume]))
    assert any("mounts the host's /etc: /etc is a sensitive host path" in e for e in errors), errors
    # Below the project directory it is the service's own.
    _, svc = rendered(service(volumes=[{"type": "bind", "source": "certs", "target": "/certs"}]))
    assert {"type": "bind", "source": "certs", "target": "/certs"} in svc["volumes"]


# --- the base directory ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_dir",
    [
        "/",
        "/etc",
        "/etc/apt/apt.conf.d/tpm",
        "/etc/sudoers.d",
        "/etc/cron.d/x",
        "/etc/profile.d/x",
        "/etc/systemd/system/x",
        "/usr/lib/systemd/system/x",
        "/lib/systemd/system",
        "/run/systemd/system/x",
        "/var/spool/cron/crontabs",
        "/var/lib/dpkg/info",
        "/proc/self",
        "/sys/fs",
        "/dev/shm/x",
        "/tmp",
        "/var/tmp",
        "/home",
        "/srv/tpmfleet/.config",
        "/srv",
        "/var/lib",
        "/opt",
        "/tpmfleet",
        "srv/tpmfleet",
        "/srv/tpmfleet\n",
        None,
    ],
)
def test_the_base_dir_is_never_a_system_or_shared_directory(base_dir):
    errors = tc.compose_input_errors([project()], {"base_dir": base_dir})
    assert any(
        e.startswith("tpm_containers_base_dir must be a directory of tpmfleet's own") and json.dumps(base_dir) in e
        for e in errors
    ), errors


@pytest.mark.parametrize("base_dir", ["/srv/tpmfleet", "/opt/tpmfleet", "/var/lib/tpmfleet", "/srv/containers/tpm"])
def test_a_base_dir_of_its_own_passes(base_dir):
    result = plan([project()], "direct", base_dir=base_dir)
    assert result["errors"] == []
    assert result["projects"][0]["dir"] == f"{base_dir}/attest"


# --- the real compose CLI ------------------------------------------------------------------------------


@pytest.mark.skipif(COMPOSE_CLI is None, reason="no compose v2 CLI: scripts/setup.sh installs it")
def test_compose_accepts_the_file_with_opted_in_capabilities_and_host_network(tmp_path):
    svc = service(cap_add=["cap_net_admin", "NET_BIND_SERVICE", "CAP_SYS_TIME"], network_mode="host")
    result = plan(
        [project(svc)],
        "kernel_rm",
        groups=GROUPS,
        allow_capabilities=["NET_ADMIN", "sys_time"],
        allow_host_network="yes",
    )
    assert result["errors"] == []
    agent = compose_config(tmp_path, result)["services"]["agent"]
    assert sorted(agent["cap_add"]) == ["NET_ADMIN", "NET_BIND_SERVICE", "SYS_TIME"]
    assert agent["cap_drop"] == ["ALL"] and agent["network_mode"] == "host"
    assert agent["security_opt"] == ["no-new-privileges:true"]
