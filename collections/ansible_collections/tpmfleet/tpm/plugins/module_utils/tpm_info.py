# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only descriptions of a TPM and its use, for tpm_facts and the fleet report.

Builds on ``tpm.read_summary`` (identity, PCR banks, dictionary-attack state and
the owner/endorsement/lockout auth flags) and adds what an operator needs to
judge a TPM: the EK certificates in NV (TCG EK Credential Profile indices), the
EK public key's fingerprint, the persistent handles labelled by the TCG ranges,
and, on the host side, the boot event log, the TCTI environment file and the
IDs of the TPM's accounts.

Nothing here changes the TPM: NV indices are read only with an authorization
that cannot count as a dictionary-attack failure, and the optional EK derivation
(``ek_create``) loads a transient primary that is flushed before returning.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd

from ansible_collections.tpmfleet.tpm.plugins.module_utils.ak_parent import (
    EK_TEMPLATES,
    ek_template,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.handles import (
    PERSISTENT_FIRST,
    PERSISTENT_LAST,
    handle_range,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import node_info
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import (
    TPMA_DECRYPT,
    TPMA_RESTRICTED,
    TPMA_SIGN_ENCRYPT,
    describe_public,
    parse_public,
    spki_der,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import HAS_PYTSS
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import (
    PT_FIXED,
    get_properties,
    handles,
    read_summary,
)

if HAS_PYTSS:
    from tpm2_pytss.constants import ESYS_TR

EVENT_LOG_PATH = "/sys/kernel/security/tpm0/binary_bios_measurements"

# TCG EK Credential Profile 2.x: NV indices of the EK certificates. The first two
# (low range) are the ones verifiers such as keylime look for first.
EK_CERT_RSA = 0x01C00002
EK_CERT_ECC = 0x01C0000A
EK_CERT_INDICES = {
    EK_CERT_RSA: ("rsa2048", "RSA 2048 EK certificate"),
    EK_CERT_ECC: ("ecc_p256", "ECC NIST P256 EK certificate"),
    0x01C00012: ("rsa2048", "RSA 2048 EK certificate (high range)"),
    0x01C00014: ("ecc_p256", "ECC NIST P256 EK certificate (high range)"),
    0x01C00016: ("ecc_p384", "ECC NIST P384 EK certificate (high range)"),
    0x01C00018: ("ecc_p521", "ECC NIST P521 EK certificate (high range)"),
    0x01C0001C: ("rsa3072", "RSA 3072 EK certificate (high range)"),
    0x01C0001E: ("rsa4096", "RSA 4096 EK certificate (high range)"),
}
NV_INDEX_FIRST = 0x01000000
EK_CERT_RANGE = (0x01C00000, 0x01C07FFF)
# TCG EK persistent handles (registry of reserved handles).
EK_HANDLES = {0x81010001: "rsa2048", 0x81010002: "ecc_p256"}

# TPMA_NV bits (numeric: the same in tpm2-pytss 1.2 and 3.x)
NV_PPREAD = 0x00010000
NV_OWNERREAD = 0x00020000
NV_AUTHREAD = 0x00040000
NV_POLICYREAD = 0x00080000
NV_NO_DA = 0x02000000
NV_READLOCKED = 0x10000000
NV_WRITTEN = 0x20000000
PT_NV_BUFFER_MAX = PT_FIXED + 44

# --------------------------------------------------------------------------
# DER (X.509) without third-party libraries: the managed host may lack cryptography
# --------------------------------------------------------------------------


def _der_item(data, pos):
    """(tag, header_len, body_start, end) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated DER element")
    return tag, start, end


def _der_children(data, start, end):
    items = []
    pos = start
    while pos < end:
        tag, body, stop = _der_item(data, pos)
        items.append((tag, pos, body, stop))
        pos = stop
    return items


_OID_CN = bytes.fromhex("550403")
_OID_O = bytes.fromhex("55040a")


def _name_text(data, body, end):
    """'CN=..., O=...' of an X.509 Name (only CN and O, which identify an EK CA)."""
    parts = []
    for _tag, _p, set_body, set_end in _der_children(data, body, end):
        for _t, _q, atv_body, atv_end in _der_children(data, set_body, set_end):
            kids = _der_children(data, atv_body, atv_end)
            if len(kids) != 2:
                continue
            oid = data[kids[0][2] : kids[0][3]]
            value = data[kids[1][2] : kids[1][3]].decode("utf-8", "replace")
            if oid == _OID_CN:
                parts.append(f"CN={value}")
            elif oid == _OID_O:
                parts.append(f"O={value}")
    return ", ".join(parts)


def _der_time(data, tag, body, end):
    text = data[body:end].decode("ascii", "replace")
    if tag == 0x17 and len(text) >= 12:  # UTCTime YYMMDDhhmmssZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    if len(text) >= 14:
        return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"
    return text


def _der_prefix(data):
    """The DER element at the start of an NV index's data (indices are often larger than the certificate)."""
    try:
        _tag, _body, end = _der_item(data, 0)
    except (ValueError, IndexError):
        return data
    return data[:end]


def certificate_info(der):
    """Fingerprints, issuer, subject, validity and the public key's SPKI fingerprint of a DER X.509 certificate."""
    info = {"size": len(der), "sha256": hashlib.sha256(der).hexdigest()}
    try:
        _tag, body, end = _der_item(der, 0)
        _tbs_tag, _pos, tbs_body, tbs_end = _der_children(der, body, end)[0]
        fields = _der_children(der, tbs_body, tbs_end)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _serial, _sig, issuer, validity, subject, spki = fields[:6]
        times = _der_children(der, validity[2], validity[3])
        info.update(
            {
                "issuer": _name_text(der, issuer[2], issuer[3]),
                "subject": _name_text(der, subject[2], subject[3]),
                "not_before": _der_time(der, times[0][0], times[0][2], times[0][3]),
                "not_after": _der_time(der, times[1][0], times[1][2], times[1][3]),
                "public_key_sha256": hashlib.sha256(der[spki[1] : spki[3]]).hexdigest(),
            }
        )
    except (ValueError, IndexError) as exc:
        info["parse_error"] = f"not a DER X.509 certificate ({exc})"
    return info


# --------------------------------------------------------------------------
# TPM reads
# --------------------------------------------------------------------------


def _close(ectx, tr):
    with contextlib.suppress(Exception):  # closing an ESYS resource cannot leak TPM memory
        ectx.tr_close(tr)


def _nv_read_all(ectx, tr, size, auth, chunk):
    out = b""
    while len(out) < size:
        n = min(chunk, size - len(out))
        data = ectx.nv_read(tr, n, len(out), auth_handle=auth)
        out += bytes(data.buffer if hasattr(data, "buffer") else data)
    return out


def read_nv_index(ectx, index, owner_auth_set, chunk):
    """Read NV ``index`` whole, with only authorizations that cannot count as a dictionary-attack failure.

    ``{attributes, size, data, unreadable}``: ``data`` is the contents, or None when ``unreadable`` says why
    not: "locked" (read-locked or never written) or "auth" (it needs an authorization this read-only
    check does not present). Shared by tpm_facts and the attestation evidence."""
    tr = ectx.tr_from_tpmpublic(index)
    try:
        nv_pub, _name = ectx.nv_read_public(tr)
        attrs = int(nv_pub.nvPublic.attributes)
        read = {"attributes": attrs, "size": int(nv_pub.nvPublic.dataSize), "data": None, "unreadable": None}
        if attrs & NV_READLOCKED or not attrs & NV_WRITTEN:
            read["unreadable"] = "locked"
        elif attrs & NV_AUTHREAD and attrs & NV_NO_DA:
            read["data"] = _nv_read_all(ectx, tr, read["size"], tr, chunk)
        elif attrs & NV_OWNERREAD and not owner_auth_set:
            read["data"] = _nv_read_all(ectx, tr, read["size"], ESYS_TR.OWNER, chunk)
        else:
            read["unreadable"] = "auth"
        return read
    finally:
        _close(ectx, tr)


def ek_certificates(ectx, owner_auth_set):
    """The EK certificates in NV: always the RSA and ECC low-range indices, others when defined."""
    defined = {h for h in handles(ectx, NV_INDEX_FIRST) if EK_CERT_RANGE[0] <= h <= EK_CERT_RANGE[1]}
    chunk = get_properties(ectx, PT_FIXED).get(PT_NV_BUFFER_MAX) or 512
    result = []
    for index, (algorithm, what) in EK_CERT_INDICES.items():
        if index not in defined and index not in (EK_CERT_RSA, EK_CERT_ECC):
            continue
        entry = {"index": f"0x{index:08x}", "algorithm": algorithm, "description": what, "present": index in defined}
        result.append(entry)
        if not entry["present"]:
            continue
        read = read_nv_index(ectx, index, owner_auth_set, chunk)
        attrs = read["attributes"]
        entry.update({"size": read["size"], "attributes": f"0x{attrs:08x}", "written": bool(attrs & NV_WRITTEN)})
        entry["readable"] = read["data"] is not None
        if read["unreadable"] == "auth":
            entry["unreadable_reason"] = "needs an authorization this read-only check does not present"
        if read["data"] is not None:
            entry["certificate"] = certificate_info(_der_prefix(read["data"]))
    return result


def _public_summary(pub_bytes):
    pub = parse_public(pub_bytes)
    attrs = pub["attributes"]
    return {
        "key": describe_public(pub),
        "attributes": f"0x{attrs:08x}",
        "restricted": bool(attrs & TPMA_RESTRICTED),
        "sign": bool(attrs & TPMA_SIGN_ENCRYPT),
        "decrypt": bool(attrs & TPMA_DECRYPT),
        "public_key_sha256": hashlib.sha256(spki_der(pub)).hexdigest(),
    }


def persistent_objects(ectx):
    """Every persistent handle, labelled by its TCG range, with the key it holds."""
    found = []
    for handle in handles(ectx, PERSISTENT_FIRST):
        if handle > PERSISTENT_LAST:
            break
        entry = {"handle": f"0x{handle:08x}", "range": None, "range_description": None}
        entry_range = handle_range(handle)
        if entry_range:
            entry["range"] = entry_range["name"]
            entry["range_description"] = entry_range["what"]
        try:
            tr = ectx.tr_from_tpmpublic(handle)
        except Exception as exc:
            entry["error"] = str(exc)
            found.append(entry)
            continue
        try:
            pub, _name, _qname = ectx.read_public(tr)
            entry.update(_public_summary(bytes(pub.marshal())))
        except Exception as exc:
            entry["error"] = str(exc)
        finally:
            _close(ectx, tr)
        found.append(entry)
    return found


def create_ek(ectx, algorithm):
    """Derive the EK with the default template (transient, flushed); its public summary."""
    primary = None
    try:
        primary, pub, *_rest = ectx.create_primary(None, ek_template(algorithm), ESYS_TR.ENDORSEMENT)
        return _public_summary(bytes(pub.marshal()))
    finally:
        if primary is not None:
            with contextlib.suppress(Exception):
                ectx.flush_context(primary)


def endorsement_key(persistent, certificates, ek_create, ectx, endorsement_auth_set):
    """The EK public key: persisted at a TCG EK handle, else the key of an EK certificate, else derived
    with the default template when ``ek_create`` is set (and endorsement auth is empty)."""
    ek = {"source": None, "handle": None, "key": None, "public_key_sha256": None}
    for entry in persistent:
        if int(entry["handle"], 16) in EK_HANDLES and entry.get("public_key_sha256"):
            ek.update(source="persistent", handle=entry["handle"], key=entry["key"])
            ek["public_key_sha256"] = entry["public_key_sha256"]
            break
    cert_keys = {
        c["certificate"]["public_key_sha256"]: c["algorithm"]
        for c in certificates
        if c.get("certificate", {}).get("public_key_sha256")
    }
    if ek["source"] is None and ek_create:
        algorithm = next((a for a in cert_keys.values() if a in EK_TEMPLATES), "rsa2048")
        if endorsement_auth_set:
            ek["error"] = "endorsement auth is set: the EK cannot be derived without it"
        else:
            derived = create_ek(ectx, algorithm)
            ek.update(source="created", key=derived["key"], public_key_sha256=derived["public_key_sha256"])
    if ek["source"] is None and cert_keys:
        fingerprint, algorithm = next(iter(cert_keys.items()))
        ek.update(source="certificate", key=algorithm, public_key_sha256=fingerprint)
    if ek["public_key_sha256"] and cert_keys:
        ek["matches_certificate"] = ek["public_key_sha256"] in cert_keys
    return ek


def read_details(ectx, ek_create=False):
    """``read_summary`` plus EK certificates, the EK fingerprint and the persistent handles."""
    summary = read_summary(ectx)
    lockout = summary["lockout"]
    summary["ek_certificates"] = ek_certificates(ectx, lockout["owner_auth_set"])
    summary["persistent_handles"] = persistent_objects(ectx)
    summary["ek"] = endorsement_key(
        summary["persistent_handles"], summary["ek_certificates"], ek_create, ectx, lockout["endorsement_auth_set"]
    )
    return summary


# --------------------------------------------------------------------------
# Host side (no TPM command)
# --------------------------------------------------------------------------


def readers(node):
    """Who may read a file from its owner, group and mode: {owner, group, others} (None when not allowed)."""
    if not node.get("exists"):
        return None
    mode = int(node["mode"], 8)
    return {
        "owner": node["owner"] if mode & 0o400 else None,
        "group": node["group"] if mode & 0o040 else None,
        "others": bool(mode & 0o004),
    }


def event_log(path=EVENT_LOG_PATH):
    """Whether the boot event log exists, its size and who may read it."""
    node = node_info(path)
    info = {"path": path, "exists": bool(node.get("exists"))}
    if not info["exists"]:
        securityfs = os.path.ismount("/sys/kernel/security")
        info["reason"] = (
            "securityfs is not mounted on /sys/kernel/security"
            if not securityfs
            else "the firmware passed no event log to the kernel (or the TPM has no tpm0 log)"
        )
        return info
    info.update({k: node[k] for k in ("owner", "uid", "group", "gid", "mode")})
    info["readable_by"] = readers(node)
    return info


def tcti_env(path):
    """Variables set in a TCTI environment file (KEY=VALUE lines; comments and blank lines skipped)."""
    info = {"path": path, "exists": os.path.isfile(path), "variables": {}}
    if not info["exists"]:
        return info
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(65536)
    except OSError as exc:
        info["error"] = os.strerror(exc.errno) if exc.errno else str(exc)
        return info
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        info["variables"][key] = value
    return info


def accounts(users, groups):
    """uid/gid of named users and gid/members of named groups (None when absent)."""
    result = {"users": {}, "groups": {}}
    for name in users:
        try:
            pw = pwd.getpwnam(name)
            result["users"][name] = {"uid": pw.pw_uid, "gid": pw.pw_gid}
        except KeyError:
            result["users"][name] = None
    for name in groups:
        try:
            gr = grp.getgrnam(name)
            result["groups"][name] = {"gid": gr.gr_gid, "members": sorted(gr.gr_mem)}
        except KeyError:
            result["groups"][name] = None
    return result
