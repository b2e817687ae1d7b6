"""What tpm_tcti_env's apply would change (its ``changes`` in plugins/plugin_utils/roles/tpm_tcti_env.py), decided
from the preflight's one read of the host: the environment file and each consumer's drop-in (their directories,
their contents as the role's templates render them, root:root 0644) and the consumers to reload or restart.

The role may be skipped only when this plan is empty: every drift its apply fixes makes it non-empty, and a part
that was not read, or a file whose content cannot be compared, makes it None (the role runs). That the plan
renders the files exactly as the role's template tasks write them is shown with Ansible itself in
tests/roles/test_tpm_tcti_env.py."""

from __future__ import annotations

import copy
import hashlib

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import profile
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import tpm_tcti_env
from hypothesis import given, settings
from hypothesis import strategies as st

ENV = "/etc/tpm2/tcti.env"
UNIT = "agent.service"
DROPINS = f"/etc/systemd/system/{UNIT}.d"
DROPIN = f"{DROPINS}/10-tpmfleet-tcti.conf"
ENV_TEXT = '# Ansible managed\n# tpmfleet: TCTI for quote mode "kernel_rm"\nTCTI=device:/dev/tpmrm0\n'
DROPIN_TEXT = "# Ansible managed\n[Service]\nEnvironmentFile=/etc/tpm2/tcti.env\n"


def sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 (stat's checksum)


class Host:
    """The settings_check action's view of the host: the facts as the preflight read them, and the role's
    templates as Ansible renders them (here: fixed texts, by template and item)."""

    def __init__(self, facts, env=ENV_TEXT, dropin=DROPIN_TEXT):
        self.name, self.facts = "h1", facts
        self._texts = {("tcti.env.j2", None): env, ("dropin.conf.j2", UNIT): dropin}
        self.rendered = []

    def render(self, role, template, variables=None):
        assert role == "tpm_tcti_env"
        item = (variables or {}).get("item")
        self.rendered.append((template, item))
        return self._texts[(template, item)]


def written(text):
    return {"exists": True, "isreg": True, "islnk": False, "pw_name": "root", "gr_name": "root", "mode": "0644",
            "checksum": sha1(text)}  # fmt: skip


def values(mode="kernel_rm", services=(UNIT,), restart=True):
    return {
        "tpm_tcti_env_path": ENV,
        "tpm_tcti_env_services": list(services),
        "tpm_tcti_env_restart_services": restart,
        "tpm_quote_mode_profile": profile(mode),
    }


def converged(mode="kernel_rm"):
    """A host whose environment file and drop-in the role wrote, its consumer running with the mode's TCTI."""
    return {
        "services": {
            UNIT: {"name": UNIT, "state": "running", "status": "enabled"},
            "tpm2.target": {"name": "tpm2.target", "state": "active", "status": "static"},
        },
        "tpmfleet_host_state": {
            "paths": {
                ENV: written(ENV_TEXT),
                "/etc/tpm2": {"exists": True, "isdir": True},
                DROPINS: {"exists": True, "isdir": True},
                DROPIN: written(DROPIN_TEXT),
            },
            "consumers": {
                UNIT: {"need_daemon_reload": False, "main_pid": 42, "environ": dict(profile(mode)["tcti_variables"])},
            },
        },
    }


def drifted(change):
    facts = copy.deepcopy(converged())
    change(facts)
    return facts


def test_a_converged_host_gives_nothing_to_do_and_each_file_is_compared_as_rendered():
    host = Host(converged())
    assert tpm_tcti_env.changes(values(), host) == []
    assert host.rendered == [("tcti.env.j2", None), ("dropin.conf.j2", UNIT)]
    # Without consumers: the environment file alone.
    facts = drifted(lambda f: f["tpmfleet_host_state"].pop("consumers"))
    assert tpm_tcti_env.changes(values(services=()), Host(facts)) == []


def _paths(f):
    return f["tpmfleet_host_state"]["paths"]


@pytest.mark.parametrize(
    ("change", "want"),
    [
        (lambda f: _paths(f).update({ENV: {"exists": False}}), [f"write {ENV}"]),
        (
            lambda f: _paths(f).update({ENV: {"exists": False}, "/etc/tpm2": {"exists": False}}),
            ["create /etc/tpm2", f"write {ENV}"],
        ),
        (lambda f: _paths(f)[ENV].update(checksum=sha1("TCTI=x\n")), [f"write {ENV} (its content differs)"]),
        (lambda f: _paths(f)[ENV].update(mode="0664"), [f"set {ENV} to root:root 0644"]),
        (lambda f: _paths(f)[ENV].update(gr_name="tss"), [f"set {ENV} to root:root 0644"]),
        (lambda f: _paths(f)[DROPIN].update(pw_name="tss"), [f"set {DROPIN} to root:root 0644"]),
        (
            lambda f: _paths(f).update({DROPINS: {"exists": False}, DROPIN: {"exists": False}}),
            [f"create {DROPINS}", f"write {DROPIN}"],
        ),
        (lambda f: _paths(f)[DROPIN].update(checksum=sha1("")), [f"write {DROPIN} (its content differs)"]),
        (lambda f: _paths(f)[DROPIN].update(islnk=True), [f"write {DROPIN} (it is a symbolic link)"]),
        (
            lambda f: f["tpmfleet_host_state"]["consumers"][UNIT].update(need_daemon_reload=True),
            [f'reload systemd for "{UNIT}": systemd has not loaded its changed drop-ins (NeedDaemonReload=yes)'],
        ),
        (
            lambda f: f["tpmfleet_host_state"]["consumers"][UNIT]["environ"].update(TCTI="device:/dev/tpm0"),
            [f'restart "{UNIT}": it runs with TCTI="device:/dev/tpm0" (the quote mode\'s: "device:/dev/tpmrm0")'],
        ),
    ],
)
def test_every_drift_the_apply_fixes_is_planned(change, want):
    assert tpm_tcti_env.changes(values(), Host(drifted(change))) == want


def test_another_mode_is_another_file_and_its_stale_consumers():
    host = Host(converged(), env=ENV_TEXT.replace("kernel_rm", "direct"))
    assert tpm_tcti_env.changes(values(), host) == [f"write {ENV} (its content differs)"]
    # The consumer runs with kernel_rm's TCTI: in direct mode it is restarted (unless the setting says not to).
    stale = tpm_tcti_env.changes(values(mode="direct"), Host(converged()))
    assert [c.split(":")[0] for c in stale] == [f'restart "{UNIT}"']
    assert tpm_tcti_env.changes(values(mode="direct", restart=False), Host(converged())) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda f: _paths(f).pop(ENV),
        lambda f: _paths(f).pop("/etc/tpm2"),
        lambda f: _paths(f).pop(DROPIN),
        lambda f: _paths(f).pop(DROPINS),
        lambda f: f.pop("services"),
        lambda f: f["tpmfleet_host_state"].pop("consumers"),
        lambda f: _paths(f)[ENV].pop("checksum"),
        lambda f: f.pop("tpmfleet_host_state"),
    ],
)
def test_it_cannot_tell_without_every_part_read(change):
    assert tpm_tcti_env.changes(values(), Host(drifted(change))) is None


def test_it_cannot_tell_when_a_template_could_render_otherwise_or_without_a_valid_path_or_mode():
    assert tpm_tcti_env.changes(values(), Host(converged(), env=None)) is None
    assert tpm_tcti_env.changes(values(), Host(converged(), dropin=None)) is None
    assert tpm_tcti_env.changes({**values(), "tpm_tcti_env_path": "relative/tcti.env"}, Host(converged())) is None
    assert tpm_tcti_env.changes({**values(), "tpm_quote_mode_profile": None}, Host(converged())) is None


def test_the_preflight_reads_every_file_the_plan_compares():
    reads = tpm_tcti_env.reads({**values(), "__tpm_tcti_env_marker": "# tpmfleet: TCTI for quote mode "})
    assert {ENV, "/etc/tpm2", DROPINS, DROPIN} <= set(reads["paths"])
    assert reads["consumers"] == [UNIT] and "tpm2.target" in reads["units"]


def test_the_role_is_skipped_only_with_nothing_to_do_and_runs_after_a_role_that_changed_the_units():
    plans = {role: ([] if hasattr(registry.spec(role), "changes") else None) for role in registry.ROLES}
    assert registry.entries(plans)["tpm_tcti_env"] is None
    assert registry.entries({**plans, "tpm_tcti_env": [f"write {ENV}"]})["tpm_tcti_env"] == "apply"
    assert registry.entries({**plans, "tpm_abrmd": ["stop tpm2-abrmd.service"]})["tpm_tcti_env"] == "apply"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40),
    value=st.one_of(st.none(), st.text(max_size=10_000)),
)
def test_any_environment_a_consumer_runs_with_gives_a_plan_of_sentences(name, value):
    """Whatever the host shows a consumer's process runs with (control characters, markup, 10 kB), the plan is a
    list of one-line sentences naming the unit, never a crash; a matching environment plans nothing."""

    def odd(f):
        environ = f["tpmfleet_host_state"]["consumers"][UNIT]["environ"]
        environ[name] = value

    plan = tpm_tcti_env.changes(values(), Host(drifted(odd)))
    assert isinstance(plan, list)
    for sentence in plan:
        assert sentence.startswith(f'restart "{UNIT}": it runs with ') and "\n" not in sentence
    wanted = profile("kernel_rm")["tcti_variables"]
    assert (plan == []) == (name not in wanted or value == wanted[name])
