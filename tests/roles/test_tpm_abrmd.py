# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_abrmd on the controller: leaving abrmd mode removes what abrmd mode added, and only that.

The controller has no systemd: a stand-in `systemctl` first in the PATH records
what the role asks of systemd (the handlers' daemon-reload and D-Bus reload),
and the drop-in and policy paths point into the test's directory. The real
proof on a lab VM is molecule/default/tests/test_bad_inputs.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from roleplay import changed, failed_tasks, run_play, stand_in, state

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes root-owned files like the role")

SHOW = """Id={unit}
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
"""


@pytest.fixture
def systemctl(tmp_path):
    """A stand-in systemctl that logs its arguments; returns (PATH with it first, the log)."""
    log = tmp_path / "systemctl.log"
    body = (
        f'echo "$*" >> {log}\n'
        'case "$1" in show) unit=$(for a; do :; done; echo "$a"); '
        + "printf '"
        + SHOW.replace("\n", "\\n").replace("{unit}", "%s")
        + '\' "$unit";; esac\n'
        "exit 0\n"
    )
    return stand_in(tmp_path, "systemctl", body), log


def leave_abrmd(tmp_path, path, mode="kernel_rm"):
    etc = tmp_path / "etc"
    variables = {
        "tpm_quote_mode": mode,
        "__tpm_abrmd_dropin": str(etc / "systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"),
        "__tpm_abrmd_dbus_policy": str(etc / "dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"),
    }
    tasks = {"tasks": [{"name": "Leave abrmd mode", "ansible.builtin.include_role": {
        "name": "tpmfleet.tpm.tpm_abrmd", "tasks_from": "stopped"}}]}  # fmt: skip
    return run_play(tmp_path, tasks, variables, env={"PATH": path})


def test_leaving_abrmd_removes_the_drop_in_and_the_policy_and_nothing_else(tmp_path, systemctl):
    path, log = systemctl
    etc = tmp_path / "etc"
    dropin = etc / "systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"
    policy = etc / "dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
    distro = etc / "dbus-1/system.d/tpm2-abrmd.conf"  # the distribution's: never touched
    admin = etc / "systemd/system/tpm2-abrmd.service.d/override.conf"  # an admin's drop-in
    for made in (dropin, policy, distro, admin):
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text(f"# {made.name}\n")
    kept = state(distro, admin, distro.parent, admin.parent)
    rc, out = leave_abrmd(tmp_path, path)
    assert rc == 0, failed_tasks(out)
    assert not dropin.exists() and not policy.exists()
    assert state(distro, admin, distro.parent, admin.parent) == kept
    calls = log.read_text().splitlines()
    assert "daemon-reload" in calls and any(c.startswith("reload dbus.service") for c in calls), calls
    # Again: nothing to remove, nothing changes, no reload.
    log.unlink()
    rc, out = leave_abrmd(tmp_path, path)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert not log.exists() or "daemon-reload" not in log.read_text()


def test_check_mode_reports_the_removal_and_removes_nothing(tmp_path, systemctl):
    path, _log = systemctl
    policy = tmp_path / "etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
    policy.parent.mkdir(parents=True)
    policy.write_text("# ours\n")
    etc = tmp_path / "etc"
    variables = {
        "tpm_quote_mode": "kernel_rm",
        "__tpm_abrmd_dropin": str(etc / "systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"),
        "__tpm_abrmd_dbus_policy": str(policy),
    }
    tasks = {"tasks": [{"name": "Leave abrmd mode", "ansible.builtin.include_role": {
        "name": "tpmfleet.tpm.tpm_abrmd", "tasks_from": "stopped"}}]}  # fmt: skip
    rc, out = run_play(tmp_path, tasks, variables, check_mode=True, env={"PATH": path})
    assert rc == 0 and changed(out) >= 1, failed_tasks(out)
    assert policy.read_text() == "# ours\n"


def leave_with_unit(tmp_path, path, unit, mask):
    """stopped.yml after a read that found tpm2-abrmd.service as ``unit`` (None: not on the host)."""
    etc = tmp_path / "etc"
    services = {"tpm2-abrmd.service": {"name": "tpm2-abrmd.service", "source": "systemd", **unit}} if unit else {}
    variables = {
        "tpm_quote_mode": "kernel_rm",
        "tpm_quote_mode_mask_abrmd_in_kernel_rm": mask,
        "__tpm_abrmd_dropin": str(etc / "systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"),
        "__tpm_abrmd_dbus_policy": str(etc / "dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"),
    }
    tasks = {"tasks": [
        {"name": "The units as the preflight read them", "platform_facts": {"facts": {"services": services}}},
        {"name": "Leave abrmd mode", "ansible.builtin.include_role": {
            "name": "tpmfleet.tpm.tpm_abrmd", "tasks_from": "stopped"}},
    ]}  # fmt: skip
    return run_play(tmp_path, tasks, variables, env={"PATH": path, "ANSIBLE_LIBRARY": str(HERE / "library")})


def unit_calls(log):
    return [c for c in (log.read_text().splitlines() if log.exists() else []) if not c.startswith("show")]


@pytest.mark.parametrize(
    ("unit", "mask"),
    [
        ({"state": "stopped", "status": "masked"}, True),
        ({"state": "stopped", "status": "disabled"}, False),
        (None, False),
    ],
)
def test_a_unit_read_as_already_in_place_is_not_visited(tmp_path, systemctl, unit, mask):
    path, log = systemctl
    rc, out = leave_with_unit(tmp_path, path, unit, mask)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert unit_calls(log) == []


@pytest.mark.parametrize(
    ("unit", "mask"),
    [({"state": "running", "status": "enabled"}, True), ({"state": "stopped", "status": "masked"}, False)],
)
def test_a_unit_read_as_running_or_masked_against_the_mode_is_changed(tmp_path, systemctl, unit, mask):
    path, log = systemctl
    rc, out = leave_with_unit(tmp_path, path, unit, mask)
    assert rc == 0, failed_tasks(out)
    assert unit_calls(log), "systemctl was not asked to change the unit"
