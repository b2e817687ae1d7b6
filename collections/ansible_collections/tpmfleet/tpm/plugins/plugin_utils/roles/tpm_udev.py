# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_udev's controller knowledge: the nodes' mode (an octal string, nothing for others) and the rules file (read
after the distribution's); it reads the TPM nodes."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import template_file
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    TPM_NODE_GLOBS,
    TPM_NODE_RE,
    shown,
)

INPUTS = ("tpm_udev_mode", "tpm_udev_rules_path")
READS_FROM = ("tpm_udev_rules_path",)
# What its plan (``changes``) takes besides INPUTS, rests on (the nodes' owners are names: the accounts) and may
# change (the registry's PARTS).
CHANGES_FROM = ("tpm_quote_mode_profile",)
PLANS_FROM = ("nodes", "accounts")
CHANGES = ("nodes",)
_RULES_TEMPLATE = "tpm.rules.j2"

_MODE_RE = re.compile(r"0?[0-7][0-7]0")


_RULES_RE = re.compile(r"/etc/udev/rules\.d/([A-Za-z0-9_.-]+\.rules)")


# The distribution's rules for the TPM nodes; ours must be read after it.
_DISTRIBUTION_RULES = "60-tpm-udev.rules"


def input_errors(v):
    """tpm_udev_*: the mode (octal string, nothing for others), the rules file (read after the distribution's)."""
    errors = []
    mode = v.get("tpm_udev_mode")
    if isinstance(mode, int) and not isinstance(mode, bool):
        errors.append(
            f'tpm_udev_mode must be an octal mode that gives nothing to other users, quoted, such as "0660" or "0600" '
            f"(got the number {mode}: YAML reads an unquoted 0660 as 432; write it in quotes)."
        )
    elif not (isinstance(mode, str) and _MODE_RE.fullmatch(mode)):
        errors.append(
            f'tpm_udev_mode must be an octal mode that gives nothing to other users, such as "0660" or "0600" '
            f"(got {shown(mode)})."
        )
    path = v.get("tpm_udev_rules_path")
    match = _RULES_RE.fullmatch(path) if isinstance(path, str) else None
    if not match:
        errors.append(
            "tpm_udev_rules_path must be a .rules file in /etc/udev/rules.d/ such as "
            f"/etc/udev/rules.d/70-tpmfleet-tpm.rules (got {shown(path)})."
        )
    elif match.group(1) <= _DISTRIBUTION_RULES:
        errors.append(
            f"tpm_udev_rules_path must sort after the distribution's {_DISTRIBUTION_RULES}, whose OWNER, GROUP "
            f"and MODE would otherwise win (got {shown(path)}); name it e.g. /etc/udev/rules.d/70-tpmfleet-tpm.rules."
        )
    return errors


def reads(v):
    """The TPM nodes, and the rules file (its content's checksum: the plan compares it with the template's)."""
    path = v.get("tpm_udev_rules_path")
    paths = [path] if isinstance(path, str) and _RULES_RE.fullmatch(path) else []
    return {"globs": list(TPM_NODE_GLOBS), "paths": paths}


def changes(values, host):
    """What tasks/apply.yml would change, from the preflight's read: the rules file (its content as the template
    renders it, root:root 0644) and each TPM node whose owner, group or mode differs from the quote mode's. None
    when a part was not read or the template cannot be rendered as its task would."""
    state = host.facts.get("tpmfleet_host_state") or {}
    path, mode = values.get("tpm_udev_rules_path"), values.get("tpm_udev_mode")
    rules = (state.get("paths") or {}).get(path)
    globs = state.get("globs") or {}
    profile = values.get("tpm_quote_mode_profile") or {}
    if not isinstance(rules, dict) or any(g not in globs for g in TPM_NODE_GLOBS) or not profile.get("udev"):
        return None
    out = template_file.changes(host, "tpm_udev", path, rules, _RULES_TEMPLATE)
    if out is None:
        return None
    want_mode = _octal(mode)
    for node in sorted((f for g in TPM_NODE_GLOBS for f in globs[g] or []), key=lambda f: str(f.get("path"))):
        match = TPM_NODE_RE.fullmatch(str(node.get("path")))
        if not match:
            continue
        want = profile["udev"][1 if match.group(1) else 0]
        if (node.get("pw_name"), node.get("gr_name"), _octal(node.get("mode"))) != (
            want["owner"], want["group"], want_mode,
        ):  # fmt: skip
            out.append(f"set {node['path']} to {want['owner']}:{want['group']} {mode} (udev)")
    return out


def _octal(mode):
    try:
        return int(str(mode), 8)
    except ValueError:
        return None
