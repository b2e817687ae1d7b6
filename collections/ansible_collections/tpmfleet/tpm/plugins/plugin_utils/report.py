# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report (controller side): per-host checks and statuses, drift, the observed quote mode.

Input is one record per host, as the ``tpmfleet.tpm.fleet_report`` action collects
it from hostvars (see ``host_input``)::

    {"name": "attest-01", "groups": ["tpm_hosts", "lab"],
     "requested_mode": "direct",             # the inventory's tpm_quote_mode (None: role default)
     "profile": {...} or None,               # quote_mode.profile() of that mode: the single source of truth
     "mode_error": None or "why the mode is invalid",
     "settings": {"tss_group": "tss", "docker_group": "docker", "require_device": True},
     "facts": <registered tpm_facts result>,  # may be unreachable / failed / skipped / missing
     "quote": <registered tpm_quote result> or None}

``build(hosts, ...)`` returns the fleet model (the content of fleet.json, whose
schema is ``fleet-report.schema.json`` beside this file). Green means proven: a
host is healthy only when every check that applies to it ran and passed; a check
that applies but could not run is ``not_run`` and makes the host ``unverified``.
Fleet findings and problem groups are in ``report_fleet``, the JSON and JUnit
renderings in ``report_render`` (re-exported here), the page in ``report_page``.
"""

from __future__ import annotations

import collections
import datetime
import os

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report_cache, report_fleet
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.report_drift import (
    CMD,
    PLAYBOOKS,
    _abrmd_observed,
    _problem,
    _str,
    command,
    drift,
    host_limit,
    observed_mode,
)

SCHEMA_VERSION = "1.4"
SCHEMA_ID = "https://tpmfleet.invalid/schemas/fleet-report/1.0"
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "fleet-report.schema.json")

# Display order: problems first. "unverified": a check that applies could not run.
STATUSES = ("failing", "unreachable", "unverified", "no_tpm", "drifted", "healthy")
STATUS_LABELS = {
    "failing": "Failing",
    "unreachable": "Unreachable",
    "unverified": "Unverified",
    "no_tpm": "No TPM",
    "drifted": "Drifted",
    "healthy": "Healthy",
}
SEVERITIES = ("error", "warning", "info")
CHECK_STATUSES = ("pass", "fail", "skip", "not_run")
# Observed modes besides the quote modes: what the host shows matches no single mode
# (unknown) or its signs point at different modes (conflicting); not_read: no facts.
OBSERVED_EXTRA = ("unknown", "conflicting", "not_read")

# (id, title) in the order they are reported; one JUnit test case per host and check.
CHECKS = (
    ("reachable", "Host is reachable"),
    ("facts", "TPM facts were gathered"),
    ("mode", "tpm_quote_mode is valid"),
    ("tpm_present", "A TPM is present"),
    ("tpm_access", "The TPM opens over the mode's TCTI"),
    ("lockout", "TPM is not in dictionary-attack lockout"),
    ("ek_certificate", "An EK certificate is provisioned"),
    ("auth", "Owner hierarchy password state is read"),
    ("event_log", "Boot event log is available"),
    ("drift_abrmd", "tpm2-abrmd state matches the mode"),
    ("drift_tcti_env", "TCTI environment file matches the mode"),
    ("drift_nodes", "Device node owner, group and mode match the mode"),
    ("drift_holders", "Holders of /dev/tpm0 match the mode"),
    ("quote", "A test quote verifies on the controller"),
)
CHECK_TITLES = dict(CHECKS)
CHECK_INDEX = {check: i for i, (check, _title) in enumerate(CHECKS)}
DRIFT_CHECKS = ("drift_abrmd", "drift_tcti_env", "drift_nodes", "drift_holders")
TPM_CHECKS = ("tpm_access", "lockout", "ek_certificate", "auth", "event_log", "drift_nodes", "drift_holders")

# What to do for each classified TPM access failure (tcti.TpmAccessError kinds): (fix, command kind).
ACCESS_FIXES = {
    "missing_library": ("Install python3-tpm2-pytss on the host: run " + CMD + " (tpm_verify installs it while "
                        "tpm_verify_install_packages is true).", "site"),
    "permission": ("Run " + CMD + " (tpm_udev sets the node's group and mode, tpm_access adds the consumers "
                   "to the tss group).", "site"),
    "busy": ("Another process holds /dev/tpm0: reconcile the quote mode with " + CMD + " (stops tpm2-abrmd in "
             "direct mode), or stop that process.", "quote_mode"),
    "broker_unreachable": ("Start tpm2-abrmd with " + CMD + ", or set tpm_quote_mode: kernel_rm for this host.",
                           "quote_mode"),
    "tcti_unavailable": ("Install the TCTI library: run " + CMD + ".", "site"),
    "no_device": ("Enable the TPM and load its driver: run " + CMD + " (tpm_kernel).", "site"),
    "lockout": ("Wait for the lockout recovery time or clear it on the host with tpm2_dictionarylockout "
                "--clear-lockout -p <lockout auth>.", None),
    "timeout": ("The TPM or its TCTI endpoint does not answer: check dmesg on the host; reboot if it stays hung.",
                None),
    "failure_mode": ("The TPM is in failure mode: power-cycle the host and check tpm2_gettestresult.", None),
    "not_started": ("Run tpm2_startup -c on the host (normally done by firmware).", None),
    "object_memory": ("Flush leaked objects (tpm2_flushcontext -t) or use quote mode kernel_rm: set "
                      "tpm_quote_mode: kernel_rm and run " + CMD + ".", "quote_mode"),
}  # fmt: skip
FOLLOW = ("Follow the message, then run " + CMD + ".", "site")
# Cached data that is missing, stale or of unknown age (tpm_report_source: cache).
_REFRESH_FIX = "Run the report live for these hosts with the fact cache on (" + CMD + "), then the cache run again."


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _read_state(result, facts=False):
    """('missing' | 'unreachable' | 'skipped' | 'failed' | 'ok', why) for a registered task result.

    A result is failed when the module said so, and also when the task hid it
    (failed_when: false keeps rc and msg): an rc other than 0, an exception, the
    module's stderr without a result, or (facts) no ``ansible_facts.tpm``.
    """
    if not isinstance(result, dict) or not result:
        return "missing", "no result: the task did not run for this host"
    if result.get("unreachable"):
        return "unreachable", _str(result.get("msg")) or "the host is unreachable"
    if result.get("skipped"):
        return "skipped", _str(result.get("skip_reason")) or "the task was skipped"
    rc = result.get("rc")
    bad_rc = rc is not None and rc != 0
    tpm = (result.get("ansible_facts") or {}).get("tpm") if isinstance(result.get("ansible_facts"), dict) else None
    no_facts = facts and not isinstance(tpm, dict)
    if result.get("failed") or bad_rc or result.get("exception") or no_facts:
        parts = []
        if rc is not None:
            parts.append(f"rc {rc}")
        parts.append(_str(result.get("msg")) or "the module returned no result")
        for key in ("module_stderr", "module_stdout"):
            if _str(result.get(key)).strip():
                parts.append(f"{key}: {_str(result.get(key)).strip()[:2000]}")
        return "failed", "; ".join(parts)
    return "ok", None


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
        "last_run": tpm.get("last_run") if isinstance(tpm.get("last_run"), dict) else None,
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


def _access_problems(tpm, mode, not_run):
    """Problems of opening the TPM; a direct-mode TPM held by a consumer could not be read: not_run."""
    problems = []
    holders = (tpm.get("holders") or {}).get("/dev/tpm0") or []
    for err in tpm.get("errors") or []:
        if err.get("step") != "tpm":
            continue
        reason = err.get("reason") or "tpm_error"
        if reason == "busy" and mode == "direct" and holders and all(h.get("comm") != "tpm2-abrmd" for h in holders):
            # direct mode: one consumer at a time by design; the report's own read found it quoting
            who = "; ".join(f"pid {h.get('pid')} ({h.get('comm')})" for h in holders)
            cause = (f"held by {who} while the report read the TPM; in quote mode direct one consumer opens "
                     "/dev/tpm0 at a time, so the TPM's state was not read")  # fmt: skip
            problems.append(_problem("tpm_access", "warning", "TPM busy: a consumer holds /dev/tpm0", cause,
                                     "Run the report again when the consumer is idle (" + CMD + "), or use quote "
                                     "mode kernel_rm where consumers share the TPM.", cmd="report"))  # fmt: skip
            not_run["tpm_access"] = f"not run: the TPM was busy ({cause})"
            continue
        fix, kind = ACCESS_FIXES.get(reason, FOLLOW)
        problems.append(_problem("tpm_access", "error", f"Cannot open the TPM ({reason})", _str(err.get("msg")), fix,
                                 cmd=kind))  # fmt: skip
    return problems


def _tpm_problems(props, name):
    """Problems of an opened TPM: lockout, EK certificate, auth."""
    problems = []
    lockout = props.get("lockout") or {}
    if lockout.get("in_lockout"):
        problems.append(_problem("lockout", "error", "TPM is in dictionary-attack lockout",
                                 f"{lockout.get('counter')} failed authorizations reached max_tries "
                                 f"{lockout.get('max_tries')}; recovery after {lockout.get('recovery_s')} s of "
                                 "lockout_recovery", ACCESS_FIXES["lockout"][0]))  # fmt: skip
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
        # tpmfleet's own checks (test quote, access checks) create their keys under the endorsement hierarchy
        problems.append(_problem("auth", "info", "Owner hierarchy has a password",
                                 "owner auth is set: tpmfleet's checks do not need it (they create their keys under "
                                 "the endorsement hierarchy), but consumers that create keys under the owner "
                                 "hierarchy fail with an empty password",
                                 "Give the owner password to the consumers that create keys under the owner "
                                 "hierarchy (kept secret, e.g. in Ansible Vault); tpmfleet needs none."))  # fmt: skip
    del name
    return problems


def _event_log_problems(log):
    """A missing event log is a problem; who may read it (root only on Linux) is shown, not judged."""
    if not log.get("exists"):
        return [_problem("event_log", "warning", "No boot event log",
                         f"{log.get('path')} does not exist: {log.get('reason', 'unknown reason')}; verifiers cannot "
                         "check measured boot", "Enable the TPM event log in firmware (UEFI) and mount securityfs "
                         "on /sys/kernel/security.")]  # fmt: skip
    return []


def _checks(problems, skipped, not_run):
    """Per check: fail (an error, or a warning that ran) / not_run (applies, could not run) / skip / pass."""
    out = []
    by_check = collections.defaultdict(list)
    for p in problems:
        by_check[p["check"]].append(p)
    for check, title in CHECKS:
        items = by_check.get(check, ())
        errors = [p for p in items if p["severity"] == "error"]
        failing = [p for p in items if p["severity"] in ("error", "warning")]
        if check in not_run and not errors:
            out.append({"id": check, "title": title, "status": "not_run", "severity": None,
                        "message": not_run[check]})  # fmt: skip
        elif failing:
            worst = "error" if errors else "warning"
            out.append({"id": check, "title": title, "status": "fail", "severity": worst,
                        "message": "; ".join(f"{p['title']}: {p['cause']}" for p in failing)})  # fmt: skip
        elif check in skipped and not items:
            out.append({"id": check, "title": title, "status": "skip", "severity": None, "message": skipped[check]})
        else:
            message = "; ".join(f"{p['title']}: {p['cause']}" for p in items)
            out.append({"id": check, "title": title, "status": "pass", "severity": None, "message": message})
    return out


def _status(state, tpm, settings, problems, checks):
    if state == "unreachable":
        return "unreachable"
    failed = {c["id"] for c in checks if c["status"] == "fail"}
    if any(p["check"] in failed and not p["drift"] and p["severity"] != "info" for p in problems):
        return "failing"
    if tpm is not None and not tpm.get("present") and not settings["require_device"]:
        return "no_tpm"
    if any(c["status"] == "not_run" for c in checks):
        return "unverified"
    if failed:
        return "drifted"
    return "healthy"


def evaluate_host(record, quote_test=False, playbooks=None, now=None, max_age=report_cache.DEFAULT_MAX_AGE):
    """One host's entry of the fleet model (its problems keep their fix template in ``_fix``).

    A record from the fact cache (``cached`` True, or False when the host has none) and its
    ``read_at`` give the host's data age: data older than ``max_age`` seconds, or none at all,
    is a warning of the facts check, which is then not_run: such a host is never healthy.
    """
    name = _str(record.get("name"))
    settings = {"tss_group": "tss", "docker_group": "docker", "require_device": True}
    settings.update({k: v for k, v in (record.get("settings") or {}).items() if v is not None})
    settings["require_device"] = bool(settings["require_device"])
    profile = record.get("profile")
    requested = record.get("requested_mode")
    if requested is None and profile:
        requested = profile["mode"]
    state, why = _read_state(record.get("facts"), facts=True)
    if record.get("cached") is False:
        state = "uncached"
    quote = record.get("quote")
    problems = []
    skipped = {}
    not_run = {}
    tpm = record["facts"]["ansible_facts"]["tpm"] if state == "ok" else None

    if state == "unreachable":
        problems.append(_problem("reachable", "error", "Host is unreachable", why,
                                 "Check the connection (" + CMD + ": SSH, address, credentials), then run the "
                                 "report again.", cmd="ping"))  # fmt: skip
    elif state == "uncached":
        problems.append(_problem("facts", "warning", "No cached data", report_cache.MISSING_CAUSE,
                                 _REFRESH_FIX,
                                 cmd="report"))  # fmt: skip
    elif state != "ok":
        problems.append(_problem("facts", "error", "TPM facts could not be read", f"tpm_facts {state}: {why}",
                                 "Follow the message (the host's Python interpreter, tpm2-pytss, become), then run "
                                 "the report again: " + CMD + ".", cmd="report"))  # fmt: skip
    if state != "uncached" and (record.get("mode_error") or not profile):
        problems.append(_problem("mode", "error", "tpm_quote_mode is invalid",
                                 _str(record.get("mode_error")) or f"tpm_quote_mode {requested!r} is not a mode",
                                 f"Set tpm_quote_mode to one of {', '.join(qm.modes())} in the host's host_vars or "
                                 "group_vars."))  # fmt: skip

    obs_mode = None
    if state != "ok":
        for check, _title in CHECKS[1:] if state == "unreachable" else CHECKS[2:]:
            not_run.setdefault(check, f"not run: the TPM facts are {state}")
        if state == "uncached":
            for check, _title in CHECKS:
                not_run[check] = "not run: no cached data for this host"
    if tpm is not None:
        obs_mode = observed_mode(profile, tpm, settings=settings)
        if not tpm.get("present"):
            required = settings["require_device"]
            problems.append(_problem("tpm_present", "error" if required else "info", "No TPM on this host",
                                     "the kernel registered no TPM and there is no /dev/tpm* node"
                                     + ("; tpm_kernel_require_device is true" if required else ""),
                                     "Enable the TPM in firmware or the hypervisor and run " + CMD + " (tpm_kernel "
                                     "loads tpm_tis/tpm_crb); for a host without a TPM set "
                                     "tpm_kernel_require_device: false.", cmd="site"))  # fmt: skip
            for check in (*TPM_CHECKS, "quote"):
                if required:
                    not_run[check] = "not run: no TPM (tpm_kernel_require_device is true)"
                else:
                    skipped[check] = "does not apply: no TPM and tpm_kernel_require_device is false"
        else:
            problems.extend(_access_problems(tpm, profile["mode"] if profile else None, not_run))
            props = tpm.get("properties")
            if props:
                found = _tpm_problems(props, name)
                if props.get("software_tpm") and not any(c.get("present") for c in props.get("ek_certificates") or []):
                    # no vendor CA signs a software TPM's EK: verifiers enrol it by its EK public key
                    found = [p for p in found if p["title"] != "No EK certificate in NV"]
                    skipped["ek_certificate"] = (
                        "does not apply: a software TPM has no vendor EK certificate; enrol it by its EK public key "
                        "(tpm.ek.public_key_sha256)"
                    )
                problems.extend(found)
            else:
                why_not = not_run.get("tpm_access") or "not run: the TPM could not be opened"
                if not profile:
                    why_not = "not run: no valid quote mode to open the TPM with"
                for check in ("lockout", "ek_certificate", "auth"):
                    not_run[check] = why_not
            if isinstance(tpm.get("event_log"), dict):
                problems.extend(_event_log_problems(tpm["event_log"]))
            else:
                not_run["event_log"] = "not run: the facts have no event log state"
            if tpm.get("holders_complete") is False:
                not_run["drift_holders"] = ("not run: some /proc/PID/fd could not be read; run the report with "
                                            "become (-b) to see every holder")  # fmt: skip
        if (tpm.get("abrmd") or {}).get("systemd") is None:
            not_run["drift_abrmd"] = "not run: the state of tpm2-abrmd.service could not be read"
        if profile:
            problems.extend(drift(profile, tpm))
        else:
            for check in DRIFT_CHECKS:
                not_run[check] = "not run: no valid quote mode to compare with"

    quote_info = None
    q_state, q_why = _read_state(quote)
    if not quote_test:
        skipped["quote"] = "test quote not requested (tpm_report_quote: true)"
    elif "quote" in skipped or "quote" in not_run:
        pass
    elif q_state in ("missing", "skipped"):
        not_run["quote"] = "not run: no test quote, the TPM could not be read"
    elif q_state != "ok" or not quote.get("verified"):
        reason = quote.get("reason") or q_state
        fix, kind = ACCESS_FIXES.get(reason, FOLLOW)
        problems.append(_problem("quote", "error", f"Test quote failed ({reason})", q_why or _str(quote.get("msg")),
                                 fix, cmd=kind))  # fmt: skip
        quote_info = {"verified": False, "reason": _str(reason)}
    else:
        quote_info = {"verified": True, "reason": None}

    now = now or datetime.datetime.now(datetime.UTC)
    data = report_cache.data_state(record.get("read_at"), now, max_age)
    if data["stale"]:
        age = report_cache.age_text(data["age_seconds"])
        problems.append(_problem("facts", "warning", "Data is older than tpm_report_max_age",
                                 f"data is {age} old (tpm_report_max_age is {report_cache.age_text(max_age)})",
                                 _REFRESH_FIX,
                                 cmd="report"))  # fmt: skip
        not_run.setdefault("facts", f"not run now: the data is {age} old")
    elif record.get("cached") and data["read_at"] is None:
        problems.append(_problem("facts", "warning", "Data age is unknown",
                                 "the cached record has no valid read_at (UTC YYYY-MM-DDTHH:MM:SSZ)",
                                 _REFRESH_FIX,
                                 cmd="report"))  # fmt: skip
        not_run.setdefault("facts", "not run now: the age of the cached data is unknown")

    problems.sort(key=lambda p: (SEVERITIES.index(p["severity"]), CHECK_INDEX[p["check"]]))
    limit = host_limit(name)
    for p in problems:
        p["_fix"] = p["fix"]
        p["fix"] = p["fix"].replace(CMD, command(p["_cmd"], limit, playbooks) or "")
    checks = _checks(problems, skipped, not_run)
    return {
        "name": name,
        "groups": sorted(_str(g) for g in record.get("groups") or []),
        "status": _status(state, tpm, settings, problems, checks),
        "mode": _str(requested) if requested is not None else None,
        "observed_mode": obs_mode,
        "reachable": state != "unreachable",
        "source": "cache" if record.get("cached") is not None else "live",
        **data,
        "settings": {
            "tss_group": _str(settings["tss_group"]),
            "docker_group": _str(settings["docker_group"]),
            "require_device": settings["require_device"],
        },
        "tpm": _tpm_summary(tpm) if tpm is not None else None,
        "expected": _expected(profile),
        "observed": _observed(tpm, settings) if tpm is not None else None,
        "quote": quote_info,
        "problems": problems,
        "checks": checks,
    }


# --------------------------------------------------------------------------
# Fleet level
# --------------------------------------------------------------------------


def _sort_key(host):
    worst = min((SEVERITIES.index(p["severity"]) for p in host["problems"]), default=len(SEVERITIES))
    return (STATUS_INDEX[host["status"]], worst, host["name"])


STATUS_INDEX = {s: i for i, s in enumerate(STATUSES)}


def build(records, quote_test=False, ignore_groups=(), generated_at=None, inventory=None, playbooks=None,
          limits_dir="report", source="live", max_age=report_cache.DEFAULT_MAX_AGE, now=None):  # fmt: skip
    """The fleet model (fleet.json) from per-host records.

    ``playbooks`` names the site/quote_mode/report playbooks in fix commands (default: the
    installed collection's); ``limits_dir`` is the report directory as the user names it,
    for the ``--limit @<limits_dir>/limits/<id>.txt`` of the problem groups' commands.
    """
    playbooks = playbooks or PLAYBOOKS
    now = now or datetime.datetime.now(datetime.UTC)
    hosts = [evaluate_host(r, quote_test=quote_test, playbooks=playbooks, now=now, max_age=max_age) for r in records]
    hosts.sort(key=_sort_key)
    status_counts = dict.fromkeys(STATUSES, 0)
    modes = dict.fromkeys(qm.modes(), 0)
    observed = dict.fromkeys((*qm.modes(), *OBSERVED_EXTRA), 0)
    severity_counts = dict.fromkeys(SEVERITIES, 0)
    by_mode = {}
    for h in hosts:
        status_counts[h["status"]] += 1
        key = h["mode"] if h["mode"] in modes else "invalid"
        modes[key] = modes.get(key, 0) + 1
        by_mode.setdefault(key, dict.fromkeys(STATUSES, 0))[h["status"]] += 1
        observed[h["observed_mode"] if h["tpm"] is not None else "not_read"] += 1
        for p in h["problems"]:
            severity_counts[p["severity"]] += 1
    groups = report_fleet.problem_groups(hosts, playbooks, limits_dir)
    findings = report_fleet.fleet_findings(hosts, ignore_groups, playbooks, limits_dir)
    for f in findings:
        severity_counts[f["severity"]] += 1
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at or now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "tpmfleet.tpm.report",
        "inventory": inventory,
        "options": {
            "quote_test": bool(quote_test),
            "mixed_mode_ignore_groups": sorted(ignore_groups),
            "source": source,
            "max_age": max_age,
        },
        "summary": {
            "hosts": len(hosts),
            "status": status_counts,
            "modes": modes,
            "observed_modes": observed,
            "by_mode": by_mode,
            "problems": severity_counts,
            "data": {
                "stale": sum(1 for h in hosts if h["stale"]),
                "not_cached": sum(1 for h in hosts if any(p["title"] == "No cached data" for p in h["problems"])),
                "oldest_read_at": min((h["read_at"] for h in hosts if h["read_at"]), default=None),
            },
        },
        "problem_groups": groups,
        "fleet_findings": findings,
        "hosts": hosts,
    }
