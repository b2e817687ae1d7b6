# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side judgement of attestation readiness (pure Python, ``cryptography`` only).

The tpm_attest_evidence module gathers; this judges, like the test quote is verified
on the controller and never on the host:

* ``ek_chain`` - each EK certificate chains to a CA the user trusts
  (``tpm_attest_ek_ca_bundle`` / ``tpm_attest_ek_ca_dir``, ``cryptography``'s X.509
  verification API), is within its validity dates, has the TCG key usage, and holds
  the TPM's own EK public key;
* ``eventlog`` and ``ima`` - see attest_replay.py: the replayed PCRs are bound to
  the signed PCR digest of the controller-verified test quote.

Every outcome is ``{check, status, reason, cause, fix, details}`` with ``status`` one
of report.CHECK_STATUSES (pass, fail, skip, not_run). Values taken from the host are
shown JSON-encoded in messages.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest_replay
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.attest_replay import shown

# consumer_quote is judged by report_consumers.py (the report's per-consumer quotes), not by judge() below.
CHECKS = ("ek_chain", "eventlog", "ima", "consumer_quote")
CHECK_TITLES = {
    "ek_chain": "EK certificate chains to a trusted CA",
    "eventlog": "Measured-boot event log replays to the quoted PCRs",
    "ima": "IMA measurement list replays to the quoted PCR 10",
    "consumer_quote": "Each consumer user creates an AK and quotes twice over the mode's TCTI",
}
CA_SUFFIXES = (".pem", ".crt", ".cer", ".der")
MAX_CA_FILE_BYTES = 8 * 1024 * 1024
# TCG EK Credential Profile: an RSA EK certificate has keyEncipherment, an ECC one keyAgreement.
KEY_USAGE_FOR = {"rsa2048": "key_encipherment", "ecc_p256": "key_agreement"}
VENDOR_CA_HINT = (
    "TPM vendors publish their EK CA certificates (e.g. Infineon, STMicroelectronics, Nuvoton, Intel PTT, AMD fTPM); "
    "keylime ships a collection in its tpm_cert_store"
)


def outcome(check, status, reason, cause="", fix="", **details):
    return {"check": check, "status": status, "reason": reason, "cause": cause, "fix": fix, "details": details}


def parse_checks(value):
    """The validated list of checks (``tpm_attest_checks``); raises ValueError naming the fix."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"tpm_attest_checks must be a list of {', '.join(CHECKS)}; got {shown(value)}")
    chosen = []
    for item in value:
        if not isinstance(item, str) or item not in CHECKS:
            raise ValueError(
                f"tpm_attest_checks: {shown(item)} is not a check; choose from {', '.join(CHECKS)} "
                " (e.g. [ek_chain, eventlog])"
            )
        if item not in chosen:
            chosen.append(item)
    return chosen


# --------------------------------------------------------------------------
# CA store
# --------------------------------------------------------------------------


def _certs_from_bytes(data, what):
    from cryptography import x509

    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ValueError(f"{what}: not a valid PEM certificate bundle ({exc})") from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"{what}: neither PEM nor DER certificates ({exc})") from None


def load_ca_certificates(bundle=None, ca_dir=None):
    """The trusted EK CA certificates from a PEM bundle and/or a directory of PEM/DER files
    (``.pem .crt .cer .der``). Raises ValueError naming the variable and the fix."""
    certs = []
    if bundle:
        try:
            with open(bundle, "rb") as fh:
                data = fh.read(MAX_CA_FILE_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"tpm_attest_ek_ca_bundle {shown(bundle)} cannot be read: {exc.strerror or exc}") from None
        certs += _certs_from_bytes(data, f"tpm_attest_ek_ca_bundle {shown(bundle)}")
    if ca_dir:
        try:
            names = sorted(os.listdir(ca_dir))
        except OSError as exc:
            raise ValueError(f"tpm_attest_ek_ca_dir {shown(ca_dir)} cannot be listed: {exc.strerror or exc}") from None
        for name in names:
            path = os.path.join(ca_dir, name)
            if not name.lower().endswith(CA_SUFFIXES) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                certs += _certs_from_bytes(fh.read(MAX_CA_FILE_BYTES + 1), f"tpm_attest_ek_ca_dir file {shown(path)}")
    if (bundle or ca_dir) and not certs:
        raise ValueError(
            f"no CA certificate found in tpm_attest_ek_ca_bundle {shown(bundle)} / "
            f"tpm_attest_ek_ca_dir {shown(ca_dir)}: "
            f"point them at your TPM vendors' EK CA certificates ({VENDOR_CA_HINT})"
        )
    return certs


def _split_store(ca_certs):
    """Self-signed certificates are trust anchors; the others are usable intermediates."""
    roots, intermediates = [], []
    for cert in ca_certs:
        (roots if cert.issuer == cert.subject else intermediates).append(cert)
    return roots, intermediates


# --------------------------------------------------------------------------
# ek_chain
# --------------------------------------------------------------------------


def _spki(pem_or_key):
    from cryptography.hazmat.primitives import serialization

    key = pem_or_key
    if isinstance(pem_or_key, str):
        key = serialization.load_pem_public_key(pem_or_key.encode())
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _verify_chain(cert, ca_certs, now):
    """None when ``cert`` chains to a self-signed CA in ``ca_certs`` at ``now``, else the reason."""
    from cryptography.x509 import verification as v

    roots, intermediates = _split_store(ca_certs)
    if not roots:
        return "the CA bundle holds no self-signed (root) certificate to anchor the chain"
    builder = (
        v.PolicyBuilder()
        .store(v.Store(roots))
        .time(now)
        # EK certificates follow the TCG EK Credential Profile, not the Web PKI: the end-entity policy accepts
        # its extensions (critical SAN with a directoryName, TCG EKU); the CA certificates keep the defaults.
        .extension_policies(ca_policy=v.ExtensionPolicy.webpki_defaults_ca(), ee_policy=v.ExtensionPolicy.permit_all())
    )
    try:
        builder.build_client_verifier().verify(cert, intermediates)
    except v.VerificationError as exc:
        return str(exc)
    return None


def _judge_certificate(entry, ek_public, ca_certs, now):
    """Problems of one EK certificate (list of (reason, cause, fix)) and its description."""
    from cryptography import x509

    algorithm = entry.get("algorithm")
    index = entry.get("index")
    try:
        der = base64.b64decode(entry.get("der_b64") or "", validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, TypeError, ValueError) as exc:
        return [
            (
                "not_x509",
                f"the certificate at {shown(index)} is not a DER X.509 certificate ({exc})",
                "rewrite the NV index with the vendor's certificate",
            )
        ], {}
    info = {
        "index": index,
        "algorithm": algorithm,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": format(cert.serial_number, "x"),
    }
    problems = []
    if now < cert.not_valid_before_utc:
        problems.append(
            (
                "not_yet_valid",
                f"the certificate at {index} is valid only from {info['not_before']}",
                "check the controller's clock; or the certificate was issued with a wrong date",
            )
        )
    elif now > cert.not_valid_after_utc:
        problems.append(
            (
                "expired",
                f"the certificate at {index} expired on {info['not_after']}",
                "ask the TPM vendor or platform maker for a current EK certificate",
            )
        )
    wanted = KEY_USAGE_FOR.get(algorithm)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        has = bool(wanted and getattr(usage, wanted))
    except x509.ExtensionNotFound:
        has = False
    except ValueError:  # key_agreement's encipher_only on a usage without key agreement
        has = False
    if wanted and not has:
        problems.append(
            (
                "key_usage",
                f"the {algorithm} EK certificate at {index} lacks the {wanted} key usage "
                "the TCG EK Credential Profile requires",
                "use a certificate issued for this EK",
            )
        )
    chain_error = _verify_chain(cert, ca_certs, now)
    if chain_error:
        problems.append(
            (
                "unchained",
                f"the certificate at {index} (issuer {shown(info['issuer'])}) does not chain to "
                f"a trusted EK CA: {chain_error}",
                "add the issuing CA (and its intermediates) to tpm_attest_ek_ca_bundle or "
                f"tpm_attest_ek_ca_dir; {VENDOR_CA_HINT}",
            )
        )
    tpm_key = (ek_public or {}).get(algorithm) or {}
    if not tpm_key.get("pem"):
        problems.append(
            (
                "no_ek_key",
                f"the TPM's {algorithm} EK public key could not be read "
                f"({tpm_key.get('error') or 'not returned'}), so the certificate cannot be matched to it",
                "persist the EK (tpm2_createek -c 0x81010001) or let the module derive it (ek_derive)",
            )
        )
    else:
        try:
            same = _spki(tpm_key["pem"]) == _spki(cert.public_key())
        except (ValueError, TypeError):
            same = False
        info["ek_source"] = tpm_key.get("source")
        if not same:
            problems.append(
                (
                    "key_mismatch",
                    f"the certificate at {index} holds another public key than the TPM's "
                    f"{algorithm} EK ({tpm_key.get('source')})",
                    "the NV index holds a certificate of another TPM or an old EK: rewrite it",
                )
            )
    return problems, info


def judge_ek_chain(tpm, ca_certs, now=None):
    """The ``ek_chain`` outcome for the ``tpm`` part of the evidence."""
    now = now or datetime.datetime.now(datetime.UTC)
    if not isinstance(tpm, dict):
        return outcome("ek_chain", "not_run", "no_tpm", "the TPM could not be read", "see the evidence's errors")
    certs = [c for c in tpm.get("ek_certificates") or [] if isinstance(c, dict)]
    with_der = [c for c in certs if c.get("der_b64")]
    if not with_der:
        unreadable = [c for c in certs if c.get("present")]
        cause = (
            "EK certificate indices exist but none holds a readable DER certificate: "
            + "; ".join(
                f"{c.get('index')}: {c.get('unreadable_reason') or c.get('der_error') or 'unreadable'}"
                for c in unreadable
            )
            if unreadable
            else "the TPM has no EK certificate in NV (RSA 0x01c00002, ECC 0x01c0000a)"
        )
        return outcome(
            "ek_chain",
            "fail",
            "no_certificate",
            cause,
            "write the vendor's EK certificate to its NV index (tpm2_nvdefine/tpm2_nvwrite), or register "
            "the EK with the verifier by hand; an emulated TPM gets one from swtpm_setup --create-ek-cert",
        )
    if not ca_certs:
        return outcome(
            "ek_chain",
            "not_run",
            "no_ca",
            "no EK CA is configured",
            f"set tpm_attest_ek_ca_bundle or tpm_attest_ek_ca_dir; {VENDOR_CA_HINT}",
        )
    results = []
    for entry in with_der:
        problems, info = _judge_certificate(entry, tpm.get("ek_public"), ca_certs, now)
        info["problems"] = [{"reason": r, "cause": c, "fix": f} for r, c, f in problems]
        results.append(info)
    good = [r for r in results if not r["problems"]]
    if good:
        others = [p for r in results for p in r["problems"]]
        cause = "; ".join(p["cause"] for p in others)
        return outcome(
            "ek_chain", "pass", "chained", cause, "", certificates=results, chained=[r["index"] for r in good]
        )
    first = results[0]["problems"][0]
    cause = "; ".join(p["cause"] for r in results for p in r["problems"])
    return outcome("ek_chain", "fail", first["reason"], cause, first["fix"], certificates=results, chained=[])


# --------------------------------------------------------------------------
# All checks
# --------------------------------------------------------------------------


def judge(evidence, quote_result, checks, ca_certs=(), now=None):
    """``{ready, checks: [outcome]}`` for the chosen checks. ``ready`` is True only when every chosen check passed."""
    evidence = evidence if isinstance(evidence, dict) else {}
    results = []
    quoted = None
    if {"eventlog", "ima"} & set(checks):
        quoted = attest_replay.quoted_pcrs(quote_result)
    for check in checks:
        if check == "ek_chain":
            results.append(judge_ek_chain(evidence.get("tpm"), list(ca_certs), now))
        elif check == "eventlog":
            results.append(attest_replay.judge_eventlog(evidence.get("event_log"), quoted))
        elif check == "ima":
            results.append(attest_replay.judge_ima(evidence.get("ima"), quoted))
    return {"ready": bool(results) and all(r["status"] == "pass" for r in results), "checks": results}
