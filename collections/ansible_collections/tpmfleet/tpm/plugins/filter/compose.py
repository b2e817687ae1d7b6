# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose filters for tpm_containers; the logic lives in plugin_utils/compose.py.

Documented for ``ansible-doc -t filter`` in the YAML files beside this one.
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose import (
    compose_access,
    compose_dirs,
    compose_input_errors,
    compose_plan,
    compose_schema_errors,
    env_file,
)


class FilterModule:
    """tpmfleet.tpm compose filters."""

    def filters(self):
        return {
            "compose_input_errors": compose_input_errors,
            "compose_plan": compose_plan,
            "compose_access": compose_access,
            "compose_dirs": compose_dirs,
            "compose_schema_errors": compose_schema_errors,
            "env_file": env_file,
        }
