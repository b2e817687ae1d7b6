# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_udev's controller knowledge: the nodes' mode (an octal string, nothing for others) and the rules file (read
after the distribution's); it reads the TPM nodes."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    TPM_NODE_GLOBS,
    shown,
)

INPUTS = ("tpm_udev_mode", "tpm_udev_rules_path")

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


def reads(_v):
    return {"globs": list(TPM_NODE_GLOBS)}
