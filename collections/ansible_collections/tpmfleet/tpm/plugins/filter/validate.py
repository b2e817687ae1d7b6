# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks of the roles; the logic lives in plugin_utils/validate.py.

Documented for ``ansible-doc -t filter`` in the YAML files beside this one
(input_errors.yml, account_errors.yml).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import host_checks, validate


def input_errors(values, role):
    """Every problem with a role's inputs that can be found without the host, as messages."""
    try:
        return validate.input_errors(values, role)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def account_errors(values, role, users=None, groups=None, host="this host"):
    """The users and groups a role needs that do not exist on the host (and that tpm_access does not create)."""
    try:
        return host_checks.account_errors(values, role, users, groups, host=host)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """tpmfleet.tpm input check filters."""

    def filters(self):
        return {
            "input_errors": input_errors,
            "account_errors": account_errors,
        }
