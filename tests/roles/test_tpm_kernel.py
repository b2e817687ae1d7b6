# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_kernel run by Ansible on the controller: the drivers and nodes are read once, and a driver the
kernel lacks is refused before modprobe runs.

The controller has no TPM and loads no modules: its running kernel is given a
modules.builtin and a modules.dep (made for the test, removed after it) that
name tpm_tis and tpm_crb built in and tpm_tis_spi loadable, so the role has no
driver to load and only reads. Played after a tpm_host_state read like the
preflight's, it does not read the host again; alone, it reads once (its
settings check reads, and the role's tasks reuse what it read).
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
# The preflight puts the role's defaults in the play (its public include of tasks/variables.yml), then reads.
PREFLIGHT_VARIABLES = {
    "name": "Put the role's defaults in the play as the preflight does",
    "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_kernel", "tasks_from": "variables", "public": True},
}
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
    (release / "modules.dep").write_text("kernel/drivers/char/tpm/tpm_tis_spi.ko.xz:\nkernel/fs/fat/vfat.ko.xz:\n")
    yield
    shutil.rmtree(made)


CHECK = "Check the tpm_kernel settings and that the running kernel has the drivers"


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
    # Alone, the role's check reads the kernel and the nodes in its one call; its tasks reuse them.
    (check,) = ran(out, CHECK)
    assert check["remote_executions"] == 1 and ran(out, READ) == []
    assert facts(out, "tpm_kernel_builtin_drivers") == ["tpm_tis"]
    assert ran(out, "Ensure the loadable TPM drivers are loaded now and at boot") == []
    assert ran(out, "Find the TPM device nodes after loading a driver") == []

    play = [PREFLIGHT_VARIABLES, PREFLIGHT_READ, ROLE]
    rc, out = run_play(tmp_path, {"tasks": play}, VARIABLES, check_mode=check_mode)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert ran(out, READ) == [] and ran(out, CHECK)[0]["remote_executions"] == 0
    assert facts(out, "tpm_kernel_builtin_drivers") == ["tpm_tis"]


@pytest.mark.parametrize("preflight", [False, True])
def test_a_driver_the_kernel_lacks_is_refused_before_modprobe_naming_the_variable(tmp_path, builtin, preflight):
    variables = {**VARIABLES, "tpm_kernel_drivers": ["tpm_tis", "no_such_tpm_module"]}
    play = [PREFLIGHT_VARIABLES, PREFLIGHT_READ, ROLE] if preflight else [ROLE]
    rc, out = run_play(tmp_path, {"tasks": play}, variables)
    assert rc != 0 and changed(out) == 0
    ((name, msg),) = failed_tasks(out)
    assert name.endswith(CHECK)
    assert msg == (
        f"tpm_kernel_drivers names no_such_tpm_module, which the running kernel of localhost ({os.uname().release}) "
        "has neither built in nor as a loadable module; its TPM drivers are tpm_crb (built-in), tpm_tis (built-in), "
        "tpm_tis_spi. Set tpm_kernel_drivers to the ones that match the TPM (tpm_tis for TIS/FIFO TPMs, tpm_crb for "
        "CRB and firmware TPMs). Nothing was changed."
    )
    assert ran(out, "Ensure the loadable TPM drivers are loaded now and at boot") == []
