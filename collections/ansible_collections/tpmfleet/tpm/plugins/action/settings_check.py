# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of settings_check: one task checks the settings of one role, or of every role of the preflight.

The checks themselves live in plugins/plugin_utils (validate.py, access.py,
compose.py); this plugin resolves the roles' variables by name, reads on the
host, in at most one tpm_host_state call per role, only what the preflight did
not read already, and fails with every message at once.

The roles' variables are the task's, as Ansible resolved them, templated
with the task's templar (public API only; nothing reads a role's defaults or
vars files). Run inside a role (``role``), they are the role's own and
Ansible has checked its argument spec. Run by the preflight for every role
(``roles``), they are in the play because the preflight included each role's
``tasks/variables.yml`` with ``public: true``; the type layer, each role's
``main`` argument spec, is checked here as Ansible checks it before a role
runs.
"""

from __future__ import annotations

import copy
import posixpath

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import access, host_checks, host_reads, validate
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose import compose_input_errors
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import normalised
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import argument_spec

HOST_STATE_MODULE = "tpmfleet.tpm.tpm_host_state"
ACCESS_PLAN_FACT = "tpmfleet_access_plan"


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
        if not isinstance(roles, list) or not roles or any(r not in validate.ROLE_INPUTS for r in roles):
            raise AnsibleActionFail(f"role(s) must be among {', '.join(validate.ROLE_INPUTS)}, got {roles!r}")
        result.update(changed=False, remote_executions=0)
        self._task_vars, self._result = task_vars, result
        errors = []
        for role in roles:
            if "role" in args:
                errors += self._check(role, result)
            else:
                errors += self._argument_spec_errors(role) or self._check(role, result)
        if errors:
            result.update(failed=True, errors=errors, msg=" ".join(errors))
        return result

    def _check(self, role, result):
        values = {name: self._value(name) for name in validate.ROLE_INPUTS[role]}
        errors = validate.input_errors(values, role)
        if role == "tpm_containers":
            errors += compose_input_errors(values["tpm_containers_projects"], values["__tpm_containers_settings"])
        return errors or getattr(self, f"_{role}", self._no_host)(values, result)

    # --- the role's argument spec, when the task does not run inside it ----

    def _argument_spec_errors(self, role):
        """The role's main argument spec, checked as Ansible checks it before the role runs (one message)."""
        spec = argument_spec(role)
        provided = {name: self._value(name) for name in spec if name in self._task_vars}
        problems = ArgumentSpecValidator(spec).validate(provided, validate_role_argument_spec=True).error_messages
        if problems:
            return [f"Validation of arguments failed:\n{chr(10).join(problems)} (role {role})."]
        return []

    # --- the variables and what the preflight read -------------------------

    def _value(self, name):
        """A variable as Ansible resolved it for this task, templated; None when the play does not define it (the
        setting of a role that is not in the play)."""
        if name not in self._task_vars:
            return None
        return self._templar.template(self._task_vars[name])

    @property
    def _facts(self):
        """The host's facts, with what an earlier role of this task read."""
        return {**(self._task_vars.get("ansible_facts") or {}), **self._result.get("ansible_facts", {})}

    @property
    def _host(self):
        return str(self._task_vars.get("inventory_hostname", "this host"))

    def _read(self, result, **options):
        """Read on the host, in one call, what the checks need and the preflight did not read; publish it as the
        facts the preflight would have set, so that the role's changes plan from it too."""
        options.setdefault("accounts", False)
        read = self._execute_module(
            module_name=HOST_STATE_MODULE, module_args=dict(options, as_facts=False), task_vars=self._task_vars
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
        if options.get("paths") or options.get("globs") or options.get("kernel"):
            read_state = state["tpmfleet_host_state"]
            merged = copy.deepcopy(self._facts.get("tpmfleet_host_state") or {})
            for key in ("paths", "globs"):
                merged.setdefault(key, {}).update(read_state.get(key) or {})
            if options.get("kernel"):
                merged["kernel"] = read_state["kernel"]
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
        result.setdefault("ansible_facts", {})[ACCESS_PLAN_FACT] = plan
        return plan["errors"]

    def _tpm_verify(self, values, result):
        if not values["tpm_verify_user"]:
            return []
        users, groups = self._accounts(result)
        return host_checks.account_errors(values, "tpm_verify", users, groups, host=self._host)

    def _tpm_abrmd(self, values, result):
        profile = self._value("tpm_quote_mode_profile") or {}
        errors = []
        if profile["abrmd"]["running"]:
            users, groups = self._accounts(result)
            errors += host_checks.account_errors(values, "tpm_abrmd", users, groups, host=self._host)
        device = profile["exclusive_device"]
        if device:
            holders = (self._facts.get("tpmfleet_host_state") or {}).get("holders") or {}
            if device not in holders:
                holders = self._read(result, holders=[device])["tpmfleet_host_state"]["holders"]
            allowed = [self._value("__tpm_abrmd_service"), *values["tpm_abrmd_stop_holder_units"]]
            errors += host_checks.holder_errors(profile, holders, allowed)
        return errors

    def _tpm_kernel(self, values, result):
        """The drivers against the running kernel's modules, as the preflight read them; without it (or for
        other drivers) read now, with the device nodes and modules-load.d files tasks/apply.yml plans from."""
        reads = host_reads.reads(["tpm_kernel"], {n: self._value(n) for n in host_reads.needed("tpm_kernel")})
        known = self._facts.get("tpmfleet_host_state") or {}
        kernel = known.get("kernel")
        if (
            not kernel
            or not set(reads["kernel_modules"]) <= set(kernel.get("asked") or [])
            or any(g not in (known.get("globs") or {}) for g in reads["globs"])
            or any(p not in (known.get("paths") or {}) for p in reads["paths"])
        ):
            options = {k: reads[k] for k in ("kernel", "kernel_modules", "globs", "paths", "markers")}
            kernel = self._read(result, checksum=False, **options)["tpmfleet_host_state"]["kernel"]
        return host_checks.kernel_host_errors(values, kernel, host=self._host)

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
        env_file = normalised(values["tpm_tcti_env_path"])[0]
        return host_checks.tcti_env_host_errors(
            values, services, env_file, paths[env_file], paths[posixpath.dirname(env_file)], host=self._host
        )
