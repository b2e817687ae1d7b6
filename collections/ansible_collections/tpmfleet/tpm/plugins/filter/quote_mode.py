# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The quote_mode filter over the quote mode's single source of truth (plugin_utils/quote_mode.py).

Public API: the roles, the playbooks and users' own templates read a host's profile through it. Documented
for ``ansible-doc -t filter`` in quote_mode.yml beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm


def quote_mode(mode, tss_user="tss", tss_group="tss", abrmd_tcti="device:/dev/tpm0", mask_abrmd=None):
    """The profile of a quote mode: every setting the mode implies."""
    try:
        return qm.profile(mode, tss_user=tss_user, tss_group=tss_group, abrmd_tcti=abrmd_tcti, mask_abrmd=mask_abrmd)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """tpmfleet.tpm quote mode filters."""

    def filters(self):
        return {
            "quote_mode": quote_mode,
        }
