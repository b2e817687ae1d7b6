#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name on the controller; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: settings_check
short_description: Check the settings of one tpmfleet role, against the host where they must be
description:
  - Runs on the controller (an action plugin). It takes the role's variables by name from the task's variables,
    checks what the role's argument spec cannot express (full-matched names, modes and paths, ranges, rules across
    variables, the compose projects) and fails with every problem at once, each message naming the variable and
    the fix. The checks are those of C(plugins/plugin_utils/validate.py), C(access.py) and C(compose.py).
  - Where a setting must match the host (users and groups that must exist, the consumers' services, what is at
    C(tpm_tcti_env_path), who holds the exclusive TPM device in direct mode), it uses what
    C(tpmfleet.tpm.tpm_preflight) read (C(ansible_facts.getent_passwd), C(getent_group), C(services),
    C(tpmfleet_host_state)). What the preflight did not read is read with M(tpmfleet.tpm.tpm_host_state), in one
    call, and published as the same facts.
  - It changes nothing on the host, in check mode or not.
version_added: "0.2.0"
author: tpmfleet contributors (@tpmfleet)
options:
  role:
    description:
      - The role whose settings to check, as the task runs inside that role (its defaults apply).
    type: str
    required: true
    choices: [tpm_quote_mode, tpm_kernel, tpm_access, tpm_udev, tpm_abrmd, tpm_tcti_env, tpm_containers, tpm_verify]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It checks and reads in check mode too; it never changes the host.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: tpmfleet.tpm.tpm_host_state
"""

EXAMPLES = r"""
# In a role's tasks/validate.yml:
- name: Check the tpm_access settings against the host's users and groups
  tpmfleet.tpm.settings_check:
    role: tpm_access
  register: __tpm_access_check
"""

RETURN = r"""
role:
  description: The role checked.
  returned: always
  type: str
remote_executions:
  description: How many modules the check ran on the host (0 when the preflight had read all it needs).
  returned: always
  type: int
errors:
  description: Every problem found, one sentence each.
  returned: failed
  type: list
  elements: str
plan:
  description:
    - C(tpm_access) only. What the role changes on the host (groups, the tss user, the consumers' memberships),
      as C(plugins/plugin_utils/access.py) plans it; C(todo) is false on a host that needs nothing.
  returned: role is tpm_access and the settings are valid
  type: dict
ansible_facts:
  description: What was read on the host because the preflight did not read it (C(getent_passwd), C(getent_group),
    C(services), C(tpmfleet_host_state) with its C(paths)).
  returned: when something was read
  type: dict
"""
