# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The converge step's construct (playbooks/tasks/converge.yml and each role's tasks/entry.yml), run by Ansible on
local hosts whose plans differ: every host runs its roles in the list's order, and a role planned as "nothing to
change" ends at its entry without a task result; the construct it replaced (a looped include whose tasks_from
differs between hosts) runs them out of order, which is why the converge step must be the same on every host.

The roles here are stand-ins that record the order they ran in (the real roles would change the controller); the
construct is the converge step's own: one looped include_role, the same tasks_from on every host, and each role's
entry ending the role with ``meta: end_role`` where the plan has no entry for it."""

from __future__ import annotations

import yaml
from roleplay import failed_tasks, run_play

ROLES = ["r1", "r2", "r3", "r4"]
# Per host: the roles its plan applies (the others: nothing to change).
PLANS = {"h1": ["r4"], "h2": ["r1", "r2", "r4"], "h3": ["r2", "r3", "r4"]}
ENTRY = [
    {
        "name": "End the role where the plan proved it would change nothing",
        "ansible.builtin.meta": "end_role",
        "when": "__plan.entries[role_name] is none",
    },
    {"name": "Apply", "ansible.builtin.import_tasks": "apply.yml"},
]


def _apply(role):
    return [
        {
            "name": f"Record {role}",
            "ansible.builtin.lineinfile": {
                "path": "{{ out_dir }}/{{ inventory_hostname }}",
                "line": role,
                "insertafter": "EOF",
                "create": True,
                "mode": "0600",
            },
            # Two roles may write the same host's file: a fresh line each time.
            "delegate_to": "localhost",
        }
    ]


def _run(tmp_path, converge, forks=5, extra_files=None):
    for role in ROLES:
        tasks = tmp_path / "roles" / role / "tasks"
        tasks.mkdir(parents=True)
        (tasks / "entry.yml").write_text(yaml.safe_dump(ENTRY, sort_keys=False))
        (tasks / "apply.yml").write_text(yaml.safe_dump(_apply(role), sort_keys=False))
        if extra_files:
            for extra in (extra_files / role).iterdir():
                (tasks / extra.name).write_text(extra.read_text())
    out = tmp_path / "out"
    out.mkdir()
    plans = {h: {"entries": {r: ("apply" if r in applied else None) for r in ROLES}} for h, applied in PLANS.items()}
    # The stand-in roles, first on the roles path.
    env = {"ANSIBLE_ROLES_PATH": str(tmp_path / "roles"), "ANSIBLE_FORKS": str(forks)}
    hosts = {h: {"__plan": plans[h]} for h in PLANS}
    rc, result = run_play(tmp_path, {"tasks": [converge]}, {"out_dir": str(out)}, env=env, hosts=hosts)
    assert rc == 0, failed_tasks(result)
    order = {h: (out / h).read_text().split() if (out / h).exists() else [] for h in PLANS}
    return order, result


def _loop(include):
    return {"name": "Every role, in order", "ansible.builtin.include_role": include,
            "loop": ROLES, "loop_control": {"loop_var": "__role"}}  # fmt: skip


def test_the_same_entry_on_every_host_keeps_each_hosts_roles_in_order(tmp_path):
    order, result = _run(tmp_path, _loop({"name": "{{ __role }}", "tasks_from": "entry"}))
    assert order == PLANS
    # An ended role reports no task result for the host; a continued one reports its skipped end.
    ends = [t for p in result["plays"] for t in p["tasks"] if t["task"]["name"].endswith("would change nothing")]
    reported = {h for t in ends for h, r in t["hosts"].items() if r.get("skipped")}
    assert reported == set(PLANS)


def test_a_condition_that_differs_between_hosts_runs_the_roles_out_of_order(tmp_path):
    """The construct the converge step must not use: leaving a role out on some hosts by a condition makes Ansible
    run it after the roles that the first host whose result it read included (one fork here, so that it reads h1's
    first; with more, which host comes first varies from run to run)."""
    step = _loop({"name": "{{ __role }}", "tasks_from": "apply"})
    step["when"] = "__plan.entries[__role] is not none"
    order, _ = _run(tmp_path, step, forks=1)
    assert order["h1"] == ["r4"]
    assert order["h2"] == ["r4", "r1", "r2"], order


def test_a_tasks_from_that_differs_between_hosts_runs_the_wrong_file_or_order(tmp_path):
    """Neither may the converge step choose the tasks file per host. ansible-core 2.19 merges one role's includes of
    a task across hosts without comparing their tasks_from: every host runs the file of the first host whose result
    it read (here h1's "skip": h2 and h3 run none of the roles they planned but r4). 2.21 compares it, and orders
    the roles as with a condition (r4 before r1 and r2 on h2). Either way h2 and h3 do not run their plan in order."""
    for role in ROLES:
        skip = [{**_apply(role)[0], "name": f"Skip {role}"}]
        skip[0]["ansible.builtin.lineinfile"] = {**skip[0]["ansible.builtin.lineinfile"], "line": f"skip-{role}"}
        (tmp_path / "skip" / role).mkdir(parents=True)
        (tmp_path / "skip" / role / "skip.yml").write_text(yaml.safe_dump(skip, sort_keys=False))
    step = _loop({"name": "{{ __role }}", "tasks_from": "{{ 'apply' if __plan.entries[__role] else 'skip' }}"})
    order, _ = _run(tmp_path, step, forks=1, extra_files=tmp_path / "skip")
    assert order["h1"] == ["skip-r1", "skip-r2", "skip-r3", "r4"]
    for host in ("h2", "h3"):
        planned = [line for line in order[host] if not line.startswith("skip-")]
        assert planned != PLANS[host], order
