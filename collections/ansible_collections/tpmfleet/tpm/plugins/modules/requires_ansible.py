#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: requires_ansible
short_description: Refuse to run on an ansible-core that the collection does not support
description:
  - Compares the running ansible-core with the collection's C(requires_ansible) (its C(meta/runtime.yml)) and fails
    when it is not met, naming the running ansible-core, the one needed and how to install it.
  - ansible-core itself only warns when C(requires_ansible) is not met; the collection's playbooks run this first,
    once, so that an unsupported controller stops before anything touches a host.
  - Runs entirely on the controller (an action plugin); it opens no connection to the host.
version_added: "0.3.0"
author: tpmfleet contributors (@tpmfleet)
options: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads nothing from the host; the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
notes:
  - Use it with O(ignore:run_once=true) in the first play of a playbook.
"""

EXAMPLES = r"""
- name: Refuse an ansible-core that tpmfleet.tpm does not support
  tpmfleet.tpm.requires_ansible:
  run_once: true
"""

RETURN = r"""
ansible_core:
  description: The running ansible-core's version.
  returned: when the requirement could be read
  type: str
  sample: 2.19.14
requires_ansible:
  description: The collection's requirement (C(meta/runtime.yml)).
  returned: when the requirement could be read
  type: str
  sample: ">=2.19.0"
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.fail_json(
        msg="tpmfleet.tpm.requires_ansible runs on the controller only (its action plugin); "
        "call it as a task of a play, not as a module on a host"
    )


if __name__ == "__main__":
    main()
