# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one refresh entry of the published host state (tpm_preflight, tasks_from: refresh), run by Ansible on the
controller: a role that changed users, groups or the TPM nodes marks them stale through it, and the accounts are
read again there; nothing is read again while nothing is marked and the accounts were read."""

from __future__ import annotations

from roleplay import failed_tasks, run_play, tasks

REFRESH = {"ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_preflight", "tasks_from": "refresh"}}
READ_GROUPS = "tpmfleet.tpm.tpm_preflight : Read the host's groups"
SHOW = {"name": "Show the marker", "ansible.builtin.debug": {"var": "tpmfleet_host_state_stale | default([])"}}


def _ran(out, name):
    return [r for n, r in tasks(out) if n == name and not r.get("skipped")]


def _marker(out):
    return [r for n, r in tasks(out) if n == "Show the marker"][-1]["tpmfleet_host_state_stale | default([])"]


def test_a_role_that_changed_accounts_and_nodes_marks_them_and_the_accounts_are_read_again(tmp_path):
    changed = {**REFRESH, "name": "Refresh as tpm_access does after changing groups", "vars": {
        "tpm_preflight_stale": ["accounts", "nodes"]}}  # fmt: skip
    rc, out = run_play(tmp_path, {"tasks": [changed, SHOW, REFRESH, SHOW]}, {})
    assert rc == 0, failed_tasks(out)
    # Read once: the first include read the marked accounts (never read before either); the second had nothing.
    assert len(_ran(out, READ_GROUPS)) == 1
    # The accounts are current again; the nodes stay marked for the role that reads them.
    assert _marker(out) == ["nodes"]


def test_a_stale_part_it_does_not_know_is_refused_by_its_argument_spec(tmp_path):
    bad = {**REFRESH, "name": "Refresh with a typo", "vars": {"tpm_preflight_stale": ["acounts"]}}
    rc, out = run_play(tmp_path, {"tasks": [bad]}, {})
    assert rc != 0
    ((_name, msg),) = failed_tasks(out)
    assert "tpm_preflight_stale" in msg and "acounts" in msg, msg
