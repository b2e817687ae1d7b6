"""pull.yml never reports success for a pull that converges nothing.

ansible-pull runs ansible-playbook in the clone with its limit set to the
host's own names (``localhost,<fqdn>,<hostname>,127.0.0.1``). These tests run
pull.yml the same way on the controller, with inventories that put none of
those names in tpm_hosts: the run must fail and name the inventory. (The
matching case converges a host: ``make test-pull`` proves it on a lab VM.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT = "localhost,pull-test-host.invalid,pull-test-host,127.0.0.1"


def run_pull(inventory):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "-l", LIMIT, "pull.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "inventory_text",
    [
        pytest.param("all:\n  hosts:\n    pull-test-host:\n", id="host-in-no-group"),
        pytest.param(
            "web:\n  hosts:\n    pull-test-host:\ntpm_hosts:\n  hosts:\n    attest-99:\n", id="host-in-another-group"
        ),
        pytest.param(
            "web:\n  hosts:\n    localhost:\n      ansible_connection: local\n", id="localhost-not-in-tpm_hosts"
        ),
    ],
)
def test_a_pull_whose_host_is_not_in_tpm_hosts_fails_and_names_the_inventory(tmp_path, inventory_text):
    """Without the guard these runs print "skipping: no hosts matched" and exit 0."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_text)
    result = run_pull(inventory)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "No host of this pull is in the group tpm_hosts of the inventory" in out, out
    assert str(inventory) in out, out


def test_a_pull_with_an_inventory_that_does_not_exist_fails(tmp_path):
    """ansible-playbook itself refuses a limit that leaves no host (the clone's ansible.cfg names the lab
    inventory, absent on a pulled host)."""
    result = run_pull(tmp_path / "missing.yml")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "no hosts to target" in out or "No host of this pull" in out, out
