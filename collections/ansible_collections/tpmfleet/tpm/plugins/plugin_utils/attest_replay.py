# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replayed PCRs against the controller-verified test quote (``eventlog`` and ``ima`` checks).

Only a quote is signed, so the replayed values are compared with the PCR values of
the test quote that the tpm_quote action plugin verified, after checking here that
those values hash to the PCR digest inside the signed TPMS_ATTEST: a PCR read, or
values edited after the quote, cannot pass.

The event log is replayed on the host by ``tpm2_eventlog`` (tpm2-tools); its YAML
(``pcrs: {bank: {index: 0x...}}``) is parsed here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import (
    HASH_SIZES,
    QuoteFormatError,
    compute_pcr_digest,
    format_pcr_selection,
    parse_attest,
    selection_from_attest,
)

_HEX = re.compile(r"[0-9a-f]+")
_INDEX = re.compile(r"[0-9]{1,2}")
BOOT_PCRS = range(8)
IMA_PCR = 10
QUOTE_FIX = "run the report with the test quote (tpm_report_quote: true): the replay is compared with its signed PCRs"


def shown(value):
    """A host-supplied value as the attestation checks' messages show it: ASCII JSON, whole (digests, paths and
    issuer names are never cut), so that "", " x" and control characters stay visible."""
    try:
        return json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        return json.dumps(repr(value), ensure_ascii=True)


def _outcome(check, status, reason, cause="", fix="", **details):
    return {"check": check, "status": status, "reason": reason, "cause": cause, "fix": fix, "details": details}


def _without_quote(check, quoted, **details):
    """``check`` not run: there is no verified quote to compare with (``quoted`` says why, when it can)."""
    quoted = quoted or {}
    return _outcome(
        check,
        "not_run",
        quoted.get("reason", "no_quote"),
        quoted.get("cause", ""),
        quoted.get("fix", QUOTE_FIX),
        **details,
    )


# --------------------------------------------------------------------------
# The quote
# --------------------------------------------------------------------------


def quoted_pcrs(quote_result):
    """PCR values of the last quote in a verified tpm_quote result, bound to its signed PCR digest.

    Returns ``{ok: True, pcrs: {bank: {index: hex}}, selection, hash, pcr_digest}`` or
    ``{ok: False, reason, cause, fix}``."""
    if not isinstance(quote_result, dict) or not quote_result:
        return {"ok": False, "reason": "no_quote", "cause": "no test quote result to compare with", "fix": QUOTE_FIX}
    if quote_result.get("verified") is not True:
        return {
            "ok": False,
            "reason": "quote_unverified",
            "cause": "the test quote was not verified on the controller "
            f"({quote_result.get('msg') or 'verified is not true'})",
            "fix": QUOTE_FIX,
        }
    quotes = quote_result.get("quotes")
    details = quote_result.get("verification")
    if not isinstance(quotes, list) or not quotes or not isinstance(details, list) or len(details) != len(quotes):
        return {
            "ok": False,
            "reason": "quote_format",
            "cause": "the quote result has no quotes/verification lists",
            "fix": QUOTE_FIX,
        }
    quote, detail = quotes[-1], details[-1]
    try:
        attest = parse_attest(base64.b64decode(quote["message"], validate=True))
        selection = selection_from_attest(attest["pcr_select"])
        hash_name = detail["hash"]
        digest = compute_pcr_digest(selection, quote["pcrs"], hash_name)
    except (KeyError, TypeError, ValueError, binascii.Error, QuoteFormatError) as exc:
        return {"ok": False, "reason": "quote_format", "cause": f"the quote cannot be read ({exc})", "fix": QUOTE_FIX}
    if not hmac.compare_digest(digest, attest["pcr_digest"]) or detail.get("pcr_digest") != digest.hex():
        return {
            "ok": False,
            "reason": "quote_unbound",
            "cause": "the quote's PCR values do not hash to the PCR digest the TPM signed",
            "fix": "re-run the test quote; values edited after the quote are never compared",
        }
    pcrs = {
        bank: {i: quote["pcrs"][bank].get(str(i), quote["pcrs"][bank].get(i)) for i in idx} for bank, idx in selection
    }
    return {
        "ok": True,
        "pcrs": pcrs,
        "selection": format_pcr_selection(selection),
        "hash": hash_name,
        "pcr_digest": digest.hex(),
    }


# --------------------------------------------------------------------------
# tpm2_eventlog's YAML
# --------------------------------------------------------------------------


def _digest_hex(value, bank):
    size = HASH_SIZES.get(bank)
    if size is None or not isinstance(value, str):
        return None
    text = value.lower().removeprefix("0x")
    return text if len(text) == size * 2 and _HEX.fullmatch(text) else None


def replayed_pcrs(yaml_text):
    """``({bank: {index: hex}}, event_count)`` from tpm2_eventlog's output; raises ValueError.

    Read with YAML's base loader (every scalar a string): a safe loader would turn ``0x00ab...`` into an
    integer and lose the digest's width."""
    import yaml

    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        doc = yaml.load(yaml_text, Loader=loader)  # noqa: S506 - the base loader builds only str, list and dict
    except yaml.YAMLError as exc:
        raise ValueError(f"tpm2_eventlog's output is not YAML ({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pcrs"), dict):
        raise ValueError("tpm2_eventlog's output has no 'pcrs' section (no events, or an unsupported log format)")
    result = {}
    for bank, values in doc["pcrs"].items():
        if not isinstance(values, dict):
            raise ValueError(f"tpm2_eventlog's pcrs.{shown(bank)} is not a mapping")
        if bank not in HASH_SIZES:
            continue
        result[bank] = {}
        for index, value in values.items():
            digest = _digest_hex(value, bank)
            if not _INDEX.fullmatch(index) or int(index) >= 24 or digest is None:
                raise ValueError(f"tpm2_eventlog's pcrs.{bank} has an invalid entry {shown(index)}: {shown(value)}")
            result[bank][int(index)] = digest
    events = doc.get("events")
    return result, len(events) if isinstance(events, list) else 0


# --------------------------------------------------------------------------
# eventlog
# --------------------------------------------------------------------------


def judge_eventlog(log, quoted):
    """The ``eventlog`` outcome: the replayed boot PCRs against the verified quote."""
    if not isinstance(log, dict):
        return _outcome("eventlog", "not_run", "no_evidence", "no event log evidence", "run tpm_attest_evidence")
    reason = log.get("reason")
    if reason == "no_tool":
        return _outcome("eventlog", "not_run", reason, str(log.get("msg")), "install tpm2-tools on the host")
    if reason == "missing":
        return _outcome(
            "eventlog",
            "fail",
            reason,
            f"{log.get('msg')} ({shown(log.get('path'))})",
            "boot with firmware that measures into the TPM and hands the kernel its event log "
            "(UEFI with TPM support; SeaBIOS with a TPM device); a verifier with a measured-boot "
            "policy rejects the host without it",
        )
    if reason:
        return _outcome(
            "eventlog",
            "fail",
            str(reason),
            str(log.get("msg")),
            "make the event log readable by the evidence task (become: true)",
        )
    if not quoted or not quoted.get("ok"):
        return _without_quote("eventlog", quoted)
    try:
        replayed, events = replayed_pcrs(log.get("yaml") or "")
    except ValueError as exc:
        return _outcome("eventlog", "fail", "unparsable", str(exc), "update tpm2-tools on the host")
    compared, mismatches, uncovered = [], [], []
    for bank, values in quoted["pcrs"].items():
        log_bank = replayed.get(bank)
        if log_bank is None:
            return _outcome(
                "eventlog",
                "fail",
                "no_bank",
                f"the event log has no {bank} digests (banks: {', '.join(sorted(replayed)) or 'none'})",
                "quote a bank the firmware measures in (tpm_verify_quote_pcrs)",
            )
        for index in sorted(set(log_bank) - set(values)):
            uncovered.append(f"{bank}:{index}")
        for index, value in values.items():
            if index in log_bank:
                expected = log_bank[index]
            elif index in BOOT_PCRS:
                expected = "00" * HASH_SIZES[bank]
            else:
                continue
            compared.append(f"{bank}:{index}")
            if not hmac.compare_digest(str(value).lower(), expected):
                mismatches.append({"pcr": f"{bank}:{index}", "replayed": expected, "quoted": value})
    details = {
        "events": events,
        "compared": compared,
        "not_quoted": uncovered,
        "log_sha256": log.get("sha256"),
        "quote_selection": quoted["selection"],
        "quote_pcr_digest": quoted["pcr_digest"],
    }
    if not compared:
        return _outcome(
            "eventlog",
            "not_run",
            "not_quoted",
            f"the quote ({quoted['selection']}) covers none of the PCRs the event log extends",
            "add PCRs 0-7 to the quote's selection (tpm_verify_quote_pcrs)",
            **details,
        )
    if mismatches:
        first = mismatches[0]
        return _outcome(
            "eventlog",
            "fail",
            "mismatch",
            f"the event log does not replay to the quoted PCRs: {len(mismatches)} differ, first "
            f"{first['pcr']} (log {first['replayed']}, quoted {first['quoted']})",
            "the log is incomplete or altered, or something extended these PCRs without logging: a "
            "verifier with a measured-boot policy rejects this host; compare with a known-good host",
            mismatches=mismatches,
            **details,
        )
    note = f"not covered by the quote: {', '.join(uncovered)}" if uncovered else ""
    return _outcome("eventlog", "pass", "replays", note, "", **details)


# --------------------------------------------------------------------------
# ima
# --------------------------------------------------------------------------


def judge_ima(ima, quoted):
    """The ``ima`` outcome: the IMA list replayed to PCR 10 against the verified quote."""
    if not isinstance(ima, dict):
        return _outcome("ima", "not_run", "no_evidence", "no IMA evidence", "run tpm_attest_evidence")
    reason = ima.get("reason")
    if reason == "missing":
        return _outcome(
            "ima",
            "skip",
            reason,
            str(ima.get("msg")),
            "enable IMA (CONFIG_IMA) if the verifier checks runtime integrity",
        )
    if reason:
        return _outcome("ima", "fail", str(reason), str(ima.get("msg")), "read the IMA list as root (become: true)")
    no_policy = ima.get("policy_loaded") is False
    note = (
        "IMA has no policy loaded: only the boot aggregate is measured, so a runtime policy has nothing to check "
        f"(judged from {ima.get('policy_basis')})"
        if no_policy
        else ""
    )
    if not quoted or not quoted.get("ok"):
        return _without_quote("ima", quoted, note=note)
    replay = ima.get("replayed_pcr10") if isinstance(ima.get("replayed_pcr10"), dict) else {}
    banks = [b for b, values in quoted["pcrs"].items() if IMA_PCR in values and b in replay]
    details = {"entries": ima.get("entries"), "policy_loaded": ima.get("policy_loaded"), "note": note}
    unreplayed = [b for b, values in quoted["pcrs"].items() if IMA_PCR in values and b not in replay]
    if not banks and unreplayed and ima.get("unsupported_templates"):
        return _outcome(
            "ima",
            "not_run",
            "unsupported_template",
            f"the IMA list has entries of templates tpmfleet cannot replay in the {unreplayed[0]} bank "
            f"({', '.join(map(str, ima['unsupported_templates']))})",
            "quote a bank whose template hashes the list shows (sha1), or use the ima-ng or ima-sig "
            "template (ima_template= on the kernel command line)",
            **details,
        )
    if not banks:
        return _outcome(
            "ima",
            "not_run",
            "pcr10_not_quoted",
            f"PCR 10 is not in the quote ({quoted['selection']})" + (f"; {note}" if note else ""),
            "add 10 to the quote's selection, e.g. tpm_verify_quote_pcrs: sha256:0,1,2,3,4,5,6,7,10",
            **details,
        )
    for bank in banks:
        quoted_value = str(quoted["pcrs"][bank][IMA_PCR]).lower()
        if not hmac.compare_digest(quoted_value, str(replay[bank])):
            return _outcome(
                "ima",
                "fail",
                "mismatch",
                f"the IMA list ({ima.get('entries')} entries) replays to {bank}:10 = {shown(replay[bank])} "
                f"but the quote has {quoted_value}",
                "if entries were added between the quote and the read, re-run; otherwise the list was "
                "altered or PCR 10 was extended outside IMA",
                bank=bank,
                **details,
            )
    return _outcome("ima", "pass", "no_policy" if no_policy else "replays", note, "", banks=banks, **details)
