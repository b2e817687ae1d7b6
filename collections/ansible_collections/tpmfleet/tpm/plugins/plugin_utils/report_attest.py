# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's attestation part: per-host readiness, the fleet summary, JUnit cases and the
export for a verifier (EK certificate PEM, EK public key, measured-boot reference state).

Applied by the fleet_report action after ``report.build``: each host of the model gets an
``attestation`` section (``None`` when no check was chosen) and the model an ``attestation``
summary. Hosts are judged only by the checks the user enabled (``tpm_attest_checks``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest, attest_replay, report_consumers

REFERENCE_FORMAT = "tpmfleet-measured-boot-reference/1"
# The exported binary log's name: the name the kernel gives it, which keylime-policy's -e option reads.
EVENT_LOG_FILE = "binary_bios_measurements"
# What the fleet summary says of each failing check ("120 without a chained EK certificate").
SUMMARY_PHRASES = {
    "ek_chain": "without a chained EK certificate",
    "eventlog": "whose event log does not replay",
    "ima": "whose IMA list does not replay",
    "consumer_quote": "where a consumer user cannot quote",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9.-]")


def _failed_evidence(result):
    """The reason a registered tpm_attest_evidence result carries no evidence, or None."""
    if not isinstance(result, dict) or not result:
        return "the evidence task did not run for this host"
    if result.get("unreachable"):
        return f"the host is unreachable: {result.get('msg')}"
    if result.get("failed"):
        return f"tpm_attest_evidence failed: {result.get('msg')}"
    if result.get("skipped"):
        return "the evidence task was skipped"
    if not isinstance(result.get("evidence"), dict):
        return "the evidence task returned no evidence"
    return None


def host_section(evidence_result, quote_result, checks, ca_certs, now=None, consumers=None, settings=None):
    """One host's ``attestation`` section: ``{checks_enabled, ready, outcomes}``; None when nothing was chosen.

    ``consumers`` is the registered per-consumer quote loop (or the cached list), judged with the host's
    ``settings`` (``consumer_users``, ``tcti``) by report_consumers; the other checks judge the evidence."""
    if not checks:
        return None
    judged = {}
    evidence_checks = [c for c in checks if c != report_consumers.CHECK]
    why = _failed_evidence(evidence_result) if evidence_checks else None
    if why:
        for c in evidence_checks:
            judged[c] = attest.outcome(c, "not_run", "no_evidence", why, "run the report again once the host answers")
    elif evidence_checks:
        verdict = attest.judge(evidence_result["evidence"], quote_result, evidence_checks, ca_certs, now)
        judged.update((o["check"], o) for o in verdict["checks"])
    if report_consumers.CHECK in checks:
        settings = settings if isinstance(settings, dict) else {}
        judged[report_consumers.CHECK] = report_consumers.judge(
            consumers, settings.get("consumer_users"), settings.get("tcti")
        )
    outcomes = [judged[c] for c in checks if c in judged]
    ready = bool(outcomes) and all(o["status"] == "pass" for o in outcomes)
    return {"checks_enabled": list(checks), "ready": ready, "outcomes": outcomes}


def fleet_summary(hosts, checks):
    """``{checks_enabled, hosts_judged, ready, failing: {check: n}, not_run: {check: n}, stale, text}``."""
    judged = [h for h in hosts if isinstance(h.get("attestation"), dict)]
    failing = dict.fromkeys(checks, 0)
    not_run = dict.fromkeys(checks, 0)
    ready = 0
    for host in judged:
        section = host["attestation"]
        ready += bool(section["ready"])
        for item in section["outcomes"]:
            if item["status"] == "fail":
                failing[item["check"]] = failing.get(item["check"], 0) + 1
            elif item["status"] == "not_run":
                not_run[item["check"]] = not_run.get(item["check"], 0) + 1
    parts = [f"{ready:,} of {len(judged):,} hosts ready for attestation"]
    parts += [f"{n:,} {SUMMARY_PHRASES[c]}" for c, n in failing.items() if n]
    parts += [f"{n:,} not judged for {c}" for c, n in not_run.items() if n]
    stale = sum(1 for h in judged if h["attestation"].get("stale"))
    if stale:
        parts.append(f"{stale:,} judged on evidence older than tpm_report_max_age")
    return {
        "checks_enabled": list(checks),
        "hosts_judged": len(judged),
        "ready": ready,
        "failing": failing,
        "not_run": not_run,
        "stale": stale,
        "text": "; ".join(parts) if checks else "attestation readiness not checked (tpm_attest_checks is empty)",
    }


def apply(model, records, checks, ca_certs, now=None):
    """Add each host's section and the fleet summary to ``model`` (records and hosts by name).

    The section carries when its evidence was read (the host's ``read_at``: a cache run judges the cached
    evidence as the live run did) and whether that is older than ``tpm_report_max_age`` (``stale``): stale
    evidence is never ready, whatever its outcomes."""
    by_name = {r["name"]: r for r in records}
    for host in model["hosts"]:
        record = by_name.get(host["name"]) or {}
        section = host_section(record.get("attest"), record.get("quote"), checks, ca_certs, now,
                               record.get("consumers"), record.get("settings"))  # fmt: skip
        if section is not None:
            section["read_at"] = host.get("read_at")
            section["stale"] = bool(host.get("stale"))
            section["ready"] = section["ready"] and not section["stale"]
        host["attestation"] = section
    model["attestation"] = fleet_summary(model["hosts"], checks)
    return model


def junit_rows(host):
    """``(name, status, message, failure text)`` of one host's attestation outcomes (name ``attest_<check>``),
    which the report's JUnit renders as its own checks' cases (a failure is of type "error")."""
    section = host.get("attestation")
    if not isinstance(section, dict):
        return
    for item in section["outcomes"]:
        message = f"not run: {item['cause']}" if item["status"] == "not_run" else item["cause"]
        yield "attest_" + item["check"], item["status"], message, f"{item['cause']}\nfix: {item['fix']}"


# --------------------------------------------------------------------------
# Export for a verifier
# --------------------------------------------------------------------------


def safe_name(name):
    """A host name as one path component, distinct names staying distinct: characters other than letters, digits,
    "." and "-" as _XX (UTF-8 hex); "", "." and ".." prefixed with "__"; over 200 characters cut and suffixed with
    the name's SHA-256."""
    text = _SAFE_NAME.sub(lambda m: "".join(f"_{b:02x}" for b in m.group().encode("utf-8")), str(name))
    if text in ("", ".", ".."):
        text = "_" + "".join("_2e" for _dot in text) if text else "_"
    if len(text) > 200:
        text = text[:135] + "~" + hashlib.sha256(str(name).encode("utf-8", "surrogatepass")).hexdigest()
    return text


def reference_state(evidence):
    """The measured-boot reference state of one host (``REFERENCE_FORMAT``), or None without a replayable log:
    the replayed PCR values per bank, the log's SHA-256 and its event count."""
    log = evidence.get("event_log") if isinstance(evidence, dict) else None
    if not isinstance(log, dict) or log.get("reason") or not log.get("yaml"):
        return None
    try:
        replayed, events = attest_replay.replayed_pcrs(log["yaml"])
    except ValueError:
        return None
    return {
        "format": REFERENCE_FORMAT,
        "event_log_sha256": log.get("sha256"),
        "events": events,
        "pcrs": {bank: {str(i): v for i, v in sorted(values.items())} for bank, values in sorted(replayed.items())},
    }


def _pem_certificate(text):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem_public_key(text):
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        return None
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _event_log(evidence):
    """The binary event log the evidence carries (``include_event_log: true``) when it is the one whose SHA-256 the
    host reported and replayed, else None."""
    log = evidence.get("event_log") if isinstance(evidence, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("log_b64"), str):
        return None
    try:
        data = base64.b64decode(log["log_b64"], validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if hashlib.sha256(data).hexdigest() == log.get("sha256") else None


def export_files(evidence):
    """``{file name: text or bytes}`` to export for one host: ``ek-<alg>.pem`` (certificate), ``ek-<alg>-public.pem``
    (the TPM's EK public key), ``measured-boot-reference.json`` and, when the evidence carries it
    (``tpm_attest_export_event_log``), the binary event log ``binary_bios_measurements``, from which keylime's own
    tool makes keylime's measured-boot reference state. Only what parses is exported, re-encoded."""
    files = {}
    tpm = evidence.get("tpm") if isinstance(evidence, dict) else None
    if isinstance(tpm, dict):
        for cert in tpm.get("ek_certificates") or []:
            if (
                isinstance(cert, dict)
                and isinstance(cert.get("pem"), str)
                and cert.get("algorithm") in attest.KEY_USAGE_FOR
            ):
                pem = _pem_certificate(cert["pem"])
                if pem:
                    files[f"ek-{cert['algorithm']}.pem"] = pem
        keys = tpm.get("ek_public") if isinstance(tpm.get("ek_public"), dict) else {}
        for algorithm, key in keys.items():
            if algorithm in attest.KEY_USAGE_FOR and isinstance(key, dict) and isinstance(key.get("pem"), str):
                pem = _pem_public_key(key["pem"])
                if pem:
                    files[f"ek-{algorithm}-public.pem"] = pem
    reference = reference_state(evidence)
    if reference is not None:
        files["measured-boot-reference.json"] = json.dumps(reference, indent=2, sort_keys=True) + "\n"
    log = _event_log(evidence)
    if log is not None and reference is not None:
        files[EVENT_LOG_FILE] = log
    return files


def write_exports(records, dest):
    """Write every host's export under ``dest/attestation/<host>/`` (0644 files, 0755 directories);
    returns ``{host: [file names]}``."""
    written = {}
    for record in records:
        result = record.get("attest")
        if _failed_evidence(result):
            continue
        files = export_files(result["evidence"])
        if not files:
            continue
        host_dir = os.path.join(dest, "attestation", safe_name(record["name"]))
        os.makedirs(host_dir, mode=0o755, exist_ok=True)
        for name, content in files.items():
            path = os.path.join(host_dir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            if isinstance(content, bytes):
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                continue
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(content)
        written[record["name"]] = sorted(files)
    return written
