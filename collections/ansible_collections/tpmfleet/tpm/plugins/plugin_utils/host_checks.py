# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' checks against what the host read (controller side): names that must exist, what is at the
environment file's path, who holds the exclusive device, which kernel drivers the running kernel has.

Each function returns a list of messages (empty: valid), each naming the variable and the fix. The
tpmfleet.tpm.settings_check action feeds them from the preflight's one tpm_host_state read (or its own
read of what is missing); validate.py re-exports them.
"""

from __future__ import annotations

import posixpath

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import few, truthy


def _names(getent):
    return set(getent or {})


def ensured_groups(values):
    """The groups tpm_access creates when missing: the tss group, the docker group when it is managed."""
    groups = {values.get("tpm_quote_mode_tss_group")}
    if values.get("tpm_access_docker_gid") not in (None, "") or truthy(values.get("tpm_access_docker_group_manage")):
        groups.add(values.get("tpm_access_docker_group"))
    return groups


def account_errors(values, role, users, groups, host="this host"):
    """Names ``role`` needs that neither exist on ``host`` (getent passwd/group dicts) nor are made by tpm_access.

    tpm_access ensures the tss user and group (tpm_quote_mode_tss_user/_group)
    and, when managed, the docker group: those count as present. tpm_abrmd's
    names matter only where it runs (abrmd mode): the role asks only then.
    """
    users, groups = _names(users), _names(groups)
    tss_user = values.get("tpm_quote_mode_tss_user")
    errors = []
    if role == "tpm_verify":
        user = values.get("tpm_verify_user")
        if user and user not in users and user != tss_user:
            errors.append(
                f"tpm_verify_user: user {user} does not exist on {host}. Set it to the user the TPM consumer runs as "
                '(it must exist before the run), or to "" to run the checks as the connection user.'
            )
    elif role == "tpm_abrmd":
        missing = [u for u in values.get("tpm_abrmd_dbus_allowed_users") or [] if u not in users and u != tss_user]
        if missing:
            errors.append(
                f"tpm_abrmd_dbus_allowed_users: user(s) {few(missing)} do not exist on {host}; the D-Bus "
                "policy would silently give them nothing. Create them first or remove them from "
                "tpm_abrmd_dbus_allowed_users."
            )
        made = ensured_groups(values)
        missing = [g for g in values.get("tpm_abrmd_dbus_extra_groups") or [] if g not in groups and g not in made]
        if missing:
            errors.append(
                f"tpm_abrmd_dbus_extra_groups: group(s) {few(missing)} do not exist on {host}; the D-Bus "
                "policy would silently give them nothing. Create them first or remove them from "
                "tpm_abrmd_dbus_extra_groups."
            )
    else:
        raise ValueError(f"no account checks for role {role!r}; known: tpm_abrmd, tpm_verify (tpm_access: access_plan)")
    return errors


def _stat_kind(stat, directory=False):
    if stat.get("islnk"):
        return "a symbolic link"
    if stat.get("isdir") and not directory:
        return "a directory"
    return "not a directory" if directory else "not a regular file"


def tcti_env_host_errors(v, services, env_file, file_stat, dir_stat, host="this host"):
    """tpm_tcti_env against the host: the consumers' services exist (unless tpm_tcti_env_require_services is
    false), and the environment file's path is tpmfleet's to write (``file_stat``/``dir_stat``: what
    tpm_host_state read at the file and its directory; ``has_marker``: a line starts with tpmfleet's marker)."""
    errors = []
    wanted = v.get("tpm_tcti_env_services")
    if isinstance(wanted, (list, tuple)) and truthy(v.get("tpm_tcti_env_require_services")):
        unknown = list(dict.fromkeys(str(s) for s in wanted if s not in (services or {})))
        if unknown:
            errors.append(
                f"tpm_tcti_env_services names services that do not exist on {host}: {few(unknown)}; install "
                "them first, fix the names, or set tpm_tcti_env_require_services=false."
            )
    directory = posixpath.dirname(env_file)
    own = "Set tpm_tcti_env_path to a file of its own such as /etc/tpm2/tcti.env"
    if file_stat.get("exists") and not file_stat.get("isreg"):
        errors.append(
            f"tpm_tcti_env_path {env_file} exists on {host} and is {_stat_kind(file_stat)}; tpmfleet does not "
            f"replace it. {own}. Nothing was changed."
        )
    elif file_stat.get("exists") and not file_stat.get("has_marker"):
        errors.append(
            f"tpm_tcti_env_path {env_file} is an existing file on {host} that tpmfleet did not write (it has no line "
            f'starting "{str(v.get("__tpm_tcti_env_marker", "")).strip()}"); tpmfleet never replaces it. {own} '
            "(or move that file away if it is an old copy of the environment file). Nothing was changed."
        )
    if dir_stat.get("exists") and not dir_stat.get("isdir"):
        errors.append(
            f"The directory of tpm_tcti_env_path, {directory}, is {_stat_kind(dir_stat, directory=True)} on {host}; "
            "tpmfleet writes the environment file only into a real directory. Set tpm_tcti_env_path to a file in "
            "one, such as /etc/tpm2/tcti.env. Nothing was changed."
        )
    return errors


def holder_errors(profile, holders, allowed):
    """Direct mode: the processes other than the ``allowed`` units that hold the mode's exclusive device.
    ``holders``: device -> [{pid, comm, cmdline, unit}] as tpm_host_state reads them."""
    device = (profile or {}).get("exclusive_device")
    if not device:
        return []
    foreign = [h for h in (holders or {}).get(device) or [] if h.get("unit") not in allowed]
    if not foreign:
        return []
    shown_holders = few(
        f"pid {h.get('pid')} ({h.get('cmdline') or h.get('comm')}, unit {h.get('unit') or 'none'})" for h in foreign
    )
    return [
        f"Quote mode {profile.get('mode')} needs {device} to itself, but it is held by {shown_holders}. Nothing was "
        "changed. Stop that program, or list its unit in tpm_abrmd_stop_holder_units so that the run stops it, or "
        "use quote mode kernel_rm."
    ]


def kernel_host_errors(values, kernel, host="this host"):
    """tpm_kernel_drivers against the running kernel (``kernel``: what tpm_host_state read, with ``modules_read``,
    ``builtin``, ``loadable``, ``loaded``, ``tpm_drivers``). Built-in drivers count as present. Nothing is
    refused when the kernel's module lists could not be read (modprobe then has the last word)."""
    kernel = kernel or {}
    drivers = values.get("tpm_kernel_drivers")
    if not kernel.get("modules_read") or not isinstance(drivers, (list, tuple)):
        return []
    builtin = set(kernel.get("builtin") or [])
    present = builtin | set(kernel.get("loadable") or []) | set(kernel.get("loaded") or [])
    missing = [d for d in drivers if isinstance(d, str) and d.replace("-", "_") not in present]
    if not missing:
        return []
    tpm = [f"{d} (built-in)" if d in builtin else d for d in kernel.get("tpm_drivers") or []]
    has = f"its TPM drivers are {few(tpm, 12)}" if tpm else "it has no TPM driver at all (no CONFIG_TCG_TPM)"
    return [
        f"tpm_kernel_drivers names {few(missing)}, which the running kernel of {host} "
        f"({kernel.get('release', 'unknown release')}) has neither built in nor as a loadable module; {has}. "
        "Set tpm_kernel_drivers to the ones that match the TPM (tpm_tis for TIS/FIFO TPMs, tpm_crb for CRB and "
        "firmware TPMs). Nothing was changed."
    ]
