#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name on the controller; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: settings_check
short_description: Check the settings of tpmfleet roles, against the host where they must be
description:
  - Runs on the controller (an action plugin). It takes the roles' variables by name from the task's variables,
    checks what the argument specs cannot express (full-matched names, modes and paths, ranges, rules across
    variables, the compose projects) and fails with every problem at once, each message naming the variable and
    the fix. Each role's checks are in its own file, C(plugins/plugin_utils/roles/<role>.py).
  - With O(role), inside that role (its C(tasks/validate.yml)), the role's defaults and variables are the task's,
    and Ansible has checked its argument spec.
  - With O(roles), as C(tpmfleet.tpm.tpm_preflight) runs it, the roles' defaults and internal variables must be in
    the play (the preflight includes each role's C(tasks/variables.yml) with C(public=true) first); each role's
    C(main) argument spec is checked first, as Ansible checks it when the role runs.
  - Every variable is taken from the task's variables as Ansible resolved them and templated; one the play does
    not define (the setting of a role that is not in the play) reads as null.
  - Where a setting must match the host (users and groups that must exist, the consumers' services, what is at
    C(tpm_tcti_env_path), who holds the exclusive TPM device in direct mode), it uses what
    C(tpmfleet.tpm.tpm_preflight) read (C(ansible_facts.getent_passwd), C(getent_group), C(services),
    C(tpmfleet_host_state)). What the preflight did not read is read with M(tpmfleet.tpm.tpm_host_state), in one
    call per role, and published as the same facts.
  - It changes nothing on the host, in check mode or not.
version_added: "0.2.0"
author: tpmfleet contributors (@tpmfleet)
options:
  role:
    description:
      - The role whose settings to check, when the task runs inside that role (C(tpm_quote_mode) or a role of the
        C(tpmfleet.tpm.roles) lookup (the registry, C(plugins/plugin_utils/roles/__init__.py), knows them)).
        Exclusive with O(roles).
    type: str
  roles:
    description:
      - The roles whose settings to check, in order, from a task outside them (the preflight passes the
        C(tpmfleet.tpm.roles) lookup). Exclusive with O(role).
    type: list
    elements: str
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

# In the preflight, before any role changes the host:
- name: Check the settings of every role before anything changes
  tpmfleet.tpm.settings_check:
    roles: "{{ lookup('tpmfleet.tpm.roles', wantlist=True) }}"
"""

RETURN = r"""
remote_executions:
  description: How many modules the check ran on the host (0 when the preflight had read all it needs).
  returned: always
  type: int
errors:
  description: Every problem found, one sentence each.
  returned: failed
  type: list
  elements: str
ansible_facts:
  description:
    - What was read on the host because the preflight did not read it (C(getent_passwd), C(getent_group),
      C(services), C(tpmfleet_host_state) with its C(paths)).
    - C(tpmfleet_access_plan) when C(tpm_access) is checked and valid, what the role changes on the host (groups,
      the tss user, the consumers' memberships) as C(plugins/plugin_utils/roles/tpm_access.py) plans it; its
      C(todo) is
      false on a host that needs nothing.
  returned: when something was read, or tpm_access was checked
  type: dict
"""
