# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_containers run by Ansible on the controller (no Docker): what it writes, and what it refuses.

The real-container proof (Docker in a lab VM, quotes from inside a container)
is molecule/containers, run on demand; this runs in `make test`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from roleplay import changed, failed_tasks, run_role, stand_in, state

ROOT = Path(__file__).resolve().parent.parent.parent
TSS_GID = 4242  # pinned (tpm_access_tss_gid): the role must use the number the run enforces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the data directories are chowned to the container's UID")


def project(base):
    return {
        "name": "attest",
        "dir": str(base / "attest"),
        "services": [
            {
                "name": "agent",
                "image": "registry.example.net/keylime/agent:7.12",
                "user": "2000:2000",
                "command": ["keylime_agent"],
                "environment": {"AGENT_TOKEN": "not-a-real-secret"},
                "data": {"persistence": "/var/lib/keylime", "config": "/etc/keylime"},
            }
        ],
    }


def run(tmp_path, extra, *args, check_mode=False):
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [{"name": "Run tpm_containers", "hosts": "localhost", "gather_facts": False,
              "roles": [{"role": "tpmfleet.tpm.tpm_containers"}]}]
        )
    )  # fmt: skip
    variables = {
        "tpm_quote_mode": "direct",
        "tpm_containers_docker": False,
        "tpm_access_tss_gid": TSS_GID,
        # The controller has no TPM: the access check can only warn here.
        "tpm_containers_access_check": "warn",
        "tpm_containers_base_dir": str(tmp_path / "srv"),
        **extra,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_STRATEGY="linear",
    )
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", f"@{tmp_path / 'vars.json'}", str(play), *args,
    ]  # fmt: skip
    if check_mode:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    return proc.returncode, out


def tasks(out):
    """(task name, localhost result) for every task that ran."""
    return [(t["task"]["name"], t["hosts"].get("localhost", {})) for play in out["plays"] for t in play["tasks"]]


def messages(out):
    return " ".join(str(r.get("msg", "")) for _, r in tasks(out))


def digest(base):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ctr")
    base = tmp / "srv"
    first = run(tmp, {"tpm_containers_projects": [project(base)]})
    second = run(tmp, {"tpm_containers_projects": [project(base)]})
    return tmp, base, first, second


def test_the_role_writes_the_project(converged):
    _, base, (rc, out), _ = converged
    assert rc == 0, messages(out)
    compose = base / "attest" / "compose.yaml"
    text = compose.read_text()
    assert text.splitlines()[:3] == ["#", "# Ansible managed", "#"]  # ansible_managed | comment
    doc = yaml.safe_load(text)
    agent = doc["services"]["agent"]
    assert agent["group_add"] == [TSS_GID] and agent["devices"] == ["/dev/tpm0:/dev/tpm0:rw"]
    assert agent["environment"]["TPM2TOOLS_TCTI"] == "device:/dev/tpm0"
    assert agent["env_file"] == [str(base / "attest" / "agent.env")]
    assert (agent["read_only"], agent["privileged"], agent["cap_drop"]) == (True, False, ["ALL"])
    assert compose.stat().st_mode & 0o777 == 0o640 and compose.stat().st_uid == 0
    env = base / "attest" / "agent.env"
    assert env.stat().st_mode & 0o777 == 0o600
    assert 'AGENT_TOKEN="not-a-real-secret"' in env.read_text().splitlines()
    for kind in ("persistence", "config"):
        st = (base / "attest" / "data" / "agent" / kind).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (2000, 2000, 0o700)
    # The environment's value is never in the output.
    assert "not-a-real-secret" not in json.dumps(out)


def test_the_controller_without_a_tpm_is_reported_by_the_access_check(converged):
    _, _, (_, out), _ = converged
    assert "/dev/tpm0 does not exist on this host" in messages(out)


def test_a_second_run_changes_nothing(converged):
    _, _, _, (rc, out) = converged
    assert rc == 0 and out["stats"]["localhost"]["changed"] == 0, messages(out)


def test_check_diff_is_truthful_and_a_real_change_keeps_a_backup(converged):
    tmp, base, _, _ = converged
    before = digest(base)
    changed = {
        "tpm_containers_projects": [project(base)],
        "tpm_containers_limits": {"memory": "512m", "cpus": 1.0, "pids": 256},
    }
    rc, out = run(tmp, changed, check_mode=True)
    assert rc == 0 and out["stats"]["localhost"]["changed"] == 1, messages(out)
    diffs = [i.get("diff") for name, r in tasks(out) if "compose file" in name for i in r.get("results", [])]
    assert diffs and "mem_limit: 512m" in json.dumps(diffs)
    assert digest(base) == before
    rc, out = run(tmp, changed)
    assert rc == 0
    backups = list((base / "attest").glob("compose.yaml.*~"))
    assert len(backups) == 1 and backups[0].read_text() == (
        tmp / "srv" / "attest" / "compose.yaml"
    ).read_text().replace("mem_limit: 512m", "mem_limit: 256m")


# Each bad input is covered by the filter's unit tests; here, that the role stops before writing.
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"services": [{"name": "a", "image": "x", "user": "2000:2000", "docker_socket": True}]},
            "Opt in with tpm_containers_allow_docker_socket: true",
        ),
        (
            {"services": [{"name": "a", "image": "x", "user": "2000:2000", "cap_add": ["cap_sys_admin"]}]},
            "tpm_containers_projects[0].services[0].cap_add (project attest, service a): SYS_ADMIN mount, namespaces",
        ),
        (
            {"services": [{"name": "a", "image": "busybox$(reboot)", "user": "2000:2000"}]},
            'tpm_containers_projects[0].services[0].image (project attest, service a): "busybox$(reboot)" is not an '
            "image reference",
        ),
    ],
)
def test_bad_inputs_fail_clearly_and_write_nothing(converged, extra, expected):
    tmp, base, _, _ = converged
    before = digest(base)
    rc, out = run(tmp, {"tpm_containers_projects": [{**project(base), **extra}]})
    assert rc != 0 and expected in messages(out), messages(out)
    assert digest(base) == before


def test_opted_in_capabilities_and_host_network_are_written(tmp_path):
    base = tmp_path / "srv"
    agent = {**project(base)["services"][0], "cap_add": ["cap_sys_time", "NET_BIND_SERVICE"], "network_mode": "host"}
    extra = {
        "tpm_containers_projects": [{**project(base), "services": [agent]}],
        "tpm_containers_allow_capabilities": ["SYS_TIME"],
        "tpm_containers_allow_host_network": True,
    }
    rc, out = run(tmp_path, extra)
    assert rc == 0, failed_tasks(out)
    written = yaml.safe_load((base / "attest" / "compose.yaml").read_text())["services"]["agent"]
    assert written["cap_add"] == ["SYS_TIME", "NET_BIND_SERVICE"] and written["cap_drop"] == ["ALL"]
    assert written["network_mode"] == "host" and written["privileged"] is False


def test_an_unknown_quote_mode_fails_before_anything(converged):
    tmp, base, _, _ = converged
    before = digest(base)
    rc, out = run(tmp, {"tpm_quote_mode": "fast", "tpm_containers_projects": [project(base)]})
    assert rc != 0 and 'tpm_quote_mode must be one of direct, kernel_rm, abrmd (got "fast")' in messages(out)
    assert digest(base) == before


def test_a_service_that_cannot_open_the_node_fails_and_writes_nothing(converged):
    tmp, base, _, _ = converged
    before = digest(base)
    rc, out = run(tmp, {"tpm_containers_projects": [project(base)], "tpm_containers_access_check": "fail"})
    assert rc != 0 and "cannot open it" in messages(out) and "Nothing was changed" in messages(out)
    assert digest(base) == before


def test_no_projects_no_remote_task(tmp_path):
    rc, out = run(tmp_path, {"tpm_containers_projects": []})
    assert rc == 0
    ran = [name for name, r in tasks(out) if name.startswith("tpm_containers") and not r.get("skipped")]
    # Only controller-side steps: the argument check, the include and the settings check.
    assert all(("arg spec" in n) or n.endswith(("Validate the tpm_containers settings against the host",
               "Check the tpm_containers settings")) for n in ran), ran  # fmt: skip
    assert out["stats"]["localhost"]["changed"] == 0


# --- Docker detection (tpm_containers_docker: auto, the default) -------------------------------


def path_without_docker():
    """The PATH with every directory that holds a docker executable left out."""
    keep = [d for d in os.environ["PATH"].split(os.pathsep) if d and not os.access(os.path.join(d, "docker"), os.X_OK)]
    return os.pathsep.join(keep)


def test_auto_without_docker_writes_the_files_and_claims_no_missing_plugin(tmp_path):
    """The host has no docker CLI at all: decided from the exit status of `command -v`, not a message."""
    base = tmp_path / "srv"
    extra = {"tpm_containers_projects": [project(base)], "tpm_containers_docker": "auto"}
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", {**common(tmp_path), **extra},
                       env={"PATH": path_without_docker()})  # fmt: skip
    assert rc == 0, failed_tasks(out)
    assert "compose v2 CLI plugin" not in messages(out)
    assert (base / "attest" / "compose.yaml").is_file()
    looked = dict(tasks(out))["tpmfleet.tpm.tpm_containers : Look for the docker CLI on the host"]
    assert looked["rc"] != 0 and looked["stdout"] == ""


@pytest.fixture
def fake_docker(tmp_path):
    """A docker CLI without the compose plugin, first in the PATH (as a client without docker-compose-plugin)."""
    body = 'echo "docker: unknown command: docker $1" >&2\nexit 1\n'
    return stand_in(tmp_path, "docker", body, path_without_docker())


@pytest.mark.parametrize("manage", ["auto", True])
def test_docker_without_compose_v2_is_named_and_nothing_is_written(tmp_path, fake_docker, manage):
    base = tmp_path / "srv"
    extra = {"tpm_containers_projects": [project(base)], "tpm_containers_docker": manage}
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", {**common(tmp_path), **extra},
                       env={"PATH": fake_docker})  # fmt: skip
    assert rc != 0
    assert (
        "Docker is on this host but the compose v2 CLI plugin (docker compose, 2.18 or later) is not (found: none)"
        in (messages(out))
    )
    assert not base.exists()


def test_docker_true_without_docker_fails_and_writes_nothing(tmp_path):
    base = tmp_path / "srv"
    extra = {"tpm_containers_projects": [project(base)], "tpm_containers_docker": True}
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", {**common(tmp_path), **extra},
                       env={"PATH": path_without_docker()})  # fmt: skip
    assert rc != 0 and "tpm_containers_docker is true but Docker is not installed on this host" in messages(out)
    assert not base.exists()


# --- directories: confined below the base directory, never changed unless tpmfleet created them --


def common(tmp_path):
    return {
        "tpm_quote_mode": "direct",
        "tpm_containers_docker": False,
        "tpm_access_tss_gid": TSS_GID,
        "tpm_containers_access_check": "warn",
        "tpm_containers_base_dir": str(tmp_path / "srv"),
    }


def test_an_existing_project_directory_keeps_its_owner_and_mode_and_gets_no_marker(tmp_path):
    base = tmp_path / "srv"
    pdir = base / "attest"
    pdir.mkdir(parents=True)
    os.chown(pdir, 65534, 65534)
    pdir.chmod(0o755)
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers",
                       {**common(tmp_path), "tpm_containers_projects": [project(base)]})  # fmt: skip
    assert rc == 0, failed_tasks(out)
    st = pdir.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o755)
    assert not (pdir / ".tpmfleet-project").exists()
    # What was missing below it was created as planned.
    data = (pdir / "data" / "agent" / "persistence").stat()
    assert (data.st_uid, data.st_gid, data.st_mode & 0o777) == (2000, 2000, 0o700)
    assert (pdir / "compose.yaml").is_file()


def test_a_project_directory_tpmfleet_created_carries_the_marker_and_keeps_the_planned_modes(tmp_path):
    base = tmp_path / "srv"
    variables = {**common(tmp_path), "tpm_containers_projects": [project(base)]}
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", variables, check_mode=True)
    assert rc == 0 and not base.exists(), failed_tasks(out)  # check mode: nothing made
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", variables)
    assert rc == 0, failed_tasks(out)
    pdir = base / "attest"
    assert "tpmfleet created" in (pdir / ".tpmfleet-project").read_text()
    (pdir / "data" / "agent" / "persistence").chmod(0o777)
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers", variables)
    assert rc == 0 and changed(out) == 1, failed_tasks(out)
    assert (pdir / "data" / "agent" / "persistence").stat().st_mode & 0o777 == 0o700


BAD_DIRS = {
    # host -> (the project's extra keys or settings, a fragment of the one message)
    "dir-root": ({"dir": "/."}, "dir must be a directory below tpm_containers_base_dir (/srv/tpmfleet), such as "
                 "/srv/tpmfleet/attest, written without '..' (got \"/.\", which is /)"),
    "dir-escape": ({"dir": "/srv/tpmfleet/../../etc"}, "dir must be a directory below tpm_containers_base_dir"),
    "dir-base": ({"dir": "/srv/tpmfleet/"}, '(got "/srv/tpmfleet/", which is /srv/tpmfleet)'),
    "volume-root": ({"services": [{"name": "agent", "image": "x", "user": "2000:2000", "volumes": ["/:/host"]}]},
                    "volume \"/:/host\" mounts the host's /: / is a sensitive host path"),
    "volume-etc": ({"services": [{"name": "agent", "image": "x", "user": "2000:2000", "volumes": ["/etc:/e:ro"]}]},
                   "list the path in tpm_containers_allow_host_paths (e.g. [/etc])"),
    "base-root": ({"settings": {"tpm_containers_base_dir": "/"}},
                  "tpm_containers_base_dir must be a directory of tpmfleet's own such as /srv/tpmfleet"),
    "base-etc": ({"settings": {"tpm_containers_base_dir": "/etc"}}, "tpm_containers_base_dir must be a directory"),
}  # fmt: skip


@pytest.fixture(scope="module")
def bad_dirs_run(tmp_path_factory):
    """Each bad directory or volume on its own host (each one the controller), in one run."""
    tmp = tmp_path_factory.mktemp("bad-dirs")
    watched = ["/", "/etc", "/srv", "/srv/tpmfleet", "/etc/passwd"]
    before = state(*watched)
    hosts = {}
    for host, (extra, _) in BAD_DIRS.items():
        settings = extra.get("settings", {})
        proj = {"name": "attest", "services": [{"name": "agent", "image": "x", "user": "2000:2000"}]}
        proj.update({k: v for k, v in extra.items() if k != "settings"})
        hosts[host] = {"tpm_containers_projects": [proj], **settings}
    variables = {k: v for k, v in common(tmp).items() if k != "tpm_containers_base_dir"}
    rc, out = run_role(tmp, "tpmfleet.tpm.tpm_containers", variables, hosts=hosts)
    return rc, out, before, state(*watched)


@pytest.mark.parametrize("host", BAD_DIRS)
def test_a_bad_directory_or_volume_fails_with_one_message(bad_dirs_run, host):
    rc, out, _, _ = bad_dirs_run
    failed = failed_tasks(out, host)
    assert rc != 0 and len(failed) == 1, failed
    assert BAD_DIRS[host][1] in failed[0][1], failed
    assert changed(out, host) == 0


def test_the_bad_directories_changed_nothing(bad_dirs_run):
    _, _, before, after = bad_dirs_run
    assert after == before


def test_a_link_at_the_project_directory_is_refused_and_its_target_unchanged(tmp_path):
    base = tmp_path / "srv"
    base.mkdir()
    (base / "attest").symlink_to("/etc")
    before = state("/etc", base / "attest")
    rc, out = run_role(tmp_path, "tpmfleet.tpm.tpm_containers",
                       {**common(tmp_path), "tpm_containers_projects": [project(base)]})  # fmt: skip
    assert rc != 0
    assert f"{base}/attest exists on this host and is a symbolic link" in messages(out)
    assert state("/etc", base / "attest") == before
