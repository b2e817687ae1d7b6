"""Host-side and DER helpers of tpm_info (no TPM needed)."""

from __future__ import annotations

import datetime
import hashlib

from ansible_collections.tpmfleet.tpm.plugins.module_utils import tpm_info
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _cert(not_after):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vendor EK CA 0é")])
    start = datetime.datetime(2019, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Host")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(123456789)
        .not_valid_before(start)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert, cert.public_bytes(serialization.Encoding.DER)


def test_certificate_info_matches_cryptography():
    # 2051 is written as GeneralizedTime, 2019 as UTCTime: both forms are parsed
    cert, der = _cert(datetime.datetime(2051, 1, 1, tzinfo=datetime.UTC))
    info = tpm_info.certificate_info(der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert info == {
        "size": len(der),
        "sha256": hashlib.sha256(der).hexdigest(),
        "issuer": "CN=Vendor EK CA 0é",
        "subject": "O=Host",
        "not_before": "2019-05-06T07:08:09Z",
        "not_after": "2051-01-01T00:00:00Z",
        "public_key_sha256": hashlib.sha256(spki).hexdigest(),
    }


def test_padding_after_the_certificate_is_ignored_and_garbage_is_reported():
    _cert_obj, der = _cert(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
    assert tpm_info._der_prefix(der + b"\xff" * 100) == der
    bad = tpm_info.certificate_info(b"\xff\xff\xff")
    assert bad["size"] == 3 and "not a DER X.509 certificate" in bad["parse_error"]


def test_readers_from_mode():
    node = {"exists": True, "mode": "0440", "owner": "root", "group": "tss"}
    assert tpm_info.readers(node) == {"owner": "root", "group": "tss", "others": False}
    assert tpm_info.readers(dict(node, mode="0604")) == {"owner": "root", "group": None, "others": True}
    assert tpm_info.readers({"exists": False}) is None


def test_event_log_missing_says_why(tmp_path):
    info = tpm_info.event_log(str(tmp_path / "binary_bios_measurements"))
    assert info["exists"] is False and info["reason"]


def test_event_log_present(tmp_path):
    log = tmp_path / "binary_bios_measurements"
    log.write_bytes(b"\0" * 32)
    log.chmod(0o440)
    info = tpm_info.event_log(str(log))
    assert info["exists"] and info["mode"] == "0440"
    assert info["readable_by"]["group"] == info["group"] and info["readable_by"]["others"] is False


def test_tcti_env_missing_and_quoted(tmp_path):
    assert tpm_info.tcti_env(str(tmp_path / "nope")) == {"path": str(tmp_path / "nope"), "exists": False,
                                                         "variables": {}}  # fmt: skip
    env = tmp_path / "tcti.env"
    env.write_text('TCTI="tabrmd:bus_type=system"\n\n# comment\nnot a variable\nTPM2TOOLS_TCTI=device:/dev/tpm0\n')
    assert tpm_info.tcti_env(str(env))["variables"] == {
        "TCTI": "tabrmd:bus_type=system",
        "TPM2TOOLS_TCTI": "device:/dev/tpm0",
    }


def test_accounts_of_missing_and_present_names():
    result = tpm_info.accounts(["root", "no-such-user-x"], ["root"])
    assert result["users"] == {"root": {"uid": 0, "gid": 0}, "no-such-user-x": None}
    assert result["groups"]["root"]["gid"] == 0
