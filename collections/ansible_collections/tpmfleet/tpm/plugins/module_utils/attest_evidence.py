# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only attestation evidence of one host, for the tpm_attest_evidence module.

What a remote-attestation verifier (keylime first) asks of a host, gathered in
one module run and judged later on the controller (plugin_utils/attest.py):

* the EK certificates in NV (TCG EK Credential Profile low range: RSA
  ``0x01c00002``, ECC ``0x01c0000a``) as DER, and the EK public keys (persisted
  at a TCG EK handle, else derived with the TCG default template, transient);
* the active PCR banks;
* the measured-boot event log, replayed by ``tpm2_eventlog`` from tpm2-tools
  (its YAML is returned as text; the controller parses it);
* the IMA runtime measurement list: entry count, boot aggregate, the PCR 10 value
  it replays to, and whether an IMA policy is loaded.

Nothing here changes the TPM: NV indices are read only with an authorization
that cannot count as a dictionary-attack failure, and a derived EK is flushed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.ak_parent import PT_PERMANENT, auth_flags, ek_template
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import (
    describe_public,
    parse_public,
    public_to_pem,
    spki_der,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import HAS_PYTSS
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import PT_FIXED, get_properties, handles, pcr_banks
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm_info import (
    EK_CERT_ECC,
    EK_CERT_RSA,
    EK_HANDLES,
    NV_INDEX_FIRST,
    PT_NV_BUFFER_MAX,
    read_nv_index,
)

if HAS_PYTSS:
    from tpm2_pytss.constants import ESYS_TR

EVENT_LOG_PATH = "/sys/kernel/security/tpm0/binary_bios_measurements"
IMA_DIR = "/sys/kernel/security/ima"
IMA_LOG_NAME = "ascii_runtime_measurements"
IMA_PCR = 10
# The EK certificates verifiers look for first, and the EK each one certifies.
EK_CERTS = {EK_CERT_RSA: "rsa2048", EK_CERT_ECC: "ecc_p256"}
EK_HANDLE_FOR = {alg: handle for handle, alg in EK_HANDLES.items()}
MAX_EVENT_LOG_BYTES = 4 * 1024 * 1024
MAX_IMA_LINES = 1_000_000
_HEX = re.compile(r"[0-9a-f]+")
_IMA_DIGEST = re.compile(r"([a-z0-9]+):([0-9a-f]+)")
IMA_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def pem_certificate(der):
    b64 = base64.b64encode(der).decode()
    return (
        "-----BEGIN CERTIFICATE-----\n"
        + "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        + ("\n-----END CERTIFICATE-----\n")
    )


def der_length(data):
    """Length of the DER element at the start of ``data`` (NV indices are often larger than the certificate),
    or None when ``data`` does not start with a DER SEQUENCE."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    length = data[1]
    start = 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length = int.from_bytes(data[2 : 2 + count], "big")
        start += count
    end = start + length
    return end if end <= len(data) else None


# --------------------------------------------------------------------------
# TPM reads
# --------------------------------------------------------------------------


def _close(ectx, tr):
    with contextlib.suppress(Exception):  # closing an ESYS resource cannot leak TPM memory
        ectx.tr_close(tr)


def ek_certificates(ectx, owner_auth_set):
    """``[{index, algorithm, present, readable, der_b64, pem}]`` for the RSA and ECC low-range indices."""
    defined = set(handles(ectx, NV_INDEX_FIRST))
    chunk = get_properties(ectx, PT_FIXED).get(PT_NV_BUFFER_MAX) or 512
    result = []
    for index, algorithm in EK_CERTS.items():
        entry = {"index": f"0x{index:08x}", "algorithm": algorithm, "present": index in defined, "readable": False}
        result.append(entry)
        if not entry["present"]:
            continue
        read = read_nv_index(ectx, index, owner_auth_set, chunk)
        entry["size"] = read["size"]
        if read["unreadable"] == "locked":
            entry["unreadable_reason"] = "the NV index is read-locked or was never written"
            continue
        if read["unreadable"] == "auth":
            entry["unreadable_reason"] = "the NV index needs an authorization this read-only check does not present"
            continue
        data = read["data"]
        end = der_length(data)
        entry["readable"] = True
        if end is None:
            entry["der_error"] = "the NV index does not start with a DER certificate"
            entry["data_b64"] = base64.b64encode(data).decode()
            continue
        der = data[:end]
        entry.update(der_b64=base64.b64encode(der).decode(), pem=pem_certificate(der))
    return result


def _ek_public(pub_bytes, source, handle=None):
    pub = parse_public(pub_bytes)
    return {
        "source": source,
        "handle": handle,
        "key": describe_public(pub),
        "public_b64": base64.b64encode(bytes(pub["tpmt"])).decode(),
        "pem": public_to_pem(pub),
        "public_key_sha256": hashlib.sha256(spki_der(pub)).hexdigest(),
    }


def ek_publics(ectx, algorithms, derive, endorsement_auth_set):
    """``{algorithm: {...}}``: the EK at its TCG handle, else derived (transient) when ``derive`` is set."""
    persistent = set(handles(ectx, 0x81000000))
    result = {}
    for algorithm in algorithms:
        handle = EK_HANDLE_FOR[algorithm]
        if handle in persistent:
            tr = ectx.tr_from_tpmpublic(handle)
            try:
                pub, _name, _qname = ectx.read_public(tr)
                result[algorithm] = _ek_public(bytes(pub.marshal()), "persistent", f"0x{handle:08x}")
            finally:
                _close(ectx, tr)
            continue
        if not derive:
            result[algorithm] = {"source": None, "error": "no EK persisted and ek_derive is off"}
            continue
        if endorsement_auth_set:
            result[algorithm] = {"source": None, "error": "endorsement auth is set: the EK cannot be derived"}
            continue
        primary = None
        try:
            primary, pub, *_rest = ectx.create_primary(None, ek_template(algorithm), ESYS_TR.ENDORSEMENT)
            result[algorithm] = _ek_public(bytes(pub.marshal()), "derived")
        finally:
            if primary is not None:
                with contextlib.suppress(Exception):
                    ectx.flush_context(primary)
    return result


def read_tpm(ectx, derive_ek):
    """EK certificates, EK public keys (for every algorithm with a certificate, else RSA) and PCR banks."""
    flags = auth_flags(get_properties(ectx, PT_PERMANENT).get(PT_PERMANENT, 0))
    certs = ek_certificates(ectx, flags["owner"])
    algorithms = [c["algorithm"] for c in certs if c.get("der_b64")] or ["rsa2048"]
    return {
        "ek_certificates": certs,
        "ek_public": ek_publics(ectx, algorithms, derive_ek, flags["endorsement"]),
        "pcr_banks": pcr_banks(ectx),
    }


# --------------------------------------------------------------------------
# Event log (replayed by tpm2_eventlog)
# --------------------------------------------------------------------------


def event_log(path, run, tool, include_log):
    """The measured-boot log replayed by ``tool`` (tpm2_eventlog): its YAML text, or why not."""
    info = {"path": path, "present": os.path.exists(path), "tool": tool}
    if not info["present"]:
        securityfs = os.path.ismount("/sys/kernel/security")
        info["reason"] = "missing"
        info["msg"] = (
            "securityfs is not mounted on /sys/kernel/security"
            if path == EVENT_LOG_PATH and not securityfs
            else "no boot event log at this path: the firmware passed none to the kernel"
        )
        return info
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_EVENT_LOG_BYTES + 1)
    except OSError as exc:
        info.update(reason="unreadable", msg=f"cannot read the event log: {os.strerror(exc.errno or 0) or exc}")
        return info
    if len(data) > MAX_EVENT_LOG_BYTES:
        info.update(reason="too_large", msg=f"the event log is larger than {MAX_EVENT_LOG_BYTES} bytes")
        return info
    info.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    if include_log:
        info["log_b64"] = base64.b64encode(data).decode()
    if tool is None:
        info.update(reason="no_tool", msg="tpm2_eventlog is not installed: install tpm2-tools on the host")
        return info
    rc, out, err = run([tool, path])
    if rc != 0:
        info.update(reason="replay_failed", msg=f"tpm2_eventlog failed (rc {rc}): {err.strip()[-400:]}")
        return info
    info["yaml"] = out
    return info


# --------------------------------------------------------------------------
# IMA
# --------------------------------------------------------------------------


def _field(data):
    return len(data).to_bytes(4, "little") + data


def ima_template_digest(bank, template, digest_field, name, signature=""):
    """The template hash an ``ima-ng`` or ``ima-sig`` entry extends PCR 10 with in ``bank``: since Linux 5.8 the
    bank's own hash over the template data (each field as a little-endian u32 length and its bytes: the file
    digest as ``algo:\\0`` + digest, the name with its NUL, for ima-sig the signature); None for other templates
    or values that do not parse."""
    if template not in ("ima-ng", "ima-sig"):
        return None
    algo, sep, hexdigest = digest_field.partition(":")
    if not sep or not _HEX.fullmatch(hexdigest) or len(hexdigest) % 2 or not re.fullmatch(r"[a-z0-9]+", algo):
        return None
    data = _field(algo.encode() + b":\0" + bytes.fromhex(hexdigest)) + _field(
        name.encode("utf-8", "surrogateescape") + b"\0"
    )
    if template == "ima-sig":
        if signature and (not _HEX.fullmatch(signature) or len(signature) % 2):
            return None
        data += _field(bytes.fromhex(signature))
    return hashlib.new(bank, data).digest()


def _parse_ima_line(line):
    """``(pcr, template_hash, template, digest, name, signature)`` of an ascii_runtime_measurements line, or None.
    ima-sig lines end with " SIGNATURE" (hex, empty without a signature)."""
    parts = line.split(" ", 4)
    if len(parts) < 5 or not _HEX.fullmatch(parts[1]) or not parts[0].isdigit():
        return None
    pcr, template_hash, template, digest_field, name = parts
    signature = ""
    if template == "ima-sig":
        name, sep, signature = name.rpartition(" ")
        if not sep:
            return None
    return int(pcr), template_hash, template, digest_field, name, signature


def ima_state(ima_dir, banks):
    """Entry count, boot aggregate, replayed PCR 10 per bank, and whether a policy is loaded."""
    path = os.path.join(ima_dir, IMA_LOG_NAME)
    info = {"path": path, "present": os.path.exists(path)}
    if not info["present"]:
        info.update(reason="missing", msg="no IMA measurement list: IMA is not enabled in this kernel")
        return info
    # The policy file is readable only where the kernel allows reading it (CONFIG_IMA_READ_POLICY);
    # an empty or default policy has no rules; "measure" rules are what adds entries beyond the boot aggregate.
    policy = os.path.join(ima_dir, "policy")
    try:
        with open(policy, encoding="utf-8", errors="replace") as fh:
            rules = [r for r in fh.read(1 << 20).splitlines() if r.strip() and not r.lstrip().startswith("#")]
        info["policy"] = {
            "readable": True,
            "rules": len(rules),
            "measure_rules": sum(r.startswith("measure") for r in rules),
        }
    except OSError as exc:
        info["policy"] = {"readable": False, "error": os.strerror(exc.errno or 0) or str(exc)}
    replay = {bank: bytes(IMA_DIGEST_SIZES[bank]) for bank in banks if bank in IMA_DIGEST_SIZES}
    entries = 0
    other_pcrs = 0
    unsupported = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                entries += 1
                if entries > MAX_IMA_LINES:
                    info.update(reason="too_large", msg=f"more than {MAX_IMA_LINES} IMA entries")
                    return info
                parsed = _parse_ima_line(line.rstrip("\n"))
                if parsed is None:
                    info.update(reason="unparsable", msg=f"IMA entry {entries} is not 'PCR HASH TEMPLATE DIGEST NAME'")
                    return info
                pcr, template_hash, template, digest_field, name, signature = parsed
                if entries == 1:
                    info["first_entry"] = {"pcr": pcr, "template": template, "digest": digest_field, "name": name[:256]}
                if pcr != IMA_PCR:
                    other_pcrs += 1
                    continue
                for bank in list(replay):
                    if bank == "sha1":
                        value = bytes.fromhex(template_hash)
                        if int.from_bytes(value, "big") == 0:  # a violation is extended as all ones
                            value = b"\xff" * 20
                    else:
                        value = ima_template_digest(bank, template, digest_field, name, signature)
                        if value is None:
                            unsupported.add(template[:40])
                            replay.pop(bank)
                            continue
                        if not int(template_hash, 16):
                            value = b"\xff" * IMA_DIGEST_SIZES[bank]
                    replay[bank] = hashlib.new(bank, replay[bank] + value).digest()
    except OSError as exc:
        info.update(reason="unreadable", msg=f"cannot read the IMA log: {os.strerror(exc.errno or 0) or exc}")
        return info
    info["entries"] = entries
    info["entries_other_pcrs"] = other_pcrs
    info["boot_aggregate_only"] = entries == 1 and info.get("first_entry", {}).get("name") == "boot_aggregate"
    info["replayed_pcr10"] = {bank: value.hex() for bank, value in replay.items()}
    if info["policy"]["readable"]:
        info["policy_loaded"] = info["policy"]["measure_rules"] > 0
        info["policy_basis"] = "the IMA policy file"
    else:
        info["policy_loaded"] = entries > 1
        info["policy_basis"] = "the measurement list (the policy file is not readable)"
    if unsupported:
        info["unsupported_templates"] = sorted(unsupported)
    return info
