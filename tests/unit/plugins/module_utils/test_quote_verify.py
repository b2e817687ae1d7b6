"""Controller-side quote verification: real swtpm quotes, tampered copies, and tpm2_checkquote."""

from __future__ import annotations

import base64
import copy
import os
import shutil
import struct
import subprocess

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify as qv
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import open_esapi
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import quote_session
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tpm_marshal import marshal_pcr_selection, tpm2_tools_pcrs_file

SEL = "sha256:0,1,2,3,4,5,6,7"


def make_result(tcti, key_algorithm="ecc", count=2, pcrs=SEL):
    nonces = [os.urandom(20) for _ in range(count)]
    ectx = open_esapi(tcti)
    try:
        ak, quotes, _changed = quote_session(
            ectx, qv.parse_pcr_selection(pcrs), [n.hex() for n in nonces], key_algorithm, None, False, {}
        )
    finally:
        ectx.close()
    return {"ak": ak, "quotes": quotes}, nonces


@pytest.fixture(scope="module")
def ecc_quote(swtpm):
    return make_result(swtpm.tcti, "ecc")


@pytest.fixture(scope="module")
def rsa_quote(swtpm):
    return make_result(swtpm.tcti, "rsa", count=1)


# ---------------------------------------------------------------- pure parsing


def test_parse_pcr_selection_syntax():
    assert qv.parse_pcr_selection("sha256:7,0,3") == [("sha256", [0, 3, 7])]
    assert qv.parse_pcr_selection("sha256:0-2+sha:10") == [("sha256", [0, 1, 2]), ("sha1", [10])]
    assert qv.parse_pcr_selection("sha384:all") == [("sha384", list(range(24)))]
    assert qv.format_pcr_selection(qv.parse_pcr_selection("sha1:1+sha256:2")) == "sha1:1+sha256:2"


@pytest.mark.parametrize("bad", ["", "sha256", "md5:0", "sha256:24", "sha256:a", "sha256:3-1", "sha1:0+sha1:1"])
def test_parse_pcr_selection_rejects(bad):
    with pytest.raises(ValueError, match="PCR selection"):
        qv.parse_pcr_selection(bad)


def test_marshal_pcr_selection_layout():
    raw = marshal_pcr_selection([("sha256", [0, 1, 2, 3, 4, 5, 6, 7]), ("sha1", [8, 23])])
    assert raw == struct.pack(">I", 2) + bytes.fromhex("000b03ff0000") + bytes.fromhex("000403000180")


def test_der_pem_match_cryptography(ecc_quote, rsa_quote):
    for result, _nonces in (ecc_quote, rsa_quote):
        pub = qv.parse_public(base64.b64decode(result["ak"]["public"]))
        ours = qv.public_to_pem(pub)
        theirs = (
            qv.public_key_from_parsed(pub)
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        assert ours == theirs == result["ak"]["public_pem"]


# ---------------------------------------------------------------- verification of real quotes


def test_real_ecc_quotes_verify(ecc_quote):
    result, nonces = ecc_quote
    details = qv.verify_module_result(result, nonces, SEL)
    assert [d["nonce"] for d in details] == [n.hex() for n in nonces]
    assert all(d["signature_format"] == "ecdsa-der" for d in details)
    assert details[0]["ak_name"] == result["ak"]["name"]


def test_real_rsa_quote_verifies(rsa_quote):
    result, nonces = rsa_quote
    (detail,) = qv.verify_module_result(result, nonces, SEL)
    assert detail["signature_format"] == "rsassa-pkcs1v15"


def _flip(b64, offset):
    raw = bytearray(base64.b64decode(b64))
    raw[offset] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _expect(result, nonces, check, selection=SEL):
    with pytest.raises(qv.QuoteVerificationError) as err:
        qv.verify_module_result(result, nonces, selection)
    assert err.value.check == check, str(err.value)
    return err.value


def test_tampered_message_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    result["quotes"][1]["message"] = _flip(result["quotes"][1]["message"], 40)
    err = _expect(result, nonces, "signature")
    assert err.index == 1


def test_tampered_signature_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    q = result["quotes"][0]
    q["signature_tpmt"] = _flip(q["signature_tpmt"], 10)
    sig = qv.parse_signature(base64.b64decode(q["signature_tpmt"]))
    q["signature"] = base64.b64encode(qv.signature_standard(sig)[0]).decode()
    _expect(result, nonces, "signature")


def test_inconsistent_signature_encodings_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    result["quotes"][0]["signature"] = result["quotes"][1]["signature"]
    _expect(result, nonces, "signature")


def test_wrong_nonce_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    err = _expect(result, [os.urandom(20), nonces[1]], "nonce")
    assert "differs from the nonce" in str(err)
    # replaying quote 1 for nonce 0 is caught too
    result["quotes"] = [result["quotes"][1], result["quotes"][1]]
    _expect(result, nonces, "nonce")


def test_tampered_pcr_value_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    result["quotes"][0]["pcrs"]["sha256"]["3"] = "11" * 32
    err = _expect(result, nonces, "pcr_digest")
    assert "PCR values altered" in str(err)


def test_missing_pcr_value_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    del result["quotes"][0]["pcrs"]["sha256"]["7"]
    _expect(result, nonces, "pcr_values")


def test_pcr_selection_mismatch_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    err = _expect(result, nonces, "pcr_selection", selection="sha256:0,1,2,3,4,5,6")
    assert "sha256:0,1,2,3,4,5,6,7" in str(err)
    _expect(result, nonces, "pcr_selection", selection="sha1:0,1,2,3,4,5,6,7")


def test_wrong_ak_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    result["ak"]["public_pem"] = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    _expect(result, nonces, "signature")


def test_ak_public_area_must_match_pem(ecc_quote, rsa_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    result["ak"]["public"] = rsa_quote[0]["ak"]["public"]
    _expect(result, nonces, "ak_public_area")


def test_count_mismatch_rejected(ecc_quote):
    result, nonces = copy.deepcopy(ecc_quote)
    _expect(result, nonces[:1], "count")


def _soft_signed(attest):
    """A quote signed by a software key: lets us test magic/type checks the TPM would never produce."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(attest, ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    tpmt = struct.pack(">HH", qv.ALG_ECDSA, 0x000B)
    tpmt += struct.pack(">H", 32) + r.to_bytes(32, "big") + struct.pack(">H", 32) + s.to_bytes(32, "big")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode(), der, tpmt


def _attest(magic, typ, nonce, selection, digest):
    body = struct.pack(">IH", magic, typ) + struct.pack(">H", 2) + b"\x00\x0b"
    body += struct.pack(">H", len(nonce)) + nonce + struct.pack(">QIIB", 1, 2, 3, 1) + struct.pack(">Q", 4)
    return body + marshal_pcr_selection(selection) + struct.pack(">H", len(digest)) + digest


@pytest.mark.parametrize(("magic", "typ", "check"), [(0xFF544348, 0x8018, "magic"), (0xFF544347, 0x8017, "type")])
def test_magic_and_type_checked(magic, typ, check):
    nonce = os.urandom(20)
    sel = qv.parse_pcr_selection("sha256:0")
    pcrs = {"sha256": {"0": "00" * 32}}
    attest = _attest(magic, typ, nonce, sel, qv.compute_pcr_digest(sel, pcrs))
    pem, der, tpmt = _soft_signed(attest)
    quote = {
        "message": base64.b64encode(attest).decode(),
        "signature": base64.b64encode(der).decode(),
        "signature_tpmt": base64.b64encode(tpmt).decode(),
        "pcrs": pcrs,
    }
    if check == "type":
        with pytest.raises(qv.QuoteVerificationError) as err:
            qv.verify_quote(quote, pem, nonce, sel)
    else:
        with pytest.raises(qv.QuoteVerificationError) as err:
            qv.verify_quote(quote, pem, nonce, sel)
    assert err.value.check == check
    # and the same software-signed structure with the right magic/type passes
    good = _attest(0xFF544347, 0x8018, nonce, sel, qv.compute_pcr_digest(sel, pcrs))
    pem, der, tpmt = _soft_signed(good)
    quote.update(
        message=base64.b64encode(good).decode(),
        signature=base64.b64encode(der).decode(),
        signature_tpmt=base64.b64encode(tpmt).decode(),
    )
    assert qv.verify_quote(quote, pem, nonce, sel)["pcr_selection"] == "sha256:0"


# ---------------------------------------------------------------- independent verifier: tpm2_checkquote


def _checkquote(result, nonce, directory, index=0, selection=SEL):
    q = result["quotes"][index]
    files = {
        "ak.pem": result["ak"]["public_pem"].encode(),
        "msg": base64.b64decode(q["message"]),
        "sig": base64.b64decode(q["signature_tpmt"]),
        "pcrs": tpm2_tools_pcrs_file(qv.parse_pcr_selection(selection), q["pcrs"]),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    cmd = [
        "tpm2_checkquote", "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs",
        "-g", "sha256", "-q", nonce.hex(),
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=directory, capture_output=True, text=True, check=False)


needs_checkquote = pytest.mark.skipif(shutil.which("tpm2_checkquote") is None, reason="tpm2-tools not installed")


@needs_checkquote
@pytest.mark.parametrize("fixture", ["ecc_quote", "rsa_quote"])
def test_tpm2_checkquote_accepts_our_quotes(fixture, request, scratch):
    result, nonces = request.getfixturevalue(fixture)
    proc = _checkquote(result, nonces[0], scratch)
    assert proc.returncode == 0, proc.stderr
    assert "pcrs:" in proc.stdout


@needs_checkquote
def test_tpm2_checkquote_rejects_wrong_nonce(ecc_quote, scratch):
    result, _nonces = ecc_quote
    proc = _checkquote(result, os.urandom(20), scratch)
    assert proc.returncode != 0


@needs_checkquote
def test_tpm2_checkquote_rejects_altered_pcrs(ecc_quote, scratch):
    result, nonces = copy.deepcopy(ecc_quote)
    result["quotes"][0]["pcrs"]["sha256"]["0"] = "22" * 32
    proc = _checkquote(result, nonces[0], scratch)
    assert proc.returncode != 0
