# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_containers' controller knowledge: its flags, the wait, the pull policy, what a failed access check does,
and every compose project (checked against the compose-spec schema and the least-privilege rules of
compose_inputs.py and compose_policy.py); what it reads (the accounts and the mode's devices, when a project is
listed). The projects are planned against the host by its tasks/plan.yml (compose_plan.py, compose_host.py)."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_inputs import compose_input_errors
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import is_bool_word, shown

_FLAGS = (
    "tpm_containers_allow_docker_socket",
    "tpm_containers_wait",
    "tpm_containers_remove_orphans",
    "tpm_containers_backup",
)
INPUTS = (
    *_FLAGS,
    "tpm_containers_wait_timeout",
    "tpm_containers_pull",
    "tpm_containers_access_check",
    "tpm_containers_projects",
    "__tpm_containers_settings",
)
READS_FROM = ("tpm_quote_mode_profile", "tpm_containers_projects")


def input_errors(v):
    """tpm_containers_*: the flags, the wait, the pull policy, what a failed access check does, the projects."""
    errors = []
    if not all(is_bool_word(v.get(name)) for name in _FLAGS):
        errors.append(
            "tpm_containers_allow_docker_socket, tpm_containers_wait, tpm_containers_remove_orphans and "
            "tpm_containers_backup must be true or false."
        )
    timeout = v.get("tpm_containers_wait_timeout")
    if not (re.fullmatch(r"[0-9]+", str(timeout)) and int(str(timeout)) > 0):
        errors.append(f"tpm_containers_wait_timeout must be a number of seconds (got {shown(timeout)}).")
    pull = v.get("tpm_containers_pull")
    if pull not in ("missing", "always", "never", "policy"):
        errors.append(f"tpm_containers_pull must be missing, always, never or policy (got {shown(pull)}).")
    check = v.get("tpm_containers_access_check")
    if check not in ("fail", "warn"):
        errors.append(f"tpm_containers_access_check must be fail or warn (got {shown(check)}).")
    return errors + compose_input_errors(v.get("tpm_containers_projects"), v.get("__tpm_containers_settings"))


def reads(v):
    profile = v.get("tpm_quote_mode_profile") or {}
    devices = (profile.get("container") or {}).get("devices") if isinstance(profile, dict) else None
    if not v.get("tpm_containers_projects"):
        return {}
    return {"accounts": True, "paths": [str(d) for d in devices] if isinstance(devices, (list, tuple)) else []}
