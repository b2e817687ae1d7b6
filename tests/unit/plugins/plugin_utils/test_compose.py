"""The compose documents, env files, data directories and access checks of tpm_containers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import compose as tc
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm

MODES = ("direct", "kernel_rm", "abrmd")
TCTI = {
    "direct": "device:/dev/tpm0",
    "kernel_rm": "device:/dev/tpmrm0",
    "abrmd": "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system",
}
TCTI_NAMES = ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI")
# ansible.builtin.getent's getent_group: name -> [password, gid, members]. The GIDs differ
# from Debian's usual ones on purpose: the test must see the host's numbers.
GROUPS = {"root": ["x", "0", ""], "tss": ["x", "950", ""], "docker": ["x", "951", ""], "agent": ["x", "2000", ""]}
# A value with a dollar sign: compose must not interpolate it.
LITERAL = "a$b ${c}"
DOCKER = {"present": True, "compose": True, "version": "2.26.1-4"}
NODES = {
    "direct": {"/dev/tpm0": {"uid": 101, "gid": 950, "mode": "0660", "owner": "tss", "group": "tss"}},
    "kernel_rm": {"/dev/tpmrm0": {"uid": 101, "gid": 950, "mode": "0660", "owner": "tss", "group": "tss"}},
    "abrmd": {},
}


def service(**overrides):
    base = {"name": "agent", "image": "registry.example.net/agent:1.2", "user": "2000:2000"}
    return {**base, **overrides}


def project(*services, name="attest", **extra):
    return {"name": name, "services": list(services) or [service()], **extra}


def plan(projects, mode="direct", groups=GROUPS, docker=DOCKER, strict=True, **settings):
    return tc.compose_plan(projects, qm.profile(mode), groups=groups, docker=docker, settings=settings, strict=strict)


def one(mode="direct", **svc):
    result = plan([project(service(**svc))], mode)
    assert result["errors"] == []
    return result, result["projects"][0]["document"]["services"]["agent"]


# --- each quote mode -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_container_gets_what_the_quote_mode_gives_and_nothing_else(mode):
    _, svc = one(mode)
    profile = qm.profile(mode)
    if mode == "abrmd":
        assert "devices" not in svc
        assert {"type": "bind", "source": "/run/dbus/system_bus_socket", "target": "/run/dbus/system_bus_socket",
                "read_only": True} in svc["volumes"]  # fmt: skip
    else:
        device = {"direct": "/dev/tpm0", "kernel_rm": "/dev/tpmrm0"}[mode]
        assert svc["devices"] == [f"{device}:{device}:rw"]
        assert not any("dbus" in str(v) for v in svc.get("volumes", []))
    # The same TCTI variables as the host's env file (tpm_tcti_env), from the same profile.
    assert svc["environment"] == profile["tcti_variables"] == dict.fromkeys(TCTI_NAMES, TCTI[mode])
    assert svc["labels"]["org.tpmfleet.quote-mode"] == mode


@pytest.mark.parametrize("mode", MODES)
def test_least_privilege_by_default(mode):
    _, svc = one(mode)
    assert svc["privileged"] is False
    assert svc["cap_drop"] == ["ALL"]
    assert "cap_add" not in svc
    assert svc["security_opt"] == ["no-new-privileges:true"]
    assert svc["read_only"] is True
    assert svc["tmpfs"] == ["/tmp", "/run"]
    assert not any("docker.sock" in str(v) for v in svc.get("volumes", []))
    assert svc["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    assert (svc["mem_limit"], svc["cpus"], svc["pids_limit"]) == ("256m", 1.0, 256)
    assert svc["restart"] == "unless-stopped"
    assert "network_mode" not in svc and "ports" not in svc


@pytest.mark.parametrize("mode", MODES)
def test_group_add_holds_the_hosts_numeric_tss_gid(mode):
    result, svc = one(mode)
    assert svc["user"] == "2000:2000"
    assert svc["group_add"] == [950]
    assert all(isinstance(g, int) for g in svc["group_add"])
    assert result["projects"][0]["services"][0]["group_add"] == [950]
    # Another host, another number: always what the host says.
    other = plan([project()], mode, groups={**GROUPS, "tss": ["x", "106", ""]})
    assert other["projects"][0]["document"]["services"]["agent"]["group_add"] == [106]


@pytest.mark.parametrize("mode", MODES)
def test_every_rendered_document_passes_the_compose_schema(mode):
    rich = service(
        command=["/bin/sh", "-c", "echo $HOME"],
        environment={"TOKEN": LITERAL},
        ports=["127.0.0.1:9002:9002"],
        volumes=["/srv/certs:/certs:ro"],
        healthcheck={"test": ["CMD", "/bin/true"], "interval": "30s", "retries": 3},
        data={"persistence": "/var/lib/agent", "logs": "/var/log/agent", "config": "/etc/agent"},
        limits={"memory": "512m", "cpus": 0.5, "pids": 64},
        logging={"max_size": "5m", "max_file": 2},
        restart="on-failure:5",
        cap_add=["NET_BIND_SERVICE"],
        network_mode="none",
    )
    result = plan([project(rich, service(name="helper", tpm=False))], mode)
    assert result["errors"] == []
    document = result["projects"][0]["document"]
    assert tc.compose_schema_errors(document) == []
    # The YAML text is the document.
    assert yaml.safe_load(result["projects"][0]["compose_yaml"]) == document


def test_a_service_without_the_tpm_gets_no_device_tcti_or_tss_gid():
    _, svc = one("direct", tpm=False)
    assert "devices" not in svc and "environment" not in svc and "group_add" not in svc
    assert svc["labels"]["org.tpmfleet.tpm"] == "false"


def test_the_primary_gid_is_not_repeated_in_group_add():
    _, svc = one("kernel_rm", user="2000:950")
    assert "group_add" not in svc


# --- parameters ------------------------------------------------------------------------------


def test_limits_logging_restart_and_tmpfs_are_parameters():
    result = plan(
        [project(service(), service(name="b", limits={"memory": "1g"}, logging={"max_file": 9}, read_only=False))],
        "kernel_rm",
        limits={"memory": "128m", "cpus": 0.25, "pids": None},
        logging={"max_size": "1m", "max_file": 2},
        restart="always",
        tmpfs=["/tmp"],
    )
    services = result["projects"][0]["document"]["services"]
    assert (services["agent"]["mem_limit"], services["agent"]["cpus"]) == ("128m", 0.25)
    assert "pids_limit" not in services["agent"]
    assert services["agent"]["logging"]["options"] == {"max-size": "1m", "max-file": "2"}
    assert services["agent"]["restart"] == "always"
    assert services["agent"]["tmpfs"] == ["/tmp"]
    assert services["b"]["mem_limit"] == "1g"
    assert services["b"]["logging"]["options"] == {"max-size": "1m", "max-file": "9"}
    # A writable root filesystem gets no tmpfs unless asked, and the file says so.
    assert services["b"]["read_only"] is False and "tmpfs" not in services["b"]
    assert any("writable root filesystem" in n for n in result["projects"][0]["notes"])


def test_data_directories_belong_to_the_container_user_with_tight_modes():
    result, svc = one("direct", data={"persistence": "/var/lib/agent", "config": "/etc/agent", "logs": "/log"})
    dirs = {d["path"]: d for d in result["projects"][0]["dirs"]}
    base = "/srv/tpmfleet/attest"
    assert dirs[base] == {"path": base, "owner": 0, "group": 0, "mode": "0750", "kind": "project"}
    assert dirs[f"{base}/data/agent/persistence"] | {} == {
        "path": f"{base}/data/agent/persistence", "owner": 2000, "group": 2000, "mode": "0700", "kind": "persistence"
    }  # fmt: skip
    assert dirs[f"{base}/data/agent/config"]["mode"] == "0700"
    assert {d["owner"] for d in dirs.values() if d["kind"] in ("persistence", "logs", "config")} == {2000}
    # Parents come before children (the file module creates them in that order).
    paths = [d["path"] for d in result["projects"][0]["dirs"]]
    assert paths.index(f"{base}/data") < paths.index(f"{base}/data/agent") < paths.index(f"{base}/data/agent/logs")
    mounts = {v["target"]: v for v in svc["volumes"]}
    assert mounts["/etc/agent"]["read_only"] is True and mounts["/var/lib/agent"]["read_only"] is False


def test_a_project_dir_below_the_base_dir_is_used_normalised():
    result = plan(
        [project(service(environment={"A": "1"}), dir="/srv/x//files/./attest/")], "direct", base_dir="/srv/x"
    )
    assert result["errors"] == []
    assert result["projects"][0]["dir"] == "/srv/x/files/attest"
    assert result["projects"][0]["compose_path"] == "/srv/x/files/attest/compose.yaml"
    assert result["env_files"][0]["path"] == "/srv/x/files/attest/agent.env"
    assert result["projects"][0]["document"]["services"]["agent"]["env_file"] == ["/srv/x/files/attest/agent.env"]
    assert result["projects"][0]["stat_paths"][-1] == "/srv/x/files/attest/.tpmfleet-project"


# --- environment, env files, literal values ----------------------------------------------------


def test_environment_goes_to_the_env_file_not_the_compose_file():
    result, svc = one("direct", environment={"LICENSE_KEY": 'abc$DEF"x\\y\nz', "PORT": 8443, "DEBUG": False})
    text = result["projects"][0]["compose_yaml"]
    assert "abc" not in text and "LICENSE_KEY" not in text
    assert svc["env_file"] == ["/srv/tpmfleet/attest/agent.env"]
    env = result["env_files"][0]
    assert env["path"] == "/srv/tpmfleet/attest/agent.env" and env["project"] == "attest"
    lines = [line for line in env["content"].splitlines() if not line.startswith("#")]
    assert lines == ['LICENSE_KEY="abc\\$DEF\\"x\\\\y\\nz"', 'PORT="8443"', 'DEBUG="false"']
    # The plan's projects name the env files but never carry their content.
    assert result["projects"][0]["env_files"] == ["/srv/tpmfleet/attest/agent.env"]
    assert "abc" not in repr(result["projects"])


def test_dollars_are_written_literally_in_the_compose_file():
    _, svc = one("direct", command=["sh", "-c", "echo $HOME ${X}"], healthcheck={"test": "curl $URL"})
    assert svc["command"] == ["sh", "-c", "echo $$HOME $${X}"]
    assert svc["healthcheck"]["test"] == "curl $$URL"


def test_the_env_file_has_a_header_and_ends_with_a_newline():
    text = tc.env_file({"A": "b"}, "line one\nline two")
    assert text == '# line one\n# line two\nA="b"\n'


# --- the Docker socket -------------------------------------------------------------------------


def test_docker_socket_with_opt_in_adds_the_numeric_docker_gid_and_a_note():
    result = plan([project(service(docker_socket=True))], "kernel_rm", allow_docker_socket=True)
    assert result["errors"] == []
    svc = result["projects"][0]["document"]["services"]["agent"]
    assert svc["group_add"] == [950, 951]
    assert {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock",
            "read_only": True} in svc["volumes"]  # fmt: skip
    assert any("socket proxy" in note for note in result["projects"][0]["notes"])


def test_no_docker_gid_without_the_socket():
    _, svc = one("kernel_rm")
    assert 951 not in svc["group_add"]


# --- bad inputs fail clearly, before anything is written --------------------------------------


@pytest.mark.parametrize(
    ("projects", "settings", "expected"),
    [
        (
            [project(service(image=None))],
            {},
            "services[0].image (project attest, service agent): an image reference is required",
        ),
        ([project(service(image=""))], {}, "an image reference is required"),
        ([project(service(docker_socket=True))], {}, "Opt in with tpm_containers_allow_docker_socket: true"),
        ([project(service(), service())], {}, 'service name "agent" is used twice in project "attest"'),
        ([project(), project()], {}, 'project name "attest" is used twice'),
        ([project(service(user="agent"))], {}, "user must be the numeric 'UID:GID'"),
        ([project(service(user="2000"))], {}, "user must be the numeric 'UID:GID'"),
        ([project(service(user="0:0"))], {}, "runs the container as root"),
        ([project(service(volumes=["/var/run/docker.sock:/var/run/docker.sock"]))], {}, "set docker_socket: true"),
        (
            [project(service(privileged=True))],
            {},
            "services[0].privileged (project attest, service agent): privileged gives the container every",
        ),
        ([project(service(tpm_device="/dev/tpm0"))], {}, "unknown keys tpm_device"),
        (
            [project(service(cap_add=["ALL"]))],
            {},
            "services[0].cap_add (project attest, service agent): ALL gives the container every capability",
        ),
        (
            [project(service(network_mode="host"))],
            {},
            "network_mode (project attest, service agent): host puts the container in the host's network",
        ),
        ([project(service(restart="sometimes"))], {}, "restart must be no, always"),
        ([project(service(data={"cache": "/c"}))], {}, "data kinds must be persistence, logs, config"),
        ([project(service(data={"logs": "log"}))], {}, "data paths must be absolute"),
        ([project(service(environment={"1BAD": "x"}))], {}, "environment names must match"),
        ([project(service(limits={"memory": "lots"}))], {}, "limits.memory must be a size"),
        ([project(name="Attest")], {}, "name must be a compose project name"),
        ([{"name": "attest", "services": []}], {}, "services must be a non-empty list"),
        ([project(dir="relative")], {}, "dir must be a directory below tpm_containers_base_dir (/srv/tpmfleet)"),
        (
            [project(), project(name="other", dir="/srv/tpmfleet/attest")],
            {},
            "directory /srv/tpmfleet/attest is also the directory of tpm_containers_projects[0]",
        ),
        ([project()], {"data_modes": {"persistence": "0777", "logs": "0700", "config": "0700"}}, "give other users"),
        ([project()], {"allow_docker_socket": "maybe"}, "tpm_containers_allow_docker_socket must be true or false"),
        ([project()], {"manage": "sometimes"}, "tpm_containers_docker must be auto, true or false"),
        ("attest", {}, "tpm_containers_projects must be a list"),
    ],
)
def test_bad_inputs_are_refused_with_the_variable_and_the_fix(projects, settings, expected):
    errors = tc.compose_input_errors(projects, settings)
    assert any(expected in e for e in errors), errors
    # The plan refuses the same inputs and builds nothing.
    if isinstance(projects, list):
        result = plan(projects, "direct", **settings)
        assert result["projects"] == [] and any(expected in e for e in result["errors"])


BELOW = "dir must be a directory below tpm_containers_base_dir (/srv/tpmfleet), such as /srv/tpmfleet/attest"
BASE = "tpm_containers_base_dir must be a directory of tpmfleet's own such as /srv/tpmfleet"
SAME = "is also the directory of tpm_containers_projects[0] (after normalisation)"


@pytest.mark.parametrize(
    ("projects", "settings", "expected"),
    [
        # The project directory: normalised, below the base directory, one per project.
        ([project(dir="/.")], {}, f"{BELOW}, written without '..' (got \"/.\", which is /)"),
        ([project(dir="/")], {}, f"{BELOW}, written without '..' (got \"/\")"),
        (
            [project(dir="/srv/tpmfleet/../../etc")],
            {},
            f"{BELOW}, written without '..' (got \"/srv/tpmfleet/../../etc\")",
        ),
        ([project(dir="/srv/tpmfleet/attest/../attest")], {}, BELOW),
        ([project(dir="/srv/tpmfleet")], {}, BELOW),
        ([project(dir="/srv/tpmfleet/.")], {}, '(got "/srv/tpmfleet/.", which is /srv/tpmfleet)'),
        ([project(dir="/srv/tpmfleet-other/attest")], {}, BELOW),
        ([project(dir="/etc")], {}, BELOW),
        ([project(dir="/srv/tpmfleet/attest\n")], {}, BELOW),
        ([project(dir="/srv/tpmfleet/at test")], {}, BELOW),
        ([project(dir=["/srv/tpmfleet/attest"])], {}, BELOW),
        (
            [project(dir="/srv/tpmfleet/a"), project(name="other", dir="/srv/tpmfleet//a/.")],
            {},
            f"directory /srv/tpmfleet/a {SAME}",
        ),
        (
            [project(), project(name="other", dir="/srv/tpmfleet/./attest/")],
            {},
            f"directory /srv/tpmfleet/attest {SAME}",
        ),
        (
            [project(dir="/srv/tpmfleet/a"), project(name="other", dir="/srv/tpmfleet/a/data/agent")],
            {},
            "nest (/srv/tpmfleet/a/data/agent is inside /srv/tpmfleet/a)",
        ),
        ([project(name="x\n")], {}, "name must be a compose project name"),
        # The base directory.
        ([project()], {"base_dir": "/"}, f"{BASE}: absolute, without '..' or hidden components"),
        ([project()], {"base_dir": "/etc"}, BASE),
        ([project()], {"base_dir": "/etc/tpmfleet"}, BASE),
        ([project()], {"base_dir": "/srv/../etc"}, BASE),
        ([project()], {"base_dir": "/usr/local/tpmfleet"}, BASE),
        ([project()], {"base_dir": "/run/tpmfleet"}, BASE),
        ([project()], {"base_dir": "srv/tpmfleet"}, BASE),
        ([project()], {"base_dir": "/srv/tpmfleet\n"}, BASE),
        # Sensitive host paths through volumes.
        (
            [project(service(volumes=["/:/host"]))],
            {},
            'volume "/:/host" mounts the host\'s /: / is a sensitive host path',
        ),
        (
            [project(service(volumes=["/etc:/host-etc:ro"]))],
            {},
            "mounts the host's /etc: /etc is a sensitive host path",
        ),
        (
            [project(service(volumes=["/etc/shadow:/shadow:ro"]))],
            {},
            "mounts the host's /etc/shadow: /etc/shadow is in /etc",
        ),
        ([project(service(volumes=["//etc/./ssh/:/ssh"]))], {}, "mounts the host's /etc/ssh: /etc/ssh is in /etc"),
        ([project(service(volumes=["/proc:/host/proc"]))], {}, "mounts the host's /proc"),
        ([project(service(volumes=["/sys/fs/cgroup:/sys/fs/cgroup"]))], {}, "/sys/fs/cgroup is in /sys"),
        ([project(service(volumes=["/dev:/dev"]))], {}, "mounts the host's /dev"),
        ([project(service(volumes=["/boot:/boot:ro"]))], {}, "mounts the host's /boot"),
        ([project(service(volumes=["/root/.ssh:/keys"]))], {}, "/root/.ssh is in /root"),
        ([project(service(volumes=["~/.ssh:/keys"]))], {}, "mounts the host's /root/.ssh"),
        ([project(service(volumes=["/run:/run"]))], {}, "mounts the host's /run: /run holds /run/docker.sock"),
        ([project(service(volumes=["/var:/var"]))], {}, "/var holds /var/run/docker.sock"),
        (
            [project(service(volumes=["./../../../etc:/x"]))],
            {},
            "mounts the host's /etc: /etc is a sensitive host path",
        ),
        (
            [project(service(volumes=[{"type": "bind", "source": "/etc", "target": "/x"}]))],
            {},
            "mounts the host's /etc",
        ),
        (
            [project(service(volumes=["/run/docker.sock:/var/run/docker.sock"]))],
            {"allow_host_paths": ["/run/docker.sock"]},
            "the Docker socket is not mounted through volumes; set docker_socket: true",
        ),
        (
            [project(service(volumes=["/etc/keylime:/k"]))],
            {"allow_host_paths": ["/etc"]},
            "list the path in tpm_containers_allow_host_paths (e.g. [/etc/keylime])",
        ),
        (
            [project()],
            {"allow_host_paths": ["/etc/../etc/keylime"]},
            "tpm_containers_allow_host_paths must list normalised absolute host paths",
        ),
        ([project()], {"allow_host_paths": "/etc/keylime"}, "tpm_containers_allow_host_paths must list"),
    ],
)
def test_bad_paths_are_refused_with_the_variable_and_the_fix(projects, settings, expected):
    errors = tc.compose_input_errors(projects, settings)
    assert any(expected in e for e in errors), errors
    result = plan(projects, "direct", **settings)
    assert result["projects"] == [] and any(expected in e for e in result["errors"])


@pytest.mark.parametrize(
    ("volumes", "allowed"),
    [
        (["/etc/keylime:/etc/keylime:ro"], ["/etc/keylime"]),
        (["/:/host:ro"], ["/"]),
        (["agent-data:/var/lib/agent"], []),  # a named volume
        (["/var/lib/agent"], []),  # an anonymous volume: a path in the container only
        (["/srv/shared/certs:/certs:ro"], []),
        (["./extra:/extra"], []),  # in the project directory
        ([{"type": "volume", "source": "agent-data", "target": "/data"}], []),
        ([{"type": "tmpfs", "target": "/cache"}], []),
    ],
)
def test_volumes_that_are_not_sensitive_or_are_allowed_pass(volumes, allowed):
    result = plan([project(service(volumes=volumes))], "direct", allow_host_paths=allowed)
    assert result["errors"] == []
    assert all(v in result["projects"][0]["document"]["services"]["agent"]["volumes"] for v in volumes)


# --- which directories tpmfleet may create or change --------------------------------------------


def dir_stats(result, **present):
    """stat results for every stat path; ``present``: path -> stat fields of what exists there."""
    paths = result["projects"][0]["stat_paths"]
    return [{"item": p, "stat": present.get(p, {"exists": False})} for p in paths]


DIR = {"exists": True, "isdir": True, "islnk": False, "isreg": False, "uid": 0, "gid": 0, "mode": "0755"}


def data_plan():
    result = plan([project(service(data={"persistence": "/var/lib/agent"}))], "direct")
    assert result["errors"] == []
    return result


def test_a_new_project_gets_every_directory_and_its_marker():
    result = data_plan()
    dirs = tc.compose_dirs(result, dir_stats(result))
    assert dirs["errors"] == [] and dirs["notes"] == []
    assert [d["path"] for d in dirs["manage"]] == [
        "/srv/tpmfleet/attest", "/srv/tpmfleet/attest/data", "/srv/tpmfleet/attest/data/agent",
        "/srv/tpmfleet/attest/data/agent/persistence",
    ]  # fmt: skip
    assert dirs["markers"] == [
        {"path": "/srv/tpmfleet/attest/.tpmfleet-project", "dir": "/srv/tpmfleet/attest", "exists": False}
    ]


def test_an_existing_directory_tpmfleet_did_not_create_keeps_its_owner_and_mode():
    result = data_plan()
    stats = dir_stats(
        result,
        **{
            "/srv/tpmfleet/attest": {**DIR, "uid": 1000, "mode": "0755"},
            "/srv/tpmfleet/attest/data": DIR,
            "/srv/tpmfleet/attest/data/agent": DIR,
            "/srv/tpmfleet/attest/data/agent/persistence": {**DIR, "uid": 1000, "gid": 1000},
        },
    )
    dirs = tc.compose_dirs(result, stats)
    assert dirs["errors"] == [] and dirs["manage"] == [] and dirs["markers"] == []
    (note,) = dirs["notes"]
    assert "/srv/tpmfleet/attest/data/agent/persistence was not created by tpmfleet" in note
    assert "the service runs as 2000:2000" in note


def test_only_the_missing_directories_of_a_foreign_project_directory_are_created():
    result = data_plan()
    dirs = tc.compose_dirs(result, dir_stats(result, **{"/srv/tpmfleet/attest": DIR}))
    assert next(d["path"] for d in dirs["manage"]) == "/srv/tpmfleet/attest/data"
    assert "/srv/tpmfleet/attest" not in [d["path"] for d in dirs["manage"]] and dirs["markers"] == []


def test_a_project_directory_tpmfleet_created_keeps_the_planned_owners_and_modes():
    result = data_plan()
    marker = {"exists": True, "isreg": True, "isdir": False, "islnk": False}
    present = {d["path"]: {**DIR, "uid": 1000} for d in result["projects"][0]["dirs"]}
    stats = dir_stats(result, **present, **{"/srv/tpmfleet/attest/.tpmfleet-project": marker})
    dirs = tc.compose_dirs(result, stats)
    assert len(dirs["manage"]) == 4 and dirs["notes"] == []
    assert dirs["markers"][0]["exists"] is True


@pytest.mark.parametrize(
    ("path", "stat", "what"),
    [
        ("/srv/tpmfleet/attest", {"exists": True, "islnk": True, "isdir": False}, "a symbolic link"),
        (
            "/srv/tpmfleet/attest/data/agent/persistence",
            {"exists": True, "islnk": True, "isdir": False},
            "a symbolic link",
        ),
        ("/srv/tpmfleet/attest/data", {"exists": True, "isreg": True, "isdir": False}, "a file"),
    ],
)
def test_a_link_or_a_file_at_a_directory_path_is_refused(path, stat, what):
    result = data_plan()
    dirs = tc.compose_dirs(result, dir_stats(result, **{path: stat}))
    (error,) = dirs["errors"]
    assert f"{path} exists on this host and is {what}" in error and "never writes through a link" in error


def test_an_unknown_quote_mode_is_refused():
    unknown = r'tpm_quote_mode must be one of direct, kernel_rm, abrmd \(got "fast"\)'
    with pytest.raises(ValueError, match=unknown):
        qm.profile("fast")
    profile = {**qm.profile("direct"), "mode": "fast"}
    with pytest.raises(AnsibleFilterError, match='tpm_quote_mode must be one of direct, kernel_rm, abrmd; got "fast"'):
        tc.compose_plan([project()], profile, groups=GROUPS, docker=DOCKER)


def test_a_profile_without_container_settings_is_refused():
    profile = {k: v for k, v in qm.profile("direct").items() if k != "container"}
    with pytest.raises(AnsibleFilterError, match="no container settings"):
        tc.compose_plan([project()], profile, groups=GROUPS, docker=DOCKER)


def test_error_messages_never_print_environment_values():
    bad = service(image=None, environment={"TOKEN": "hunter2"})
    errors = tc.compose_input_errors(
        [project(bad), {"name": "x", "services": {"a": {"environment": {"T": "hunter2"}}}}]
    )
    assert errors and not any("hunter2" in e for e in errors)


def test_no_projects_no_errors_nothing_planned():
    assert tc.compose_input_errors([]) == []
    result = plan([], "direct", groups={}, docker={})
    assert result["errors"] == [] and result["projects"] == [] and result["env_files"] == []


# --- the host: groups and Docker ---------------------------------------------------------------


def test_a_missing_tss_group_is_an_error_only_after_tpm_access_ran():
    groups = {k: v for k, v in GROUPS.items() if k != "tss"}
    assert plan([project()], "direct", groups=groups, strict=False)["errors"] == []
    errors = plan([project()], "direct", groups=groups)["errors"]
    assert any("group tss (tpm_quote_mode_tss_group) does not exist" in e for e in errors), errors


def test_a_pinned_gid_wins_over_the_hosts_current_one():
    # tpm_access changes the GID in the same run: --check --diff shows the pinned number.
    result = plan([project()], "direct", tss_gid=960)
    assert result["projects"][0]["document"]["services"]["agent"]["group_add"] == [960]


def test_the_docker_socket_needs_the_docker_group_on_the_host():
    groups = {k: v for k, v in GROUPS.items() if k != "docker"}
    errors = plan([project(service(docker_socket=True))], "direct", groups=groups, allow_docker_socket=True)["errors"]
    assert any("group docker" in e and "does not exist" in e for e in errors), errors


@pytest.mark.parametrize(
    ("docker", "manage", "use", "expected"),
    [
        ({"present": True, "compose": True, "version": "2.26.1-4"}, "auto", True, None),
        ({"present": False, "compose": False, "version": ""}, "auto", False, None),
        ({"present": True, "compose": True, "version": "2.26.1-4"}, "false", False, None),
        ({"present": True, "compose": False, "version": ""}, "auto", False, "compose v2 CLI plugin"),
        ({"present": True, "compose": True, "version": "2.17.3"}, "auto", False, "found: version 2.17.3"),
        ({"present": False, "compose": False, "version": ""}, "true", False, "Docker is not installed"),
    ],
)
def test_docker_is_used_only_with_the_compose_v2_plugin(docker, manage, use, expected):
    result = plan([project()], "direct", docker=docker, manage=manage)
    if expected is None:
        assert result["errors"] == [] and result["docker"]["use"] is use
    else:
        assert any(expected in e for e in result["errors"]), result["errors"]


def test_the_schema_check_reports_the_path_of_an_invalid_value():
    errors = tc.compose_schema_errors({"services": {"a": {"image": 1, "bogus": True}}})
    assert any(e.startswith("services.a.image:") for e in errors), errors
    assert any("bogus" in e for e in errors), errors
    result = plan([project(service(healthcheck={"test": ["CMD", "true"], "timeout_s": 5}))], "direct")
    assert any("the compose file would not be valid: services.agent.healthcheck" in e for e in result["errors"])


# --- access: the container's identity against the live node ------------------------------------


def access(mode, nodes=None, check_mode=False, users=None, **svc):
    result, _ = one(mode, **svc)
    profile = qm.profile(mode)
    return tc.compose_access(
        result, NODES[mode] if nodes is None else nodes, groups=GROUPS, profile=profile, users=users,
        check_mode=check_mode,
    )  # fmt: skip


# getent passwd as ansible.builtin.getent returns it: name -> [password, uid, gid, gecos, home, shell].
PASSWD = {"root": ["x", "0", "0", "root", "/root", "/bin/bash"], "tss": ["x", "101", "106", "", "/", "/bin/false"]}


def test_abrmd_needs_a_host_account_for_the_service_uid():
    problems = access("abrmd", users=PASSWD)
    assert len(problems) == 1
    assert "the system D-Bus closes connections from UID 2000, which has no account on the host" in problems[0]
    assert "useradd --system --no-create-home --uid 2000" in problems[0]
    known = {**PASSWD, "agent": ["x", "2000", "2000", "", "/", "/usr/sbin/nologin"]}
    assert access("abrmd", users=known) == []


@pytest.mark.parametrize("mode", ["direct", "kernel_rm"])
def test_device_modes_need_no_host_account(mode):
    assert access(mode, users=PASSWD) == []


@pytest.mark.parametrize("mode", MODES)
def test_the_templated_group_add_opens_the_node(mode):
    assert access(mode) == []


@pytest.mark.parametrize("mode", ["direct", "kernel_rm"])
def test_without_the_tss_gid_the_check_names_the_gid_and_the_node(mode):
    device = {"direct": "/dev/tpm0", "kernel_rm": "/dev/tpmrm0"}[mode]
    problems = access(mode, tss_group=False)
    assert len(problems) == 1
    assert "service agent of project attest (uid 2000, gid 2000, group_add none)" in problems[0]
    assert f"cannot open {device} (owner tss uid 101, group tss GID 950, mode 0660)" in problems[0]
    assert "GID 950 (group tss) is missing from its group_add" in problems[0]


def test_without_the_tss_gid_abrmd_names_the_dbus_policy_and_the_gid():
    problems = access("abrmd", tss_group=False)
    assert len(problems) == 1 and "D-Bus policy" in problems[0] and "GID 950 is missing" in problems[0]


def test_a_node_still_owned_by_root_names_gid_0_of_group_root():
    # direct mode before tpm_udev gave /dev/tpm0 to tss (what the distribution ships).
    nodes = {"/dev/tpm0": {"uid": 101, "gid": 0, "mode": "0660", "owner": "tss", "group": "root"}}
    problems = access("direct", nodes)
    assert len(problems) == 1 and "GID 0 (group root) is missing" in problems[0]
    # In check mode tpm_udev did not change the node yet: the profile's group is what counts.
    assert access("direct", nodes, check_mode=True) == []


def test_a_missing_node_and_a_node_without_group_access_are_reported():
    assert "does not exist on this host" in access("kernel_rm", {})[0]
    nodes = {"/dev/tpmrm0": {"uid": 101, "gid": 950, "mode": "0600", "owner": "tss", "group": "tss"}}
    assert "gives its group no read/write access" in access("kernel_rm", nodes)[0]


def test_the_owner_uid_opens_the_node_without_a_group():
    assert access("kernel_rm", user="101:101", tss_group=False) == []


# --- the real compose CLI, where it is installed ---------------------------------------------


def _compose_cli():
    """The compose v2 command line: `docker compose`, or the standalone v2 binary
    scripts/setup.sh puts in .venv/bin (no Docker engine needed for `config`)."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        exe = shutil.which(argv[0])
        if not exe:
            continue
        probe = subprocess.run([exe, *argv[1:], "version", "--short"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2."):
            return [exe, *argv[1:]]
    return None


COMPOSE_CLI = _compose_cli()  # probed once, not per test


def compose_config(tmp_path, result):
    """`compose config` of the planned project, its directory moved to ``tmp_path`` (the base directory may
    not be under /tmp); returns the configuration compose reads as a dict."""
    pdir = result["projects"][0]["dir"]
    for env in result["env_files"]:
        Path(env["path"].replace(pdir, str(tmp_path), 1)).write_text(env["content"])
    compose = tmp_path / "compose.yaml"
    compose.write_text(result["projects"][0]["compose_yaml"].replace(pdir + "/", f"{tmp_path}/"))
    run = subprocess.run(
        [*COMPOSE_CLI, "-f", str(compose), "config", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


@pytest.mark.skipif(COMPOSE_CLI is None, reason="no compose v2 CLI: scripts/setup.sh installs it")
@pytest.mark.parametrize("mode", MODES)
def test_docker_compose_config_accepts_every_rendered_mode(tmp_path, mode):
    rich = service(
        environment={"TOKEN": LITERAL},
        data={"persistence": "/var/lib/agent", "config": "/etc/agent"},
        healthcheck={"test": ["CMD", "/bin/true"], "interval": "30s"},
    )
    result = plan([project(rich)], mode)
    assert result["errors"] == []
    config = compose_config(tmp_path, result)
    agent = config["services"]["agent"]
    # Literal, from the env file (`config` prints a compose file again, so $ shows as $$).
    assert agent["environment"]["TOKEN"].replace("$$", "$") == LITERAL
    assert agent["environment"]["TPM2TOOLS_TCTI"] == TCTI[mode]
    assert [int(g) for g in agent["group_add"]] == [950]
    assert agent["read_only"] is True and agent["cap_drop"] == ["ALL"]
