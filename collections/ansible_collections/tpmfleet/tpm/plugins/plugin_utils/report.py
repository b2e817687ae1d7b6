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
schema is ``fleet-report.schema.json`` beside this file); ``render_html``,
``render_junit`` and ``render_json`` turn it into the report's files. Every
host-provided string is escaped in the HTML (text and attributes) and embedded
JSON cannot close its script element.
"""

from __future__ import annotations

import collections
import datetime
import html
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


def _e(value):
    return html.escape(_str(value), quote=True)


def _script_json(value):
    """JSON safe inside <script type=application/json>: no '<', '>' or '&' survive unescaped."""
    text = json.dumps(value, separators=(",", ":"))
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                      ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, esc)
    return text


STATUS_COLOURS = {
    "failing": "#c62828",
    "unreachable": "#6a1b9a",
    "no_tpm": "#757575",
    "drifted": "#ef6c00",
    "healthy": "#2e7d32",
}


def _chart(model):
    """Inline SVG: one stacked bar per requested mode, a segment per status."""
    by_mode = model["summary"]["by_mode"]
    rows = [m for m in [*qm.modes(), "invalid"] if m in by_mode]
    most = max((sum(v.values()) for v in by_mode.values()), default=0) or 1
    width, label_w, bar_h, gap = 520, 90, 22, 10
    height = max(1, len(rows)) * (bar_h + gap) + 30
    parts = [
        f'<svg id="mode-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Hosts by quote mode and status">'
    ]
    for i, mode in enumerate(rows):
        y = i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 16}" class="chart-label">{_e(mode)}</text>')
        x = label_w
        total = sum(by_mode[mode].values())
        for status in STATUSES:
            n = by_mode[mode].get(status, 0)
            if not n:
                continue
            w = (width - label_w - 50) * n / most
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{STATUS_COLOURS[status]}">'
                f"<title>{_e(mode)}: {n} {_e(STATUS_LABELS[status])}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" class="chart-count">{total}</text>')
    y = len(rows) * (bar_h + gap) + 10
    x = 0
    for status in STATUSES:
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{STATUS_COLOURS[status]}"/>')
        parts.append(f'<text x="{x + 16}" y="{y + 11}" class="chart-legend">{_e(STATUS_LABELS[status])}</text>')
        x += 100
    parts.append("</svg>")
    return "".join(parts)


def _row(host):
    tpm = host["tpm"] or {}
    lockout = tpm.get("lockout") or {}
    if not host["reachable"]:
        tpm_text, lock_text, ek_text = "unknown", "", ""
    elif not tpm.get("present"):
        tpm_text, lock_text, ek_text = "none", "", ""
    else:
        tpm_text = " ".join(filter(None, [_str(tpm.get("manufacturer")), _str(tpm.get("firmware_version"))]))
        tpm_text = tpm_text or "not opened"
        lock_text = (
            "LOCKOUT"
            if lockout.get("in_lockout")
            else (f"{lockout.get('counter')}/{lockout.get('max_tries')}" if lockout else "")
        )
        ek_text = (
            "yes"
            if any(c["present"] for c in tpm.get("ek_certificates") or [])
            else ("no" if tpm.get("opened") else "")
        )
    problems = host["problems"]
    worst = problems[0] if problems else None
    search = " ".join(
        [host["name"], host["status"], _str(host["mode"]), _str(host["observed_mode"]), tpm_text, *host["groups"]]
        + [f"{p['title']} {p['cause']}" for p in problems]
    ).lower()
    severity_rank = min((SEVERITIES.index(p["severity"]) for p in problems), default=len(SEVERITIES))
    cells = [
        f'<td data-v="{STATUSES.index(host["status"])}"><span class="badge s-{_e(host["status"])}">'
        f"{_e(STATUS_LABELS[host['status']])}</span></td>",
        f'<td data-v="{_e(host["name"].lower())}"><button type="button" class="host-link">{_e(host["name"])}'
        "</button></td>",
        f'<td data-v="{_e(host["mode"])}">{_e(host["mode"])}</td>',
        f'<td data-v="{_e(host["observed_mode"])}">{_e(host["observed_mode"] or "")}</td>',
        f'<td data-v="{_e(tpm_text.lower())}">{_e(tpm_text)}</td>',
        f'<td data-v="{_e(lock_text)}">{_e(lock_text)}</td>',
        f'<td data-v="{_e(ek_text)}">{_e(ek_text)}</td>',
        f'<td data-v="{_e((host["observed"] or {}).get("tss_gid"))}">{_e((host["observed"] or {}).get("tss_gid"))}'
        "</td>",
    ]
    if worst:
        more = f' <span class="more">+{len(problems) - 1} more</span>' if len(problems) > 1 else ""
        cells.append(
            f'<td data-v="{severity_rank}{len(problems):04d}" class="problem sev-{_e(worst["severity"])}">'
            f'<span class="ptitle">{_e(worst["title"])}</span>{more}<div class="cause">{_e(worst["cause"])}</div>'
            f'<div class="fix">Fix: {_e(worst["fix"])}</div></td>'
        )
    else:
        cells.append(f'<td data-v="{severity_rank}0000">none</td>')
    return (
        f'<tr data-host="{_e(host["name"])}" data-status="{_e(host["status"])}" data-mode="{_e(host["mode"])}" '
        f'data-search="{_e(search)}">' + "".join(cells) + "</tr>"
    )


PAGE_CSS = """
:root{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;color:#1d2327;background:#f6f7f9}
body{margin:0 auto;max-width:1400px;padding:16px 24px}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.15rem;margin:24px 0 8px}
.meta{color:#5f6b76;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #d9dee3;border-radius:8px;padding:8px 14px;min-width:110px}
.card .n{font-size:1.6rem;font-weight:700}.card .l{font-size:.8rem;color:#5f6b76}
.card.s-failing .n{color:#c62828}.card.s-unreachable .n{color:#6a1b9a}.card.s-drifted .n{color:#ef6c00}
.card.s-healthy .n{color:#2e7d32}.card.s-no_tpm .n{color:#757575}
.summary{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.panel{background:#fff;border:1px solid #d9dee3;border-radius:8px;padding:12px}
.chart-label,.chart-legend{font-size:12px;fill:#1d2327}.chart-count{font-size:12px;font-weight:700;fill:#1d2327}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.85rem}
#hosts{table-layout:fixed}

th,td{border-bottom:1px solid #e3e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr:hover td{background:#f3f8ff}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;color:#fff;font-size:.75rem;white-space:nowrap}
.s-failing.badge{background:#c62828}.s-unreachable.badge{background:#6a1b9a}.s-drifted.badge{background:#ef6c00}
.s-healthy.badge{background:#2e7d32}.s-no_tpm.badge{background:#757575}
.host-link{background:none;border:0;padding:0;color:#0b57d0;cursor:pointer;font:inherit;text-decoration:underline;
text-align:left;overflow-wrap:anywhere}
details summary{cursor:pointer;color:#0b57d0;margin:6px 0}
.problem .ptitle{font-weight:600}.sev-error .ptitle{color:#c62828}.sev-warning .ptitle{color:#ef6c00}
.cause{color:#3c4650;overflow-wrap:anywhere}.fix{color:#1b5e20;overflow-wrap:anywhere}.more{color:#5f6b76;font-size:.8rem}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0}
.controls input{padding:5px 8px;min-width:260px}.controls select{padding:4px}
.finding{border-left:4px solid #ef6c00;background:#fff;padding:6px 10px;margin:6px 0}
.finding.sev-info{border-color:#0b57d0}.finding.sev-error{border-color:#c62828}
#detail{position:fixed;top:0;right:0;height:100%;width:min(560px,95vw);overflow:auto;background:#fff;
box-shadow:-4px 0 16px rgba(0,0,0,.2);padding:16px;box-sizing:border-box}
#detail[hidden]{display:none}#detail h3{margin-top:0}#detail dl{display:grid;grid-template-columns:max-content 1fr;
gap:3px 12px;font-size:.85rem}#detail dt{color:#5f6b76}#detail dd{margin:0;word-break:break-all}
#detail .p{border-left:3px solid #ef6c00;padding:4px 8px;margin:6px 0;font-size:.85rem}
#detail .p.sev-error{border-color:#c62828}#detail .p.sev-info{border-color:#0b57d0}
"""

PAGE_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("fleet-data").textContent);
  var byName = {};
  data.hosts.forEach(function (h) { byName[h.name] = h; });
  var table = document.getElementById("hosts");
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var text = document.getElementById("filter");
  var statusSel = document.getElementById("status-filter");
  var modeSel = document.getElementById("mode-filter");
  var shown = document.getElementById("shown-count");
  var showAll = document.getElementById("show-all");
  // Only the first pageSize matching rows are laid out (problems come first); "Show all" lifts the limit.
  var pageSize = Number(table.dataset.pageSize) || Infinity;

  function applyFilter() {
    var q = text.value.trim().toLowerCase();
    var st = statusSel.value, md = modeSel.value, n = 0;
    var terms = q ? q.split(/\s+/) : [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], ok = (!st || r.dataset.status === st) && (!md || r.dataset.mode === md);
      if (ok && terms.length) {
        var s = r.dataset.search;
        for (var j = 0; j < terms.length && ok; j++) { ok = s.indexOf(terms[j]) !== -1; }
      }
      if (ok) { n++; }
      r.hidden = !ok || n > pageSize;
    }
    shown.textContent = String(n);
    showAll.hidden = n <= pageSize;
    showAll.textContent = "Show all " + n + " (first " + pageSize + " shown)";
  }

  function sortBy(th) {
    var col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var numeric = th.dataset.type === "num";
    var keyed = rows.map(function (r, i) {
      var v = r.cells[col].dataset.v || "";
      return { r: r, i: i, v: numeric ? (v === "" ? Infinity : Number(v)) : v };
    });
    keyed.sort(function (a, b) {
      var c = a.v < b.v ? -1 : a.v > b.v ? 1 : a.i - b.i;
      return dir === "ascending" ? c : -c;
    });
    // reorder detached from the document: one layout instead of one per moved row
    var next = tbody.nextSibling;
    table.removeChild(tbody);
    keyed.forEach(function (k) { tbody.appendChild(k.r); });
    table.insertBefore(tbody, next);
    rows = keyed.map(function (k) { return k.r; });
    applyFilter();
  }

  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (txt !== undefined && txt !== null) { e.textContent = String(txt); }
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || v === "") { return "-"; }
    if (Array.isArray(v)) { return v.length ? v.map(fmt).join("; ") : "none"; }
    if (typeof v === "object") {
      return Object.keys(v).map(function (k) { return k + ": " + fmt(v[k]); }).join(", ");
    }
    return String(v);
  }
  function dl(pairs) {
    var d = el("dl");
    pairs.forEach(function (p) { d.appendChild(el("dt", null, p[0])); d.appendChild(el("dd", null, fmt(p[1]))); });
    return d;
  }

  function showDetail(name) {
    var h = byName[name];
    var box = document.getElementById("detail");
    if (!h) { return; }
    while (box.firstChild) { box.removeChild(box.firstChild); }
    var close = el("button", null, "Close");
    close.type = "button";
    close.id = "detail-close";
    close.addEventListener("click", function () { box.hidden = true; });
    box.appendChild(close);
    box.appendChild(el("h3", null, h.name));
    box.appendChild(dl([["Status", h.status], ["Requested mode", h.mode], ["Observed mode", h.observed_mode],
      ["Groups", h.groups.join(", ")]]));
    box.appendChild(el("h4", null, "Problems (" + h.problems.length + ")"));
    if (!h.problems.length) { box.appendChild(el("p", null, "None.")); }
    h.problems.forEach(function (p) {
      var d = el("div", "p sev-" + p.severity);
      d.appendChild(el("strong", null, "[" + p.severity + "] " + p.title));
      d.appendChild(el("div", "cause", "Cause: " + p.cause));
      d.appendChild(el("div", "fix", "Fix: " + p.fix));
      box.appendChild(d);
    });
    var t = h.tpm;
    if (t) {
      box.appendChild(el("h4", null, "TPM"));
      box.appendChild(dl([["Present", t.present], ["Driver", t.driver], ["Kernel", t.kernel], ["TCTI", t.tcti],
        ["Manufacturer", t.manufacturer ? t.manufacturer + " (" + t.manufacturer_name + ")" : null],
        ["Vendor strings", t.vendor_strings], ["Firmware", t.firmware_version],
        ["Spec", t.spec_family ? t.spec_family + " level " + t.spec_level + " rev " + t.spec_revision : null],
        ["Software TPM", t.software_tpm], ["PCR banks", t.pcr_banks ? Object.keys(t.pcr_banks).join(", ") : null],
        ["Lockout", t.lockout], ["Auth set", t.auth], ["EK", t.ek],
        ["EK certificates", t.ek_certificates.filter(function (c) { return c.present; })
          .map(function (c) { return c.index + " " + c.algorithm + (c.issuer ? " (" + c.issuer + ")" : ""); })
          .join("; ") || "none"],
        ["Persistent handles", t.persistent_handles.map(function (p) {
          return p.handle + " " + (p.range || "?") + " " + (p.key || ""); }).join("; ") || "none"],
        ["Event log", t.event_log], ["Errors", t.errors.length ? t.errors : null]]));
    }
    if (h.expected || h.observed) {
      box.appendChild(el("h4", null, "Expected vs observed"));
      var e = h.expected || {}, o = h.observed || {};
      box.appendChild(dl([["TCTI", fmt(e.tcti) + "  /  " + fmt(o.tcti_env)],
        ["tpm2-abrmd running", fmt(e.abrmd_running) + "  /  " + fmt(o.abrmd_running)],
        ["tpm2-abrmd masked", fmt(e.abrmd_masked) + "  /  " + fmt(o.abrmd_unit_file_state)],
        ["Nodes", fmt(e.nodes) + "  /  " + fmt(o.nodes)], ["/dev/tpm0 holders", o.tpm0_holders],
        ["tss GID", o.tss_gid], ["docker GID", o.docker_gid]]));
    }
    box.appendChild(el("h4", null, "Checks"));
    var ul = el("ul");
    h.checks.forEach(function (c) {
      ul.appendChild(el("li", "check-" + c.status, c.status.toUpperCase() + " " + c.title +
        (c.message ? ": " + c.message : "")));
    });
    box.appendChild(ul);
    box.hidden = false;
  }

  text.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  modeSel.addEventListener("change", applyFilter);
  showAll.addEventListener("click", function () { pageSize = Infinity; applyFilter(); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  tbody.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest(".host-link") : null;
    if (b) { showDetail(b.closest("tr").dataset.host); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { document.getElementById("detail").hidden = true; }
  });
  applyFilter();
})();
"""

# Nothing is fetched: no other origin, only the page's own inline style and script.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

# Rows laid out at once: more makes every filter and sort re-layout them all (see docs/report.md).
PAGE_SIZE = 200

# (header, sort type, width): fixed widths keep re-layout cheap when 1000 rows are sorted or filtered.
COLUMNS = (
    ("Status", "num", "7.5em"),
    ("Host", "text", "16%"),
    ("Mode", "text", "6.5em"),
    ("Observed", "text", "6.5em"),
    ("TPM", "text", "9em"),
    ("DA lockout", "text", "6.5em"),
    ("EK cert", "text", "5em"),
    ("tss GID", "num", "5em"),
    ("Problems", "num", "auto"),
)


def render_html(model):
    """One self-contained page: summary, fleet findings, sortable and filterable host table, detail view."""
    s = model["summary"]
    cards = [f'<div class="card" id="count-hosts"><div class="n">{s["hosts"]}</div><div class="l">hosts</div></div>']
    for status in ("healthy", "drifted", "failing", "unreachable", "no_tpm"):
        cards.append(
            f'<div class="card s-{status}" id="count-{status}"><div class="n">{s["status"][status]}</div>'
            f'<div class="l">{_e(STATUS_LABELS[status])}</div></div>'
        )
    mode_rows = "".join(
        f'<tr><td>{_e(m)}</td><td class="num" id="mode-{_e(m)}">{n}</td>'
        f"<td>{s['observed_modes'].get(m, 0) if m in s['observed_modes'] else ''}</td></tr>"
        for m, n in s["modes"].items()
    )
    mode_rows += f"<tr><td>unknown</td><td></td><td>{s['observed_modes'].get('unknown', 0)}</td></tr>"

    def finding(f):
        return (
            f'<div class="finding sev-{_e(f["severity"])}"><strong>{_e(f["title"])}</strong>'
            f'<div class="cause">Cause: {_e(f["cause"])}</div><div class="fix">Fix: {_e(f["fix"])}</div></div>'
        )

    serious = [f for f in model["fleet_findings"] if f["severity"] != "info"]
    notes = [f for f in model["fleet_findings"] if f["severity"] == "info"]
    findings = "".join(finding(f) for f in serious) or "<p>No fleet-level problem.</p>"
    if notes:
        findings += (
            f'<details id="fleet-notes"><summary>{len(notes)} note{"s" if len(notes) != 1 else ""} '
            f"(mixed quote modes within groups)</summary>{''.join(finding(f) for f in notes)}</details>"
        )
    status_options = "".join(f'<option value="{st}">{_e(STATUS_LABELS[st])}</option>' for st in STATUSES)
    modes = sorted({h["mode"] for h in model["hosts"] if h["mode"] is not None})
    mode_options = "".join(f'<option value="{_e(m)}">{_e(m)}</option>' for m in modes)
    head = "".join(f'<th scope="col" data-type="{t}">{_e(label)}</th>' for label, t, _w in COLUMNS)
    cols = "".join(f'<col style="width:{w}">' for _label, _t, w in COLUMNS)
    body = "\n".join(_row(h) for h in model["hosts"])
    problems = s["problems"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>tpmfleet report: {s["hosts"]} hosts</title>
<style>{PAGE_CSS}</style>
</head>
<body>
<h1>tpmfleet fleet report</h1>
<div class="meta">Generated {_e(model["generated_at"])} by {_e(model["generator"])},
schema {_e(model["schema_version"])}
{("&middot; inventory " + _e(model["inventory"])) if model.get("inventory") else ""}
&middot; test quote {"on" if model["options"]["quote_test"] else "off"}
&middot; {problems["error"]} errors, {problems["warning"]} warnings, {problems["info"]} notes</div>
<h2>Fleet summary</h2>
<div class="cards">{"".join(cards)}</div>
<div class="summary">
<div class="panel">{_chart(model)}</div>
<div class="panel"><table id="modes"><thead><tr><th>Mode</th><th>Requested</th><th>Observed</th></tr></thead>
<tbody>{mode_rows}</tbody></table></div>
</div>
<h2>Fleet findings</h2>
<div id="findings">{findings}</div>
<h2>Hosts</h2>
<div class="controls">
<label>Filter <input id="filter" type="search" placeholder="host, mode, problem..." autocomplete="off"></label>
<label>Status <select id="status-filter"><option value="">all</option>{status_options}</select></label>
<label>Mode <select id="mode-filter"><option value="">all</option>{mode_options}</select></label>
<span><span id="shown-count">{s["hosts"]}</span> of {s["hosts"]} hosts match</span>
<button type="button" id="show-all" hidden></button>
</div>
<table id="hosts" data-page-size="{PAGE_SIZE}"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table>
<aside id="detail" hidden aria-live="polite"></aside>
<script type="application/json" id="fleet-data">{_script_json(model)}</script>
<script>{PAGE_JS}</script>
</body>
</html>
"""


def write_report(model, dest):
    """Write index.html, fleet.json and junit.xml into ``dest``; returns their paths."""
    os.makedirs(dest, exist_ok=True)
    paths = {}
    for name, text in (
        ("index.html", render_html(model)),
        ("fleet.json", render_json(model)),
        ("junit.xml", render_junit(model)),
    ):
        path = os.path.join(dest, name)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        paths[name] = path
    return paths
