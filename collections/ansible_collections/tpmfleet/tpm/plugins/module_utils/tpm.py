# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ESAPI helpers shared by tpm_facts, tpm_check and tpm_quote (tpm2-pytss 1.2 and 3.x).

Callers must check ``tpmfleet_tcti.HAS_PYTSS`` first. Every function that loads a
transient object flushes it in ``finally``.
"""

from __future__ import annotations

import base64
import contextlib
import struct
import time

from ansible_collections.tpmfleet.tpm.plugins.module_utils.ak_parent import (
    EK_FOR_AK,
    ENDORSEMENT,
    PT_PERMANENT,
    auth_flags,
    auth_refused,
    ek_policy_session,
    ek_template,
    flush_quietly,
    parent_result,
    plan_new_ak,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.handles import AK_RANGE, PERSISTENT_FIRST, free_ak_handle
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import (
    ALG_ECC,
    ALG_ECDSA,
    ALG_RSA,
    ALG_RSASSA,
    HASH_ALGS,
    TPMA_DECRYPT,
    TPMA_RESTRICTED,
    TPMA_SIGN_ENCRYPT,
    QuoteFormatError,
    compute_pcr_digest,
    describe_public,
    format_pcr_selection,
    object_name,
    parse_attest,
    parse_public,
    parse_signature,
    public_to_pem,
    signature_standard,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    HAS_PYTSS,
    RC_AUTH_FAIL,
    RC_BAD_AUTH,
    RC_HANDLE,
    TpmAccessError,
    tpm_rc_code,
)

if HAS_PYTSS:
    from tpm2_pytss import TSS2_Exception
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_HT, TPMA_OBJECT
    from tpm2_pytss.types import TPM2B_PUBLIC, TPML_PCR_SELECTION, TPMT_SIG_SCHEME

PT_FIXED = 0x100
PT_VAR = 0x200
PT_NAMES = {
    0x100: "family",
    0x101: "level",
    0x102: "revision",
    0x103: "day_of_year",
    0x104: "year",
    0x105: "manufacturer",
    0x106: "vendor_string_1",
    0x107: "vendor_string_2",
    0x108: "vendor_string_3",
    0x109: "vendor_string_4",
    0x10A: "vendor_tpm_type",
    0x10B: "firmware_version_1",
    0x10C: "firmware_version_2",
    0x200: "permanent",
    0x201: "startup_clear",
    0x20E: "lockout_counter",
    0x20F: "max_auth_fail",
    0x210: "lockout_interval",
    0x211: "lockout_recovery",
}
MANUFACTURERS = {
    "AMD": "AMD",
    "ATML": "Atmel",
    "BRCM": "Broadcom",
    "CSCO": "Cisco",
    "FLYS": "Flyslice",
    "GOOG": "Google",
    "HPE": "HPE",
    "HISI": "Huawei",
    "IBM": "IBM",
    "IFX": "Infineon",
    "INTC": "Intel",
    "LEN": "Lenovo",
    "MSFT": "Microsoft",
    "NSM": "National Semiconductor",
    "NTZ": "Nationz",
    "NTC": "Nuvoton",
    "QCOM": "Qualcomm",
    "ROCC": "Fuzhou Rockchip",
    "SMSC": "SMSC",
    "STM": "STMicroelectronics",
    "SMSN": "Samsung",
    "SNS": "Sinosun",
    "TXN": "Texas Instruments",
    "WEC": "Winbond",
}
TRANSIENT_FIRST = 0x80000000

_SRK_ATTRS = 0x00030472  # restricted|decrypt|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA
_AK_ATTRS = 0x00050472  # restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA
KEY_TEMPLATES = {
    # algorithm: (primary template, AK template) in tpm2-tools -G syntax
    "ecc": ("ecc256:aes128cfb", "ecc256:ecdsa-sha256:null"),
    "rsa": ("rsa2048:aes128cfb", "rsa2048:rsassa-sha256:null"),
}


def _fourcc(value):
    return struct.pack(">I", value & 0xFFFFFFFF).decode("ascii", "replace")


def get_properties(ectx, first, count=64):
    """{property_id: value} for TPM_CAP_TPM_PROPERTIES starting at ``first``."""
    props = {}
    prop = first
    while True:
        more, cap = ectx.get_capability(TPM2_CAP.TPM_PROPERTIES, prop, count)
        items = list(cap.data.tpmProperties)
        for item in items:
            props[int(item.property)] = int(item.value)
        if not more or not items:
            return props
        prop = int(items[-1].property) + 1
        if prop >= first + 0x100:
            return props


def tpm_identity(fixed):
    """Manufacturer, vendor strings, firmware and spec version from TPM_PT_FIXED values."""
    manufacturer = _fourcc(fixed.get(0x105, 0)).rstrip("\0 ")
    vendor = "".join(_fourcc(fixed[p]) for p in (0x106, 0x107, 0x108, 0x109) if fixed.get(p))
    vendor = vendor.replace("\0", "").strip()
    fw1, fw2 = fixed.get(0x10B, 0), fixed.get(0x10C, 0)
    family = _fourcc(fixed.get(0x100, 0)).replace("\0", "")
    revision = fixed.get(0x102, 0)
    software = None
    if manufacturer == "IBM" and "SW" in vendor and "TPM" in vendor:
        software = "swtpm/libtpms (IBM software TPM)"
    elif manufacturer == "MSFT" and "Simulator" in vendor:
        software = "Microsoft TPM reference simulator"
    elif "swtpm" in vendor.lower() or "simulator" in vendor.lower():
        software = vendor
    return {
        "manufacturer": manufacturer,
        "manufacturer_raw": f"0x{fixed.get(0x105, 0):08x}",
        "manufacturer_name": MANUFACTURERS.get(manufacturer, "unknown"),
        "vendor_strings": vendor,
        "firmware_version": f"{fw1 >> 16}.{fw1 & 0xFFFF}.{fw2 >> 16}.{fw2 & 0xFFFF}",
        "firmware_version_raw": f"0x{fw1:08x}{fw2:08x}",
        "spec_family": family,
        "spec_level": fixed.get(0x101),
        "spec_revision": f"{revision // 100}.{revision % 100:02d}" if revision else None,
        "spec_year": fixed.get(0x104),
        "spec_day_of_year": fixed.get(0x103),
        "software_tpm": software is not None,
        "software_kind": software,
    }


def lockout_info(var):
    permanent = var.get(0x200, 0)
    return {
        "counter": var.get(0x20E),
        "max_tries": var.get(0x20F),
        "interval_s": var.get(0x210),
        "recovery_s": var.get(0x211),
        "in_lockout": bool(permanent & (1 << 9)),
        "owner_auth_set": bool(permanent & 1),
        "endorsement_auth_set": bool(permanent & 2),
        "lockout_auth_set": bool(permanent & 4),
    }


def pcr_banks(ectx):
    """{bank: [allocated indices]} from TPM_CAP_PCRS (banks with nothing allocated omitted)."""
    _more, cap = ectx.get_capability(TPM2_CAP.PCRS, 0, 1)
    banks = {}
    names = {v: k for k, v in HASH_ALGS.items()}
    for sel in cap.data.assignedPCR:
        bitmap = bytes(sel.pcrSelect)[: int(sel.sizeofSelect)]
        indices = [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8))]
        if indices:
            banks[names.get(int(sel.hash), f"0x{int(sel.hash):04x}")] = indices
    return banks


def handles(ectx, first):
    found = []
    prop = first
    while True:
        more, cap = ectx.get_capability(TPM2_CAP.HANDLES, prop, 64)
        items = [int(h) for h in cap.data.handles]
        found.extend(items)
        if not more or not items:
            return found
        prop = items[-1] + 1


def transient_handles(ectx):
    return handles(ectx, TPM2_HT.TRANSIENT << 24)


def loaded_session_handles(ectx):
    return handles(ectx, TPM2_HT.LOADED_SESSION << 24)


def no_resource_manager(tcti_name, conf):
    """Whether a TCTI reaches the TPM without a resource manager: a raw device node (/dev/tpmN, not
    /dev/tpmrmN) or a simulator endpoint. Only there do objects outlive the process that loaded them."""
    if tcti_name == "device":
        return not (conf or "").startswith("/dev/tpmrm")
    return tcti_name in ("swtpm", "mssim")


def flush_orphans(ectx, dry_run):
    """Flush the transient objects and loaded sessions in the TPM; the handles, as 0x strings.

    Only for a connection without a resource manager that this process holds
    alone (direct mode: the kernel lets one process open /dev/tpm0): whatever is
    loaded then was left by a process that has exited. Saved sessions and
    persistent objects are never touched. ``dry_run``: list them only.

    Returns ``(flushed, errors)``: the handles flushed (or, dry, to flush) as
    0x strings, and what could not be flushed (handle: TSS2 error)."""
    flushed, errors = [], {}
    for handle in transient_handles(ectx) + loaded_session_handles(ectx):
        try:
            if not dry_run:
                ectx.flush_context(ectx.tr_from_tpmpublic(handle))
        except TSS2_Exception as exc:
            errors[f"0x{handle:08x}"] = str(exc)
        else:
            flushed.append(f"0x{handle:08x}")
    return flushed, errors


def read_summary(ectx):
    """Everything tpm_facts/tpm_check report about an opened TPM."""
    fixed = get_properties(ectx, PT_FIXED)
    var = get_properties(ectx, PT_VAR, 32)
    summary = tpm_identity(fixed)
    summary["lockout"] = lockout_info(var)
    summary["pcr_banks"] = pcr_banks(ectx)
    summary["transient_objects"] = len(transient_handles(ectx))
    return summary


# --------------------------------------------------------------------------
# PCRs
# --------------------------------------------------------------------------


def read_pcrs(ectx, selection):
    """{bank: {"index": hex}} for ``[(bank, indices)]``; fails when a bank is not allocated."""
    values = {}
    for bank, indices in selection:
        values[bank] = {}
        for start in range(0, len(indices), 8):
            chunk = indices[start : start + 8]
            sel = TPML_PCR_SELECTION.parse(f"{bank}:{','.join(str(i) for i in chunk)}")
            _counter, sel_out, digests = ectx.pcr_read(sel)
            got = []
            for s in sel_out.pcrSelections:
                bitmap = bytes(s.pcrSelect)[: int(s.sizeofSelect)]
                got.extend(i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8)))
            missing = [i for i in chunk if i not in got]
            if missing:
                allocated = pcr_banks(ectx)
                raise TpmAccessError(
                    "pcr_bank",
                    f"PCR {bank}:{','.join(map(str, missing))} cannot be read: bank {bank} is not allocated on this "
                    f"TPM (allocated: {format_pcr_selection(sorted(allocated.items())) or 'none'}); choose "
                    "another 'pcrs' selection",
                )
            for i, digest in zip(sorted(got), list(digests.digests), strict=False):
                values[bank][str(i)] = bytes(digest).hex()
    return values


# --------------------------------------------------------------------------
# AK and quote
# --------------------------------------------------------------------------


def _template(text, attrs):
    return TPM2B_PUBLIC.parse(text, objectAttributes=TPMA_OBJECT(attrs))


_OBJECT_TYPES = {0x0001: "rsa", 0x0008: "keyedhash", 0x0023: "ecc", 0x0025: "symcipher"}
_AK_SCHEMES = {"ecc": ALG_ECDSA, "rsa": ALG_RSASSA}


def describe_object(pub_bytes):
    """What a persistent object is, in words: its type, use and attributes (and name when it is a key)."""
    data = bytes(pub_bytes)
    if len(data) >= 2 and struct.unpack(">H", data[:2])[0] == len(data) - 2:
        data = data[2:]
    if len(data) < 8:
        return "an object whose public area cannot be read"
    obj_type, _name_alg, attrs = struct.unpack(">HHI", data[:8])
    if obj_type not in (ALG_RSA, ALG_ECC):
        kind = {0x0008: "keyedhash object (sealed data or an HMAC key)", 0x0025: "symmetric key"}.get(
            obj_type, f"object of type 0x{obj_type:04x}"
        )
        return f"a {kind} (attributes 0x{attrs:08x})"
    pub = parse_public(data)
    restricted, sign, decrypt = (bool(attrs & flag) for flag in (TPMA_RESTRICTED, TPMA_SIGN_ENCRYPT, TPMA_DECRYPT))
    if restricted and decrypt:
        use = "storage key", "restricted decrypt: a parent such as an SRK or an EK"
    elif restricted and sign:
        use = "restricted signing key", "an attestation key of some program"
    elif sign and decrypt:
        use = "general-purpose key", "sign and decrypt"
    elif sign:
        use = "signing key", "unrestricted sign"
    else:
        use = "decryption key", "unrestricted decrypt"
    return f"a {use[0]} ({describe_public(pub)}, {use[1]}; attributes 0x{attrs:08x}, name {object_name(pub).hex()})"


def ak_algorithm(pub_bytes):
    """``ecc`` or ``rsa`` when the object is a tpmfleet AK (made from KEY_TEMPLATES with _AK_ATTRS), else None."""
    try:
        pub = parse_public(pub_bytes)
    except QuoteFormatError:
        return None
    if pub["attributes"] != _AK_ATTRS or pub["name_alg"] != HASH_ALGS["sha256"]:
        return None
    for algorithm, key in (("ecc", "ecc_p256"), ("rsa", "rsa2048")):
        if (
            describe_public(pub) == key
            and pub["scheme"] == _AK_SCHEMES[algorithm]
            and pub["scheme_hash"] == HASH_ALGS["sha256"]
        ):
            return algorithm
    return None


def check_persistent_ak(pub_bytes, key_algorithm, handle, persistent_handles):
    """Refuse to use an object at ``handle`` that is not a tpmfleet AK of ``key_algorithm``.

    Shared by the pytss and cli methods. tpmfleet never evicts or replaces what it did not
    create, and never advises doing so; ``persistent_handles()`` lists the TPM's persistent
    handles (called only to suggest a free one)."""
    found = ak_algorithm(pub_bytes)
    if found == key_algorithm:
        return parse_public(pub_bytes)
    want = "ecc_p256" if key_algorithm == "ecc" else "rsa2048"
    free = free_ak_handle(persistent_handles())
    if found is None:
        raise TpmAccessError(
            "persistent_handle",
            f"persistent_handle 0x{handle:08x} already holds {describe_object(pub_bytes)}, which tpmfleet did not "
            f"create (a tpmfleet AK is a {want} restricted signing key with attributes 0x{_AK_ATTRS:08x}). "
            "tpmfleet never uses, replaces or evicts an object it did not create: choose a free handle in the "
            f"owner range {AK_RANGE}, e.g. {free} (free on this TPM).",
        )
    raise TpmAccessError(
        "persistent_handle",
        f"persistent_handle 0x{handle:08x} holds a tpmfleet AK of key_algorithm {found}, not {key_algorithm}: "
        f"set key_algorithm: {found} to reuse it, or choose a free handle such as {free}. tpmfleet does not "
        "replace it (a consumer may use it); if nothing uses it any more, remove it yourself with "
        f"tpm2_evictcontrol -C o -c 0x{handle:08x}.",
    )


def _flush(ectx, handle):
    if handle is None:
        return
    with contextlib.suppress(Exception):  # best effort; the original error is more useful
        ectx.flush_context(handle)


def _persistent_tr(ectx, handle):
    """ESYS_TR for a persistent handle, or None when nothing is persisted there."""
    try:
        return ectx.tr_from_tpmpublic(handle)
    except TSS2_Exception as exc:
        if tpm_rc_code(exc.rc) == RC_HANDLE:
            return None
        raise


def permanent_auth(ectx):
    """{owner, endorsement, lockout}: which hierarchies have a password (TPM2_PT_PERMANENT)."""
    _more, cap = ectx.get_capability(TPM2_CAP.TPM_PROPERTIES, PT_PERMANENT, 1)
    items = [i for i in cap.data.tpmProperties if int(i.property) == PT_PERMANENT]
    return auth_flags(int(items[0].value) if items else 0)


def _create_under_ek(ectx, key_algorithm, timings):
    """The EK from the TCG default template, and the AK under it (each use of the EK takes a policy
    session satisfying PolicySecret(TPM_RH_ENDORSEMENT)). Returns (ek, ak, ak public bytes, ek public)."""
    _primary_tmpl, ak_tmpl = KEY_TEMPLATES[key_algorithm]
    t0 = time.perf_counter()
    ek, ek_pub, *_rest = ectx.create_primary(None, ek_template(EK_FOR_AK[key_algorithm]), ESYS_TR.ENDORSEMENT)
    timings["create_primary"] = _ms(t0)
    session = None
    try:
        t1 = time.perf_counter()
        session = ek_policy_session(ectx)
        priv, pub, *_rest = ectx.create(ek, None, _template(ak_tmpl, _AK_ATTRS), session1=session)
        flush_quietly(ectx, session)
        timings["create_ak"] = _ms(t1)
        t2 = time.perf_counter()
        session = ek_policy_session(ectx)
        ak = ectx.load(ek, priv, pub, session1=session)
        timings["load_ak"] = _ms(t2)
        return ek, ak, bytes(pub.marshal()), bytes(ek_pub.marshal())
    except BaseException:
        _flush(ectx, ek)
        raise
    finally:
        flush_quietly(ectx, session)


def _create_under_srk(ectx, key_algorithm, timings):
    primary_tmpl, ak_tmpl = KEY_TEMPLATES[key_algorithm]
    t0 = time.perf_counter()
    primary, primary_pub, *_rest = ectx.create_primary(None, _template(primary_tmpl, _SRK_ATTRS), ESYS_TR.OWNER)
    timings["create_primary"] = _ms(t0)
    try:
        t1 = time.perf_counter()
        priv, pub, *_rest = ectx.create(primary, None, _template(ak_tmpl, _AK_ATTRS))
        timings["create_ak"] = _ms(t1)
        t2 = time.perf_counter()
        ak = ectx.load(primary, priv, pub)
        timings["load_ak"] = _ms(t2)
        return primary, ak, bytes(pub.marshal()), bytes(primary_pub.marshal())
    except BaseException:
        _flush(ectx, primary)
        raise


def create_ak(ectx, key_algorithm, timings, hierarchy=ENDORSEMENT, endorsement_auth=None):
    """Create a parent primary in ``hierarchy`` (the EK in the endorsement hierarchy, an SRK-like key in
    the owner hierarchy) and an AK under it; return (ak ESYS_TR, AK TPM2B_PUBLIC bytes, parent
    TPM2B_PUBLIC bytes). The parent is flushed before returning; the AK is the caller's to flush.

    ``endorsement_auth`` (bytes) is set on the endorsement hierarchy when given; a refused
    authorization raises TpmAccessError('auth') at once, never retried."""
    if hierarchy == ENDORSEMENT and endorsement_auth:
        ectx.tr_set_auth(ESYS_TR.ENDORSEMENT, endorsement_auth)
    create = _create_under_ek if hierarchy == ENDORSEMENT else _create_under_srk
    try:
        parent, ak, pub_bytes, parent_bytes = create(ectx, key_algorithm, timings)
    except TSS2_Exception as exc:
        if tpm_rc_code(getattr(exc, "rc", 0)) in (RC_AUTH_FAIL, RC_BAD_AUTH):
            raise auth_refused(hierarchy, bool(endorsement_auth)) from None
        raise
    finally:
        if endorsement_auth:
            with contextlib.suppress(Exception):  # forget the password in the ESAPI context
                ectx.tr_set_auth(ESYS_TR.ENDORSEMENT, b"")
    _flush(ectx, parent)
    return ak, pub_bytes, parent_bytes


def _ms(t0):
    return round((time.perf_counter() - t0) * 1000.0, 3)


def build_quote(attest_bytes, sig_bytes, pcr_values, nonce_hex, selection):
    """The module's per-quote result dict (shared by the pytss and cli methods)."""
    sig = parse_signature(sig_bytes)
    std, fmt = signature_standard(sig)
    return {
        "nonce": nonce_hex,
        "message": base64.b64encode(attest_bytes).decode(),
        "signature": base64.b64encode(std).decode(),
        "signature_format": fmt,
        "signature_tpmt": base64.b64encode(sig_bytes).decode(),
        "pcrs": pcr_values,
        "pcr_selection": format_pcr_selection(selection),
    }


def digest_matches(attest_bytes, sig_bytes, pcr_values, selection):
    sig = parse_signature(sig_bytes)
    hash_name = {v: k for k, v in HASH_ALGS.items()}[sig["hash_alg"]]
    return compute_pcr_digest(selection, pcr_values, hash_name) == parse_attest(attest_bytes)["pcr_digest"]


def ak_result(pub_bytes, handle, persisted, reused, key_algorithm, origin=None):
    pub = parse_public(pub_bytes)
    return {
        **(origin or parent_result(None, None)),
        "algorithm": key_algorithm,
        "key": describe_public(pub),
        "public_pem": public_to_pem(pub),
        "public": base64.b64encode(pub_bytes).decode(),
        "name": object_name(pub).hex(),
        "handle": f"0x{handle:08x}" if handle else None,
        "persisted": persisted,
        "reused": reused,
    }


def quote_session(
    ectx, selection, nonces, key_algorithm, persistent_handle, check_mode, timings, endorsement_auth=None, notes=None
):
    """Do ``len(nonces)`` quotes with an AK (reused from / persisted at ``persistent_handle`` when set).

    A new AK is created under the hierarchy ``ak_parent.plan_new_ak`` picks from the TPM's
    TPM2_PT_PERMANENT flags; ``endorsement_auth`` (str) is presented only when the endorsement
    hierarchy has a password. ``notes`` (list) receives warnings for the user.

    Returns ``(ak_info, quotes, changed)``. Transient objects are always flushed."""
    ak = None
    ak_is_transient = False
    persistent_tr = None
    changed = False
    notes = [] if notes is None else notes
    try:
        t0 = time.perf_counter()
        if persistent_handle:
            persistent_tr = _persistent_tr(ectx, persistent_handle)
        if persistent_tr is not None:
            pub, _name, _qname = ectx.read_public(persistent_tr)
            pub_bytes = bytes(pub.marshal())
            check_persistent_ak(pub_bytes, key_algorithm, persistent_handle, lambda: handles(ectx, PERSISTENT_FIRST))
            ak = persistent_tr
            info = ak_result(pub_bytes, persistent_handle, True, True, key_algorithm)
        else:
            flags = permanent_auth(ectx)
            hierarchy, use_password, plan_notes = plan_new_ak(flags, endorsement_auth, persistent_handle)
            notes.extend(plan_notes)
            password = endorsement_auth.encode("utf-8") if use_password else None
            ak, pub_bytes, parent_bytes = create_ak(ectx, key_algorithm, timings, hierarchy, password)
            ak_is_transient = True
            persisted = False
            if persistent_handle:
                changed = True
                if not check_mode:
                    persistent_tr = ectx.evict_control(ESYS_TR.OWNER, ak, persistent_handle)
                    persisted = True
            info = ak_result(pub_bytes, persistent_handle, persisted, False, key_algorithm,
                             parent_result(hierarchy, parent_bytes))  # fmt: skip
        timings["key"] = _ms(t0)

        tpml = TPML_PCR_SELECTION.parse(format_pcr_selection(selection))
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
        quotes = []
        quote_ms = 0.0
        for nonce_hex in nonces:
            nonce = bytes.fromhex(nonce_hex)
            tq = time.perf_counter()
            for _attempt in range(3):
                values = read_pcrs(ectx, selection)
                attest, signature = ectx.quote(ak, tpml, nonce, scheme)
                attest_bytes = bytes(attest.marshal())[2:]
                sig_bytes = bytes(signature.marshal())
                if digest_matches(attest_bytes, sig_bytes, values, selection):
                    break
                # a PCR was extended between PCR_Read and Quote: read again after the quote
                values = read_pcrs(ectx, selection)
                if digest_matches(attest_bytes, sig_bytes, values, selection):
                    break
            quote = build_quote(attest_bytes, sig_bytes, values, nonce_hex, selection)
            quote["quote_ms"] = _ms(tq)
            quote_ms += quote["quote_ms"]
            quotes.append(quote)
        timings["quote"] = round(quote_ms, 3)
        return info, quotes, changed
    finally:
        if ak_is_transient:
            _flush(ectx, ak)
        if persistent_tr is not None:
            with contextlib.suppress(Exception):  # closing an ESYS resource cannot leak TPM memory
                ectx.tr_close(persistent_tr)
