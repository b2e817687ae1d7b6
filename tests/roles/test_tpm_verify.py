# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_verify's apply run by Ansible on the controller (in check mode: nothing is installed): its package task
asks the package manager only when the preflight's plan names a tool to install, or when there is no such plan."""

from __future__ import annotations

import pytest
from roleplay import failed_tasks, run_play, tasks

PACKAGE = "tpmfleet.tpm.tpm_verify : Ensure the tools the checks use are installed"
# No TPM here: the checks are skipped (tpm_kernel_devices empty), the package task alone is under test.
VARIABLES = {"tpm_quote_mode": "kernel_rm", "tpm_kernel_devices": []}


def _package_task(tmp_path, plan):
    steps = []
    if plan is not None:
        steps.append({"name": "The preflight's plan", "ansible.builtin.set_fact": {"__tpm_preflight_plan": plan}})
    steps.append(
        {"name": "The role's apply", "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_verify",
                                                                      "tasks_from": "apply"}}
    )  # fmt: skip
    rc, out = run_play(tmp_path, {"tasks": steps}, VARIABLES, check_mode=True)
    (result,) = [r for n, r in tasks(out) if n == PACKAGE]
    # Asked, the package module may fail in check mode (apt without python3-apt for the controller's Python, as on
    # the second controller): that is its answer; nothing else may fail.
    assert rc == 0 or failed_tasks(out) == [(PACKAGE, result.get("msg", ""))], failed_tasks(out)
    return result


@pytest.mark.parametrize(
    ("plan", "asked"),
    [
        ({"changes": {"tpm_verify": []}}, False),
        ({"changes": {"tpm_verify": ["install tpm2-tools"]}}, True),
        # The preflight could not tell (the package database was not read): asked.
        ({"changes": {"tpm_verify": None}}, True),
        # No preflight in this play (the role alone): asked, as before.
        (None, True),
    ],
)
def test_the_package_manager_is_asked_only_for_a_missing_tool(tmp_path, plan, asked):
    result = _package_task(tmp_path, plan)
    assert bool(result.get("skipped")) is not asked, result
