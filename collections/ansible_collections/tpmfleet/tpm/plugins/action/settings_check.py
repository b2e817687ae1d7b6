# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of settings_check: one task checks the settings of one role, or of every role of the preflight.

The checks themselves are the roles' own (plugins/plugin_utils/roles/<role>.py); this plugin is a loop over
the registry (plugins/plugin_utils/roles/__init__.py): it gives each role its variables, reads on the host,
in at most one tpm_host_state call per role, only what the preflight did not read already, and fails with
every message at once.

The roles' variables are the task's, as Ansible resolved them, templated with the task's templar (public API
only; nothing reads a role's defaults or vars files). Run inside a role (``role``), they are the role's own
and Ansible has checked its argument spec. Run by the preflight for every role (``roles``), they are in the
play because the preflight included each role's ``tasks/variables.yml`` with ``public: true``; the type
layer, each role's ``main`` argument spec, is checked here as Ansible checks it before a role runs.

For the preflight, once every check passed, it also returns what each role's apply would change on the host as it
was read (``changes``: role -> a list of sentences, empty when nothing would change, None when the role cannot
tell) and what each role's tasks/entry.yml runs in this play (``entries``: ``apply``, the role's file for
"nothing to change", or None for a role that ends at its entry): the converge step of ``site`` and ``quote_mode``
reads them.
"""

from __future__ import annotations

import copy
import os

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import lookup_loader
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry

_HOST_STATE_MODULE = "tpmfleet.tpm.tpm_host_state"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = self._task.args
        unknown = set(args) - {"role", "roles"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters {', '.join(sorted(unknown))} for settings_check")
        if ("role" in args) == ("roles" in args):
            raise AnsibleActionFail("settings_check takes either role (inside a role) or roles (the preflight)")
        roles = [args["role"]] if "role" in args else args["roles"]
        known = registry.checked()
        if not isinstance(roles, list) or not roles or any(r not in known for r in roles):
            raise AnsibleActionFail(f"role(s) must be among {', '.join(known)}, got {roles!r}")
        result.update(changed=False, remote_executions=0)
        self._task_vars, self._result = task_vars, result
        errors = []
        for role in roles:
            if "role" not in args:
                spec_errors = self._argument_spec_errors(role)
                if spec_errors:
                    errors += spec_errors
                    continue
            errors += self._check(role)
        if errors:
            result.update(failed=True, errors=errors, msg=" ".join(errors))
        elif "roles" in args:
            changes = {role: self._changes(role) for role in [*roles, *registry.AROUND]}
            result.update(changes=changes, entries=registry.entries(changes))
        return result

    def _changes(self, role):
        """What ``role``'s apply would change on the host as read (None: the role cannot tell, so it runs)."""
        spec = registry.spec(role)
        if not hasattr(spec, "changes"):
            return None
        names = (*getattr(spec, "INPUTS", ()), *getattr(spec, "CHANGES_FROM", ()))
        return spec.changes({name: self._value(name) for name in names}, _Host(self))

    def _check(self, role):
        spec = registry.spec(role)
        values = {name: self._value(name) for name in spec.INPUTS}
        errors = spec.input_errors(values)
        if errors or not hasattr(spec, "host_errors"):
            return errors
        return spec.host_errors(values, _Host(self))

    def _argument_spec_errors(self, role):
        """The role's main argument spec, checked as Ansible checks it before the role runs (one message)."""
        spec = registry.argument_spec(role)
        provided = {name: self._value(name) for name in spec if name in self._task_vars}
        problems = ArgumentSpecValidator(spec).validate(provided, validate_role_argument_spec=True).error_messages
        if problems:
            return [f"Validation of arguments failed:\n{chr(10).join(problems)} (role {role})."]
        return []

    def _value(self, name):
        """A variable as Ansible resolved it for this task, templated; None when the play does not define it (the
        setting of a role that is not in the play)."""
        if name not in self._task_vars:
            return None
        return self._templar.template(self._task_vars[name])

    def _facts(self):
        """The host's facts, with what an earlier role of this task read."""
        return {**(self._task_vars.get("ansible_facts") or {}), **self._result.get("ansible_facts", {})}

    def _publish(self, key, value):
        self._result.setdefault("ansible_facts", {})[key] = value

    def _read(self, **options):
        """Read on the host, in one call, what the checks need and the preflight did not read; publish it as the
        facts the preflight would have set, so that the role's changes plan from it too."""
        options.setdefault("accounts", False)
        read = self._execute_module(
            module_name=_HOST_STATE_MODULE, module_args=dict(options, as_facts=False), task_vars=self._task_vars
        )
        self._result["remote_executions"] += 1
        if read.get("failed"):
            raise AnsibleActionFail(f"reading the host's state for the checks failed: {read.get('msg')}")
        state = read["state"]
        facts = self._facts()
        for key in ("getent_passwd", "getent_group"):
            if key in state:
                self._publish(key, state[key])
        if options.get("units"):
            self._publish("services", {**(facts.get("services") or {}), **state.get("services", {})})
        if options.get("paths") or options.get("globs") or options.get("kernel") or options.get("consumers"):
            read_state = state["tpmfleet_host_state"]
            merged = copy.deepcopy(facts.get("tpmfleet_host_state") or {})
            for key in ("paths", "globs", "consumers"):
                merged.setdefault(key, {}).update(read_state.get(key) or {})
            if options.get("kernel"):
                merged["kernel"] = read_state["kernel"]
            self._publish("tpmfleet_host_state", merged)
        return state


class _Host:
    """What a role's host checks see of the host (plugins/plugin_utils/roles/__init__.py describes it)."""

    def __init__(self, action):
        self._action = action
        self.name = str(action._task_vars.get("inventory_hostname", "this host"))

    @property
    def facts(self):
        return self._action._facts()

    def read(self, **options):
        return self._action._read(**options)

    def publish(self, key, value):
        self._action._publish(key, value)

    def render(self, role, template, variables=None):
        """``role``'s template rendered as its template task renders it (Ansible's template lookup, this task's
        variables and ``variables``, such as a loop's ``item``), or None when the file's header could differ: a
        custom ansible_managed with placeholders (host, file, time) that the template task fills in its own way."""
        managed = str(C.config.get_config_value("DEFAULT_MANAGED_STR"))
        task_vars = self._action._task_vars
        if "ansible_managed" not in task_vars and ("{" in managed or "%" in managed):
            return None
        path = os.path.join(registry.roles_dir(), role, "templates", template)
        action = self._action
        lookup = lookup_loader.get("ansible.builtin.template", loader=action._loader, templar=action._templar)
        return str(lookup.run([path], variables={**task_vars, **variables} if variables else task_vars)[0])

    def accounts(self):
        """The host's users and groups, as the preflight read them, else (never read, or marked stale in
        tpmfleet_host_state_stale by a role that changed them) read now."""
        facts = self.facts
        stale = "accounts" in (self._action._value("tpmfleet_host_state_stale") or [])
        if "getent_passwd" in facts and "getent_group" in facts and not stale:
            return facts["getent_passwd"], facts["getent_group"]
        state = self.read(accounts=True)
        return state["getent_passwd"], state["getent_group"]
