# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least privilege for tpm_containers: what a service may ask of the kernel and the host.

Used by ``compose.py`` (``compose_input_errors``) before anything is planned or written:

- ``capability_errors``: ``cap_add`` names known Linux capabilities (``SYS_ADMIN``,
  ``CAP_SYS_ADMIN``, any case); those in ``DANGEROUS_CAPABILITIES`` (root in all but name, control
  of the host or its kernel, or a way around the file permissions and limits tpmfleet sets) only
  when ``tpm_containers_allow_capabilities`` lists them.
- ``image_reference_error``: ``image`` is a reference of the distribution grammar
  (github.com/distribution/reference): ``[domain/]path[:tag][@digest]``.
- ``REFUSED_OPTIONS``: compose keys that switch off an isolation (``privileged``, ``pid``, ``ipc``,
  ``userns_mode``, ``security_opt``, ``devices``, ...), each refused with the reason and what to do.
- ``network_mode_error``: ``host`` only with ``tpm_containers_allow_host_network``.
- ``base_dir_error``: ``tpm_containers_base_dir`` is a directory of tpmfleet's own, not a system
  directory or one another program parses.

Values in messages are JSON (``shown``), so that "" and " x" are told apart.
"""

from __future__ import annotations

import json
import posixpath
import re

BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def shown(value):
    """A value as a message shows it: JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def as_bool(value):
    """True/False for a boolean or a yes/no word; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return BOOL_WORDS.get(value.strip().lower())
    return None


# --- capabilities ----------------------------------------------------------------------------
# Every capability of Linux (capability.h, 6.x), without the CAP_ prefix. A container of
# tpm_containers runs as a non-root UID with cap_drop: [ALL] and no-new-privileges; cap_add puts
# single capabilities back. Docker runs containers in the host's user namespace: a capability
# given to a container is that capability on the host, limited only by the other namespaces,
# seccomp and the LSM.
#
# Refused unless tpm_containers_allow_capabilities lists them, with the reason each is there:
DANGEROUS_CAPABILITIES = {
    # Root in all but name, or the kernel and the host themselves.
    "SYS_ADMIN": "mount, namespaces and most administration calls: root in all but name",
    "SYS_MODULE": "loads kernel modules: any code in the host's kernel",
    "SYS_RAWIO": "raw I/O ports and /dev/mem: the host's memory and hardware",
    "SYS_BOOT": "reboots the host and loads a new kernel (kexec)",
    "SYS_TIME": "sets the host's clock (time is not namespaced), which breaks certificates and attestation",
    "SYS_PTRACE": "traces and changes other processes' memory; a step to escapes through kernel bugs",
    "SYSLOG": "reads and clears the host's kernel log, which shows kernel addresses",
    "BPF": "loads BPF programs and maps into the host's kernel",
    "PERFMON": "performance monitoring of the host's kernel, which shows kernel addresses",
    "MAC_ADMIN": "changes the host's AppArmor/SELinux policy, the LSM that confines the container",
    "MAC_OVERRIDE": "overrides the host's mandatory access control",
    "AUDIT_CONTROL": "changes the host's audit rules and turns auditing off",
    "AUDIT_READ": "reads the host's audit log (not namespaced): what every user on the host runs",
    "CHECKPOINT_RESTORE": "reads other processes' mapped files and sets the PIDs of new processes",
    "LINUX_IMMUTABLE": "sets or clears the immutable and append-only flags of files it sees",
    "SYS_RESOURCE": "overrides resource limits and disk quotas (the limits tpmfleet sets among them)",
    "SYS_NICE": "real-time scheduling and other processes' priorities: starves the host's CPUs",
    # The file permissions tpmfleet relies on (non-root UID, the tss GID, 0700 data directories,
    # 0660 device nodes).
    "DAC_OVERRIDE": "bypasses file read, write and execute permissions: every file it sees",
    "DAC_READ_SEARCH": "bypasses read permissions and opens files by handle (the 'shocker' escape)",
    "FOWNER": "bypasses the owner checks of chmod and others: makes any file it sees readable",
    "CHOWN": "gives any file it sees to itself",
    "FSETID": "keeps set-user-ID bits on files it changes",
    "MKNOD": "creates device nodes",
    # The process's identity: the non-root user tpmfleet requires.
    "SETUID": "takes any UID, root (0) among them",
    "SETGID": "takes any GID, so every group's files and sockets",
    "SETPCAP": "changes its own and other processes' capability sets",
    "SETFCAP": "gives files capabilities, which executing them grants",
    # The network.
    "NET_ADMIN": "configures interfaces, routes and firewalls (the host's, with the host network)",
    "NET_RAW": "raw and packet sockets: forges and sniffs traffic of other containers on the bridge",
}
# Accepted without an opt-in: each stays inside the container's own namespaces and limits.
SAFE_CAPABILITIES = {
    "NET_BIND_SERVICE": "binds ports below 1024",
    "NET_BROADCAST": "broadcasts and listens to multicast",
    "KILL": "signals processes of other UIDs in the container",
    "IPC_LOCK": "locks memory (still within the memory limit)",
    "IPC_OWNER": "bypasses permission checks on the container's own System V IPC",
    "SYS_CHROOT": "chroot inside the container",
    "SYS_PACCT": "process accounting of the container's PID namespace",
    "SYS_TTY_CONFIG": "configures the container's terminals",
    "LEASE": "takes leases on files",
    "AUDIT_WRITE": "writes records to the audit log",
    "WAKE_ALARM": "sets alarms that wake the system",
    "BLOCK_SUSPEND": "blocks system suspend",
}
ALL_CAPABILITIES = (*DANGEROUS_CAPABILITIES, *SAFE_CAPABILITIES)


def capability(value):
    """The canonical name (SYS_ADMIN) of a capability written SYS_ADMIN, CAP_SYS_ADMIN or in any case;
    'ALL' for all; None when ``value`` names none."""
    if not isinstance(value, str):
        return None
    name = value.strip().upper()
    if name.startswith("CAP_"):
        name = name[4:]
    if name == "ALL" or name in DANGEROUS_CAPABILITIES or name in SAFE_CAPABILITIES:
        return name
    return None


def allowed_capabilities_error(allowed):
    """Why tpm_containers_allow_capabilities is refused ('' when it is fine)."""
    if isinstance(allowed, list) and all(capability(c) for c in allowed):
        return ""
    bad = [c for c in allowed if not capability(c)] if isinstance(allowed, list) else allowed
    return (
        "tpm_containers_allow_capabilities must list capabilities that services may add although they are "
        f"dangerous, e.g. [NET_ADMIN]; known names: {', '.join(DANGEROUS_CAPABILITIES)} (bad: {shown(bad)})."
    )


def capability_errors(where, caps, allowed):
    """Problems with a service's ``cap_add`` (a list); ``allowed``: the opted-in canonical names."""
    errors = []
    unknown = [c for c in caps if not capability(c)]
    if unknown:
        errors.append(
            f"{where}: unknown capabilities {shown(unknown)}; write Linux capabilities such as NET_BIND_SERVICE "
            "or CAP_NET_BIND_SERVICE (see capabilities(7))."
        )
    names = list(dict.fromkeys(capability(c) for c in caps if capability(c)))
    if "ALL" in names and "ALL" not in allowed:
        errors.append(
            f"{where}: ALL gives the container every capability, root on the host in all but name; add only the "
            "single capabilities the service needs (or, knowingly, list ALL in tpm_containers_allow_capabilities)."
        )
    refused = [n for n in names if n in DANGEROUS_CAPABILITIES and n not in allowed and "ALL" not in allowed]
    for name in refused:
        errors.append(
            f"{where}: {name} {DANGEROUS_CAPABILITIES[name]}. Remove it, or, if the service really needs it, opt in "
            f"with tpm_containers_allow_capabilities: [{name}]."
        )
    return errors


def canonical_capabilities(caps):
    """cap_add as written in the compose file: canonical names, each once."""
    return list(dict.fromkeys(capability(c) for c in caps))


# --- image references ------------------------------------------------------------------------
# The distribution reference grammar (github.com/distribution/reference, reference.go and
# regexp.go): reference := name [":" tag] ["@" digest]; name := [domain "/"] path-component
# ["/" path-component]*. ASCII only (Go's \w and [[:xdigit:]]).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)
NAME_MAX = 255  # NameTotalLengthMax


def image_reference_error(where, image):
    """Why a service's ``image`` is refused ('' when it is a valid reference)."""
    example = "image: registry.example.net/keylime/agent:7.12 (or ...@sha256:<64 hex digits>)"
    if not isinstance(image, str) or not image:
        return f"{where}: an image reference is required, e.g. {example} (got {shown(image)})."
    match = IMAGE_REFERENCE_RE.fullmatch(image)
    if match is None:
        return (
            f"{where}: {shown(image)} is not an image reference: write [registry[:port]/]path[:tag][@digest], the "
            "path in lower-case letters, digits and the separators . _ __ -, e.g. "
            f"{example}."
        )
    if len(match.group("name")) > NAME_MAX:
        return f"{where}: the image name is longer than {NAME_MAX} characters (got {len(match.group('name'))})."
    return ""


# --- other isolation ---------------------------------------------------------------------------
# Compose keys that are not service keys of tpm_containers because each switches off an isolation
# the TPM does not need: refused with the reason (not just as unknown keys).
REFUSED_OPTIONS = {
    "privileged": "privileged gives the container every capability and every host device: root on the host",
    "pid": "pid (host) shares the host's processes: the container sees and signals them",
    "ipc": "ipc (host) shares the host's shared memory and semaphores",
    "uts": "uts (host) lets the container set the host's name",
    "userns_mode": "userns_mode (host) turns off the user namespace remapping of the engine",
    "cgroup": "cgroup (host) shows the host's cgroup tree to the container",
    "cgroup_parent": "cgroup_parent moves the container out of the engine's cgroup (and its limits)",
    "security_opt": "security_opt can turn off seccomp, AppArmor or SELinux (seccomp=unconfined, "
    "apparmor=unconfined, label=disable); tpmfleet sets no-new-privileges itself",
    "devices": "devices gives host device nodes; tpmfleet gives the quote mode's TPM node itself (tpm: true)",
    "device_cgroup_rules": "device_cgroup_rules opens host devices by number",
    "sysctls": "sysctls changes kernel settings",
    "volumes_from": "volumes_from takes every mount of another container, checked or not",
    "runtime": "runtime can choose a runtime without the usual isolation",
    "cap_drop": "cap_drop is set by tpmfleet: every capability is dropped, cap_add puts single ones back",
}


def refused_option_error(where, key):
    """``where``: the variable path of the key."""
    return (
        f"{where}: {REFUSED_OPTIONS[key]}; it is not offered for tpm_containers services. The TPM is given "
        "through its node or D-Bus socket and the tss GID; add single capabilities with cap_add if the service "
        "really needs one."
    )


NETWORK_MODE_RE = re.compile(r"none|bridge|(?:service|container):[a-zA-Z0-9][a-zA-Z0-9_.-]*|[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def network_mode_error(where, mode, allow_host_network):
    if mode == "host":
        if allow_host_network:
            return ""
        return (
            f"{where}: host puts the container in the host's network namespace (its interfaces, every port, "
            "abstract sockets such as the host's D-Bus and X11): not least privilege. Publish ports instead, or, "
            "if the service really needs it, opt in with tpm_containers_allow_host_network: true."
        )
    if not (isinstance(mode, str) and NETWORK_MODE_RE.fullmatch(mode)):
        return (
            f"{where} must be none, bridge, service:NAME, container:NAME or the name of a network (got {shown(mode)})."
        )
    return ""


# --- the base directory ------------------------------------------------------------------------
# tpm_containers_base_dir holds the projects' directories: tpmfleet creates directories there and
# writes compose files, env files (secrets) and data directories. It may not be / nor in these
# trees: the system's own, those other programs parse (everything in /etc: apt.conf.d, sudoers.d,
# cron.d, profile.d, systemd; /usr/lib/systemd; /var/spool/cron; /var/lib of dpkg, apt, systemd),
# and the kernel's (/proc, /sys, /dev). A directory below /tmp or a home directory is accepted (the
# role's tests use one): tpmfleet never writes through a link or into a file at a planned path
# (compose_dirs), but choose a base directory only root can change.
SYSTEM_TREES = (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
    "/libx32", "/run", "/var/run", "/var/lock", "/var/lib/docker", "/var/lib/containerd", "/var/lib/dpkg",
    "/var/lib/apt", "/var/lib/systemd", "/var/lib/polkit-1", "/var/lib/sudo", "/var/spool", "/var/mail",
    "/var/log", "/var/cache", "/var/backups", "/snap", "/lost+found",
)  # fmt: skip
# Directories that hold other programs' directories: the base directory must be one of its own
# below them (/srv/tpmfleet, /opt/tpmfleet), not them.
SHARED_PARENTS = (
    "/var", "/var/lib", "/var/opt", "/var/local", "/srv", "/opt", "/mnt", "/media", "/data", "/home",
    "/tmp", "/var/tmp",  # noqa: S108 -- refused, not used
)  # fmt: skip
ABS_PATH_RE = re.compile(r"/[^\s:\x00-\x1f\x7f]*")


def under(path, tree):
    """Whether normalised ``path`` is ``tree`` or below it."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def normpath(path):
    """posixpath.normpath, and // at the start (kept by POSIX rules, the root on Linux) made /."""
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def clean_dir(value):
    """The normalised absolute directory ``value`` names, or None when it is not one tpmfleet accepts:
    a string, absolute, without control characters, whitespace, ':' or '..' components."""
    if not (isinstance(value, str) and ABS_PATH_RE.fullmatch(value)) or ".." in value.split("/"):
        return None
    return normpath(value)


def base_dir_error(base_dir):
    """Why ``tpm_containers_base_dir`` is refused ('' when it is fine)."""
    clean = clean_dir(base_dir)
    hidden = clean is not None and any(part.startswith(".") for part in clean.split("/"))
    if (
        clean is None
        or hidden
        or clean.count("/") < 2
        or clean in SHARED_PARENTS
        or any(under(clean, tree) for tree in SYSTEM_TREES)
    ):
        return (
            "tpm_containers_base_dir must be a directory of tpmfleet's own such as /srv/tpmfleet: absolute, "
            "without '..' or hidden components, at least two levels deep, not one that holds other programs' "
            f"directories ({', '.join(SHARED_PARENTS)}) and not in {', '.join(SYSTEM_TREES)} (got {shown(base_dir)})."
        )
    return ""
