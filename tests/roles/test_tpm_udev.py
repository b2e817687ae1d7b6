# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_udev run by Ansible on the controller: the device nodes are read again only after a change.

The rules file is one of the test's own under /etc/udev/rules.d (removed after
it); udevadm is a stand-in that logs its arguments. Played after a
tpm_host_state read like the preflight's, an unchanged host is not read
again; a changed rules file (or the role used alone) reads the nodes after
udev applied it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from roleplay import changed, failed_tasks, run_play, stand_in, tasks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes below /etc/udev/rules.d")

FIND = "Read the live TPM device nodes again after a change"
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
    # Without the preflight's read the role reads the nodes itself.
    rc, out = run_play(tmp_path, {"tasks": [ROLE]}, variables, env={"PATH": path})
    assert rc == 0 and changed(out) == 0, failed_tasks(out)
    assert len(ran(out, FIND)) == 1


def test_check_mode_reports_the_rules_and_writes_nothing(tmp_path, rules, udevadm):
    path, log = udevadm
    variables = {"tpm_quote_mode": "kernel_rm", "tpm_udev_rules_path": str(rules)}
    rc, out = run_play(tmp_path, {"tasks": [PREFLIGHT_READ, ROLE]}, variables, check_mode=True, env={"PATH": path})
    assert rc == 0 and changed(out) >= 1, failed_tasks(out)
    assert not rules.exists()
    assert not log.exists() or "trigger" not in log.read_text()
