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

UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "NeedDaemonReload", "MainPID")
# LoadStates service_facts reports as the unit's status whatever its unit file says.
BAD_LOAD_STATES = ("masked", "error", "bad-setting")
MARKER_READ_LIMIT = 1 << 20
# Where systemd says it is running (sd_booted).
SYSTEMD_DIR = "/run/systemd/system"
# Units per systemctl show call.
UNIT_BATCH = 64
# Where the kernel's TPM drivers live in the module tree.
TPM_DRIVER_DIR = "/drivers/char/tpm/"
# A package name dpkg or rpm could list (never an option: it starts with a letter or digit).
_PACKAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]{0,127}")


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


def _few(items, limit=5):
    items = list(items)
    head = ", ".join(items[:limit])
    return f"{head} and {len(items) - limit} more" if len(items) > limit else head


def unit_states(module, units, runner=None, systemd_dir=SYSTEMD_DIR, batch=UNIT_BATCH, props=None):
    """``(services, error)``: the units systemd knows among ``units``, in service_facts' shape, read with
    ``systemctl show`` in batches of ``batch`` units (a long list stays within the argument and time limits of
    one call). Without systemd (or when systemctl fails) services is None and error says why. ``props``, a dict,
    receives every known unit's properties as systemctl printed them (unit -> {property: value})."""
    units = list(dict.fromkeys(units))
    if not units:
        return {}, None
    if not os.path.isdir(systemd_dir):
        return None, f"systemd is not running on this host (no {systemd_dir})"
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None, "systemctl was not found in the PATH"
    services = {}
    for start in range(0, len(units), batch):
        chunk = units[start : start + batch]
        args = [systemctl, "show", "-p", ",".join(UNIT_PROPERTIES), "--", *chunk]
        rc, out, err = runner(args) if runner else module.run_command(args)
        if rc != 0:
            return None, f"systemctl show {_few(chunk)} failed (rc {rc}): {err.strip()[:2000]}"
        for name, unit_props in parse_systemctl_show(out, chunk).items():
            entry = service_entry(name, unit_props)
            if entry is not None:
                services[name] = entry
                if props is not None:
                    props[name] = unit_props
    return services, None


def installed_packages(module, names, runner=None):
    """``(installed, error)``: the packages of ``names`` that the package database lists as installed (dpkg's
    "ii", else rpm's), in the order given. ``installed`` is None, and error says why, when neither could be asked:
    the roles then ask the package manager as before. A name that is not a package name is never passed on."""
    names = [n for n in dict.fromkeys(names) if isinstance(n, str) and _PACKAGE_RE.fullmatch(n)]
    if not names:
        return [], None
    run = runner or module.run_command
    dpkg, rpm = module.get_bin_path("dpkg-query"), module.get_bin_path("rpm")
    if dpkg:
        # No expansion: ${Package} is dpkg-query's, not an environment variable.
        rc, out, err = run([dpkg, "-W", "-f=${Package}\t${db:Status-Abbrev}\n", *names], expand_user_and_vars=False)
        # rc 1: some name is unknown to dpkg (said on stderr); the others are still listed.
        if rc not in (0, 1):
            return None, f"dpkg-query failed (rc {rc}): {err.strip()[:500]}"
        fields = [line.split("\t") for line in out.splitlines()]
        found = {f[0] for f in fields if len(f) == 2 and f[1].startswith("ii")}
    elif rpm:
        rc, out, err = run([rpm, "-q", "--qf", "%{NAME}\n", *names], expand_user_and_vars=False)
        # rc: the number of names not installed (each said as "package NAME is not installed").
        if rc < 0 or (rc and not out):
            return None, f"rpm -q failed (rc {rc}): {err.strip()[:500]}"
        found = {line.strip() for line in out.splitlines()}
    else:
        return None, "neither dpkg-query nor rpm was found in the PATH"
    return [n for n in names if n in found], None


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


def _module_name(path):
    """A module's name from its path in modules.builtin or modules.dep (kernel/x/tpm-tis.ko.xz -> tpm_tis)."""
    return os.path.basename(path.strip()).split(".ko", 1)[0].replace("-", "_")


def _read_module_paths(path, errors):
    """The module paths listed in modules.builtin or modules.dep (the part before ':'), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.split(":", 1)[0].strip() for line in fh if line.strip()]
    except OSError as exc:
        errors.append(f"{path}: {os.strerror(exc.errno) if exc.errno else exc}")
        return None


def kernel_modules(release=None, modules_dir="/lib/modules", sys_module="/sys/module", wanted=()):
    """``{release, builtin, loaded, loadable, tpm_drivers, asked, modules_read, errors}``: the drivers built
    into the running kernel (modules.builtin; names with '-' as '_'), the loadable modules that are loaded
    (/sys/module/NAME/initstate), the loadable modules (modules.dep) that are TPM drivers (under
    drivers/char/tpm) or named in ``wanted``, and every TPM driver of the kernel, built in or loadable.
    ``modules_read``: both lists were read (without them nothing can be said about a missing driver)."""
    release = release or os.uname().release
    wanted = [str(w).replace("-", "_") for w in wanted]
    result = {"release": release, "builtin": [], "loaded": [], "loadable": [], "tpm_drivers": [],
              "asked": sorted(set(wanted)), "modules_read": False, "errors": []}  # fmt: skip
    errors = result["errors"]
    builtin = _read_module_paths(f"{modules_dir}/{release}/modules.builtin", errors)
    dep = _read_module_paths(f"{modules_dir}/{release}/modules.dep", errors)
    tpm = set()
    if builtin is not None:
        result["builtin"] = sorted({n for n in map(_module_name, builtin) if n})
        tpm |= {_module_name(p) for p in builtin if TPM_DRIVER_DIR in "/" + p}
    if dep is not None:
        tpm_dep = {_module_name(p) for p in dep if TPM_DRIVER_DIR in "/" + p}
        tpm |= tpm_dep
        result["loadable"] = sorted(tpm_dep | ({_module_name(p) for p in dep} & set(wanted)))
    result["tpm_drivers"] = sorted(n for n in tpm if n)
    result["modules_read"] = builtin is not None and dep is not None
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


def _environ(pid, names, proc):
    """``(values, error)``: the values of ``names`` in the environment process ``pid`` was started with (None for
    a name it does not have); only those names are returned, never the rest of the environment."""
    try:
        with open(f"{proc}/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return None, f"{proc}/{pid}/environ: {os.strerror(exc.errno) if exc.errno else exc}"
    found = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        name = key.decode("utf-8", "replace")
        if sep and name in names and name not in found:
            found[name] = value.decode("utf-8", "replace")
    return {n: found.get(n) for n in names}, None


def consumer_states(props, units, names, proc="/proc"):
    """What decides whether a consumer service runs with its current configuration: per unit of ``units`` that
    systemd knows (``props``: unit_states' properties), ``need_daemon_reload`` (its unit files or drop-ins
    changed since systemd loaded them), ``main_pid`` (0 when it does not run) and ``environ``: the values of
    ``names`` in its main process's environment (None when it does not run or that could not be read, then
    ``error`` says why)."""
    out = {}
    names = list(dict.fromkeys(str(n) for n in names))
    for unit in dict.fromkeys(units):
        unit_props = props.get(unit)
        if unit_props is None:
            continue
        try:
            pid = int(unit_props.get("MainPID") or 0)
        except ValueError:
            pid = 0
        entry = {"need_daemon_reload": unit_props.get("NeedDaemonReload") == "yes", "main_pid": pid, "environ": None}
        if pid > 0:
            entry["environ"], error = _environ(pid, names, proc)
            if error:
                entry["error"] = error
        out[unit] = entry
    return out
