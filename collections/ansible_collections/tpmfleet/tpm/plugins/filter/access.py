# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tpm_access plan; the logic lives in plugin_utils/access.py.

Documented for ``ansible-doc -t filter`` in access_plan.yml beside this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import access


def access_plan(groups, users, inputs, host="this host"):
    """What tpm_access changes, from the host's getent group and passwd and the role's inputs."""
    try:
        return access.plan(groups, users, inputs, host)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AnsibleFilterError(f"tpmfleet.tpm.access_plan: cannot plan from these inputs: {exc!r}") from None


class FilterModule:
    """tpmfleet.tpm access filters."""

    def filters(self):
        return {"access_plan": access_plan}
