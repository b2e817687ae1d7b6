# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_quote_mode's controller knowledge: the mode, the tss user and group names, tpm2-abrmd's own TCTI.

What the mode implies is ``plugin_utils/quote_mode.py:profile()`` (the tpmfleet.tpm.quote_mode filter).
"""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import tcti_error
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    account_error,
    messages,
    shown,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import QUOTE_MODES

INPUTS = ("tpm_quote_mode", "tpm_quote_mode_tss_user", "tpm_quote_mode_tss_group", "tpm_quote_mode_abrmd_tcti")

_ABRMD_TCTI_RE = re.compile(r"device(:/dev/tpm(rm)?[0-9]+)?")


def input_errors(v):
    """tpm_quote_mode and tpm_quote_mode_*: the mode, the tss user and group names, tpm2-abrmd's own TCTI."""
    mode = v.get("tpm_quote_mode")
    errors = []
    if mode not in QUOTE_MODES:
        errors.append(
            f"tpm_quote_mode must be one of {', '.join(QUOTE_MODES)} (got {shown(mode)}). Set it per host "
            "(host_vars, or -e tpm_quote_mode=kernel_rm), without spaces or quotes around the name."
        )
    errors += messages(
        account_error("tpm_quote_mode_tss_user", v.get("tpm_quote_mode_tss_user"), "user", "tss", reserved=True),
        account_error("tpm_quote_mode_tss_group", v.get("tpm_quote_mode_tss_group"), "group", "tss", reserved=True),
    )
    tcti = v.get("tpm_quote_mode_abrmd_tcti")
    problem = tcti_error(tcti, names=("device",)) if isinstance(tcti, str) else "not a string"
    if not problem and not _ABRMD_TCTI_RE.fullmatch(tcti):
        problem = "tpm2-abrmd opens the TPM itself: /dev/tpm0 (or /dev/tpmrmN)"
    if problem:
        errors.append(
            f"tpm_quote_mode_abrmd_tcti must be a device TCTI of a TPM node such as device:/dev/tpm0 "
            f"(got {shown(tcti)}: {problem})."
        )
    return errors
