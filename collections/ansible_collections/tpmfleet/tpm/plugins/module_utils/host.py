# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side TPM inspection from /dev, /sys and /proc (no TPM access, no tpm2-pytss).

Shared by tpm_facts (reporting) and tpm_check / tpm_quote (turning an open
failure into a precise message). Every function tolerates missing files and
reports what it could not read instead of raising.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import grp
import os
import pwd
import re
import stat
import time

ABRMD_COMMS = ("tpm2-abrmd",)
ABRMD_UNIT = "tpm2-abrmd.service"
UDEV_HINT = (
    'a udev rule such as KERNEL=="tpmrm[0-9]*", MODE="0660", GROUP="tss" (tpm2-tss ships '
    "/usr/lib/udev/rules.d/60-tpm-udev.rules) gives the tss group read/write access"
)


def _read(path, default=None):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return default


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def current_identity():
    """uid/user/gid/groups of this process (after become), as names and ids."""
    uid = os.geteuid()
    gids = sorted(set(os.getgroups()) | {os.getegid()})
    return {
        "uid": uid,
        "user": user_name(uid),
        "gid": os.getegid(),
        "groups": [group_name(g) for g in gids],
        "gids": gids,
    }


def node_info(path):
    """stat() a device node: path, type, major/minor, owner, group, mode (octal string)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return {"path": path, "exists": False, "error": os.strerror(exc.errno)}
    info = {
        "path": path,
        "exists": True,
        "char_device": stat.S_ISCHR(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "owner": user_name(st.st_uid),
        "uid": st.st_uid,
        "group": group_name(st.st_gid),
        "gid": st.st_gid,
    }
    if stat.S_ISCHR(st.st_mode):
        info["major"] = os.major(st.st_rdev)
        info["minor"] = os.minor(st.st_rdev)
    return info


def device_nodes():
    paths = sorted(glob.glob("/dev/tpm[0-9]*") + glob.glob("/dev/tpmrm[0-9]*"))
    return [node_info(p) for p in paths]


def access_analysis(node, identity=None):
    """Explain why ``identity`` cannot open ``node`` read/write (dict from node_info).

    Returns ``(allowed, explanation)``; ``explanation`` names the missing group when the
    group bits would grant access.
    """
    identity = identity or current_identity()
    if not node.get("exists"):
        return False, f"{node['path']} does not exist"
    mode = int(node["mode"], 8)
    if identity["uid"] == 0:
        return True, "running as root"
    if identity["uid"] == node["uid"]:
        ok = mode & 0o600 == 0o600
        return ok, f"user {identity['user']} owns {node['path']} and the owner bits are {'' if ok else 'not '}rw"
    if node["gid"] in identity["gids"]:
        ok = mode & 0o060 == 0o060
        return ok, (
            f"user {identity['user']} is in group {node['group']} and the group bits are {'' if ok else 'not '}rw"
        )
    if mode & 0o006 == 0o006:
        return True, "world read/write"
    if mode & 0o060 == 0o060 and node["gid"] == 0:
        # Never advise joining root's group: the raw device is reserved on purpose.
        return False, (
            f"{node['path']} is reserved for its owner {node['owner']} and group root: consumers on this host "
            "are meant to use /dev/tpmrm0 or the tpm2-abrmd broker (tpmfleet quote mode kernel_rm or abrmd); "
            "a consumer that needs the raw device needs quote mode direct, whose udev rule gives the tss group rw"
        )
    if mode & 0o060 == 0o060:
        return False, (
            f"user {identity['user']} is not in group {node['group']} (gid {node['gid']}), which has rw on "
            f"{node['path']}: add the user to that group (usermod -aG {node['group']} {identity['user']})"
        )
    return False, (f"{node['path']} grants rw only to its owner {node['owner']} (mode {node['mode']}); {UDEV_HINT}")


def describe_node(node):
    if not node.get("exists"):
        return f"{node['path']} (missing)"
    return (
        f"{node['path']} owner={node['owner']}({node['uid']}) group={node['group']}({node['gid']}) mode={node['mode']}"
    )


# --------------------------------------------------------------------------
# driver / kernel
# --------------------------------------------------------------------------


def _module_state(name):
    """(builtin, loaded) for a kernel module name; None when unknown."""
    name = name.replace("-", "_")
    initstate = _read(f"/sys/module/{name}/initstate")
    if initstate is not None:
        return False, initstate.strip() == "live"
    builtin = None
    release = os.uname().release
    listing = _read(f"/lib/modules/{release}/modules.builtin")
    if listing is not None:
        builtin = any(
            os.path.basename(line.strip()).rsplit(".ko", 1)[0].replace("-", "_") == name
            for line in listing.splitlines()
        )
    if builtin:
        return True, True
    modules = _read("/proc/modules")
    if modules is not None:
        loaded = any(line.split(" ", 1)[0] == name for line in modules.splitlines())
        return (False if loaded else builtin), loaded
    return builtin, None


def driver_info():
    """Driver bound to each /sys/class/tpm/tpmN device."""
    result = []
    for dev in sorted(glob.glob("/sys/class/tpm/tpm[0-9]*")):
        entry = {"device": os.path.basename(dev)}
        drv = os.path.join(dev, "device", "driver")
        if os.path.islink(drv):
            name = os.path.basename(os.readlink(drv))
            module_link = os.path.join(drv, "module")
            module = os.path.basename(os.readlink(module_link)) if os.path.islink(module_link) else name
            builtin, loaded = _module_state(module)
            if name.startswith("tpm_tis") or name == "tpm_tis":
                kind = "tpm_tis"
            elif name.startswith("tpm_crb"):
                kind = "tpm_crb"
            else:
                kind = "other"
            entry.update({"driver": name, "kind": kind, "module": module, "builtin": builtin, "loaded": loaded})
        else:
            entry.update({"driver": None, "kind": None})
        dev_link = os.path.join(dev, "device")
        if os.path.islink(dev_link):
            entry["bus_device"] = os.path.basename(os.readlink(dev_link))
        major = _read(os.path.join(dev, "tpm_version_major"))
        if major is not None:
            entry["tpm_version_major"] = int(major.strip() or 0)
        result.append(entry)
    return result


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def _unit_from_cgroup(pid):
    text = _read(f"/proc/{pid}/cgroup", "")
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope", ".socket")):
                return part
    return None


def process_info(pid):
    comm = (_read(f"/proc/{pid}/comm", "") or "").strip()
    cmdline = (_read(f"/proc/{pid}/cmdline", "") or "").replace("\0", " ").strip()
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        uid = None
    return {
        "pid": int(pid),
        "comm": comm,
        "cmdline": cmdline,
        "user": user_name(uid) if uid is not None else None,
        "unit": _unit_from_cgroup(pid),
    }


def describe_process(p):
    unit = f", unit {p['unit']}" if p.get("unit") else ""
    return f"pid {p['pid']} ({p['cmdline'] or p['comm']}{unit})"


def find_holders(paths, deadline=None):
    """Processes with an open fd on any of ``paths`` (by scanning /proc/*/fd).

    Returns ``(holders, complete)``: ``complete`` is False when some /proc/PID/fd could
    not be read (not root) or the deadline was hit.
    """
    targets = set()
    for p in paths:
        targets.add(p)
        with contextlib.suppress(OSError):
            targets.add(os.path.realpath(p))
    holders = []
    complete = True
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        if deadline is not None and time.monotonic() > deadline:
            complete = False
            break
        fd_dir = f"/proc/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                complete = False
            continue
        hit = []
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in targets:
                hit.append(target)
        if hit:
            info = process_info(entry)
            info["paths"] = sorted(set(hit))
            holders.append(info)
    return holders, complete


def holders_by_path(paths, deadline=None):
    """``(holders, complete)``: path -> the processes holding it open (find_holders), for every path given."""
    found, complete = find_holders(paths, deadline=deadline) if paths else ([], True)
    by_path = {p: [h for h in found if p in h["paths"] or os.path.realpath(p) in h["paths"]] for p in paths}
    return by_path, complete


def find_processes_by_comm(names):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        comm = (_read(f"/proc/{entry}/comm", "") or "").strip()
        if comm in names:
            found.append(process_info(entry))
    return found


def systemd_unit_state(module, unit, runner=None):
    """ActiveState/UnitFileState via ``systemctl show``; None when there is no systemd."""
    if not os.path.isdir("/run/systemd/system"):
        return None
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None
    args = [systemctl, "show", "-p", "ActiveState,UnitFileState,LoadState,MainPID", unit]
    rc, out, _err = runner(args) if runner else module.run_command(args)
    if rc != 0:
        return None
    state = {}
    for line in out.splitlines():
        key, _sep, value = line.partition("=")
        if key:
            state[re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()] = value
    return state


def abrmd_state(module=None, runner=None):
    procs = find_processes_by_comm(ABRMD_COMMS)
    state = {"running": bool(procs), "pids": [p["pid"] for p in procs], "processes": procs}
    if module is not None:
        state["systemd"] = systemd_unit_state(module, ABRMD_UNIT, runner=runner)
    return state


def kernel_release():
    return os.uname().release


def bounded_runner(module, deadline):
    """``run(args, **kwargs) -> (rc, out, err)`` via module.run_command (``kwargs`` passed on), killed (coreutils
    timeout) at the deadline."""
    timeout_bin = module.get_bin_path("timeout")

    def run(args, **kwargs):
        remaining = deadline.remaining()
        if remaining <= 0:
            return 124, "", f"not started: the module's {deadline.timeout:g}s timeout was used up"
        cmd = list(args)
        if timeout_bin:
            cmd = [timeout_bin, "-k", "1", f"{remaining:.3f}", *cmd]
        rc, out, err = module.run_command(cmd, **kwargs)
        if rc == 124 and timeout_bin:
            err = f"timed out after {remaining:.1f}s (module timeout {deadline.timeout:g}s): {err}"
        return rc, out, err

    return run


class Deadline:
    """A module's time budget: what is left of it, and whether it ran out."""

    def __init__(self, timeout):
        self.timeout = float(timeout)
        self.start = time.monotonic()
        self.end = self.start + self.timeout

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end

    def elapsed_ms(self):
        return round((time.monotonic() - self.start) * 1000.0, 2)
