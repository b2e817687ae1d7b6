# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report (controller side): per-host checks, drift, fleet findings, and the three renderings.

Input is one record per host, as the ``tpmfleet.tpm.fleet_report`` action collects
it from hostvars (see ``host_input``)::

    {"name": "attest-01", "groups": ["tpm_hosts", "lab"],
     "requested_mode": "direct",             # the inventory's tpm_quote_mode (None: role default)
     "profile": {...} or None,               # quote_mode.profile() of that mode: the single source of truth
     "mode_error": None or "why the mode is invalid",
     "settings": {"tss_group": "tss", "docker_group": "docker", "require_device": True},
     "facts": <registered tpm_facts result>,  # may be unreachable / failed / skipped
     "quote": <registered tpm_quote result> or None}

``build(hosts, options)`` returns the fleet model (the content of fleet.json, whose
schema is ``fleet-report.schema.json`` beside this file); ``render_junit`` and
``render_json`` turn it into two of the report's files, ``report_page`` into
the HTML page (and writes all three).
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import xml.etree.ElementTree as ET

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm

SCHEMA_VERSION = "1.0"
SCHEMA_ID = "https://tpmfleet.invalid/schemas/fleet-report/1.0"
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "fleet-report.schema.json")

STATUSES = ("failing", "unreachable", "no_tpm", "drifted", "healthy")
STATUS_LABELS = {
    "failing": "Failing",
    "unreachable": "Unreachable",
    "no_tpm": "No TPM",
    "drifted": "Drifted",
    "healthy": "Healthy",
}
SEVERITIES = ("error", "warning", "info")

# (id, title) in the order they are reported; one JUnit test case per host and check.
CHECKS = (
    ("reachable", "Host is reachable"),
    ("facts", "TPM facts were gathered"),
    ("mode", "tpm_quote_mode is valid"),
    ("tpm_present", "A TPM is present"),
    ("tpm_access", "The TPM opens over the mode's TCTI"),
    ("lockout", "TPM is not in dictionary-attack lockout"),
    ("ek_certificate", "An EK certificate is provisioned"),
    ("auth", "Owner hierarchy usable without a password"),
    ("event_log", "Boot event log is available"),
    ("drift_abrmd", "tpm2-abrmd state matches the mode"),
    ("drift_tcti_env", "TCTI environment file matches the mode"),
    ("drift_nodes", "Device node owner, group and mode match the mode"),
    ("drift_holders", "Holders of /dev/tpm0 match the mode"),
    ("quote", "A test quote verifies on the controller"),
)
CHECK_TITLES = dict(CHECKS)
DRIFT_CHECKS = ("drift_abrmd", "drift_tcti_env", "drift_nodes", "drift_holders")

RERUN = "ansible-playbook playbooks/quote_mode.yml -l {host}"
SITE = "ansible-playbook site.yml -l {host}"

# What to do for each classified TPM access failure (tcti.TpmAccessError kinds).
ACCESS_FIXES = {
    "missing_library": "Install python3-tpm2-pytss on the host: run " + SITE + " (tpm_verify installs it while "
    "tpm_verify_install_packages is true).",
    "permission": "Run " + SITE + " (tpm_udev sets the node's group and mode, tpm_access adds the consumers "
    "to the tss group).",
    "busy": "Another process holds /dev/tpm0: reconcile the quote mode with " + RERUN + " (stops tpm2-abrmd in "
    "direct mode), or stop that process.",
    "broker_unreachable": "Start tpm2-abrmd with " + RERUN + ", or set tpm_quote_mode: kernel_rm for this host.",
    "tcti_unavailable": "Install the TCTI library: run " + SITE + ".",
    "no_device": "Enable the TPM and load its driver: run " + SITE + " (tpm_kernel).",
    "lockout": "Wait for the lockout recovery time or clear it on the host with tpm2_dictionarylockout "
    "--clear-lockout -p <lockout auth>.",
    "timeout": "The TPM or its TCTI endpoint does not answer: check dmesg on the host; reboot if it stays hung.",
    "failure_mode": "The TPM is in failure mode: power-cycle the host and check tpm2_gettestresult.",
    "not_started": "Run tpm2_startup -c on the host (normally done by firmware).",
    "object_memory": "Flush leaked objects (tpm2_flushcontext -t) or use quote mode kernel_rm: set "
    "tpm_quote_mode: kernel_rm and run " + RERUN + ".",
}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _problem(check, severity, title, cause, fix, drift=False):
    return {"check": check, "severity": severity, "title": title, "cause": cause, "fix": fix, "drift": drift}


def _result_state(result):
    """'missing', 'unreachable', 'failed', 'skipped' or 'ok' for a registered task result."""
    if not isinstance(result, dict) or not result:
        return "missing"
    if result.get("unreachable"):
        return "unreachable"
    if result.get("skipped"):
        return "skipped"
    if result.get("failed"):
        return "failed"
    return "ok"


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
    fix = f"Run {RERUN.format(host=host)} to bring the host back to quote mode {mode}, or set tpm_quote_mode to "
    fix += "the mode the host should have."
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


def observed_mode(profile, tpm, host):
    """The quote mode the host's state matches: one without drift, else the one its TCTI env file names."""
    settings = {
        "tss_user": profile["nodes"]["/dev/tpmrm0"]["owner"],
        "tss_group": profile["nodes"]["/dev/tpmrm0"]["group"],
        "abrmd_tcti": profile["abrmd"]["tcti"],
    }
    clean = []
    for mode in qm.modes():
        candidate = profile if mode == profile["mode"] else qm.profile(mode, **settings)
        if not drift(candidate, tpm, host):
            clean.append(mode)
    if profile["mode"] in clean:
        return profile["mode"]
    if clean:
        return clean[0]
    tcti = ((tpm.get("tcti_env") or {}).get("variables") or {}).get("TCTI")
    for mode in qm.modes():
        if qm.QUOTE_MODES[mode]["tcti"] == tcti:
            return mode
    return None


# --------------------------------------------------------------------------
# Per-host evaluation
# --------------------------------------------------------------------------


def _tpm_summary(tpm):
    props = tpm.get("properties") or {}
    lockout = props.get("lockout") or {}
    certs = props.get("ek_certificates") or []
    drivers = [d for d in tpm.get("drivers") or [] if d.get("driver")]
    return {
        "present": bool(tpm.get("present")),
        "kernel": tpm.get("kernel"),
        "driver": drivers[0]["driver"] if drivers else None,
        "tcti": tpm.get("tcti"),
        "opened": bool(props),
        "manufacturer": props.get("manufacturer"),
        "manufacturer_name": props.get("manufacturer_name"),
        "vendor_strings": props.get("vendor_strings"),
        "firmware_version": props.get("firmware_version"),
        "spec_family": props.get("spec_family"),
        "spec_level": props.get("spec_level"),
        "spec_revision": props.get("spec_revision"),
        "software_tpm": props.get("software_tpm"),
        "pcr_banks": {k: list(v) for k, v in (props.get("pcr_banks") or {}).items()},
        "lockout": {k: lockout.get(k) for k in ("counter", "max_tries", "interval_s", "recovery_s", "in_lockout")}
        if lockout
        else None,
        "auth": {
            "owner": lockout.get("owner_auth_set"),
            "endorsement": lockout.get("endorsement_auth_set"),
            "lockout": lockout.get("lockout_auth_set"),
        }
        if lockout
        else None,
        "ek_certificates": [
            {
                "index": c.get("index"),
                "algorithm": c.get("algorithm"),
                "present": bool(c.get("present")),
                "issuer": (c.get("certificate") or {}).get("issuer"),
                "not_after": (c.get("certificate") or {}).get("not_after"),
                "sha256": (c.get("certificate") or {}).get("sha256"),
            }
            for c in certs
        ],
        "ek": props.get("ek"),
        "persistent_handles": [
            {k: h.get(k) for k in ("handle", "range", "key")} for h in props.get("persistent_handles") or []
        ],
        "event_log": tpm.get("event_log"),
        "errors": [{k: e.get(k) for k in ("step", "reason", "msg")} for e in tpm.get("errors") or []],
    }


def _expected(profile):
    if not profile:
        return None
    return {
        "tcti": profile["tcti"],
        "abrmd_running": profile["abrmd"]["running"],
        "abrmd_masked": profile["abrmd"]["masked"],
        "nodes": {p: f"{n['owner']}:{n['group']} {n['mode']}" for p, n in sorted(profile["nodes"].items())},
    }


def _observed(tpm, settings):
    abrmd = _abrmd_observed(tpm.get("abrmd"))
    env = tpm.get("tcti_env") or {}
    nodes = {}
    for dev in tpm.get("devices") or []:
        if dev.get("exists", True):
            nodes[dev["path"]] = f"{dev.get('owner')}:{dev.get('group')} {dev.get('mode')}"
    holders = [
        f"pid {h.get('pid')} ({h.get('comm')}{', unit ' + h['unit'] if h.get('unit') else ''})"
        for h in (tpm.get("holders") or {}).get("/dev/tpm0") or []
    ]
    groups = (tpm.get("accounts") or {}).get("groups") or {}
    return {
        "tcti_env": (env.get("variables") or {}).get("TCTI") if env.get("exists") else None,
        "tcti_env_path": env.get("path"),
        "abrmd_running": abrmd["running"],
        "abrmd_unit_file_state": abrmd["unit_file_state"],
        "nodes": nodes,
        "tpm0_holders": holders,
        "holders_complete": tpm.get("holders_complete"),
        "tss_gid": (groups.get(settings["tss_group"]) or {}).get("gid"),
        "docker_gid": (groups.get(settings["docker_group"]) or {}).get("gid"),
    }


def _access_problems(tpm, name, mode=None):
    problems = []
    holders = (tpm.get("holders") or {}).get("/dev/tpm0") or []
    for err in tpm.get("errors") or []:
        if err.get("step") != "tpm":
            continue
        reason = err.get("reason") or "tpm_error"
        if reason == "busy" and mode == "direct" and holders and all(h.get("comm") != "tpm2-abrmd" for h in holders):
            # direct mode: one consumer at a time by design; the report's own read found it quoting
            who = "; ".join(f"pid {h.get('pid')} ({h.get('comm')})" for h in holders)
            problems.append(_problem("tpm_access", "warning", "TPM busy: a consumer holds /dev/tpm0",
                                     f"held by {who} while the report read the TPM; in quote mode direct one "
                                     "consumer opens /dev/tpm0 at a time", "Nothing if the holder is the "
                                     "host's consumer; run the report again to read the TPM's state, or use "
                                     "quote mode kernel_rm where consumers share the TPM."))  # fmt: skip
            continue
        fix = ACCESS_FIXES.get(reason, f"Follow the message, then run {SITE}.").format(host=name)
        problems.append(_problem("tpm_access", "error", f"Cannot open the TPM ({reason})", _str(err.get("msg")), fix))
    return problems


def _tpm_problems(props, name):
    """Problems of an opened TPM: lockout, EK certificate, auth."""
    problems = []
    lockout = props.get("lockout") or {}
    if lockout.get("in_lockout"):
        problems.append(_problem("lockout", "error", "TPM is in dictionary-attack lockout",
                                 f"{lockout.get('counter')} failed authorizations reached max_tries "
                                 f"{lockout.get('max_tries')}; recovery after {lockout.get('recovery_s')} s of "
                                 "lockout_recovery", ACCESS_FIXES["lockout"]))  # fmt: skip
    elif lockout.get("counter"):
        problems.append(_problem("lockout", "warning", "Failed authorizations are counting towards lockout",
                                 f"lockout counter {lockout.get('counter')} of max_tries {lockout.get('max_tries')}; "
                                 f"one failure is forgiven every {lockout.get('interval_s')} s",
                                 "Find the consumer presenting a wrong password (its logs), before the TPM locks "
                                 "out."))  # fmt: skip
    certs = props.get("ek_certificates") or []
    if not any(c.get("present") for c in certs):
        problems.append(_problem("ek_certificate", "warning", "No EK certificate in NV",
                                 "neither the RSA (0x01c00002) nor the ECC (0x01c0000a) EK certificate index is "
                                 "defined: verifiers cannot check the TPM against its vendor's CA",
                                 "Provision the vendor's EK certificate (firmware update or vendor tool), or enrol "
                                 "this TPM by its EK fingerprint in the verifier (tpm_facts ek_create: true reports "
                                 "it)."))  # fmt: skip
    ek = props.get("ek") or {}
    if ek.get("matches_certificate") is False:
        problems.append(_problem("ek_certificate", "warning", "Persisted EK does not match the EK certificate",
                                 f"the EK at {ek.get('handle')} has another public key than the certificates in NV",
                                 "Evict the key at that handle and persist the EK from the default template "
                                 "(tpm2_createek -c <handle>)."))  # fmt: skip
    if lockout.get("owner_auth_set"):
        problems.append(_problem("auth", "warning", "Owner hierarchy has a password",
                                 "owner auth is set: tpm_quote and agents that create their keys under the owner "
                                 "hierarchy with an empty password fail",
                                 "Give consumers the owner password, or clear it on the host with tpm2_changeauth "
                                 "-c owner -p <current password>."))  # fmt: skip
    del name
    return problems


def _event_log_problems(log):
    """A missing event log is a problem; who may read it (root only on Linux) is shown, not judged."""
    if not log:
        return []
    if not log.get("exists"):
        return [_problem("event_log", "warning", "No boot event log",
                         f"{log.get('path')} does not exist: {log.get('reason', 'unknown reason')}; verifiers cannot "
                         "check measured boot", "Enable the TPM event log in firmware (UEFI) and mount securityfs "
                         "on /sys/kernel/security.")]  # fmt: skip
    return []


def _checks(problems, skipped):
    """Per check: pass / fail (error or warning problem) / skip, with a message."""
    out = []
    by_check = collections.defaultdict(list)
    for p in problems:
        by_check[p["check"]].append(p)
    for check, title in CHECKS:
        items = by_check.get(check, [])
        failing = [p for p in items if p["severity"] in ("error", "warning")]
        if check in skipped and not items:
            out.append({"id": check, "title": title, "status": "skip", "severity": None, "message": skipped[check]})
        elif failing:
            worst = min(failing, key=lambda p: SEVERITIES.index(p["severity"]))
            out.append({"id": check, "title": title, "status": "fail", "severity": worst["severity"],
                        "message": "; ".join(f"{p['title']}: {p['cause']}" for p in failing)})  # fmt: skip
        else:
            message = "; ".join(f"{p['title']}: {p['cause']}" for p in items)
            out.append({"id": check, "title": title, "status": "pass", "severity": None, "message": message})
    return out


def evaluate_host(record, quote_test=False):
    """One host's entry of the fleet model."""
    name = _str(record.get("name"))
    settings = {"tss_group": "tss", "docker_group": "docker", "require_device": True}
    settings.update({k: v for k, v in (record.get("settings") or {}).items() if v is not None})
    profile = record.get("profile")
    requested = record.get("requested_mode")
    if requested is None and profile:
        requested = profile["mode"]
    facts = record.get("facts")
    state = _result_state(facts)
    quote = record.get("quote")
    problems = []
    skipped = {}
    tpm = (facts or {}).get("ansible_facts", {}).get("tpm") if state == "ok" else None

    if state == "unreachable":
        problems.append(_problem("reachable", "error", "Host is unreachable", _str(facts.get("msg")),
                                 f"Check the connection (ansible -m ansible.builtin.ping {name}: SSH, address, "
                                 "credentials), then run the report again."))  # fmt: skip
    elif state in ("failed", "missing", "skipped"):
        why = _str((facts or {}).get("msg")) or f"tpm_facts result is {state}"
        problems.append(_problem("facts", "error", "TPM facts could not be gathered", why,
                                 "Follow the message (Python and tpm2-pytss on the host, become), then run the "
                                 "report again."))  # fmt: skip
    if record.get("mode_error") or not profile:
        problems.append(_problem("mode", "error", "tpm_quote_mode is invalid",
                                 _str(record.get("mode_error")) or f"tpm_quote_mode {requested!r} is not a mode",
                                 f"Set tpm_quote_mode to one of {', '.join(qm.modes())} in host_vars/{name}.yml or "
                                 "the host's group_vars."))  # fmt: skip

    obs_mode = None
    if state != "ok":
        for check, _title in CHECKS[1:] if state == "unreachable" else CHECKS[2:]:
            skipped.setdefault(check, f"not checked: the host is {state}")
    if tpm is not None:
        if not tpm.get("present"):
            severity = "error" if settings["require_device"] else "info"
            problems.append(_problem("tpm_present", severity, "No TPM on this host",
                                     "the kernel registered no TPM and there is no /dev/tpm* node",
                                     "Enable the TPM in firmware or the hypervisor and run "
                                     f"{SITE.format(host=name)} (tpm_kernel loads tpm_tis/tpm_crb); for a host "
                                     "without a TPM set tpm_kernel_require_device: false."))  # fmt: skip
            for check in ("tpm_access", "lockout", "ek_certificate", "auth", "event_log", "drift_nodes",
                          "drift_holders", "quote"):  # fmt: skip
                skipped[check] = "not checked: no TPM"
        else:
            problems.extend(_access_problems(tpm, name, profile["mode"] if profile else None))
            props = tpm.get("properties")
            if props:
                problems.extend(_tpm_problems(props, name))
            else:
                for check in ("lockout", "ek_certificate", "auth"):
                    skipped[check] = "not checked: the TPM could not be opened"
            problems.extend(_event_log_problems(tpm.get("event_log")))
            if tpm.get("holders_complete") is False:
                problems.append(_problem("drift_holders", "info", "Holders of the TPM nodes may be incomplete",
                                         "some /proc/PID/fd could not be read",
                                         "Run the report with become (-b) to see every holder."))  # fmt: skip
        if profile:
            problems.extend(drift(profile, tpm, name))
            obs_mode = observed_mode(profile, tpm, name)
        else:
            for check in DRIFT_CHECKS:
                skipped[check] = "not checked: no valid quote mode"

    quote_info = None
    q_state = _result_state(quote)
    if not quote_test:
        skipped["quote"] = "test quote not requested (tpm_report_quote: true)"
    elif q_state in ("missing", "skipped"):
        skipped.setdefault("quote", "no test quote: the TPM could not be read")
    elif q_state == "unreachable" or q_state == "failed" or not quote.get("verified"):
        reason = quote.get("reason") or q_state
        problems.append(_problem("quote", "error", f"Test quote failed ({reason})", _str(quote.get("msg")),
                                 ACCESS_FIXES.get(reason, f"Follow the message, then run {SITE}.").format(
                                     host=name)))  # fmt: skip
        quote_info = {"verified": False, "reason": reason}
    else:
        quote_info = {"verified": True, "reason": None}

    problems.sort(key=lambda p: (SEVERITIES.index(p["severity"]), [name for name, _label in CHECKS].index(p["check"])))
    if state == "unreachable":
        status = "unreachable"
    elif tpm is not None and not tpm.get("present") and not record.get("mode_error"):
        status = "no_tpm"
    elif any(p["severity"] == "error" for p in problems):
        status = "failing"
    elif any(p["drift"] and p["severity"] != "info" for p in problems):
        status = "drifted"
    else:
        status = "healthy"
    if status == "no_tpm" and any(p["severity"] == "error" and p["check"] != "tpm_present" for p in problems):
        status = "failing"

    return {
        "name": name,
        "groups": sorted(_str(g) for g in record.get("groups") or []),
        "status": status,
        "mode": _str(requested) if requested is not None else None,
        "observed_mode": obs_mode,
        "reachable": state != "unreachable",
        "settings": {
            "tss_group": _str(settings["tss_group"]),
            "docker_group": _str(settings["docker_group"]),
            "require_device": bool(settings["require_device"]),
        },
        "tpm": _tpm_summary(tpm) if tpm is not None else None,
        "expected": _expected(profile),
        "observed": _observed(tpm, settings) if tpm is not None else None,
        "quote": quote_info,
        "problems": problems,
        "checks": _checks(problems, skipped),
    }


# --------------------------------------------------------------------------
# Fleet level
# --------------------------------------------------------------------------


def _names(names, limit=6):
    """At most ``limit`` names, then how many more (the finding's ``hosts`` lists them all)."""
    names = sorted(names)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _id_finding(hosts, key, group_key, variable, label):
    values = collections.defaultdict(list)
    for h in hosts:
        if h["observed"] and h["observed"].get(key) is not None:
            group = h["settings"][group_key]
            values[(group, h["observed"][key])].append(h["name"])
    by_group = collections.defaultdict(dict)
    for (group, gid), names in values.items():
        by_group[group][gid] = sorted(names)
    findings = []
    for group, gids in sorted(by_group.items()):
        if len(gids) < 2:
            continue
        common = max(gids.items(), key=lambda kv: (len(kv[1]), -kv[0]))[0]
        spread = "; ".join(f"{gid} on {_names(names)}" for gid, names in sorted(gids.items()))
        affected = sorted(n for gid, names in gids.items() if gid != common for n in names)
        findings.append(
            {
                "id": f"{key}_differs",
                "severity": "warning",
                "title": f"The {label} group {group} has different GIDs across hosts",
                "cause": f"GID {spread}: files, volumes and container images carry numbers that mean another group "
                "on other hosts",
                "fix": f"Pin {variable}: {common} in group_vars (the most common GID) with "
                "tpm_access_allow_gid_change: true, and run ansible-playbook site.yml --tags tpm_access.",
                "hosts": affected,
            }
        )
    return findings


def fleet_findings(hosts, ignore_groups=()):
    findings = _id_finding(hosts, "tss_gid", "tss_group", "tpm_access_tss_gid", "tss")
    findings += _id_finding(hosts, "docker_gid", "docker_group", "tpm_access_docker_gid", "docker")
    ignored = {"all", "ungrouped", *ignore_groups}
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for h in hosts:
        for g in h["groups"]:
            if g not in ignored and h["mode"] is not None:
                groups[g][h["mode"]].append(h["name"])
    for group, modes in sorted(groups.items()):
        if len(modes) < 2:
            continue
        spread = "; ".join(f"{m}: {_names(n)}" for m, n in sorted(modes.items()))
        findings.append(
            {
                "id": "mixed_modes",
                "severity": "info",
                "title": f"Group {group} mixes quote modes",
                "cause": spread,
                "fix": f"If the hosts of {group} should share one mode, set tpm_quote_mode in group_vars/{group}.yml "
                f"and run ansible-playbook playbooks/quote_mode.yml -l {group}; otherwise add {group} to "
                "tpm_report_mixed_mode_ignore_groups.",
                "hosts": sorted(n for names in modes.values() for n in names),
            }
        )
    return findings


def _sort_key(host):
    worst = min((SEVERITIES.index(p["severity"]) for p in host["problems"]), default=len(SEVERITIES))
    return (STATUSES.index(host["status"]), worst, host["name"])


def build(records, quote_test=False, ignore_groups=(), generated_at=None, inventory=None):
    """The fleet model (fleet.json) from per-host records."""
    hosts = sorted((evaluate_host(r, quote_test=quote_test) for r in records), key=_sort_key)
    status_counts = {s: 0 for s in STATUSES}
    modes = {m: 0 for m in qm.modes()}
    observed = {m: 0 for m in qm.modes()}
    observed["unknown"] = 0
    severity_counts = {s: 0 for s in SEVERITIES}
    by_mode = {}
    for h in hosts:
        status_counts[h["status"]] += 1
        key = h["mode"] if h["mode"] in modes else "invalid"
        modes[key] = modes.get(key, 0) + 1
        by_mode.setdefault(key, {s: 0 for s in STATUSES})[h["status"]] += 1
        if h["tpm"] is not None:
            observed[h["observed_mode"] or "unknown"] += 1
        for p in h["problems"]:
            severity_counts[p["severity"]] += 1
    findings = fleet_findings(hosts, ignore_groups)
    for f in findings:
        severity_counts[f["severity"]] += 1
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "tpmfleet.tpm.report",
        "inventory": inventory,
        "options": {"quote_test": bool(quote_test), "mixed_mode_ignore_groups": sorted(ignore_groups)},
        "summary": {
            "hosts": len(hosts),
            "status": status_counts,
            "modes": modes,
            "observed_modes": observed,
            "by_mode": by_mode,
            "problems": severity_counts,
        },
        "fleet_findings": findings,
        "hosts": hosts,
    }


# --------------------------------------------------------------------------
# Renderings
# --------------------------------------------------------------------------


def render_json(model):
    return json.dumps(model, indent=2, sort_keys=False) + "\n"


def render_junit(model):
    """JUnit XML: one test case per host and check (classname = host), plus the fleet findings."""
    suite = ET.Element("testsuite", name="tpmfleet fleet report", timestamp=model["generated_at"])
    tests = failures = skipped = 0
    for host in model["hosts"]:
        for check in host["checks"]:
            case = ET.SubElement(suite, "testcase", classname=f"tpmfleet.{host['name']}", name=check["id"])
            tests += 1
            if check["status"] == "fail":
                failures += 1
                problems = [p for p in host["problems"] if p["check"] == check["id"]]
                fixes = "\n".join(f"- {p['title']}: {p['cause']}\n  fix: {p['fix']}" for p in problems)
                node = ET.SubElement(case, "failure", message=check["message"][:1000], type=check["severity"])
                node.text = fixes
            elif check["status"] == "skip":
                skipped += 1
                ET.SubElement(case, "skipped", message=check["message"])
            elif check["message"]:
                ET.SubElement(case, "system-out").text = check["message"]
    for finding in model["fleet_findings"]:
        case = ET.SubElement(suite, "testcase", classname="tpmfleet.fleet", name=finding["id"])
        tests += 1
        if finding["severity"] in ("error", "warning"):
            failures += 1
            node = ET.SubElement(case, "failure", message=finding["title"], type=finding["severity"])
            node.text = f"{finding['cause']}\nfix: {finding['fix']}"
        else:
            ET.SubElement(case, "system-out").text = f"{finding['title']}: {finding['cause']}\nfix: {finding['fix']}"
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="tpmfleet")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
