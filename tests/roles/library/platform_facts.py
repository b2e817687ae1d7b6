#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test fixture: give a rendering host the facts of a platform that cannot be
booted here (Fedora, RHEL, Ubuntu), so that the roles' first_found vars
selection and templates run exactly as they would there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: platform_facts
short_description: Set the distribution facts of a platform (test fixture)
description: Returns O(facts) as ansible_facts; used only by tests/roles.
options:
  facts:
    description: Facts to set, e.g. C({os_family: RedHat, distribution: Fedora}).
    type: dict
    required: true
author: tpmfleet contributors
"""

EXAMPLES = r"""
- platform_facts:
    facts: {os_family: RedHat, distribution: Fedora}
"""

RETURN = r"""
ansible_facts:
  description: The facts given.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts=module.params["facts"])


if __name__ == "__main__":
    main()
