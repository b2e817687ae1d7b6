# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared grammar of the roles' settings (controller side): names, numbers, booleans, lists, paths, units.

Every role's checks (plugins/plugin_utils/roles/) use these rules, so that one kind of value is checked
one way everywhere:

- Lists: at most ``LIST_MAX`` items; a message names at most ``FEW`` bad items, then "and N more".
- Unit names: systemd's own grammar (src/basic/unit-name.c, ``unit_name_is_valid``): at most 255
  characters (UNIT_NAME_MAX 256 with the NUL), ``[A-Za-z0-9:_.\\-@]`` and ``\\xHH`` escapes before the
  type suffix, a non-empty prefix before ``@``; a template (``a@.service``) is refused where a unit is
  restarted or looked up (its instances are, ``a@b.service``).
- Paths: normalised first (``posixpath.normpath``, ``//`` collapsed, no ``..`` component). Nothing
  tpmfleet writes, re-groups or records as a home may be in or under a place another program parses
  (``PARSED_PLACES``), be a whole system tree (``SYSTEM_TREES``), or lie under /proc, /sys, /dev or a
  world-writable directory.
"""

from __future__ import annotations

import json
import posixpath
import re

LIST_MAX = 256
FEW = 5
SHOWN_MAX = 80

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# systemd's UNIT_NAME_MAX is 256 with the terminating NUL.
UNIT_NAME_MAX = 255
UNIT_CHARS_RE = re.compile(r"(?:[A-Za-z0-9:_.@-]|\\x[0-9a-fA-F]{2})+")
UNIT_RULE = (
    "at most 255 characters: letters, digits, ':', '_', '.', '-', '@' and \\xHH escapes, then the type suffix; "
    "a template needs its instance (a@b.service, not a@.service)"
)

# Places other programs parse: a path equal to one of these or below it is refused.
PARSED_PLACES = (
    # package managers
    "/etc/apt", "/var/lib/apt", "/var/lib/dpkg", "/etc/dpkg", "/etc/yum", "/etc/yum.conf", "/etc/yum.repos.d",
    "/etc/dnf", "/etc/zypp", "/etc/rpm", "/var/lib/rpm",
    # privileges, logins, shells
    "/etc/sudoers", "/etc/sudoers.d", "/etc/sudo.conf", "/etc/pam.conf", "/etc/pam.d", "/usr/lib/pam.d",
    "/etc/security", "/lib/security", "/usr/lib/security", "/etc/polkit-1", "/usr/share/polkit-1",
    "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid", "/etc/login.defs",
    "/etc/shells", "/etc/skel", "/etc/ssh", "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc", "/etc/bashrc",
    "/etc/environment", "/etc/environment.d", "/usr/lib/environment.d", "/etc/zsh", "/etc/csh.cshrc",
    "/etc/csh.login", "/etc/default", "/etc/sysconfig", "/etc/conf.d",
    # scheduled jobs
    "/etc/crontab", "/etc/anacrontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly",
    "/etc/cron.monthly", "/etc/cron.yearly", "/etc/cron.allow", "/etc/cron.deny", "/var/spool/cron",
    "/etc/at.allow", "/etc/at.deny",
    # kernel modules, sysctl, the dynamic linker
    "/etc/modprobe.d", "/etc/modprobe.conf", "/etc/modules", "/etc/modules-load.d", "/lib/modprobe.d",
    "/usr/lib/modprobe.d", "/run/modprobe.d", "/lib/modules-load.d", "/usr/lib/modules-load.d",
    "/run/modules-load.d", "/lib/modules", "/usr/lib/modules", "/etc/sysctl.conf", "/etc/sysctl.d",
    "/lib/sysctl.d", "/usr/lib/sysctl.d", "/run/sysctl.d", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
    "/etc/ld.so.preload", "/etc/ld.so.cache",
    # systemd, udev, D-Bus, init scripts
    "/etc/systemd", "/lib/systemd", "/usr/lib/systemd", "/usr/local/lib/systemd", "/run/systemd",
    "/etc/xdg/systemd", "/etc/tmpfiles.d", "/usr/lib/tmpfiles.d", "/run/tmpfiles.d", "/etc/sysusers.d",
    "/usr/lib/sysusers.d", "/etc/binfmt.d", "/usr/lib/binfmt.d", "/etc/credstore", "/etc/udev", "/lib/udev",
    "/usr/lib/udev", "/run/udev", "/etc/dbus-1", "/usr/share/dbus-1", "/etc/init.d", "/etc/init", "/etc/inittab",
    "/etc/rc.local", "/etc/rcS.d", "/etc/rc0.d", "/etc/rc1.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d",
    "/etc/rc5.d", "/etc/rc6.d",
    # logging
    "/etc/logrotate.conf", "/etc/logrotate.d", "/etc/rsyslog.conf", "/etc/rsyslog.d", "/etc/syslog-ng",
    # network
    "/etc/network", "/etc/NetworkManager", "/etc/netplan", "/etc/dhcp", "/etc/dhcpcd.conf", "/etc/wpa_supplicant",
    "/etc/iproute2", "/etc/ppp", "/etc/hosts", "/etc/hosts.allow", "/etc/hosts.deny", "/etc/hostname",
    "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/networks", "/etc/nftables.conf", "/etc/iptables",
    "/etc/firewalld", "/etc/ufw",
    # boot, filesystems, security modules, certificates, containers
    "/boot", "/etc/fstab", "/etc/crypttab", "/etc/kernel", "/etc/initramfs-tools", "/etc/dracut.conf",
    "/etc/dracut.conf.d", "/etc/grub.d", "/etc/selinux", "/etc/apparmor", "/etc/apparmor.d", "/etc/audit",
    "/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/containers", "/etc/docker",
    "/etc/cni", "/etc/cloud", "/etc/alternatives", "/etc/X11", "/etc/xdg", "/etc/update-motd.d",
    # the TPM software stack's FAPI configuration (tpm2-tss parses it)
    "/etc/tpm2-tss",
)  # fmt: skip

# Whole system trees: as a directory to write into, a home or a tree to re-group, each is far too wide.
SYSTEM_TREES = (
    "/", "/bin", "/boot", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt", "/root",
    "/run", "/sbin", "/srv", "/usr", "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64",
    "/usr/libexec", "/usr/libx32", "/usr/local", "/usr/local/bin", "/usr/local/etc", "/usr/local/lib",
    "/usr/local/sbin", "/usr/local/share", "/usr/sbin", "/usr/share", "/usr/src", "/var", "/var/backups",
    "/var/cache", "/var/lib", "/var/local", "/var/lock", "/var/log", "/var/mail", "/var/opt", "/var/run",
    "/var/spool", "/run/user",
)  # fmt: skip

# Kernel file systems, and directories every user may write to (a file there can be swapped by anyone).
VIRTUAL_FS = ("/proc", "/sys", "/dev")
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")  # noqa: S108 - refused, not used


def shown(value):
    """A value as a message shows it: JSON (so "" and " direct" are visible), a long one cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if len(text) > SHOWN_MAX:
        size = f" ({len(value)} characters)" if isinstance(value, str) else ""
        return f"{text[: SHOWN_MAX - 3]}...{size}"
    return text


def few(items, limit=FEW):
    """At most ``limit`` of ``items`` joined by ', ', then "and N more"."""
    items = list(items)
    head = ", ".join(str(i) for i in items[:limit])
    return f"{head} and {len(items) - limit} more" if len(items) > limit else head


def too_long(var, value, limit=LIST_MAX):
    """The message for a list with more items than the documented limit, or None."""
    if isinstance(value, (list, tuple)) and len(value) > limit:
        return (
            f"{var} lists {len(value)} items; at most {limit} are supported (one run reads and changes each). "
            f"Split the list over several groups of hosts or plays."
        )
    return None


# --- systemd unit names ---------------------------------------------------------


def unit_problem(name, suffixes=("service",), template=False):
    """Why ``name`` is not a systemd unit name ending in one of ``suffixes``, or None."""
    if not isinstance(name, str):
        return "not a string"
    if len(name) > UNIT_NAME_MAX:
        return f"{len(name)} characters, systemd allows at most {UNIT_NAME_MAX}"
    if not UNIT_CHARS_RE.fullmatch(name):
        return "characters systemd does not allow in a unit name"
    prefix, dot, suffix = name.rpartition(".")
    if not dot or suffix not in suffixes:
        return f"does not end in {' or '.join('.' + s for s in suffixes)}"
    if not prefix:
        return "no name before the suffix"
    if prefix.startswith("@"):
        return "nothing before '@'"
    if prefix.endswith("@") and not template:
        return "a template: name its instance, such as " + prefix + "instance." + suffix
    return None


def unit_list_errors(var, units, suffixes, example):
    """The messages for a list of unit names (not a list, too long, bad names)."""
    if not isinstance(units, (list, tuple)):
        return [f"{var} must be a YAML list of systemd units such as [{example}], not {shown(units)}."]
    error = too_long(var, units)
    if error:
        return [error]
    bad = [f"{shown(u)} ({p})" for u in units for p in [unit_problem(u, suffixes)] if p]
    if bad:
        kinds = " or ".join("." + s for s in suffixes)
        return [
            f"{var} must list systemd unit names ending in {kinds} such as {example} ({UNIT_RULE}); "
            f"these are not: {few(bad)}."
        ]
    return []


# --- paths ------------------------------------------------------------------------


def normalised(path):
    """``(path normalised, None)`` or ``(None, why it is refused)``: absolute, without control characters or a
    ``..`` component; ``.`` components and repeated slashes are dropped."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None, "not an absolute path"
    if CONTROL_RE.search(path):
        return None, "control characters"
    if ".." in path.split("/"):
        return None, "a '..' component"
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/"), None


def _within(path, place):
    return path == place or path.startswith(place.rstrip("/") + "/")


def parsed_place(path):
    """The place another program parses that ``path`` (normalised) is or lies in, or None."""
    return next((p for p in PARSED_PLACES if _within(path, p)), None)


def place_problem(path, write=True):
    """Why the normalised ``path`` may not be used by tpmfleet, or None. ``write``: also refuse what lies under
    a world-writable directory."""
    if path in SYSTEM_TREES:
        return f"{path} is a whole system tree"
    fs = next((f for f in VIRTUAL_FS if _within(path, f)), None)
    if fs:
        return f"{fs} is a kernel file system"
    place = parsed_place(path)
    if place:
        return f"{place} is read by other programs"
    tmp = next((t for t in WORLD_WRITABLE if _within(path, t)), None) if write else None
    if tmp:
        return f"{tmp} is writable by every user"
    return None


def path_problem(path, write=True):
    """``(path normalised, None)`` or ``(None or the normalised path, why it is refused)``."""
    norm, problem = normalised(path)
    if problem:
        return None, problem
    return norm, place_problem(norm, write=write)


def truthy(value):
    """A setting's truth as Ansible's bool filter reads it (the roles' one reading of yes/no settings)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


# --- names, numbers, lists and kinds ---------------------------------------------


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


ID_MIN, ID_MAX = 1, 65533


def kind(value):
    """What YAML calls the type of ``value`` (Ansible hands on subclasses of str, dict and list)."""
    for kind, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (dict, "a mapping"), (list, "a list"), (type(None), "null")):  # fmt: skip
        if isinstance(value, kind):
            return name
    return type(value).__name__


def is_list(value):
    return isinstance(value, (list, tuple))


def as_int(value):
    """An int from an int or a string of digits (what -e gives); None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value)
    return None


def is_null(value):
    return value is None or value == ""


def account_name_ok(name):
    return (
        isinstance(name, str)
        and len(name) <= ACCOUNT_NAME_MAX
        and ACCOUNT_NAME_RE.fullmatch(name) is not None
        and not name.isdigit()
    )


def int_range_error(var, value, low, high, what):
    number = as_int(value)
    if number is None or not low <= number <= high:
        return f"{var} must be {what} from {low} to {high} (got {shown(value)})."
    return None


def list_error(var, value, example):
    if not is_list(value):
        return f"{var} must be a YAML list such as {example}, not {kind(value)} ({shown(value)})."
    return too_long(var, value)


def account_error(var, value, kind, example, reserved=False):
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


def bad_names(values, check=account_name_ok):
    return [shown(v) for v in values if not check(v)]


def messages(*found):
    """The messages among ``found`` (None: no problem)."""
    return [m for m in found if m]


def valid_units(value, suffixes=("service",)):
    """The unit names of a list that systemd's grammar accepts (the checks refuse the others), at most LIST_MAX:
    what may be read on the host before the checks ran."""
    units = value[:LIST_MAX] if isinstance(value, (list, tuple)) else []
    return [u for u in units if unit_problem(u, suffixes) is None]


# --- the TPM's device nodes ----------------------------------------------------------

# The character devices of a TPM: /dev/tpmN (the TPM itself) and /dev/tpmrmN (the kernel's resource manager).
TPM_NODE_GLOBS = ("/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*")
TPM_NODE_RE = re.compile(r"/dev/tpm(rm)?[0-9]+")
