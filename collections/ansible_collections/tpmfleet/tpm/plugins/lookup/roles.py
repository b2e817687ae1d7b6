# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: roles
author: tpmfleet contributors (@tpmfleet)
short_description: The roles that prepare a TPM host, in the order they run
description:
  - Returns the names (without the collection prefix) of the roles that C(tpmfleet.tpm.site),
    C(tpmfleet.tpm.quote_mode) and the C(tpmfleet.tpm.tpm_preflight) role run, in order.
  - It is the one list every entry point derives from.
options:
  around:
    description: Also the roles the playbooks run around the list (C(tpm_consumers)), after it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Run every tpmfleet role in order
  ansible.builtin.include_role:
    name: "tpmfleet.tpm.{{ item }}"
  loop: "{{ lookup('tpmfleet.tpm.roles', wantlist=True) }}"

- name: Every tpmfleet role's defaults and variables in the play (what the preflight does)
  ansible.builtin.include_role:
    name: "tpmfleet.tpm.{{ item }}"
    tasks_from: variables
    public: true
  loop: "{{ lookup('tpmfleet.tpm.roles', around=true, wantlist=True) }}"
"""

RETURN = r"""
_raw:
  description: Role names, in the order they run.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.lookup import LookupBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import AROUND, ROLES


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("the tpmfleet.tpm.roles lookup takes no terms")
        options = dict(kwargs)
        try:
            around = boolean(options.pop("around", False), strict=True)
        except TypeError as exc:
            raise AnsibleLookupError(f"tpmfleet.tpm.roles: around must be true or false ({exc})") from None
        if options:
            raise AnsibleLookupError(f"tpmfleet.tpm.roles: unknown option(s) {', '.join(sorted(options))}")
        return [*ROLES, *AROUND] if around else list(ROLES)
