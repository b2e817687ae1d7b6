# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure TPM 2.0 quote parsing and verification (no tpm2-pytss needed).

Used in two places:

* on the managed host by the tpm_quote module (``cli`` method: convert what
  tpm2_quote wrote into the same fields the ``pytss`` method returns; both
  methods: compute DER signatures and PEM keys, self-check PCR digests);
* on the controller by the tpm_quote action plugin, which verifies every quote
  with ``cryptography`` only.

Only the standard library and ``cryptography`` are imported, so this file can
also be loaded outside the ``ansible.module_utils`` namespace (the action
plugin loads it through ``module_utils_loader``; see plugins/action/tpm_quote.py).

All TPM structures are big-endian ("TPM canonical form"). References are to
TPM 2.0 Library spec part 2 (Structures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018

ALG_RSA = 0x0001
ALG_NULL = 0x0010
ALG_RSASSA = 0x0014
ALG_RSAPSS = 0x0016
ALG_ECDSA = 0x0018
ALG_ECC = 0x0023

HASH_ALGS = {
    "sha1": 0x0004,
    "sha256": 0x000B,
    "sha384": 0x000C,
    "sha512": 0x000D,
}
HASH_ALG_NAMES = {v: k for k, v in HASH_ALGS.items()}
# tpm2-tools also accepts "sha" for sha1
HASH_ALIASES = {"sha": "sha1"}
HASH_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

ECC_CURVES = {0x0003: "secp256r1", 0x0004: "secp384r1", 0x0005: "secp521r1"}

# TPMA_OBJECT bits
TPMA_FIXEDTPM = 0x00000002
TPMA_FIXEDPARENT = 0x00000010
TPMA_SENSITIVEDATAORIGIN = 0x00000020
TPMA_USERWITHAUTH = 0x00000040
TPMA_NODA = 0x00000400
TPMA_RESTRICTED = 0x00010000
TPMA_DECRYPT = 0x00020000
TPMA_SIGN_ENCRYPT = 0x00040000

MAX_PCR = 24
PCR_SELECT_BYTES = 3


class QuoteFormatError(ValueError):
    """A structure could not be parsed (truncated, wrong tag, unsupported algorithm)."""


class QuoteVerificationError(Exception):
    """A quote failed verification. ``check`` names the failed check, ``str()`` explains it."""

    def __init__(self, check, message, index=None):
        self.check = check
        self.index = index
        prefix = f"quote {index}: " if index is not None else ""
        super().__init__(f"{prefix}{check} check failed: {message}")


# --------------------------------------------------------------------------
# PCR selections (tpm2-tools syntax: "sha256:0,1,2+sha1:0-7", "sha256:all")
# --------------------------------------------------------------------------


def parse_pcr_selection(text):
    """Parse a tpm2-tools PCR list into ``[(bank, [indices ascending])]`` (bank order kept).

    Raises ValueError with a user-facing explanation.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty PCR selection; expected e.g. sha256:0,1,2,3,4,5,6,7")
    result = []
    seen_banks = set()
    for part in text.strip().split("+"):
        bank, sep, indices = part.strip().partition(":")
        bank = HASH_ALIASES.get(bank.strip().lower(), bank.strip().lower())
        if not sep or bank not in HASH_ALGS:
            raise ValueError(
                f"invalid PCR selection {text!r}: {part!r} must be BANK:INDICES with BANK one of "
                f"{', '.join(sorted(HASH_ALGS))} (e.g. sha256:0,1,2,3,4,5,6,7)"
            )
        if bank in seen_banks:
            raise ValueError(f"invalid PCR selection {text!r}: bank {bank} listed twice")
        seen_banks.add(bank)
        chosen = set()
        indices = indices.strip()
        if indices.lower() == "all":
            chosen.update(range(MAX_PCR))
        else:
            for item in indices.split(","):
                item = item.strip()
                try:
                    if "-" in item:
                        lo, hi = (int(x, 0) for x in item.split("-", 1))
                        if lo > hi:
                            raise ValueError
                        chosen.update(range(lo, hi + 1))
                    else:
                        chosen.add(int(item, 0))
                except ValueError:
                    raise ValueError(f"invalid PCR selection {text!r}: {item!r} is not a PCR index or range") from None
        bad = [i for i in chosen if i < 0 or i >= MAX_PCR]
        if bad or not chosen:
            raise ValueError(f"invalid PCR selection {text!r}: PCR indices must be 0..{MAX_PCR - 1}")
        result.append((bank, sorted(chosen)))
    return result


def format_pcr_selection(selection):
    return "+".join(f"{bank}:{','.join(str(i) for i in idx)}" for bank, idx in selection)


def selection_from_attest(pcr_select):
    """Convert the parsed ``[(alg_id, bitmap)]`` of an attest into ``[(bank, indices)]``."""
    result = []
    for alg, bitmap in pcr_select:
        name = HASH_ALG_NAMES.get(alg, f"0x{alg:04x}")
        indices = [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8))]
        result.append((name, indices))
    return result


# --------------------------------------------------------------------------
# Big-endian reader
# --------------------------------------------------------------------------


class _Reader:
    def __init__(self, data, what):
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def take(self, n):
        if self.pos + n > len(self.data):
            raise QuoteFormatError(f"{self.what} is truncated (needed {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def tpm2b(self):
        return self.take(self.u16())

    def rest(self):
        return len(self.data) - self.pos


# --------------------------------------------------------------------------
# TPMS_ATTEST
# --------------------------------------------------------------------------


def parse_attest(data):
    """Parse a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE. Magic/type are returned, not checked."""
    r = _Reader(data, "TPMS_ATTEST")
    att = {
        "magic": r.u32(),
        "type": r.u16(),
        "qualified_signer": r.tpm2b(),
        "extra_data": r.tpm2b(),
        "clock": r.u64(),
        "reset_count": r.u32(),
        "restart_count": r.u32(),
        "safe": bool(r.u8()),
        "firmware_version": r.u64(),
    }
    if att["type"] == TPM_ST_ATTEST_QUOTE:
        count = r.u32()
        if count > 16:
            raise QuoteFormatError(f"TPMS_ATTEST has an implausible PCR selection count {count}")
        sel = []
        for _index in range(count):
            alg = r.u16()
            size = r.u8()
            sel.append((alg, r.take(size)))
        att["pcr_select"] = sel
        att["pcr_digest"] = r.tpm2b()
        if r.rest():
            raise QuoteFormatError(f"TPMS_ATTEST has {r.rest()} trailing bytes")
    return att


# --------------------------------------------------------------------------
# TPMT_SIGNATURE
# --------------------------------------------------------------------------


def parse_signature(data):
    """Parse a marshalled TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA)."""
    r = _Reader(data, "TPMT_SIGNATURE")
    alg = r.u16()
    sig = {"sig_alg": alg}
    if alg in (ALG_RSASSA, ALG_RSAPSS):
        sig["hash_alg"] = r.u16()
        sig["sig"] = r.tpm2b()
    elif alg == ALG_ECDSA:
        sig["hash_alg"] = r.u16()
        sig["r"] = r.tpm2b()
        sig["s"] = r.tpm2b()
    else:
        raise QuoteFormatError(f"unsupported TPMT_SIGNATURE algorithm 0x{alg:04x} (expected RSASSA, RSAPSS or ECDSA)")
    if r.rest():
        raise QuoteFormatError(f"TPMT_SIGNATURE has {r.rest()} trailing bytes")
    return sig


def signature_standard(sig):
    """Return ``(bytes, format_name)``: DER ECDSA-Sig-Value, or the raw RSA signature."""
    if sig["sig_alg"] == ALG_ECDSA:
        r = int.from_bytes(sig["r"], "big")
        s = int.from_bytes(sig["s"], "big")
        return _der(0x30, _der_int(r) + _der_int(s)), "ecdsa-der"
    if sig["sig_alg"] == ALG_RSASSA:
        return sig["sig"], "rsassa-pkcs1v15"
    return sig["sig"], "rsapss"


# --------------------------------------------------------------------------
# Minimal DER (so the managed host needs no cryptography import for PEM/DER output)
# --------------------------------------------------------------------------

_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_CURVE_OIDS = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34", "secp521r1": "1.3.132.0.35"}
_CURVE_BYTES = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _der_int(value):
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")  # leading 0 keeps it positive
    return _der(0x02, raw)


def _der_oid(dotted):
    parts = [int(x) for x in dotted.split(".")]
    body = bytes([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, body)


def spki_der(pub):
    """DER SubjectPublicKeyInfo for a parsed TPMT_PUBLIC."""
    if "rsa" in pub:
        n, e = pub["rsa"]
        algo = _der(0x30, _der_oid(_OID_RSA_ENCRYPTION) + b"\x05\x00")
        key = _der(0x30, _der_int(n) + _der_int(e))
    else:
        curve_id, x, y = pub["ecc"]
        curve = ECC_CURVES.get(curve_id)
        if curve is None:
            raise QuoteFormatError(f"unsupported ECC curve 0x{curve_id:04x}")
        size = _CURVE_BYTES[curve]
        algo = _der(0x30, _der_oid(_OID_EC_PUBLIC_KEY) + _der_oid(_CURVE_OIDS[curve]))
        key = b"\x04" + x.to_bytes(size, "big") + y.to_bytes(size, "big")
    return _der(0x30, algo + _der(0x03, b"\x00" + key))


# --------------------------------------------------------------------------
# TPMT_PUBLIC / TPM2B_PUBLIC
# --------------------------------------------------------------------------


def _skip_sym_def(r):
    alg = r.u16()
    if alg != ALG_NULL:
        r.u16()  # keyBits
        r.u16()  # mode
    return alg


def parse_public(data):
    """Parse a TPM2B_PUBLIC (size-prefixed) or bare TPMT_PUBLIC. Returns a dict with
    ``type, name_alg, attributes, scheme, scheme_hash, tpmt`` (the TPMT_PUBLIC bytes) and
    ``ecc: (curve, x, y)`` or ``rsa: (n, e)``."""
    data = bytes(data)
    if len(data) >= 2 and struct.unpack(">H", data[:2])[0] == len(data) - 2:
        data = data[2:]
    r = _Reader(data, "TPMT_PUBLIC")
    pub = {"type": r.u16(), "name_alg": r.u16(), "attributes": r.u32()}
    r.tpm2b()  # authPolicy
    if pub["type"] == ALG_RSA:
        pub["symmetric"] = _skip_sym_def(r)
        pub["scheme"] = r.u16()
        pub["scheme_hash"] = r.u16() if pub["scheme"] != ALG_NULL else None
        pub["key_bits"] = r.u16()
        exponent = r.u32() or 65537
        pub["rsa"] = (int.from_bytes(r.tpm2b(), "big"), exponent)
    elif pub["type"] == ALG_ECC:
        pub["symmetric"] = _skip_sym_def(r)
        pub["scheme"] = r.u16()
        pub["scheme_hash"] = r.u16() if pub["scheme"] != ALG_NULL else None
        curve = r.u16()
        kdf = r.u16()
        if kdf != ALG_NULL:
            r.u16()
        pub["ecc"] = (curve, int.from_bytes(r.tpm2b(), "big"), int.from_bytes(r.tpm2b(), "big"))
    else:
        raise QuoteFormatError(f"unsupported public key type 0x{pub['type']:04x} (expected RSA or ECC)")
    if r.rest():
        raise QuoteFormatError(f"TPMT_PUBLIC has {r.rest()} trailing bytes")
    pub["tpmt"] = data
    return pub


def public_key_from_parsed(pub):
    """cryptography public key object for a parsed TPMT_PUBLIC."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if "rsa" in pub:
        n, e = pub["rsa"]
        return rsa.RSAPublicNumbers(e, n).public_key()
    curve_id, x, y = pub["ecc"]
    curve_name = ECC_CURVES.get(curve_id)
    if curve_name is None:
        raise QuoteFormatError(f"unsupported ECC curve 0x{curve_id:04x}")
    curve = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}[curve_name]()
    return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()


def public_to_pem(pub_or_bytes):
    pub = parse_public(pub_or_bytes) if isinstance(pub_or_bytes, (bytes, bytearray)) else pub_or_bytes
    b64 = base64.b64encode(spki_der(pub)).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def object_name(pub):
    """TPM name of an object: nameAlg || H_nameAlg(TPMT_PUBLIC)."""
    alg = HASH_ALG_NAMES.get(pub["name_alg"])
    if alg is None:
        raise QuoteFormatError(f"unsupported name algorithm 0x{pub['name_alg']:04x}")
    return struct.pack(">H", pub["name_alg"]) + hashlib.new(alg, pub["tpmt"]).digest()


def describe_public(pub):
    if "rsa" in pub:
        return f"rsa{pub['key_bits']}"
    return {"secp256r1": "ecc_p256", "secp384r1": "ecc_p384", "secp521r1": "ecc_p521"}.get(
        ECC_CURVES.get(pub["ecc"][0], ""), "ecc"
    )


# --------------------------------------------------------------------------
# PCR digest
# --------------------------------------------------------------------------


def pcr_values_in_order(selection, pcr_values):
    """Concatenate PCR values (``{bank: {index(str|int): hex}}``) in selection order."""
    out = b""
    for bank, indices in selection:
        values = pcr_values.get(bank)
        if not isinstance(values, dict):
            raise QuoteFormatError(f"no PCR values returned for bank {bank}")
        for i in indices:
            val = values.get(str(i), values.get(i))
            if val is None:
                raise QuoteFormatError(f"no value returned for PCR {bank}:{i}")
            try:
                raw = binascii.unhexlify(val)
            except (binascii.Error, TypeError, ValueError):
                raise QuoteFormatError(f"PCR {bank}:{i} value is not hex") from None
            if len(raw) != HASH_SIZES[bank]:
                raise QuoteFormatError(f"PCR {bank}:{i} value has {len(raw)} bytes, expected {HASH_SIZES[bank]}")
            out += raw
    return out


def compute_pcr_digest(selection, pcr_values, hash_name="sha256"):
    return hashlib.new(hash_name, pcr_values_in_order(selection, pcr_values)).digest()


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------


def _b64(value, what, index):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise QuoteVerificationError("format", f"{what} is not valid base64", index) from None


def _verify_signature(key, sig_bytes, sig_alg, hash_name, message):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algo = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[hash_name]()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if sig_alg != ALG_ECDSA:
                return False
            key.verify(sig_bytes, message, ec.ECDSA(algo))
        elif isinstance(key, rsa.RSAPublicKey):
            if sig_alg == ALG_RSASSA:
                key.verify(sig_bytes, message, padding.PKCS1v15(), algo)
            elif sig_alg == ALG_RSAPSS:
                key.verify(sig_bytes, message, padding.PSS(mgf=padding.MGF1(algo), salt_length=padding.PSS.AUTO), algo)
            else:
                return False
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_quote(quote, ak_pem, nonce, selection, index=None, ak_public=None):
    """Verify one quote as returned by the tpm_quote module.

    ``quote``: dict with ``message`` (b64 TPMS_ATTEST), ``signature`` (b64, DER ECDSA or raw RSA),
    ``signature_tpmt`` (b64 marshalled TPMT_SIGNATURE), ``pcrs`` ({bank: {index: hex}}).
    ``ak_pem``: PEM public key; ``nonce``: expected extraData bytes; ``selection``: the requested
    ``[(bank, indices)]``; ``ak_public``: optional TPM2B_PUBLIC bytes (then the key must match the
    PEM, be a restricted signing key, and its name must equal the attest's qualifiedSigner).

    Returns a dict of details; raises QuoteVerificationError naming the failed check.
    """
    from cryptography.hazmat.primitives import serialization

    if not isinstance(quote, dict):
        raise QuoteVerificationError("format", "quote is not a mapping", index)
    for field in ("message", "signature", "signature_tpmt", "pcrs"):
        if field not in quote:
            raise QuoteVerificationError("format", f"quote has no {field!r}", index)
    message = _b64(quote["message"], "message", index)
    sig_std = _b64(quote["signature"], "signature", index)
    sig_tpmt = _b64(quote["signature_tpmt"], "signature_tpmt", index)

    try:
        key = serialization.load_pem_public_key(ak_pem.encode() if isinstance(ak_pem, str) else ak_pem)
    except (ValueError, TypeError) as exc:
        raise QuoteVerificationError("ak_public_key", f"AK public key is not a valid PEM key ({exc})", index) from None

    try:
        sig = parse_signature(sig_tpmt)
        attest = parse_attest(message)
    except QuoteFormatError as exc:
        raise QuoteVerificationError("format", str(exc), index) from None

    hash_name = HASH_ALG_NAMES.get(sig["hash_alg"])
    if hash_name is None:
        raise QuoteVerificationError("signature", f"unsupported signature hash 0x{sig['hash_alg']:04x}", index)
    std_from_tpmt, sig_format = signature_standard(sig)
    if not hmac.compare_digest(std_from_tpmt, sig_std):
        raise QuoteVerificationError(
            "signature", "the standard-encoded signature does not match the marshalled TPMT_SIGNATURE", index
        )
    # 1. signature over the attest bytes
    if not _verify_signature(key, sig_std, sig["sig_alg"], hash_name, message):
        raise QuoteVerificationError(
            "signature", f"the {sig_format} signature does not verify over the attest with the returned AK key", index
        )
    # 2. structure
    if attest["magic"] != TPM_GENERATED_VALUE:
        raise QuoteVerificationError(
            "magic", f"TPMS_ATTEST magic is 0x{attest['magic']:08x}, expected 0x{TPM_GENERATED_VALUE:08x}", index
        )
    if attest["type"] != TPM_ST_ATTEST_QUOTE:
        raise QuoteVerificationError(
            "type", f"TPMS_ATTEST type is 0x{attest['type']:04x}, expected TPM_ST_ATTEST_QUOTE (0x8018)", index
        )
    # 3. freshness
    if not hmac.compare_digest(attest["extra_data"], nonce):
        raise QuoteVerificationError(
            "nonce",
            f"extraData {attest['extra_data'].hex()} differs from the nonce {nonce.hex()} sent by the controller",
            index,
        )
    # 4. selection
    quoted = selection_from_attest(attest["pcr_select"])
    if [(b, list(i)) for b, i in quoted] != [(b, list(i)) for b, i in selection]:
        raise QuoteVerificationError(
            "pcr_selection",
            f"the TPM quoted {format_pcr_selection(quoted) or 'no PCRs'} but {format_pcr_selection(selection)} "
            "was requested (is that PCR bank allocated?)",
            index,
        )
    # 5. PCR digest from the returned values
    try:
        digest = compute_pcr_digest(selection, quote["pcrs"], hash_name)
    except QuoteFormatError as exc:
        raise QuoteVerificationError("pcr_values", str(exc), index) from None
    if not hmac.compare_digest(digest, attest["pcr_digest"]):
        raise QuoteVerificationError(
            "pcr_digest",
            f"{hash_name} over the returned PCR values is {digest.hex()} but the quote says "
            f"{attest['pcr_digest'].hex()} (PCR values altered or extended between read and quote)",
            index,
        )
    details = {
        "signature_format": sig_format,
        "hash": hash_name,
        "nonce": nonce.hex(),
        "pcr_digest": digest.hex(),
        "pcr_selection": format_pcr_selection(selection),
        "clock": attest["clock"],
        "reset_count": attest["reset_count"],
        "restart_count": attest["restart_count"],
        "firmware_version": f"0x{attest['firmware_version']:016x}",
        "qualified_signer": attest["qualified_signer"].hex(),
    }
    # 6. optional: AK public area consistent with the PEM and the attest
    if ak_public is not None:
        try:
            pub = parse_public(ak_public)
            from_area = public_key_from_parsed(pub)
        except (QuoteFormatError, ValueError) as exc:
            raise QuoteVerificationError("ak_public_area", str(exc), index) from None
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if from_area.public_bytes(*der) != key.public_bytes(*der):
            raise QuoteVerificationError("ak_public_area", "the AK public area does not match the AK PEM key", index)
        need = TPMA_RESTRICTED | TPMA_SIGN_ENCRYPT | TPMA_FIXEDTPM
        if pub["attributes"] & need != need or pub["attributes"] & TPMA_DECRYPT:
            raise QuoteVerificationError(
                "ak_public_area",
                f"the AK is not a fixedTPM restricted signing key (attributes 0x{pub['attributes']:08x})",
                index,
            )
        details["ak_name"] = object_name(pub).hex()
    return details


def verify_module_result(result, nonces, selection_text):
    """Verify a whole tpm_quote module result against the controller's nonces (list of bytes)
    and the requested selection string. Returns the list of per-quote details."""
    try:
        selection = parse_pcr_selection(selection_text)
    except ValueError as exc:
        raise QuoteVerificationError("pcr_selection", str(exc)) from None
    quotes = result.get("quotes")
    ak = result.get("ak") or {}
    if not isinstance(quotes, list):
        raise QuoteVerificationError("format", "the module returned no 'quotes' list")
    if len(quotes) != len(nonces):
        raise QuoteVerificationError("count", f"the module returned {len(quotes)} quotes for {len(nonces)} nonces")
    if not ak.get("public_pem"):
        raise QuoteVerificationError("ak_public_key", "the module returned no AK public key (ak.public_pem)")
    ak_public = None
    if ak.get("public"):
        try:
            ak_public = base64.b64decode(ak["public"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise QuoteVerificationError("format", "ak.public is not valid base64") from None
    details = []
    for i, (quote, nonce) in enumerate(zip(quotes, nonces, strict=True)):
        details.append(verify_quote(quote, ak["public_pem"], nonce, selection, index=i, ak_public=ak_public))
    return details
