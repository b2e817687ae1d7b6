#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tpm_host_state
short_description: Read in one call what the tpmfleet roles need to plan a host
description:
  - Reads, in one remote module execution, the host's state that the tpmfleet roles plan from, so that a run
    reads each host once instead of once per role and check.
  - The states of the systemd units in O(units) (C(systemctl show), 64 units per call), returned as
    C(ansible_facts.services) entries in the shape of M(ansible.builtin.service_facts) (C(name), C(state),
    C(status), C(source)). Only the listed units that systemd knows, and C(tpm2-abrmd.service), are returned.
  - Every user and group, returned as C(ansible_facts.getent_passwd) and C(ansible_facts.getent_group) in the shape
    of M(ansible.builtin.getent).
  - What is at each path in O(paths) (links not followed), what matches each pattern in O(globs), the drivers built
    into the running kernel and the loaded modules (O(kernel)), and the processes holding the device nodes in
    O(holders); all under C(ansible_facts.tpmfleet_host_state).
  - Read-only; nothing that cannot be read is fatal, it is listed in C(tpmfleet_host_state.errors).
version_added: "0.2.0"
author: tpmfleet contributors (@tpmfleet)
options:
  units:
    description: systemd units whose state is returned (C(tpm2-abrmd.service) is always added).
    type: list
    elements: str
    default: []
  accounts:
    description: Whether the users and groups are returned (C(getent_passwd), C(getent_group)).
    type: bool
    default: true
  paths:
    description:
      - Paths to stat, links not followed. Each is returned with the keys of M(ansible.builtin.stat) (C(exists),
        C(isreg), C(isdir), C(islnk), C(ischr), C(mode), C(uid), C(gid), C(pw_name), C(gr_name), C(checksum)) and
        C(type), C(owner), C(group); a missing path also names its nearest existing parent (C(parent)).
    type: list
    elements: path
    default: []
  checksum:
    description: Whether the SHA-1 checksum of each regular file in O(paths) is returned.
    type: bool
    default: true
  markers:
    description:
      - Path to a regular expression; the path's result tells in C(has_marker) whether a line of the file starts
        with a match (the file must be a regular file; at most its first MiB is read). The path is stat-ed too.
    type: dict
    default: {}
  globs:
    description: Shell patterns (such as C(/dev/tpm[0-9]*)); every match is stat-ed like the paths, without checksum.
    type: list
    elements: str
    default: []
  kernel:
    description:
      - Whether the running kernel's built-in drivers (C(modules.builtin)), loaded modules, TPM drivers (built in
        or loadable, under C(drivers/char/tpm)) and the loadable modules of O(kernel_modules) (C(modules.dep)) are
        returned.
    type: bool
    default: false
  kernel_modules:
    description: Module names to look up among the running kernel's loadable modules (with O(kernel)).
    type: list
    elements: str
    default: []
  holders:
    description: Device nodes (such as C(/dev/tpm0)) whose holders (processes with the node open) are returned.
    type: list
    elements: path
    default: []
  consumers:
    description:
      - Consumer services (among O(units); each is added to them) whose state of configuration is returned in
        C(tpmfleet_host_state.consumers) - whether systemd waits for a daemon-reload for them (C(NeedDaemonReload))
        and the values of O(consumer_environ) in their running main process's environment (C(/proc/PID/environ)).
        Read with the units' states, in the same C(systemctl show) calls.
    type: list
    elements: str
    default: []
  consumer_environ:
    description:
      - Names of environment variables (such as C(TPM2TOOLS_TCTI)) read from each consumer's main process. Only
        these are returned; the rest of a process's environment (which may hold secrets) never leaves the host.
    type: list
    elements: str
    default: []
  packages:
    description:
      - Package names whose installed state is returned in C(tpmfleet_host_state.installed_packages) (asked of
        C(dpkg-query), else C(rpm); in one call). A name that is not a package name is left out.
    type: list
    elements: str
    default: []
    version_added: "0.4.1"
  as_facts:
    description:
      - When true the state is returned as facts (C(ansible_facts)); when false it is returned under C(state)
        with the same keys, and the host's facts are left as they are (a role reading only its own part).
    type: bool
    default: true
  timeout:
    description:
      - Upper bound in seconds for C(systemctl) and the scan of C(/proc) for holders.
      - When systemd runs but C(systemctl show) fails or runs out of time (a host still booting or overloaded),
        the module fails and says so, rather than report the units as absent.
    type: float
    default: 60
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; gathers the same state in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Holders of other users' file descriptors are only visible when run as root (C(holders_complete)).
  - A user or group listed twice by the name service is returned once, with its first entry.
seealso:
  - module: tpmfleet.tpm.tpm_facts
  - module: ansible.builtin.service_facts
  - module: ansible.builtin.getent
"""

EXAMPLES = r"""
- name: Read the host's state once for every role
  tpmfleet.tpm.tpm_host_state:
    units: [keylime_agent.service]
    paths: [/etc/tpm2/tcti.env, /etc/tpm2]
    markers:
      /etc/tpm2/tcti.env: "# tpmfleet: "
    globs: ["/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*"]
    kernel: true
    kernel_modules: [tpm_tis, tpm_crb]
    holders: [/dev/tpm0]
  check_mode: false
  become: true

- name: Tell whether the environment file exists
  ansible.builtin.debug:
    msg: "{{ ansible_facts.tpmfleet_host_state.paths['/etc/tpm2/tcti.env'].exists }}"
"""

RETURN = r"""
state:
  description: The same keys as RV(ansible_facts), when O(as_facts) is false.
  returned: when O(as_facts) is false
  type: dict
ansible_facts:
  description: The state read.
  returned: when O(as_facts) is true
  type: dict
  contains:
    services:
      description:
        - The units of O(units) that systemd knows, and C(tpm2-abrmd.service) when it does, as
          M(ansible.builtin.service_facts) lists them (name, state, status, source). Empty without systemd.
      type: dict
    getent_passwd:
      description: Every user, name to [password, uid, gid, gecos, home, shell] (strings), as M(ansible.builtin.getent).
      returned: when O(accounts) is true
      type: dict
    getent_group:
      description: Every group, name to [password, gid, members joined by a comma], as M(ansible.builtin.getent).
      returned: when O(accounts) is true
      type: dict
    tpmfleet_host_state:
      description: The rest of the state read.
      type: dict
      contains:
        paths:
          description: Path (as given) to what is there (see O(paths)).
          type: dict
        globs:
          description: Pattern (as given) to the list of what matches it, sorted by path.
          type: dict
        kernel:
          description:
            - C(release), C(builtin) (driver names, C(-) as C(_)), C(loaded), C(loadable) (the loadable TPM drivers
              and the modules of O(kernel_modules) that exist), C(tpm_drivers) (built in or loadable), C(asked)
              (O(kernel_modules)), C(modules_read) (C(modules.builtin) and C(modules.dep) were read), C(errors);
              null unless O(kernel).
          type: dict
        holders:
          description:
            - Each device node of O(holders) to the processes holding it open (pid, comm, cmdline, user, unit, paths);
              an empty list for a node that does not exist.
          type: dict
        consumers:
          description:
            - Each unit of O(consumers) that systemd knows to C(need_daemon_reload) (bool), C(main_pid) (0 when it
              does not run) and C(environ) (the values of O(consumer_environ) its main process started with, None
              for a name it does not have; C(environ) is None when it does not run or could not be read, and
              C(error) says why).
          type: dict
        installed_packages:
          description:
            - The packages of O(packages) the package database lists as installed, in the order given; null when
              it could not be asked (C(errors) says why).
          type: list
          elements: str
        holders_complete:
          description: False when some C(/proc/PID/fd) could not be read (not root) or the timeout was hit.
          type: bool
        systemd:
          description: Whether the unit states could be read (systemd runs and C(systemctl show) succeeded).
          type: bool
        errors:
          description: What could not be read.
          type: list
          elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import (
    ABRMD_UNIT,
    Deadline,
    bounded_runner,
    holders_by_path,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host_state import (
    SYSTEMD_DIR,
    consumer_states,
    getent_group,
    getent_passwd,
    glob_stats,
    installed_packages,
    kernel_modules,
    path_stat,
    unit_states,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "default": []},
            "accounts": {"type": "bool", "default": True},
            "paths": {"type": "list", "elements": "path", "default": []},
            "checksum": {"type": "bool", "default": True},
            "markers": {"type": "dict", "default": {}},
            "globs": {"type": "list", "elements": "str", "default": []},
            "kernel": {"type": "bool", "default": False},
            "kernel_modules": {"type": "list", "elements": "str", "default": []},
            "holders": {"type": "list", "elements": "path", "default": []},
            "consumers": {"type": "list", "elements": "str", "default": []},
            "consumer_environ": {"type": "list", "elements": "str", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "as_facts": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 60},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds")
    deadline = Deadline(p["timeout"])
    # Every command of this call (systemctl, the package database) within the one deadline.
    runner = bounded_runner(module, deadline)
    errors = []
    facts = {}

    units = list(dict.fromkeys([*p["units"], *p["consumers"], ABRMD_UNIT]))
    props = {}
    services, error = unit_states(module, units, runner=runner, props=props)
    if services is None and os.path.isdir(SYSTEMD_DIR):
        # Units read as absent would mislead every role's plan: fail instead.
        shown = ", ".join(units[:5]) + (f" and {len(units) - 5} more" if len(units) > 5 else "")
        module.fail_json(
            msg=f"Reading the states of {shown} failed although "
            f"systemd runs on this host: {error}. Nothing was changed; run again once systemd answers (a host "
            "still booting or overloaded), or raise the timeout.",
        )
    if error:
        errors.append(f"units: {error}")
    facts["services"] = services or {}

    if p["accounts"]:
        facts["getent_passwd"] = getent_passwd()
        facts["getent_group"] = getent_group()

    markers = {str(k): str(v) for k, v in p["markers"].items()}
    state = {"systemd": services is not None, "errors": errors, "paths": {}, "globs": {}, "kernel": None}
    state["consumers"] = consumer_states(props, p["consumers"], p["consumer_environ"])
    for path in dict.fromkeys([*p["paths"], *markers]):
        state["paths"][path] = path_stat(path, checksum=p["checksum"], marker=markers.get(path))
    for pattern in p["globs"]:
        state["globs"][pattern] = glob_stats(pattern)
    if p["kernel"]:
        state["kernel"] = kernel_modules(wanted=p["kernel_modules"])
        errors.extend(f"kernel: {e}" for e in state["kernel"]["errors"])
    state["installed_packages"], error = installed_packages(module, p["packages"], runner=runner)
    if error:
        errors.append(f"packages: {error}")
    existing = [d for d in p["holders"] if path_stat(d, checksum=False)["exists"]]
    found, state["holders_complete"] = holders_by_path(existing, deadline=deadline.end)
    state["holders"] = {d: found.get(d, []) for d in p["holders"]}
    if not state["holders_complete"]:
        errors.append("holders: some /proc/PID/fd could not be read (not root) or the timeout was reached")
    facts["tpmfleet_host_state"] = state
    if p["as_facts"]:
        module.exit_json(changed=False, ansible_facts=facts)
    module.exit_json(changed=False, state=facts)


if __name__ == "__main__":
    main()
