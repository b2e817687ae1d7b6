# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_kernel run by Ansible on the controller: the drivers and nodes are read once.

The controller has no TPM and loads no modules: its running kernel is given a
modules.builtin (made for the test, removed after it) that names tpm_tis, so
the role has no driver to load and only reads. Played after a tpm_host_state
read like the preflight's, it does not read the host again; alone, it reads
once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from roleplay import changed, failed_tasks, run_play, tasks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gives the running kernel a modules.builtin")

READ = "Read the drivers built into the running kernel and the TPM device nodes unless the preflight did"
VARIABLES = {"tpm_quote_mode": "kernel_rm", "tpm_kernel_drivers": ["tpm_tis"], "tpm_kernel_require_device": False}
ROLE = {"name": "Run tpm_kernel", "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_kernel"}}
PREFLIGHT_READ = {
    "name": "Read the host as the preflight does",
    "tpmfleet.tpm.tpm_host_state": "{{ lookup('tpmfleet.tpm.host_reads', 'tpm_kernel') }}",
    "check_mode": False,
}


@pytest.fixture
def builtin():
    release = Path("/lib/modules") / os.uname().release
    if release.exists():
        pytest.skip(f"{release} exists on this machine: the test does not touch it")
    made = Path("/lib/modules") if not Path("/lib/modules").exists() else release
    release.mkdir(parents=True)
    (release / "modules.builtin").write_text("kernel/drivers/char/tpm/tpm_tis.ko\nkernel/drivers/char/tpm/tpm_crb.ko\n")
    yield
    shutil.rmtree(made)


def ran(out, name):
    return [r for n, r in tasks(out) if n.endswith(name) and not r.get("skipped")]


def facts(out, key):
    return next(
        r["ansible_facts"][key] for n, r in tasks(out) if n.endswith("Sort the TPM drivers into built-in and loadable")
    )


@pytest.mark.parametrize("check_mode", [False, True])
def test_built_in_drivers_are_read_once_and_not_loaded(tmp_path, builtin, check_mode):
    rc, out = run_play(tmp_path, {"tasks": [ROLE]}, VARIABLES, check_mode=check_mode)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert len(ran(out, READ)) == 1
    assert facts(out, "tpm_kernel_builtin_drivers") == ["tpm_tis"]
    assert ran(out, "Ensure the loadable TPM drivers are loaded now and at boot") == []
    assert ran(out, "Find the TPM device nodes after loading a driver") == []

    rc, out = run_play(tmp_path, {"tasks": [PREFLIGHT_READ, ROLE]}, VARIABLES, check_mode=check_mode)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert ran(out, READ) == []
    assert facts(out, "tpm_kernel_builtin_drivers") == ["tpm_tis"]
