# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose filters for tpm_containers' tasks; the logic lives in plugin_utils/compose*.py.

Public API, used by tpm_containers' tasks/plan.yml and projects.yml: compose_plan, compose_dirs and
compose_access. Documented for ``ansible-doc -t filter`` in the YAML files beside this one.
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose import (
    compose_access,
    compose_dirs,
    compose_plan,
)


class FilterModule:
    """tpmfleet.tpm compose filters."""

    def filters(self):
        return {
            "compose_plan": compose_plan,
            "compose_access": compose_access,
            "compose_dirs": compose_dirs,
        }
