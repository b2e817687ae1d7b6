"""On an ansible-core older than requires_ansible, the collection's playbooks refuse before touching a host.

ansible-core only warns ("Collection tpmfleet.tpm does not support Ansible version ...") and runs the
collection anyway. The first play of site, quote_mode and report runs tpmfleet.tpm.requires_ansible once, on
the controller. These tests run the real ``ansible-playbook`` of ansible-core releases that upstream no longer
supports (virtual environments from PyPI, built once per Python and cached under .cache/ansible-core/) against an
inventory whose hosts are a closed port on loopback: any attempt to reach a host would show up as
UNREACHABLE, so a refusal without it proves nothing was tried on a host.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as running_core
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections" / "ansible_collections" / "tpmfleet" / "tpm"
CACHE = REPO / ".cache" / "ansible-core"
# The newest release of each ansible-core that reached end of life, with the newest controller Python it
# supports (upstream's support matrix): on a newer Python it is not run (it is not ours to make it work there).
UNSUPPORTED = {"2.18.19": (3, 13), "2.17.14": (3, 12)}
PYTHON = f"py{sys.version_info[0]}.{sys.version_info[1]}"
PLAYBOOKS = [
    pytest.param(["site.yml", "--check"], id="site-check"),
    pytest.param(["playbooks/report.yml"], id="report"),
]


def _spec():
    """The collection's requires_ansible (meta/runtime.yml)."""
    return yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())["requires_ansible"]


def _dependency_collections():
    """The directory holding the dependency collections (the `ansible` package's, on this Python's path)."""
    for entry in sys.path:
        if (Path(entry) / "ansible_collections" / "community" / "general").is_dir():
            return entry
    pytest.fail("community.general is not installed on this Python's path (the `ansible` package of requirements)")


def core_venv(version):
    """A virtual environment with ansible-core ``version`` from PyPI, built once (``ready`` marks a complete one)."""
    venv = CACHE / f"{version}-{PYTHON}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "ready").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"ansible-core=={version}"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert pip.returncode == 0, f"pip install ansible-core=={version} failed:\n{pip.stdout}{pip.stderr}"
            (venv / "ready").write_text(version + "\n")
    return venv


@pytest.fixture(scope="module")
def closed_port_inventory(tmp_path_factory):
    """Two hosts on a loopback port that refuses connections (the discard port, closed here)."""
    inventory = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    hosts = {f"closed-{n}": {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "root"} for n in (1, 2)}
    inventory.write_text(yaml.safe_dump({"tpm_hosts": {"hosts": hosts}}))
    return inventory


def run_playbook(bindir, inventory, args, cwd):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        PATH=f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=f"{REPO / 'collections'}:{_dependency_collections()}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_TIMEOUT="5",
    )
    playbook, *rest = args
    return subprocess.run(
        [str(Path(bindir) / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook), *rest],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("args", PLAYBOOKS)
@pytest.mark.parametrize("version", sorted(UNSUPPORTED, reverse=True))
def test_an_unsupported_ansible_core_is_refused_before_any_host_is_touched(
    version, args, closed_port_inventory, tmp_path
):
    if sys.version_info[:2] > UNSUPPORTED[version]:
        pytest.skip(f"ansible-core {version} does not support Python {sys.version.split()[0]} as a controller")
    spec = _spec()
    assert not SpecifierSet(spec).contains(version), f"{version} meets {spec}: pick an older release"
    venv = core_venv(version)
    result = run_playbook(venv / "bin", closed_port_inventory, args, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"tpmfleet.tpm needs ansible-core {spec}" in out, out
    assert f"runs ansible-core {version} " in out, out
    assert "./scripts/setup.sh" in out and f"'ansible-core{spec}'" in out, out
    assert "Traceback" not in out and "UNREACHABLE" not in out and "Gathering Facts" not in out, out
    # One refusal, once: no later play ran (the report writes nothing).
    assert out.count("FAILED!") == 1, out
    assert not (tmp_path / "report").exists()


def test_the_supported_ansible_core_passes_the_check_and_goes_on_to_the_hosts(closed_port_inventory, tmp_path):
    """The same run on the toolchain's ansible-core: the check passes, then the play tries the hosts (the
    closed port makes them unreachable), so the refusal above is the check's doing, not the inventory's."""
    assert SpecifierSet(_spec()).contains(running_core)
    result = run_playbook(Path(sys.executable).parent, closed_port_inventory, ["site.yml", "--check"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "ok: [closed-1]" in out and "needs ansible-core" not in out, out
    assert "UNREACHABLE" in out and "Traceback" not in out, out


def test_requires_ansible_is_the_oldest_release_upstream_supports():
    """2.18 reached end of life in November 2026 (ansible-core's support matrix); 2.19, 2.20 and 2.21 are in."""
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=2.19.0"
    spec = SpecifierSet(runtime["requires_ansible"])
    assert [v for v in ["2.18.19", "2.19.0", "2.19.14", "2.20.0", "2.21.5"] if Version(v) in spec] == [
        "2.19.0",
        "2.19.14",
        "2.20.0",
        "2.21.5",
    ]
