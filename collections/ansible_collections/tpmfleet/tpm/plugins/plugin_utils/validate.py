# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every check of the roles' inputs that the argument specs cannot express (controller side).

The roles' ``meta/argument_specs.yml`` are the type layer: types and choices,
checked by Ansible for the ``main`` entry point and for ``validate`` (what
the preflight runs with ``include_role: tasks_from: validate``). Ansible
checks that a value *converts* to the type but passes the variable on
unchanged, so ``"a,b"`` reaches a role as a string although the spec says
list, ``true`` as an int and ``432`` (an unquoted ``0660``) as a str. What is
left is checked here, once, with ``re.fullmatch``:

- full-match names, modes and paths, without control characters (a
  trailing newline in ``tpm_udev_mode`` would otherwise write a broken
  udev rule);
- the value a spec lets through with the wrong shape (above);
- ranges, reserved names and rules across variables;
- names that must exist on the host (``account_errors``), against the
  host's users and groups as ``ansible.builtin.getent`` read them.

Each function returns a list of messages (empty: valid). Every message names
the variable and says how to fix it. The roles call these through the
``tpmfleet.tpm.input_errors`` and ``tpmfleet.tpm.account_errors`` filters
(``plugins/filter/validate.py``) with a dict of their variables, keyed by the
variable names.
"""

from __future__ import annotations

import json
import posixpath
import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import tcti_error

# One grammar for user and group names (they end up in udev rules, D-Bus
# policies, /etc/group and become_user): what useradd/groupadd accept by
# default plus upper case, '.' and a trailing '$'; never first '-' or '.',
# at most 32 characters, not all digits (that would read as a UID/GID).
ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
ACCOUNT_NAME_MAX = 32
ACCOUNT_NAME_RULE = "letters, digits, '_', '.' and '-', not starting with '-' or '.', at most 32 characters"
# Names that must never own the TPM or be the tss/docker group: tpm_access
# would replace root's shell, renumber root's group, or give every process
# running as nobody the TPM.
RESERVED_ACCOUNTS = ("root", "nobody", "nogroup")

KERNEL_MODULE_RE = re.compile(r"[a-z0-9_-]{1,55}")
UDEV_MODE_RE = re.compile(r"0?[0-7][0-7]0")
UDEV_RULES_RE = re.compile(r"/etc/udev/rules\.d/([A-Za-z0-9_.-]+\.rules)")
# The distribution's rules for the TPM nodes; ours must be read after it.
UDEV_DISTRIBUTION_RULES = "60-tpm-udev.rules"
ABRMD_TCTI_RE = re.compile(r"device(:/dev/tpm(rm)?[0-9]+)?")
# A long option and a value without spaces, quotes, '$', '%', ';' or '\'
# (ExecStart= of a systemd drop-in would expand or split them).
ABRMD_OPTION_RE = re.compile(r"--([a-z][a-z0-9-]*)(=[A-Za-z0-9_.,:/+@=-]+)?")
# Options the quote mode decides: its TCTI, the system bus and the bus name
# that the consumers' TCTI and the D-Bus policy use.
ABRMD_FIXED_OPTIONS = {
    "tcti": "the TCTI comes from tpm_quote_mode_abrmd_tcti",
    "session": "consumers and the D-Bus policy use the system bus",
    "dbus-name": "consumers and the D-Bus policy use the bus name com.intel.tss2.Tabrmd",
}
UNIT_RE = re.compile(r"[A-Za-z0-9@_.:\\-]{1,248}\.(service|scope)")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
VIRTUAL_FS = ("/proc", "/sys", "/dev")

ID_MIN, ID_MAX = 1, 65533


# --- helpers ---------------------------------------------------------------


def shown(value):
    """A value as a message shows it: JSON, so that "0660\\n" and 432 are told apart."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _kind(value):
    """What YAML calls the type of ``value`` (Ansible hands on subclasses of str, dict and list)."""
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (dict, "a mapping"), (list, "a list"), (type(None), "null")):  # fmt: skip
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _is_str_list(value):
    return isinstance(value, (list, tuple))


def _as_int(value):
    """An int from an int or a string of digits (what -e gives); None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value)
    return None


def _is_null(value):
    return value is None or value == ""


def account_name_ok(name):
    return (
        isinstance(name, str)
        and len(name) <= ACCOUNT_NAME_MAX
        and ACCOUNT_NAME_RE.fullmatch(name) is not None
        and not name.isdigit()
    )


def _int_range_error(var, value, low, high, what):
    number = _as_int(value)
    if number is None or not low <= number <= high:
        return f"{var} must be {what} from {low} to {high} (got {shown(value)})."
    return None


def _list_error(var, value, example):
    if not _is_str_list(value):
        return f"{var} must be a YAML list such as {example}, not {_kind(value)} ({shown(value)})."
    return None


def _account_error(var, value, kind, example, reserved=False):
    if not account_name_ok(value):
        return (
            f"{var} must be a {kind} name such as {example} (got {shown(value)}): {ACCOUNT_NAME_RULE}, "
            "no spaces or control characters."
        )
    if reserved and value in RESERVED_ACCOUNTS:
        return (
            f"{var} must not be {value}: tpm_access makes the tss user a system user without a login shell and "
            f"may renumber the tss and docker groups. Use a dedicated {kind} such as {example}."
        )
    return None


def _bad_names(values, check=account_name_ok):
    return [shown(v) for v in values if not check(v)]


def _errors(*messages):
    return [m for m in messages if m]


# --- per role ----------------------------------------------------------------


def quote_mode_errors(v):
    """tpm_quote_mode_*: the tss user and group names, tpm2-abrmd's own TCTI."""
    errors = _errors(
        _account_error("tpm_quote_mode_tss_user", v.get("tpm_quote_mode_tss_user"), "user", "tss", reserved=True),
        _account_error("tpm_quote_mode_tss_group", v.get("tpm_quote_mode_tss_group"), "group", "tss", reserved=True),
    )
    tcti = v.get("tpm_quote_mode_abrmd_tcti")
    problem = tcti_error(tcti, names=("device",)) if isinstance(tcti, str) else "not a string"
    if not problem and not ABRMD_TCTI_RE.fullmatch(tcti):
        problem = "tpm2-abrmd opens the TPM itself: /dev/tpm0 (or /dev/tpmrmN)"
    if problem:
        errors.append(
            f"tpm_quote_mode_abrmd_tcti must be a device TCTI of a TPM node such as device:/dev/tpm0 "
            f"(got {shown(tcti)}: {problem})."
        )
    return errors


def kernel_errors(v):
    """tpm_kernel_*: module names, the udev wait."""
    drivers = v.get("tpm_kernel_drivers")
    errors = []
    error = _list_error("tpm_kernel_drivers", drivers, "[tpm_tis, tpm_crb]")
    if error:
        errors.append(error)
    elif not drivers:
        errors.append(
            "tpm_kernel_drivers must name at least one kernel driver such as [tpm_tis, tpm_crb] "
            "(the one that matches the TPM: tpm_tis for TIS/FIFO TPMs, tpm_crb for firmware TPMs)."
        )
    else:
        bad = _bad_names(drivers, lambda d: isinstance(d, str) and KERNEL_MODULE_RE.fullmatch(d) is not None)
        if bad:
            errors.append(
                "tpm_kernel_drivers items must be kernel module names (lower-case letters, digits, '_' and '-') "
                f"such as tpm_tis; these are not: {', '.join(bad)}."
            )
    return errors + _errors(
        _int_range_error(
            "tpm_kernel_device_timeout", v.get("tpm_kernel_device_timeout"), 0, 600, "a number of seconds"
        ),
    )


def _path_error(var, path, example, what="an absolute path"):
    if not isinstance(path, str) or not path.startswith("/") or CONTROL_RE.search(path):
        return f"{var} must be {what} such as {example}, without control characters (got {shown(path)})."
    return None


def access_errors(v):
    """tpm_access_*: IDs, names, paths, the consumer items; tss and docker apart."""
    errors = []
    for var in ("tpm_access_tss_gid", "tpm_access_tss_uid", "tpm_access_docker_gid"):
        value = v.get(var)
        number = _as_int(value)
        if not _is_null(value) and (number is None or not ID_MIN <= number <= ID_MAX):
            errors.append(
                f"{var} must be null (keep what the host has) or a number from {ID_MIN} to {ID_MAX} "
                f"(got {shown(value)})."
            )
    tss_gid, docker_gid = _as_int(v.get("tpm_access_tss_gid")), _as_int(v.get("tpm_access_docker_gid"))
    if tss_gid is not None and tss_gid == docker_gid:
        errors.append(
            f"tpm_access_tss_gid and tpm_access_docker_gid are both {tss_gid}: give the two groups different GIDs."
        )
    docker_group = v.get("tpm_access_docker_group")
    error = _account_error("tpm_access_docker_group", docker_group, "group", "docker", reserved=True)
    if error:
        errors.append(error)
    elif docker_group == v.get("tpm_quote_mode_tss_group"):
        errors.append(
            "tpm_access_docker_group must differ from the tss group tpm_quote_mode_tss_group "
            f"(both are {docker_group}): members of the docker group control the container engine, "
            "members of the tss group only the TPM."
        )
    home = v.get("tpm_access_tss_home")
    if _path_error("tpm_access_tss_home", home, "/var/lib/tpm") or ":" in home:
        errors.append(
            "tpm_access_tss_home must be an absolute path such as /var/lib/tpm, without ':' or control characters "
            f"(it goes into /etc/passwd) (got {shown(home)})."
        )
    consumers = v.get("tpm_access_consumer_users")
    if not _is_str_list(consumers):
        errors.append(
            "tpm_access_consumer_users must be a YAML list of user names or {name: <user>, docker: true|false} "
            f"items (got {shown(consumers)})."
        )
    else:
        bad = [shown(c) for c in consumers if not _consumer_ok(c)]
        if bad:
            errors.append(
                "tpm_access_consumer_users items must be user names or {name: <user>, docker: true|false} "
                f"({ACCOUNT_NAME_RULE}); these are not: {', '.join(bad)}."
            )
    paths = v.get("tpm_access_regroup_paths")
    if not _is_str_list(paths):
        errors.append(
            "tpm_access_regroup_paths must be a YAML list of absolute paths such as [/var/lib/tpm] "
            f"(got {shown(paths)})."
        )
    else:
        bad = [shown(p) for p in paths if not _regroup_path_ok(p)]
        if bad:
            errors.append(
                "tpm_access_regroup_paths must be absolute paths outside /proc, /sys and /dev (udev owns the device "
                f"nodes), without control characters; fix: {', '.join(bad)}."
            )
    max_report = v.get("tpm_access_regroup_max_report")
    number = _as_int(max_report)
    if number is None or number < 0:
        errors.append(f"tpm_access_regroup_max_report must be a number of paths, 0 or more (got {shown(max_report)}).")
    return errors


def _consumer_ok(item):
    if isinstance(item, str):
        return account_name_ok(item)
    if isinstance(item, dict):
        return (
            set(item) <= {"name", "docker"}
            and account_name_ok(item.get("name"))
            and isinstance(item.get("docker", False), bool)
        )
    return False


def _regroup_path_ok(path):
    if not isinstance(path, str) or not path.startswith("/") or CONTROL_RE.search(path):
        return False
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = norm[1:]
    return not any(norm == fs or norm.startswith(fs + "/") for fs in VIRTUAL_FS)


def udev_errors(v):
    """tpm_udev_*: the mode (octal string, nothing for others), the rules file (read after the distribution's)."""
    errors = []
    mode = v.get("tpm_udev_mode")
    if isinstance(mode, int) and not isinstance(mode, bool):
        errors.append(
            f'tpm_udev_mode must be an octal mode that gives nothing to other users, quoted, such as "0660" or "0600" '
            f"(got the number {mode}: YAML reads an unquoted 0660 as 432; write it in quotes)."
        )
    elif not (isinstance(mode, str) and UDEV_MODE_RE.fullmatch(mode)):
        errors.append(
            f'tpm_udev_mode must be an octal mode that gives nothing to other users, such as "0660" or "0600" '
            f"(got {shown(mode)})."
        )
    path = v.get("tpm_udev_rules_path")
    match = UDEV_RULES_RE.fullmatch(path) if isinstance(path, str) else None
    if not match:
        errors.append(
            "tpm_udev_rules_path must be a .rules file in /etc/udev/rules.d/ such as "
            f"/etc/udev/rules.d/70-tpmfleet-tpm.rules (got {shown(path)})."
        )
    elif match.group(1) <= UDEV_DISTRIBUTION_RULES:
        errors.append(
            f"tpm_udev_rules_path must sort after the distribution's {UDEV_DISTRIBUTION_RULES}, whose OWNER, GROUP "
            f"and MODE would otherwise win (got {shown(path)}); name it e.g. /etc/udev/rules.d/70-tpmfleet-tpm.rules."
        )
    return errors


def abrmd_errors(v):
    """tpm_abrmd_*: long options (not those the quote mode decides), D-Bus names, unit names."""
    errors = []
    options = v.get("tpm_abrmd_options")
    error = _list_error("tpm_abrmd_options", options, '["--flush-all"]')
    if error:
        errors.append(error)
    else:
        bad, fixed = [], []
        for opt in options:
            match = ABRMD_OPTION_RE.fullmatch(opt) if isinstance(opt, str) else None
            if not match:
                bad.append(shown(opt))
            elif match.group(1) in ABRMD_FIXED_OPTIONS:
                fixed.append(f"--{match.group(1)} ({ABRMD_FIXED_OPTIONS[match.group(1)]})")
        if bad:
            errors.append(
                "tpm_abrmd_options must be long options such as --flush-all or --max-connections=64, values without "
                f"spaces, quotes or $ % ; \\; these are not: {', '.join(bad)}."
            )
        if fixed:
            errors.append(f"tpm_abrmd_options must not set {', '.join(fixed)}: remove it from tpm_abrmd_options.")
    for var, kind, example in (
        ("tpm_abrmd_dbus_allowed_users", "user", "[root]"),
        ("tpm_abrmd_dbus_extra_groups", "group", "[keylime]"),
    ):
        names = v.get(var)
        error = _list_error(var, names, example)
        if error:
            errors.append(error)
            continue
        bad = _bad_names(names)
        if bad:
            errors.append(f"{var} must list {kind} names ({ACCOUNT_NAME_RULE}); these are not: {', '.join(bad)}.")
    units = v.get("tpm_abrmd_stop_holder_units")
    error = _list_error("tpm_abrmd_stop_holder_units", units, "[keylime_agent.service]")
    if error:
        errors.append(error)
    else:
        bad = _bad_names(units, lambda u: isinstance(u, str) and UNIT_RE.fullmatch(u) is not None)
        if bad:
            errors.append(
                "tpm_abrmd_stop_holder_units must list systemd unit names ending in .service or .scope such as "
                f"keylime_agent.service; these are not: {', '.join(bad)}."
            )
    return errors


def verify_errors(v):
    """tpm_verify_*: the user the checks run as, how many quotes, how long to wait for a busy TPM, the bound of
    each check."""
    user = v.get("tpm_verify_user")
    user_error = None
    if user != "" and not account_name_ok(user):
        user_error = (
            f'tpm_verify_user must be the name of the consumer\'s user such as keylime ({ACCOUNT_NAME_RULE}), or "" '
            f"for the connection user (got {shown(user)})."
        )
    return _errors(
        user_error,
        _int_range_error("tpm_verify_quote_count", v.get("tpm_verify_quote_count"), 1, 20, "a number of quotes"),
        _int_range_error("tpm_verify_busy_retries", v.get("tpm_verify_busy_retries"), 0, 60, "a number of attempts"),
        _int_range_error("tpm_verify_timeout", v.get("tpm_verify_timeout"), 5, 600, "a number of seconds"),
    )


TCTI_ENV_PATH_RE = re.compile(r"/etc(/[A-Za-z0-9_.@+-]+)+")
SERVICE_RE = re.compile(r"[A-Za-z0-9@_.:-]+\.service")


def tcti_env_errors(v):
    """tpm_tcti_env_*: the environment file's path (a file name under /etc) and the consumers' service names."""
    path = v.get("tpm_tcti_env_path")
    errors = []
    if not (
        isinstance(path, str)
        and ".." not in path.split("/")
        and not path.endswith("/")
        and TCTI_ENV_PATH_RE.fullmatch(posixpath.normpath(path))
    ):
        errors.append(
            "tpm_tcti_env_path must be a file name under /etc such as /etc/tpm2/tcti.env: an absolute path of "
            f"letters, digits and . _ @ + -, without .. components (got {shown(path)}). Nothing was changed."
        )
    services = v.get("tpm_tcti_env_services")
    if not _is_str_list(services):
        errors.append("tpm_tcti_env_services must be a list of systemd services such as [keylime_agent.service].")
    else:
        bad = [shown(str(s)) for s in services if not SERVICE_RE.fullmatch(str(s))]
        if bad:
            errors.append(
                "tpm_tcti_env_services must list systemd services such as keylime_agent.service "
                f"(bad: {', '.join(bad)})."
            )
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
    if _is_str_list(wanted) and truthy(v.get("tpm_tcti_env_require_services")):
        unknown = list(dict.fromkeys(str(s) for s in wanted if s not in (services or {})))
        if unknown:
            errors.append(
                f"tpm_tcti_env_services names services that do not exist on {host}: {', '.join(unknown)}; install "
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


CONTAINERS_FLAGS = (
    "tpm_containers_allow_docker_socket",
    "tpm_containers_wait",
    "tpm_containers_remove_orphans",
    "tpm_containers_backup",
)
BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")


def containers_flags_ok(v):
    """Whether every yes/no setting of tpm_containers reads as a boolean."""
    return all(str(v.get(name)).lower() in BOOL_WORDS for name in CONTAINERS_FLAGS)


def containers_errors(v):
    """tpm_containers_* besides the projects (plugin_utils/compose.py checks those): flags, the wait, the pull
    policy and what a failed access check does."""
    errors = []
    if not containers_flags_ok(v):
        errors.append(
            "tpm_containers_allow_docker_socket, tpm_containers_wait, tpm_containers_remove_orphans and "
            "tpm_containers_backup must be true or false."
        )
    timeout = v.get("tpm_containers_wait_timeout")
    if not (re.fullmatch(r"[0-9]+", str(timeout)) and int(str(timeout)) > 0):
        errors.append(f"tpm_containers_wait_timeout must be a number of seconds (got {shown(timeout)}).")
    pull = v.get("tpm_containers_pull")
    if pull not in ("missing", "always", "never", "policy"):
        errors.append(f"tpm_containers_pull must be missing, always, never or policy (got {shown(pull)}).")
    check = v.get("tpm_containers_access_check")
    if check not in ("fail", "warn"):
        errors.append(f"tpm_containers_access_check must be fail or warn (got {shown(check)}).")
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
    shown_holders = ", ".join(
        f"pid {h.get('pid')} ({h.get('cmdline') or h.get('comm')}, unit {h.get('unit') or 'none'})" for h in foreign
    )
    return [
        f"Quote mode {profile.get('mode')} needs {device} to itself, but it is held by {shown_holders}. Nothing was "
        "changed. Stop that program, or list its unit in tpm_abrmd_stop_holder_units so that the run stops it, or "
        "use quote mode kernel_rm."
    ]


CHECKS = {
    "tpm_quote_mode": quote_mode_errors,
    "tpm_kernel": kernel_errors,
    "tpm_access": access_errors,
    "tpm_udev": udev_errors,
    "tpm_abrmd": abrmd_errors,
    "tpm_tcti_env": tcti_env_errors,
    "tpm_containers": containers_errors,
    "tpm_verify": verify_errors,
}

# The variables each role's checks read (settings_check resolves them by name; one that another role owns and
# the play does not set takes that role's own value: tpm_access may not run before tpm_abrmd).
_ACCESS_IDS = ("tpm_access_docker_group", "tpm_access_docker_gid", "tpm_access_docker_group_manage")
ROLE_INPUTS = {
    "tpm_quote_mode": ("tpm_quote_mode_tss_user", "tpm_quote_mode_tss_group", "tpm_quote_mode_abrmd_tcti"),
    "tpm_kernel": ("tpm_kernel_drivers", "tpm_kernel_device_timeout"),
    "tpm_access": (
        "tpm_quote_mode_tss_user",
        "tpm_quote_mode_tss_group",
        "tpm_access_tss_gid",
        "tpm_access_tss_uid",
        "tpm_access_tss_home",
        *_ACCESS_IDS,
        "tpm_access_consumer_users",
        "tpm_access_allow_gid_change",
        "tpm_access_allow_uid_change",
        "tpm_access_regroup_paths",
        "tpm_access_regroup_max_report",
    ),
    "tpm_udev": ("tpm_udev_mode", "tpm_udev_rules_path"),
    "tpm_abrmd": (
        "tpm_abrmd_options",
        "tpm_abrmd_dbus_allowed_users",
        "tpm_abrmd_dbus_extra_groups",
        "tpm_abrmd_stop_holder_units",
        "tpm_quote_mode_tss_user",
        "tpm_quote_mode_tss_group",
        *_ACCESS_IDS,
    ),
    "tpm_tcti_env": (
        "tpm_tcti_env_path",
        "tpm_tcti_env_services",
        "tpm_tcti_env_require_services",
        "__tpm_tcti_env_marker",
    ),
    "tpm_containers": (
        *CONTAINERS_FLAGS,
        "tpm_containers_wait_timeout",
        "tpm_containers_pull",
        "tpm_containers_access_check",
        "tpm_containers_projects",
        "__tpm_containers_settings",
    ),
    "tpm_verify": (
        "tpm_verify_user",
        "tpm_verify_quote_count",
        "tpm_verify_busy_retries",
        "tpm_verify_timeout",
        "tpm_quote_mode_tss_user",
    ),
}


def input_errors(values, role):
    """Every problem with ``role``'s inputs ``values`` (variable name -> value) found without the host."""
    if role not in CHECKS:
        raise ValueError(f"no input checks for role {role!r}; known: {', '.join(CHECKS)}")
    if not isinstance(values, dict):
        raise ValueError(f"the inputs of {role} must be a dict of variable name -> value, got {shown(values)}")
    return CHECKS[role](values)


# --- names that must exist on the host -------------------------------------


def _names(getent):
    return set(getent or {})


def ensured_groups(values):
    """The groups tpm_access creates when missing: the tss group, the docker group when it is managed."""
    groups = {values.get("tpm_quote_mode_tss_group")}
    if not _is_null(values.get("tpm_access_docker_gid")) or truthy(values.get("tpm_access_docker_group_manage")):
        groups.add(values.get("tpm_access_docker_group"))
    return groups


def truthy(value):
    """A setting's truth as Ansible's bool filter reads it (the roles' one reading of yes/no settings)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


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
                f"tpm_abrmd_dbus_allowed_users: user(s) {', '.join(missing)} do not exist on {host}; the D-Bus "
                "policy would silently give them nothing. Create them first or remove them from "
                "tpm_abrmd_dbus_allowed_users."
            )
        made = ensured_groups(values)
        missing = [g for g in values.get("tpm_abrmd_dbus_extra_groups") or [] if g not in groups and g not in made]
        if missing:
            errors.append(
                f"tpm_abrmd_dbus_extra_groups: group(s) {', '.join(missing)} do not exist on {host}; the D-Bus "
                "policy would silently give them nothing. Create them first or remove them from "
                "tpm_abrmd_dbus_extra_groups."
            )
    else:
        raise ValueError(f"no account checks for role {role!r}; known: tpm_abrmd, tpm_verify (tpm_access: access_plan)")
    return errors
