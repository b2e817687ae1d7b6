# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the roles need to plan, read from the host in one go (the tpm_host_state module).

Every reader tolerates what is missing (no systemd, no modules.builtin, a
path that does not exist) and says so in its result instead of raising. The
shapes follow the modules whose results the roles used before: the units as
``ansible.builtin.service_facts`` lists them, users and groups as
``ansible.builtin.getent`` returns them, paths with the keys of
``ansible.builtin.stat`` (links not followed).
"""

from __future__ import annotations

import glob
import grp
import hashlib
import os
import pwd
import re
import stat

from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import group_name, user_name

UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState")
# LoadStates service_facts reports as the unit's status whatever its unit file says.
BAD_LOAD_STATES = ("masked", "error", "bad-setting")
MARKER_READ_LIMIT = 1 << 20
# Where systemd says it is running (sd_booted).
SYSTEMD_DIR = "/run/systemd/system"


def parse_systemctl_show(out, units):
    """``systemctl show -p ... UNIT...`` output (one block per unit, in the order asked) as
    ``{unit: {property: value}}``."""
    blocks, current = [], {}
    for line in out.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _sep, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return dict(zip(units, blocks, strict=False))


def service_entry(name, props):
    """One ``ansible_facts.services`` entry as service_facts makes it; None for a unit systemd does not know."""
    load = props.get("LoadState", "")
    if load in ("", "not-found") and props.get("UnitFileState", "") == "":
        return None
    if load in BAD_LOAD_STATES:
        status = load
    elif props.get("ActiveState") == "failed":
        status = "failed"
    else:
        status = props.get("UnitFileState") or props.get("ActiveState") or "unknown"
    state = "running" if props.get("SubState") == "running" else "stopped"
    return {"name": name, "state": state, "status": status, "source": "systemd"}


def unit_states(module, units, runner=None, systemd_dir=SYSTEMD_DIR):
    """``(services, error)``: the units systemd knows among ``units``, in service_facts' shape, read with
    one ``systemctl show``. Without systemd (or when systemctl fails) services is None and error says why."""
    units = list(dict.fromkeys(units))
    if not units:
        return {}, None
    if not os.path.isdir(systemd_dir):
        return None, f"systemd is not running on this host (no {systemd_dir})"
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None, "systemctl was not found in the PATH"
    args = [systemctl, "show", "-p", ",".join(UNIT_PROPERTIES), "--", *units]
    rc, out, err = runner(args) if runner else module.run_command(args)
    if rc != 0:
        return None, f"systemctl show failed (rc {rc}): {err.strip()}"
    services = {}
    for name, props in parse_systemctl_show(out, units).items():
        entry = service_entry(name, props)
        if entry is not None:
            services[name] = entry
    return services, None


def getent_passwd():
    """Every user as ``ansible.builtin.getent`` returns them (name -> [password, uid, gid, gecos, home, shell],
    all strings); the first entry of a name that is listed twice."""
    users = {}
    for pw in pwd.getpwall():
        users.setdefault(
            pw.pw_name, [pw.pw_passwd, str(pw.pw_uid), str(pw.pw_gid), pw.pw_gecos, pw.pw_dir, pw.pw_shell]
        )
    return users


def getent_group():
    """Every group as ``ansible.builtin.getent`` returns them (name -> [password, gid, members joined by ',']),
    the first entry of a name that is listed twice."""
    groups = {}
    for gr in grp.getgrall():
        groups.setdefault(gr.gr_name, [gr.gr_passwd, str(gr.gr_gid), ",".join(gr.gr_mem)])
    return groups


def _type(mode):
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "link"),
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "other"


def nearest_parent(path):
    """The nearest directory above ``path`` that exists (links not followed), or None."""
    parent = os.path.dirname(os.path.normpath(path))
    while parent and not os.path.lexists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up
    return parent or None


def _sha1(path):
    digest = hashlib.sha1()  # noqa: S324 - the stat module's checksum, not a security check
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _has_marker(path, marker):
    """Whether a line of the file starts with ``marker`` (a regular expression anchored at a line's start)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(MARKER_READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return False
    return re.search("^(?:" + marker + ")", text, re.MULTILINE) is not None


def path_stat(path, checksum=True, marker=None):
    """What is at ``path``, links not followed, with the keys of ansible.builtin.stat (exists, isreg, isdir,
    islnk, ischr, mode, uid, gid, pw_name, gr_name, checksum) and type, owner, group. A missing path names
    its nearest existing parent (``parent``, itself stat-ed without checksum)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        info = {"path": path, "exists": False}
        if exc.errno is not None:
            info["error"] = os.strerror(exc.errno)
        parent = nearest_parent(path)
        info["parent"] = path_stat(parent, checksum=False) if parent else None
        return info
    kind = _type(st.st_mode)
    info = {
        "path": path,
        "exists": True,
        "type": kind,
        "isreg": kind == "file",
        "isdir": kind == "directory",
        "islnk": kind == "link",
        "ischr": kind == "char",
        "isblk": kind == "block",
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "uid": st.st_uid,
        "gid": st.st_gid,
        "owner": user_name(st.st_uid),
        "group": group_name(st.st_gid),
        "size": st.st_size,
    }
    info["pw_name"], info["gr_name"] = info["owner"], info["group"]
    if kind == "link":
        info["lnk_target"] = os.readlink(path)
    if kind == "file" and checksum:
        try:
            info["checksum"] = _sha1(path)
        except OSError as exc:
            info["error"] = os.strerror(exc.errno) if exc.errno else str(exc)
    if marker is not None:
        info["has_marker"] = kind == "file" and _has_marker(path, marker)
    return info


def glob_stats(pattern, checksum=False):
    """Every path matching the shell ``pattern``, sorted, each stat-ed like path_stat."""
    return [path_stat(p, checksum=checksum) for p in sorted(glob.glob(pattern))]


def kernel_modules(release=None, modules_dir="/lib/modules", sys_module="/sys/module"):
    """``{release, builtin, loaded, errors}``: the drivers built into the running kernel (modules.builtin,
    names with '-' as '_') and the loadable modules that are loaded (/sys/module/NAME/initstate)."""
    release = release or os.uname().release
    result = {"release": release, "builtin": [], "loaded": [], "errors": []}
    path = f"{modules_dir}/{release}/modules.builtin"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            names = {os.path.basename(line.strip()).rsplit(".ko", 1)[0].replace("-", "_") for line in fh}
        result["builtin"] = sorted(n for n in names if n)
    except OSError as exc:
        result["errors"].append(f"{path}: {os.strerror(exc.errno) if exc.errno else exc}")
    loaded = []
    for initstate in glob.glob(f"{sys_module}/*/initstate"):
        try:
            with open(initstate, encoding="ascii", errors="replace") as fh:
                if fh.read().strip() == "live":
                    loaded.append(os.path.basename(os.path.dirname(initstate)))
        except OSError:
            continue
    result["loaded"] = sorted(loaded)
    return result
