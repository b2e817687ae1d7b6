# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of settings_check: one task checks a role's settings, against the host where they must be.

The checks themselves live in plugins/plugin_utils (validate.py, access.py,
compose.py); this plugin resolves the role's variables by name, reads on the
host, in at most one tpm_host_state call, only what the preflight did not
read already, and fails with every message at once.
"""

from __future__ import annotations

import copy
import posixpath

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import access, host_reads, validate
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose import compose_input_errors

HOST_STATE_MODULE = "tpmfleet.tpm.tpm_host_state"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        unknown = set(self._task.args) - {"role"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters {', '.join(sorted(unknown))} for settings_check")
        role = self._task.args.get("role")
        if role not in validate.ROLE_INPUTS:
            raise AnsibleActionFail(f"role must be one of {', '.join(validate.ROLE_INPUTS)}, got {role!r}")
        self._vars = task_vars
        values = {name: self._value(name) for name in validate.ROLE_INPUTS[role]}
        errors = validate.input_errors(values, role)
        if role == "tpm_containers":
            errors += compose_input_errors(values["tpm_containers_projects"], values["__tpm_containers_settings"])
        result.update(changed=False, role=role, remote_executions=0)
        if not errors:
            errors = getattr(self, f"_{role}", self._no_host)(values, result)
        if errors:
            result.update(failed=True, errors=errors, msg=" ".join(errors))
        return result

    # --- the variables and what the preflight read -------------------------

    def _value(self, name, default=None):
        """A variable of the role, templated; another role's variable that is unset takes that role's default."""
        if name not in self._vars:
            return copy.deepcopy(validate.OTHER_ROLES_DEFAULTS.get(name, default))
        return self._templar.resolve_variable_expression(name)

    @property
    def _facts(self):
        return self._vars.get("ansible_facts") or {}

    @property
    def _host(self):
        return str(self._vars.get("inventory_hostname", "this host"))

    def _read(self, result, **options):
        """Read on the host, in one call, what the checks need and the preflight did not read; publish it as the
        facts the preflight would have set, so that the role's changes plan from it too."""
        options.setdefault("accounts", False)
        read = self._execute_module(
            module_name=HOST_STATE_MODULE, module_args=dict(options, as_facts=False), task_vars=self._vars
        )
        result["remote_executions"] += 1
        if read.get("failed"):
            raise AnsibleActionFail(f"reading the host's state for the checks failed: {read.get('msg')}")
        state = read["state"]
        facts = result.setdefault("ansible_facts", {})
        for key in ("getent_passwd", "getent_group"):
            if key in state:
                facts[key] = state[key]
        if options.get("units"):
            facts["services"] = {**(self._facts.get("services") or {}), **state.get("services", {})}
        if options.get("paths"):
            merged = copy.deepcopy(self._facts.get("tpmfleet_host_state") or {})
            merged.setdefault("paths", {}).update(state["tpmfleet_host_state"]["paths"])
            facts["tpmfleet_host_state"] = merged
        return state

    def _accounts(self, result):
        """The host's users and groups, as the preflight read them, else read now."""
        facts = self._facts
        if "getent_passwd" in facts and "getent_group" in facts:
            return facts["getent_passwd"], facts["getent_group"]
        state = self._read(result, accounts=True)
        return state["getent_passwd"], state["getent_group"]

    # --- the checks against the host, per role -----------------------------

    @staticmethod
    def _no_host(_values, _result):
        return []

    def _tpm_access(self, values, result):
        users, groups = self._accounts(result)
        plan = access.plan(groups, users, values, host=self._host)
        result["plan"] = plan
        return plan["errors"]

    def _tpm_verify(self, values, result):
        if not values["tpm_verify_user"]:
            return []
        users, groups = self._accounts(result)
        return validate.account_errors(values, "tpm_verify", users, groups, host=self._host)

    def _tpm_abrmd(self, values, result):
        profile = self._value("tpm_quote_mode_profile") or {}
        errors = []
        if profile["abrmd"]["running"]:
            users, groups = self._accounts(result)
            errors += validate.account_errors(values, "tpm_abrmd", users, groups, host=self._host)
        device = profile["exclusive_device"]
        if device:
            holders = (self._facts.get("tpmfleet_host_state") or {}).get("holders") or {}
            if device not in holders:
                holders = self._read(result, holders=[device])["tpmfleet_host_state"]["holders"]
            allowed = [self._value("__tpm_abrmd_service", "tpm2-abrmd.service"), *values["tpm_abrmd_stop_holder_units"]]
            errors += validate.holder_errors(profile, holders, allowed)
        return errors

    def _tpm_tcti_env(self, values, result):
        reads = host_reads.reads(["tpm_tcti_env"], values)
        known = (self._facts.get("tpmfleet_host_state") or {}).get("paths") or {}
        options = {}
        if values["tpm_tcti_env_services"] and "services" not in self._facts:
            options["units"] = reads["units"]
        missing = [p for p in reads["paths"] if p not in known]
        if missing:
            options.update(paths=missing, markers={p: m for p, m in reads["markers"].items() if p in missing})
        state = self._read(result, **options) if options else {}
        services = state.get("services") if "units" in options else self._facts.get("services")
        paths = {**known, **(state.get("tpmfleet_host_state") or {}).get("paths", {})}
        env_file = posixpath.normpath(values["tpm_tcti_env_path"])
        return validate.tcti_env_host_errors(
            values, services, env_file, paths[env_file], paths[posixpath.dirname(env_file)], host=self._host
        )
