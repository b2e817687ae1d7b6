"""The one role list: every entry point runs the roles of the tpmfleet.tpm.roles lookup and no other."""

from __future__ import annotations

import pytest
import yaml
from ansible_collections.tpmfleet.tpm.plugins.lookup.roles import LookupModule
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import AROUND, ROLES
from conftest import COLLECTION

# Roles that are not steps of the list: the preflight runs the list's validations,
# tpm_quote_mode is the dependency every role takes the mode's profile from,
# tpm_consumers stops and starts the consumers around the list (plugin_utils/roles.py AROUND).
FRAMEWORK_ROLES = {"tpm_preflight", "tpm_quote_mode", "tpm_consumers"}
LOOKUP = "lookup('tpmfleet.tpm.roles', wantlist=True)"
# The preflight's include of every role's defaults and variables (its tasks/variables.yml, no task) in the play.
AROUND_LOOKUP = "lookup('tpmfleet.tpm.roles', around=true, wantlist=True)"
ENTRY_POINTS = ("playbooks/site.yml", "playbooks/quote_mode.yml", "roles/tpm_preflight/tasks/main.yml")
# The converge step that site and quote_mode import.
CONVERGE = "playbooks/tasks/converge.yml"


# The preflight plans compose projects against the host before anything changes: tpm_containers' own step,
# included only when a project is listed (its checks run with every role's, from the list).
ROLE_STEPS = {("roles/tpm_preflight/tasks/main.yml", "tpm_containers")}
SETTINGS_CHECK = "tpmfleet.tpm.settings_check"


def _tasks(node):
    """Every task in a playbook or task file that includes a role or checks roles, blocks and rescue/always
    included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(
            k in node
            for k in (
                "ansible.builtin.include_role",
                "ansible.builtin.import_role",
                "ansible.builtin.include_tasks",
                "ansible.builtin.import_tasks",
                SETTINGS_CHECK,
            )
        ):
            yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "block", "rescue", "always", "roles"):
            if key in node:
                yield from _tasks(node[key])


def test_the_lookup_returns_the_role_list():
    assert lookup() == list(ROLES)
    assert lookup(around=True) == [*ROLES, *AROUND]


def lookup(**options):
    return LookupModule().run([], {}, **options)


def test_every_role_of_the_collection_is_in_the_list():
    on_disk = {p.name for p in (COLLECTION / "roles").iterdir() if (p / "tasks" / "main.yml").exists()}
    assert on_disk - FRAMEWORK_ROLES == set(ROLES), "add the new role to plugins/plugin_utils/roles.py"
    assert len(set(ROLES)) == len(ROLES)


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_each_entry_point_derives_its_roles_from_the_list(path):
    document = yaml.safe_load((COLLECTION / path).read_text())
    includes = list(_tasks(document))
    for task in [t for t in includes if "ansible.builtin.import_tasks" in t]:
        # The converge step, imported: its tasks are the playbook's.
        assert task["ansible.builtin.import_tasks"] == "tasks/converge.yml", task
        includes.remove(task)
        includes += list(_tasks(yaml.safe_load((COLLECTION / CONVERGE).read_text())))
    looped = [t for t in includes if LOOKUP in str(t.get("loop", "")) or LOOKUP in str(t.get(SETTINGS_CHECK, ""))]
    assert len(looped) == 1, f"{path} must take the roles of {LOOKUP} in exactly one loop (or settings check)"
    for task in includes:
        if task in looped or (AROUND_LOOKUP in str(task.get("loop", "")) and "variables" in str(task)):
            continue
        spec = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
        assert spec, f"{path} checks roles that are not the list's: {task}"
        name = spec["name"].removeprefix("tpmfleet.tpm.")
        assert name in FRAMEWORK_ROLES or (path, name) in ROLE_STEPS, f"{path} includes role {name} outside the list"


def test_the_converge_step_includes_every_role_of_the_list_on_every_host_in_order():
    """site and quote_mode import one converge step: one looped include_role of the list, the same for every host
    (no condition, a tasks_from that cannot differ between hosts of a play that ran the preflight): a looped
    include_role whose tasks_from or condition differs between hosts lets Ansible run a role left out on the first
    host after the later ones on the others (seen on the default scenario's lab; tests/roles/test_converge_step.py
    shows both with Ansible)."""
    for path in ("playbooks/site.yml", "playbooks/quote_mode.yml"):
        imports = [
            t for t in _tasks(yaml.safe_load((COLLECTION / path).read_text())) if "ansible.builtin.import_tasks" in t
        ]
        assert [t["ansible.builtin.import_tasks"] for t in imports] == ["tasks/converge.yml"], path
        assert "when" not in imports[0], path
    (step,) = yaml.safe_load((COLLECTION / CONVERGE).read_text())
    assert "when" not in step and LOOKUP in step["loop"]
    include = step["ansible.builtin.include_role"]
    assert include["name"] == "tpmfleet.tpm.{{ __tpmfleet_role }}"
    assert include["tasks_from"] == "{{ 'entry' if __tpm_preflight_plan is defined else 'main' }}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_ends_at_its_entry_where_the_preflight_planned_nothing(role):
    """Each role's tasks/entry.yml ends the role (meta end_role, in the strategy: no task sent to the host) where
    the preflight's plan has no entry for it, before anything of its apply."""
    tasks = yaml.safe_load((COLLECTION / "roles" / role / "tasks" / "entry.yml").read_text())
    (end,) = [t for t in tasks if t.get("ansible.builtin.meta") == "end_role"]
    assert tasks[-1] == {"name": tasks[-1]["name"], "ansible.builtin.import_tasks": "apply.yml"}
    assert tasks.index(end) == len(tasks) - 2
    assert "__tpm_preflight_plan.entries" in end["when"]
