"""plugin_utils/attest*.py without a TPM: certificate dates and key usage, CA loading, check selection,
tpm2_eventlog YAML edge cases, and that any host string survives into JSON outputs."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest, attest_replay
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn="test EK root"):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=3650))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _ek_cert(ca_key, ca_cert, ek_pub, days=(-10, 365), key_encipherment=True):
    usage = x509.KeyUsage(False, False, key_encipherment, False, False, False, False, False, False)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject).public_key(ek_pub)
        .serial_number(7).not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(_name("tpm"))]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return cert


def _evidence(cert, ek_key):
    pem = ek_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "ek_certificates": [
            {"index": "0x01c00002", "algorithm": "rsa2048", "present": True, "readable": True,
             "der_b64": base64.b64encode(der).decode()},
            {"index": "0x01c0000a", "algorithm": "ecc_p256", "present": False, "readable": False},
        ],
        "ek_public": {"rsa2048": {"source": "persistent", "pem": pem.decode()}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def pki():
    ca_key, ca_cert = _ca()
    ek_key = rsa.generate_private_key(65537, 2048)
    return ca_key, ca_cert, ek_key


def test_chained_certificate_passes(pki):
    ca_key, ca_cert, ek_key = pki
    ev = _evidence(_ek_cert(ca_key, ca_cert, ek_key.public_key()), ek_key)
    result = attest.judge_ek_chain(ev, [ca_cert], NOW)
    assert result["status"] == "pass", result
    assert result["details"]["chained"] == ["0x01c00002"]


@pytest.mark.parametrize(
    ("days", "usage", "reason"),
    [((-10, -1), True, "expired"), ((5, 365), True, "not_yet_valid"), ((-10, 365), False, "key_usage")],
)
def test_dates_and_key_usage(pki, days, usage, reason):
    ca_key, ca_cert, ek_key = pki
    ev = _evidence(_ek_cert(ca_key, ca_cert, ek_key.public_key(), days=days, key_encipherment=usage), ek_key)
    result = attest.judge_ek_chain(ev, [ca_cert], NOW)
    assert result["status"] == "fail"
    assert reason in [p["reason"] for p in result["details"]["certificates"][0]["problems"]], result


def test_no_ca_configured_is_not_run(pki):
    ca_key, ca_cert, ek_key = pki
    result = attest.judge_ek_chain(_evidence(_ek_cert(ca_key, ca_cert, ek_key.public_key()), ek_key), [], NOW)
    assert (result["status"], result["reason"]) == ("not_run", "no_ca")
    assert "tpm_attest_ek_ca_bundle" in result["fix"]


def test_another_root_does_not_anchor(pki):
    ca_key, ca_cert, ek_key = pki
    _other_key, other_root = _ca("other root")
    ev = _evidence(_ek_cert(ca_key, ca_cert, ek_key.public_key()), ek_key)
    assert attest.judge_ek_chain(ev, [other_root], NOW)["reason"] == "unchained"


def test_load_ca_certificates(tmp_path, pki):
    _ca_key, ca_cert, _ek = pki
    (tmp_path / "a.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "b.der").write_bytes(ca_cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "notes.txt").write_text("ignored")
    assert len(attest.load_ca_certificates(ca_dir=str(tmp_path))) == 2
    with pytest.raises(ValueError, match=r'tpm_attest_ek_ca_bundle "/nonexistent/x.pem" cannot be read'):
        attest.load_ca_certificates(bundle="/nonexistent/x.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="not a valid PEM"):
        attest.load_ca_certificates(bundle=str(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no CA certificate found"):
        attest.load_ca_certificates(ca_dir=str(empty))


@pytest.mark.parametrize("value", ["ek_chain", [" ek_chain"], ["ima", ""], [None], {"ek_chain": True}])
def test_parse_checks_rejects(value):
    with pytest.raises(ValueError, match="tpm_attest_checks"):
        attest.parse_checks(value)


def test_parse_checks_keeps_order_once():
    assert attest.parse_checks(["ima", "ek_chain", "ima"]) == ["ima", "ek_chain"]
    assert attest.parse_checks([]) == [] and attest.parse_checks(None) == []


def test_eventlog_yaml_keeps_leading_zero_bytes():
    """A YAML 1.1 safe loader would read tpm2_eventlog's 0x... values as integers; the width must survive."""
    text = "events: []\npcrs:\n  sha256:\n    0  : 0x00" + "ab" * 31 + "\n"
    replayed, events = attest_replay.replayed_pcrs(text)
    assert replayed == {"sha256": {0: "00" + "ab" * 31}} and events == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pcrs: 3",
        "pcrs:\n  sha256:\n    99 : 0x00",
        "pcrs:\n  sha256:\n    0 : 0x0102",
        "[unclosed",
        "pcrs:\n  sha256: []",
    ],
)
def test_eventlog_yaml_rejects(text):
    with pytest.raises(ValueError):
        attest_replay.replayed_pcrs(text)


def test_no_quote_means_not_run():
    log = {"path": "/x", "present": True, "yaml": "pcrs:\n  sha256:\n    0 : 0x" + "00" * 32}
    result = attest_replay.judge_eventlog(log, attest_replay.quoted_pcrs({"verified": False, "msg": "boom"}))
    assert (result["status"], result["reason"]) == ("not_run", "quote_unverified")


_text = st.text(max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evidence=st.fixed_dictionaries(
        {},
        optional={
            "tpm": st.fixed_dictionaries(
                {},
                optional={
                    "ek_certificates": st.lists(
                        st.fixed_dictionaries(
                            {"index": _text, "algorithm": _text, "present": st.booleans()},
                            optional={"der_b64": _text, "unreadable_reason": _text, "der_error": _text},
                        ),
                        max_size=3,
                    ),
                    "ek_public": _json,
                },
            )
            | _json,
            "event_log": st.fixed_dictionaries(
                {}, optional={"reason": _text, "msg": _text, "path": _text, "yaml": _text, "sha256": _text}
            )
            | _json,
            "ima": st.fixed_dictionaries(
                {},
                optional={
                    "reason": _text,
                    "msg": _text,
                    "policy_loaded": st.booleans(),
                    "replayed_pcr10": _json,
                    "entries": st.integers(),
                    "policy_basis": _text,
                },
            )
            | _json,
        },
    ),
    quote=_json,
)
def test_any_host_strings_give_json_outcomes(pki, evidence, quote):
    _ca_key, ca_cert, _ek = pki
    verdict = attest.judge(evidence, quote, attest.CHECKS, [ca_cert], NOW)
    json.dumps(verdict)  # every outcome is JSON
    assert verdict["ready"] is False  # nothing random passes
    for result in verdict["checks"]:
        assert result["status"] in ("pass", "fail", "skip", "not_run")
        assert isinstance(result["cause"], str) and isinstance(result["fix"], str)
