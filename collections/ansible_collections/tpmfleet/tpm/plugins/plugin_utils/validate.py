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

import posixpath
import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import tcti_error
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    few,
    path_problem,
    shown,
    too_long,
    unit_list_errors,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import QUOTE_MODES

# One grammar for user and group names (they end up in udev rules, D-Bus
# policies, /etc/group and become_user): what useradd/groupadd accept by
# default plus upper case, '.' and a trailing '$'; never first '-' or '.',
# at most 32 characters, not all digits (that would read as a UID/GID).
ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")
ACCOUNT_NAME_MAX = 32
ACCOUNT_NAME_RULE = "letters, digits, '_', '.' and '-', not starting with '-' or '.', at most 32 characters"
# Names that must never own the TPM, be the tss/docker group or join them: tpm_access
# would replace root's shell, renumber root's group, or give every process
# running as nobody (or as any ID a user namespace does not map) the TPM.
RESERVED_ACCOUNTS = ("root", "nobody", "nogroup")
# Shared accounts that never get the TPM through a group or the D-Bus policy.
SHARED_ACCOUNTS = ("nobody", "nogroup")

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
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

ID_MIN, ID_MAX = 1, 65533


# --- helpers ---------------------------------------------------------------


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
    return too_long(var, value)


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


def _listed(bad):
    """Bad items as a message lists them: at most a few, then "and N more"."""
    return few(bad)


def _errors(*messages):
    return [m for m in messages if m]


# --- per role ----------------------------------------------------------------


def quote_mode_errors(v):
    """tpm_quote_mode and tpm_quote_mode_*: the mode, the tss user and group names, tpm2-abrmd's own TCTI."""
    mode = v.get("tpm_quote_mode")
    errors = []
    if mode not in QUOTE_MODES:
        errors.append(
            f"tpm_quote_mode must be one of {', '.join(QUOTE_MODES)} (got {shown(mode)}). Set it per host "
            "(host_vars, or -e tpm_quote_mode=kernel_rm), without spaces or quotes around the name."
        )
    errors += _errors(
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
                f"such as tpm_tis; these are not: {_listed(bad)}."
            )
    return errors + _errors(
        _int_range_error(
            "tpm_kernel_device_timeout", v.get("tpm_kernel_device_timeout"), 0, 600, "a number of seconds"
        ),
    )


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
    _norm, problem = path_problem(home)
    if not problem and ":" in home:
        problem = "':' (it goes into /etc/passwd)"
    if problem:
        errors.append(
            "tpm_access_tss_home must be an absolute path such as /var/lib/tpm, without ':', '..' or control "
            f"characters, that is neither a whole system tree nor in a place other programs read (got {shown(home)}: "
            f"{problem})."
        )
    errors += _consumer_errors(v.get("tpm_access_consumer_users"))
    paths = v.get("tpm_access_regroup_paths")
    if not _is_str_list(paths):
        errors.append(
            "tpm_access_regroup_paths must be a YAML list of absolute paths such as [/var/lib/tpm] "
            f"(got {shown(paths)})."
        )
    elif too_long("tpm_access_regroup_paths", paths):
        errors.append(too_long("tpm_access_regroup_paths", paths))
    else:
        bad = [f"{shown(p)} ({why})" for p in paths for why in [path_problem(p, write=False)[1]] if why]
        if bad:
            errors.append(
                "tpm_access_regroup_paths must be absolute paths of the directories that hold the tss group's files, "
                "such as /var/lib/tpm or /var/lib/keylime: not a whole system tree (/, /etc, /usr, /var/lib ...), "
                "nothing under /proc, /sys or /dev (udev owns the device nodes) or in a place other programs read, "
                f"no '..' or control characters; fix: {_listed(bad)}."
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


def consumer_name(item):
    """The user name of a consumer item (a name, or {name, docker})."""
    return item.get("name") if isinstance(item, dict) else item


def _consumer_errors(consumers):
    if not _is_str_list(consumers):
        return [
            "tpm_access_consumer_users must be a YAML list of user names or {name: <user>, docker: true|false} "
            f"items (got {shown(consumers)})."
        ]
    error = too_long("tpm_access_consumer_users", consumers)
    if error:
        return [error]
    bad = [shown(c) for c in consumers if not _consumer_ok(c)]
    if bad:
        return [
            "tpm_access_consumer_users items must be user names or {name: <user>, docker: true|false} "
            f"({ACCOUNT_NAME_RULE}); these are not: {_listed(bad)}."
        ]
    shared = list(dict.fromkeys(n for n in map(consumer_name, consumers) if n in RESERVED_ACCOUNTS))
    if shared:
        return [f"tpm_access_consumer_users must not list {', '.join(shared)}: {CONSUMER_WHY} {CONSUMER_FIX}"]
    return []


# Why a consumer account may not be root or shared, and what to do instead (also access.py's message).
CONSUMER_WHY = (
    "root needs no group to open the TPM and its group list is not tpm_access's to change, and nobody/nogroup "
    "(UID or GID 65534, the kernel's overflow ID) is shared by every daemon that drops privileges to it and by "
    "every ID a user namespace does not map, so adding it to the tss group would give all of them the TPM."
)
CONSUMER_FIX = (
    "Run each consumer as a dedicated user (useradd --system keylime) and list that user; give a container the "
    "tss GID with group_add (see the tpm_access README)."
)


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
                f"spaces, quotes or $ % ; \\; these are not: {_listed(bad)}."
            )
        if fixed:
            errors.append(f"tpm_abrmd_options must not set {_listed(fixed)}: remove it from tpm_abrmd_options.")
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
        shared = list(dict.fromkeys(n for n in names if n in SHARED_ACCOUNTS))
        if bad:
            errors.append(f"{var} must list {kind} names ({ACCOUNT_NAME_RULE}); these are not: {_listed(bad)}.")
        elif shared:
            errors.append(
                f"{var} must not list {', '.join(shared)}: every daemon that drops privileges to nobody/nogroup "
                "(and every ID a user namespace does not map) would reach the broker. List the consumer's own "
                f"{kind}."
            )
    errors += unit_list_errors(
        "tpm_abrmd_stop_holder_units", v.get("tpm_abrmd_stop_holder_units"), ("service", "scope"),
        "keylime_agent.service",
    )  # fmt: skip
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
        _endorsement_auth_error(v.get("tpm_verify_endorsement_auth")),
        _int_range_error("tpm_verify_quote_count", v.get("tpm_verify_quote_count"), 1, 20, "a number of quotes"),
        _int_range_error("tpm_verify_busy_retries", v.get("tpm_verify_busy_retries"), 0, 60, "a number of attempts"),
        _int_range_error("tpm_verify_timeout", v.get("tpm_verify_timeout"), 5, 600, "a number of seconds"),
    )


# TPM2B_AUTH of a SHA-256 name algorithm: at most 64 bytes (the TPM refuses longer ones).
ENDORSEMENT_AUTH_MAX = 64


def _endorsement_auth_error(value):
    """tpm_verify_endorsement_auth: a string of at most 64 UTF-8 bytes without NUL. The message never shows the
    value (a secret), only its type or length."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return f"tpm_verify_endorsement_auth must be a string (the endorsement password), not {_kind(value)}."
    size = len(value.encode("utf-8", "surrogatepass"))
    has_nul = "\x00" in value
    if has_nul or size > ENDORSEMENT_AUTH_MAX:
        return (
            f"tpm_verify_endorsement_auth must be at most {ENDORSEMENT_AUTH_MAX} bytes without NUL characters (got "
            f"{size} bytes{', with a NUL' if has_nul else ''}; the value is not shown). Set it to the TPM's "
            "endorsement password, kept in Ansible Vault."
        )
    return None


# A path systemd's EnvironmentFile= takes as it is (no quoting, no specifiers).
TCTI_ENV_PATH_RE = re.compile(r"(/[A-Za-z0-9_.@+-]+)+")
TCTI_ENV_PATH_CHARS = "characters other than letters, digits and / . _ @ + -"
TCTI_ENV_DIR_RULE = (
    "directories that hold only TPM configuration, such as /etc/tpm2: never /etc itself, a whole system tree, "
    "/tmp, or a place other programs read (apt, sudoers, cron, profile.d, modprobe.d, systemd's unit directories, "
    "pam.d, security, ld.so.*, sysctl.d, udev, environment, default, logrotate.d, rsyslog.d, the network's "
    "configuration, init.d, dbus-1 ...)"
)


def tcti_env_dirs(v):
    """``(the directories tpm_tcti_env_path may be in, normalised; the messages for a bad list)``."""
    dirs = v.get("tpm_tcti_env_dirs")
    if not _is_str_list(dirs) or not dirs:
        return [], [f"tpm_tcti_env_dirs must be a YAML list of {TCTI_ENV_DIR_RULE} (got {shown(dirs)})."]
    error = too_long("tpm_tcti_env_dirs", dirs)
    if error:
        return [], [error]
    allowed, bad = [], []
    for d in dirs:
        norm, problem = path_problem(d)
        if not problem and not TCTI_ENV_PATH_RE.fullmatch(norm):
            problem = TCTI_ENV_PATH_CHARS
        if problem:
            bad.append(f"{shown(d)} ({problem})")
        else:
            allowed.append(norm)
    if bad:
        return allowed, [f"tpm_tcti_env_dirs must list {TCTI_ENV_DIR_RULE}; fix: {_listed(bad)}."]
    return allowed, []


def _in_dirs(path, dirs):
    return any(path.startswith(d.rstrip("/") + "/") for d in dirs)


def tcti_env_errors(v):
    """tpm_tcti_env_*: the environment file's path (in a directory of TPM configuration only), those
    directories, and the consumers' service names."""
    allowed, errors = tcti_env_dirs(v)
    path = v.get("tpm_tcti_env_path")
    norm, problem = path_problem(path)
    if not problem and (path.endswith("/") or not TCTI_ENV_PATH_RE.fullmatch(norm)):
        problem = "not a file name" if path.endswith("/") else TCTI_ENV_PATH_CHARS
    if not problem and allowed and not _in_dirs(norm, allowed):
        problem = f"{posixpath.dirname(norm)} is not one of tpm_tcti_env_dirs {shown(allowed)}"
    if problem:
        errors.append(
            "tpm_tcti_env_path must be a file in a directory that holds only TPM configuration, such as "
            f"/etc/tpm2/tcti.env (got {shown(path)}: {problem}). Put it in /etc/tpm2, or list a directory of "
            "its own in tpm_tcti_env_dirs. Nothing was changed."
        )
    errors += unit_list_errors(
        "tpm_tcti_env_services", v.get("tpm_tcti_env_services"), ("service",), "keylime_agent.service"
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
    "tpm_quote_mode": (
        "tpm_quote_mode",
        "tpm_quote_mode_tss_user",
        "tpm_quote_mode_tss_group",
        "tpm_quote_mode_abrmd_tcti",
    ),
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
        "tpm_tcti_env_dirs",
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
        "tpm_verify_endorsement_auth",
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
