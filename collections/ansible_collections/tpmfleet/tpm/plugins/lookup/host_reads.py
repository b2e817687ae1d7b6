# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: host_reads
author: tpmfleet contributors (@tpmfleet)
short_description: What the tpmfleet roles read on a host, as the options of tpmfleet.tpm.tpm_host_state
description:
  - Returns the options (C(units), C(paths), C(markers), C(globs), C(kernel), C(holders), C(accounts)) with which
    M(tpmfleet.tpm.tpm_host_state) reads, in one call, what the given roles plan from.
  - Each role's reads depend on its variables (such as C(tpm_tcti_env_path) or C(tpm_quote_mode_profile)), as Ansible
    resolved them for the task (a role's defaults are there inside the role, or after the preflight's public include
    of every role); one the task does not have reads as null.
  - What each role reads is in that role's file, C(plugins/plugin_utils/roles/<role>.py).
options:
  _terms:
    description: Role names without the collection prefix; all roles of C(tpmfleet.tpm.roles) and C(tpm_consumers)
      (which the playbooks run around them) when none is given.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Read once what every role plans from
  tpmfleet.tpm.tpm_host_state: "{{ lookup('tpmfleet.tpm.host_reads') }}"
  check_mode: false

- name: Read what tpm_tcti_env plans from, without setting facts
  tpmfleet.tpm.tpm_host_state: "{{ lookup('tpmfleet.tpm.host_reads', 'tpm_tcti_env') | combine({'as_facts': false}) }}"
  check_mode: false
"""

RETURN = r"""
_raw:
  description: One dict of tpm_host_state options.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        roles = list(terms) or [*registry.ROLES, *registry.AROUND]
        unknown = [r for r in roles if r not in registry.ROLES + registry.AROUND]
        if unknown:
            raise AnsibleLookupError(f"tpmfleet.tpm.host_reads: no reads known for {', '.join(map(str, unknown))}")
        variables = variables or {}
        values = {}
        for role in roles:
            for name in registry.reads_from(role):
                if name in variables and name not in values:
                    values[name] = self._templar.template(variables[name])
        return [registry.reads(roles, values)]
