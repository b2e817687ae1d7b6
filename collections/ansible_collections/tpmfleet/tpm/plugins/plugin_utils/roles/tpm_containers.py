# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_containers' controller knowledge: the wait and every compose project (checked against the compose-spec
schema and the least-privilege rules of compose_inputs.py and compose_policy.py); what it reads (the accounts and
the mode's devices, when a project is listed). The projects are planned against the host by its tasks/plan.yml
(compose_plan.py, compose_host.py)."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_inputs import compose_input_errors
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import shown

# The flags, the pull policy and what a failed access check does are the argument spec's (types bool, choices):
# Ansible and the preflight check them before these checks run.
INPUTS = (
    "tpm_containers_wait_timeout",
    "tpm_containers_projects",
    "__tpm_containers_settings",
)
READS_FROM = ("tpm_quote_mode_profile", "tpm_containers_projects")


def input_errors(v):
    """tpm_containers_*: the wait (a number of seconds) and the projects."""
    errors = []
    timeout = v.get("tpm_containers_wait_timeout")
    if not (re.fullmatch(r"[0-9]+", str(timeout)) and int(str(timeout)) > 0):
        errors.append(f"tpm_containers_wait_timeout must be a number of seconds (got {shown(timeout)}).")
    return errors + compose_input_errors(v.get("tpm_containers_projects"), v.get("__tpm_containers_settings"))


def reads(v):
    profile = v.get("tpm_quote_mode_profile") or {}
    devices = (profile.get("container") or {}).get("devices") if isinstance(profile, dict) else None
    if not v.get("tpm_containers_projects"):
        return {}
    return {"accounts": True, "paths": [str(d) for d in devices] if isinstance(devices, (list, tuple)) else []}


# Its plan rests on no part of the host's state: with no project listed its apply changes nothing.
PLANS_FROM = ()


def changes(values, _host):
    """Nothing to change while no compose project is listed; with projects it cannot tell (they are planned
    against the host by its own tasks, after tpm_access): None, the role runs."""
    return None if values.get("tpm_containers_projects") else []
