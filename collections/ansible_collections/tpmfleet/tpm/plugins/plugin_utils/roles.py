# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one list of the roles that prepare a TPM host, in the order they run.

``site``, ``quote_mode`` and ``tpm_preflight`` (which validates each role's
inputs before any role changes the host) all take it from here, through the
``tpmfleet.tpm.roles`` lookup. Add a role here and every entry point runs it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

ROLES = (
    "tpm_kernel",
    "tpm_access",
    "tpm_udev",
    "tpm_abrmd",
    "tpm_tcti_env",
    "tpm_containers",
    "tpm_verify",
)

# Roles the playbooks run around the list, not steps of it: tpm_consumers
# stops the consumers before a quote mode switch (quote_mode) and starts the
# ones a switch stopped once every role of the list succeeded (site and
# quote_mode). The preflight reads what they plan from as well (the
# tpmfleet.tpm.host_reads lookup).
AROUND = ("tpm_consumers",)

_ROLES_DIR = Path(__file__).resolve().parent.parent.parent / "roles"


@functools.lru_cache(maxsize=16)
def argument_spec(role):
    """The options of ``role``'s ``main`` argument spec (its meta/argument_specs.yml), read once per process: what
    Ansible checks before the role runs, and the settings_check action checks for the preflight."""
    specs = yaml.safe_load((_ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"].get("options") or {}
