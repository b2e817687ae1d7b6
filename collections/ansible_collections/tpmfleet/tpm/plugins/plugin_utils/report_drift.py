# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's drift rules and observed quote mode: a host's facts against quote mode profiles."""

from __future__ import annotations

import functools
import shlex

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm

# Fix texts name the command that fixes the host through this marker; the host's own
# fix gets the command for that host (-l 'name'), its problem group one for all its hosts.
CMD = "\x00cmd\x00"

# The installed collection's playbooks; a report run from a checkout passes its own paths.
PLAYBOOKS = {"site": "tpmfleet.tpm.site", "quote_mode": "tpmfleet.tpm.quote_mode", "report": "tpmfleet.tpm.report"}


def command(kind, limit, playbooks=None):
    """The shell command of a fix ``kind`` for ``limit`` (already shell-quoted, e.g. "-l 'h1'"), or None."""
    if kind is None:
        return None
    if kind == "ping":
        return f"ansible all {limit} -m ansible.builtin.ping"
    playbooks = playbooks or PLAYBOOKS
    tags = ""
    if kind == "site_tpm_access":
        kind, tags = "site", " --tags tpm_access"
    return f"ansible-playbook {shlex.quote(playbooks[kind])} {limit}{tags}"


def host_limit(name):
    return "-l " + shlex.quote(name)


def _problem(check, severity, title, cause, fix, drift=False, cmd=None):
    """A problem; ``fix`` may hold CMD, the command of kind ``cmd`` (drift: quote_mode)."""
    if drift and cmd is None:
        cmd = "quote_mode"
    return {"check": check, "severity": severity, "title": title, "cause": cause, "fix": fix, "drift": drift,
            "_cmd": cmd}  # fmt: skip


def _str(value):
    return "" if value is None else str(value)


def _node(devices, path):
    for dev in devices or []:
        if dev.get("path") == path:
            return dev
    return None


def _abrmd_observed(abrmd):
    abrmd = abrmd or {}
    systemd = abrmd.get("systemd") or {}
    active = systemd.get("active_state")
    return {
        "running": bool(abrmd.get("running")) or active in ("active", "activating", "reloading"),
        "active_state": active,
        "unit_file_state": systemd.get("unit_file_state"),
        "load_state": systemd.get("load_state"),
        "systemd": bool(systemd),
    }


# --------------------------------------------------------------------------
# Drift: observed state against what a profile implies
# --------------------------------------------------------------------------


def drift(profile, tpm, host="HOST"):
    """Drift problems of a host's observed ``tpm`` facts against ``profile`` (quote_mode.profile)."""
    mode = profile["mode"]
    del host  # the fix names the host through its command (CMD)
    fix = f"Run {CMD} to bring the host back to quote mode {mode}, or set tpm_quote_mode to the mode the host "
    fix += "should have."
    problems = []

    abrmd = _abrmd_observed(tpm.get("abrmd"))
    want = profile["abrmd"]
    if want["running"]:
        if abrmd["load_state"] == "not-found":
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd is not installed",
                                     f"quote mode {mode} needs the tpm2-abrmd broker; the unit does not exist",
                                     fix, True))  # fmt: skip
        elif not abrmd["running"]:
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd is not running",
                                     f"quote mode {mode} needs tpm2-abrmd running; its unit is "
                                     f"{abrmd['active_state'] or 'unknown'}", fix, True))  # fmt: skip
        if abrmd["systemd"] and abrmd["load_state"] != "not-found" and abrmd["unit_file_state"] != "enabled":
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd does not start at boot",
                                     f"quote mode {mode} needs tpm2-abrmd enabled; its unit file state is "
                                     f"{abrmd['unit_file_state']}", fix, True))  # fmt: skip
    else:
        if abrmd["running"]:
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd is running",
                                     f"quote mode {mode} needs tpm2-abrmd stopped (it holds /dev/tpm0)",
                                     fix, True))  # fmt: skip
        if abrmd["unit_file_state"] == "enabled":
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd starts at boot",
                                     f"quote mode {mode} needs tpm2-abrmd disabled; its unit is enabled",
                                     fix, True))  # fmt: skip
        if want["masked"] and abrmd["systemd"] and abrmd["unit_file_state"] != "masked":
            problems.append(_problem("drift_abrmd", "warning", "tpm2-abrmd is not masked",
                                     f"quote mode {mode} masks tpm2-abrmd so that nothing can start it; its unit "
                                     f"file state is {abrmd['unit_file_state'] or 'unknown'}", fix, True))  # fmt: skip

    env = tpm.get("tcti_env") or {}
    if not env.get("exists"):
        problems.append(_problem("drift_tcti_env", "warning", "TCTI environment file is missing",
                                 f"{env.get('path', 'the TCTI env file')} does not exist: consumers fall back to "
                                 "the TSS default TCTI", fix, True))  # fmt: skip
    else:
        variables = env.get("variables") or {}
        wrong = [
            f"{name}={variables.get(name, '(unset)')}"
            for name, value in sorted(profile["tcti_variables"].items())
            if variables.get(name) != value
        ]
        if wrong:
            problems.append(_problem("drift_tcti_env", "warning", "TCTI environment file names another TCTI",
                                     f"{env['path']} has {', '.join(wrong)}; quote mode {mode} uses {profile['tcti']}",
                                     fix, True))  # fmt: skip

    if tpm.get("present"):
        for path, want_node in sorted(profile["nodes"].items()):
            node = _node(tpm.get("devices"), path)
            if node is None or not node.get("exists", True):
                problems.append(_problem("drift_nodes", "warning", f"{path} is missing",
                                         f"quote mode {mode} expects {path} ({want_node['owner']}:"
                                         f"{want_node['group']} {want_node['mode']})", fix, True))  # fmt: skip
                continue
            got = {k: _str(node.get(k)) for k in ("owner", "group", "mode")}
            if got != {k: _str(want_node[k]) for k in ("owner", "group", "mode")}:
                problems.append(_problem("drift_nodes", "warning", f"{path} has other owner, group or mode",
                                         f"{path} is {got['owner']}:{got['group']} {got['mode']}; quote mode {mode} "
                                         f"needs {want_node['owner']}:{want_node['group']} {want_node['mode']}",
                                         fix, True))  # fmt: skip

    holders = (tpm.get("holders") or {}).get("/dev/tpm0") or []
    unexpected = []
    for h in holders:
        is_abrmd = h.get("comm") == "tpm2-abrmd"
        if (mode == "direct" and is_abrmd) or mode == "kernel_rm" or (mode == "abrmd" and not is_abrmd):
            unit = f", unit {h['unit']}" if h.get("unit") else ""
            unexpected.append(f"pid {h.get('pid')} ({h.get('comm')}{unit})")
    if unexpected:
        allowed = {"direct": "consumers only, never tpm2-abrmd", "kernel_rm": "nothing",
                   "abrmd": "only tpm2-abrmd"}[mode]  # fmt: skip
        problems.append(_problem("drift_holders", "warning", "/dev/tpm0 is held by an unexpected process",
                                 f"held by {'; '.join(unexpected)}; in quote mode {mode} it may be held by {allowed}",
                                 fix, True))  # fmt: skip
    return problems


@functools.lru_cache(maxsize=64)
def _profiles(tss_user, tss_group, abrmd_tcti):
    """Every mode's profile for one set of settings (cached: the same for most hosts)."""
    return {m: qm.profile(m, tss_user=tss_user, tss_group=tss_group, abrmd_tcti=abrmd_tcti) for m in qm.modes()}


def _signs(tpm, profiles):
    """What each sign on the host says about the mode: (sign, set of modes it fits, or None: no evidence)."""
    signs = []
    abrmd = _abrmd_observed(tpm.get("abrmd"))
    if abrmd["running"]:
        signs.append(("tpm2-abrmd running", {"abrmd"}))
    elif abrmd["unit_file_state"] == "masked":
        signs.append(("tpm2-abrmd masked", {"direct"}))
    elif abrmd["systemd"] or (tpm.get("abrmd") or {}).get("running") is False:
        signs.append(("tpm2-abrmd stopped", {"direct", "kernel_rm"}))
    if tpm.get("holders_complete") is not False:
        holders = (tpm.get("holders") or {}).get("/dev/tpm0") or []
        kinds = {"tpm2-abrmd" if h.get("comm") == "tpm2-abrmd" else "consumer" for h in holders}
        if kinds == {"tpm2-abrmd"}:
            signs.append(("tpm2-abrmd holds /dev/tpm0", {"abrmd"}))
        elif kinds == {"consumer"}:
            signs.append(("a consumer holds /dev/tpm0", {"direct"}))
        elif kinds:
            signs.append(("tpm2-abrmd and a consumer hold /dev/tpm0", set()))
    if tpm.get("present"):
        fits = set()
        for mode, profile in profiles.items():
            ok = True
            for path, want in profile["nodes"].items():
                node = _node(tpm.get("devices"), path)
                if (
                    node is None
                    or not node.get("exists", True)
                    or any(_str(node.get(k)) != _str(want[k]) for k in ("owner", "group", "mode"))
                ):
                    ok = False
                    break
            if ok:
                fits.add(mode)
        signs.append(("device nodes", fits))
    env = tpm.get("tcti_env") or {}
    if env.get("exists"):
        variables = env.get("variables") or {}
        signs.append(("TCTI env file", {m for m, p in profiles.items() if variables.get("TCTI") == p["tcti"]}))
    return signs


def observed_mode(profile, tpm, host=None, settings=None):
    """The quote mode the host's own state shows, "unknown" or "conflicting" — never the requested mode.

    Each sign (tpm2-abrmd running/masked/stopped, who holds /dev/tpm0, the device
    nodes' owner/group/mode, the TCTI env file) fits a set of modes; the observed
    mode is the one mode every sign with evidence fits. Signs that fit no mode at
    all or fit disjoint modes make it "conflicting"; signs that leave more than one
    mode (or none with evidence) make it "unknown".
    """
    del host
    if profile:
        key = (profile["nodes"]["/dev/tpmrm0"]["owner"], profile["nodes"]["/dev/tpmrm0"]["group"],
               profile["abrmd"]["tcti"])  # fmt: skip
    else:
        key = ("tss", _str((settings or {}).get("tss_group") or "tss"), "device:/dev/tpm0")
    profiles = _profiles(*key)
    signs = [fits for _sign, fits in _signs(tpm, profiles) if fits is not None]
    if not signs:
        return "unknown"
    common = set(profiles)
    for fits in signs:
        common &= fits
    if len(common) == 1:
        return common.pop()
    return "conflicting" if not common else "unknown"
