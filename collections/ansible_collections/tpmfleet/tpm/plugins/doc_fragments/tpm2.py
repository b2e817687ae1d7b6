# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """What every tpmfleet.tpm module that talks to a TPM shares: tpm2-pytss, an explicit TCTI."""

    DOCUMENTATION = r"""
options: {}
requirements:
  - tpm2-pytss >= 1.2 on the managed host (C(python3-tpm2-pytss) on Debian, Ubuntu and Fedora; tpm2-pytss 3.x from
    PyPI works too)
  - the C(libtss2-tcti-*) library of the TCTI used
notes:
  - The TCTI is always given explicitly - tpm2-tss's default search (tabrmd, then C(/dev/tpmrm0), then C(/dev/tpm0))
    would hide which path a consumer really uses. TCTI strings are checked with the collection's one grammar (full
    match, no spaces or control characters).
  - Over C(device:/dev/tpm0) only one process can open the TPM; the module opens and closes it within the task.
  - Failures are classified and explained with what to do, see M(tpmfleet.tpm.tpm_check).
  - No module needs or presents the owner password, so hosts whose owner hierarchy has one (common on managed
    fleets) are checked like any other. M(tpmfleet.tpm.tpm_check) and M(tpmfleet.tpm.tpm_facts) present no password
    at all; M(tpmfleet.tpm.tpm_quote) creates its AK under the endorsement key and takes the endorsement password,
    where one is set, from its no_log option C(endorsement_auth). The lockout authorization is never used.
"""
