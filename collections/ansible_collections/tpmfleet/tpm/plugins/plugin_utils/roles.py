# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one list of the roles that prepare a TPM host, in the order they run.

``site``, ``quote_mode`` and ``tpm_preflight`` (which validates each role's
inputs before any role changes the host) all take it from here, through the
``tpmfleet.tpm.roles`` lookup. Add a role here and every entry point runs it.
"""

from __future__ import annotations

ROLES = (
    "tpm_kernel",
    "tpm_access",
    "tpm_udev",
    "tpm_abrmd",
    "tpm_tcti_env",
    "tpm_containers",
    "tpm_verify",
)
