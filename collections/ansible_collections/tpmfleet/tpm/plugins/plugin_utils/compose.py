# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose projects for TPM-using containers, from the host's quote mode.

What a container gets from the quote mode (the device, or the D-Bus socket
and the tabrmd TCTI) comes from ``tpm_quote_mode_profile.container`` and the
TCTI variables from ``tpm_quote_mode_profile.tcti_variables``, both made by the
``tpmfleet.tpm.quote_mode`` filter: nothing here maps modes to settings. The GIDs
added to a container (``group_add``) are the host's numbers, read on the host,
never group names that may resolve differently inside the image.

The functions (the filters of the same names in ``plugins/filter/compose.py``) live by job:

- ``compose_inputs.py``: ``compose_input_errors(projects, settings)``, every problem with the
  ``tpm_containers_*`` inputs that can be found without the host; ``compose_policy.py`` holds its
  least-privilege rules (capabilities, image references, isolation options, the base directory).
- ``compose_plan.py``: ``compose_plan(projects, profile, groups, docker, settings)``, per project
  the compose document (and its YAML text), the env files, the data directories and the services'
  identities, plus the errors found against the host and the compose schema;
  ``compose_schema_errors(document)``; ``env_file(mapping)``, an env file whose values are read
  literally.
- ``compose_host.py``: ``compose_dirs(plan, stats)``, which directories may be created or kept as
  planned; ``compose_access(plan, nodes, groups, ...)``, whether each service's UID, GID and
  group_add can open what the mode gives it.
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_host import compose_access, compose_dirs
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_inputs import (
    DEFAULT_SETTINGS,
    compose_input_errors,
    host_path_problem,
    project_dir,
    volume_source,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_plan import (
    PROJECT_MARKER,
    compose_plan,
    compose_schema_errors,
    compose_yaml,
    env_file,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import base_dir_error

__all__ = [
    "DEFAULT_SETTINGS",
    "PROJECT_MARKER",
    "base_dir_error",
    "compose_access",
    "compose_dirs",
    "compose_input_errors",
    "compose_plan",
    "compose_schema_errors",
    "compose_yaml",
    "env_file",
    "host_path_problem",
    "project_dir",
    "volume_source",
]
