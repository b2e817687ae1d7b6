# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_udev run by Ansible on the controller: udev is re-triggered from what the nodes show.

The rules file is one of the test's own under /etc/udev/rules.d (removed after
it); udevadm is a stand-in that logs its arguments. Played after a
tpm_host_state read like the preflight's, an unchanged host is not read
again; a changed rules file (or the role used alone) reads the nodes after
udev applied it. The controller has no TPM nodes: the preflight's read of
nodes that differ from the mode (a run killed after writing the rules,
before udev applied them) is given as facts, and the rules file already
right must still re-trigger them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from roleplay import changed, failed_tasks, preflight_plan, run_play, stand_in, tasks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes below /etc/udev/rules.d")

FIND = "Read the live TPM device nodes again after udev reapplied the rules"
FIND_BEFORE = "Read the live TPM device nodes the preflight did not read, or that changed since"
TRIGGER = "Ensure udev reapplied the rules to the TPM device nodes when the rules changed or a node differs"
LIBRARY = str(Path(__file__).resolve().parent / "library")
PREFLIGHT_READ = {
    "name": "Read the TPM device nodes as the preflight does",
    "tpmfleet.tpm.tpm_host_state": {"accounts": False, "globs": ["/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*"]},
    "check_mode": False,
}
ROLE = {"name": "Run tpm_udev", "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_udev"}}


@pytest.fixture
def rules():
    path = Path("/etc/udev/rules.d") / f"70-tpmfleet-test-{uuid.uuid4().hex[:8]}.rules"
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.unlink(missing_ok=True)
    for backup in path.parent.glob(f"{path.name}.*~"):
        backup.unlink()


@pytest.fixture
def udevadm(tmp_path):
    log = tmp_path / "udevadm.log"
    return stand_in(tmp_path, "udevadm", f'echo "$*" >> {log}\nexit 0\n'), log


def ran(out, name):
    return [r for n, r in tasks(out) if n.endswith(name) and not r.get("skipped")]


def test_nodes_are_read_again_only_after_a_change(tmp_path, rules, udevadm):
    path, log = udevadm
    variables = {"tpm_quote_mode": "kernel_rm", "tpm_udev_rules_path": str(rules)}
    play = {"tasks": [PREFLIGHT_READ, ROLE]}
    # The rules change: udev reloads them, and the nodes are read after that.
    rc, out = run_play(tmp_path, play, variables, env={"PATH": path})
    assert rc == 0, failed_tasks(out)
    assert rules.is_file() and "reload" in log.read_text()
    assert len(ran(out, FIND)) == 1
    # Nothing changes: the nodes the preflight read are checked, no second read.
    rc, out = run_play(tmp_path, play, variables, env={"PATH": path})
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert ran(out, FIND) == []
    assert [n for n, r in tasks(out) if n.endswith("Check that the live TPM device nodes have the mode's owner, group "
                                                    "and mode") and not r.get("skipped")]  # fmt: skip
    # A role that changed the nodes marks them stale (the published host state's marker): they are read again.
    stale = {"name": "Mark the nodes stale as tpm_kernel does after loading a driver",
             "ansible.builtin.set_fact": {"tpmfleet_host_state_stale": ["nodes"]}}  # fmt: skip
    rc, out = run_play(tmp_path, {"tasks": [PREFLIGHT_READ, stale, ROLE]}, variables, env={"PATH": path})
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert len(ran(out, FIND_BEFORE)) == 1 and ran(out, FIND) == []
    # Without the preflight's read the role reads the nodes itself, once (none here: nothing to re-trigger).
    rc, out = run_play(tmp_path, {"tasks": [ROLE]}, variables, env={"PATH": path})
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert len(ran(out, FIND_BEFORE)) == 1 and ran(out, FIND) == [] and ran(out, TRIGGER) == []


def test_check_mode_reports_the_rules_and_writes_nothing(tmp_path, rules, udevadm):
    path, log = udevadm
    variables = {"tpm_quote_mode": "kernel_rm", "tpm_udev_rules_path": str(rules)}
    rc, out = run_play(tmp_path, {"tasks": [PREFLIGHT_READ, ROLE]}, variables, check_mode=True, env={"PATH": path})
    assert rc == 0 and changed(out) >= 1, failed_tasks(out)
    assert not rules.exists()
    assert not log.exists() or "trigger" not in log.read_text()


def _nodes_read(tpm0, tpmrm0):
    """The preflight's read of /dev/tpm0 and /dev/tpmrm0 with these (owner, group), mode 0660, as facts."""

    def node(path, owner_group):
        return {"path": path, "pw_name": owner_group[0], "gr_name": owner_group[1], "mode": "0660"}

    globs = {"/dev/tpm[0-9]*": [node("/dev/tpm0", tpm0)], "/dev/tpmrm[0-9]*": [node("/dev/tpmrm0", tpmrm0)]}
    return {"name": "The nodes as the preflight read them", "platform_facts": {"facts": {"tpmfleet_host_state":
            {"globs": globs, "paths": {}}}}}  # fmt: skip


def test_nodes_that_differ_are_triggered_again_though_the_rules_are_right(tmp_path, rules, udevadm):
    path, log = udevadm
    env = {"PATH": path, "ANSIBLE_LIBRARY": LIBRARY}
    # direct mode: tpm0 tss:tss, tpmrm0 tss:tss. The rules are written first (a run that was then killed).
    variables = {"tpm_quote_mode": "direct", "tpm_udev_rules_path": str(rules)}
    right = _nodes_read(("tss", "tss"), ("tss", "tss"))
    rc, out = run_play(tmp_path, {"tasks": [right, ROLE]}, variables, env=env)
    assert rc == 0 and rules.is_file(), failed_tasks(out)
    log.unlink()
    # The nodes as the kernel_rm mode left them: the rules file is unchanged, the nodes are set again.
    wrong = _nodes_read(("tss", "root"), ("tss", "tss"))
    rc, out = run_play(tmp_path, {"tasks": [wrong, ROLE]}, variables, env=env)
    assert rc == 0, failed_tasks(out)
    calls = log.read_text().splitlines()
    assert calls[0] == "control --reload"
    assert calls[1].startswith("trigger --settle --action=change") and "--subsystem-match=tpm" in calls[1]
    assert changed(out) == 1 and len(ran(out, FIND)) == 1 and ran(out, FIND_BEFORE) == []
    # --check on the same host says the nodes would change, and runs no udevadm.
    log.unlink()
    rc, out = run_play(tmp_path, {"tasks": [wrong, ROLE]}, variables, check_mode=True, env=env)
    assert rc == 0 and changed(out) == 1, failed_tasks(out)
    assert not log.exists()
    assert any("/dev/tpm0 is tss:root 0660, wanted tss:tss 0660" in str(r.get("msg")) for _, r in tasks(out))
    # Nodes that match the mode: nothing is triggered, nothing changes.
    rc, out = run_play(tmp_path, {"tasks": [right, ROLE]}, variables, env=env)
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert not log.exists() and ran(out, TRIGGER) == []


def udev_plan(tmp_path, variables, **kwargs):
    """What the preflight's plan says tpm_udev's apply would change, and what its entry runs."""
    return preflight_plan(tmp_path, variables, "tpm_udev", **kwargs)


def test_the_plan_renders_the_rules_as_the_template_task_writes_them(tmp_path, rules, udevadm):
    """The preflight's plan proves "nothing to change" only for the file the role's template task wrote (the
    controller has no TPM nodes: the rules file alone decides), and sees every drift of it."""
    path, _ = udevadm
    variables = {"tpm_quote_mode": "kernel_rm", "tpm_udev_rules_path": str(rules)}
    assert udev_plan(tmp_path, variables) == ([f"write {rules}"], "apply")
    rc, out = run_play(tmp_path, {"tasks": [ROLE]}, variables, env={"PATH": path})
    assert rc == 0 and rules.is_file(), failed_tasks(out)
    # (The role still runs here: tpm_kernel, before it, has a TPM device to find on this controller.)
    assert udev_plan(tmp_path, variables) == ([], "apply")
    # Another mode, another mode of the nodes: other rules.
    assert udev_plan(tmp_path, {**variables, "tpm_quote_mode": "direct"})[0] == [f"write {rules} (its content differs)"]
    assert udev_plan(tmp_path, {**variables, "tpm_udev_mode": "0600"})[0] == [f"write {rules} (its content differs)"]
    rules.chmod(0o664)
    assert udev_plan(tmp_path, variables)[0] == [f"set {rules} to root:root 0644"]
    rules.chmod(0o644)
    rules.write_text(rules.read_text() + "# a line of the admin's\n")
    assert udev_plan(tmp_path, variables)[0] == [f"write {rules} (its content differs)"]
