"""tpm_facts run for real through ansible."""

from __future__ import annotations

import hashlib

import pytest
from conftest import Swtpm

pytestmark = pytest.mark.swtpm


def test_without_tcti_does_not_open_the_tpm(ansible_run):
    r, _wall = ansible_run("tpm_facts", {})
    assert not r.get("failed"), r.get("msg")
    tpm = r["ansible_facts"]["tpm"]
    assert tpm["properties"] is None
    assert isinstance(tpm["devices"], list) and isinstance(tpm["drivers"], list)
    assert tpm["holders_complete"] is True  # root can read every /proc/PID/fd
    assert tpm["abrmd"]["running"] is False
    if not tpm["present"]:  # this controller has no TPM: reported, not fatal
        assert any(e["reason"] == "no_device" for e in tpm["errors"])
    assert tpm["elapsed_ms"] < 5000


def test_with_tcti_reads_properties(swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_facts", {"tcti": swtpm_tcti}, check=True)
    props = r["ansible_facts"]["tpm"]["properties"]
    assert props["manufacturer"] == "IBM" and props["software_tpm"] is True
    assert props["spec_revision"] and props["firmware_version"].count(".") == 3
    assert "sha256" in props["pcr_banks"]
    assert props["lockout"]["max_tries"] > 0


def test_unreachable_tpm_is_an_error_entry_not_a_failure(stopped_swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_facts", {"tcti": stopped_swtpm_tcti, "timeout": 5})
    assert not r.get("failed")
    tpm = r["ansible_facts"]["tpm"]
    assert tpm["properties"] is None
    assert [e["reason"] for e in tpm["errors"] if e["step"] == "tpm"] == ["unreachable"]


def test_malformed_tcti_fails(ansible_run):
    r, _wall = ansible_run("tpm_facts", {"tcti": "device:relative/path"})
    assert r["failed"] and "absolute path" in r["msg"]


# --------------------------------------------------------------------------
# Describing the TPM and its use: EK certificates, EK fingerprint, persistent
# handles, dictionary-attack lockout, event log, TCTI env file, accounts.
# Each test that changes the TPM gets its own swtpm.
# --------------------------------------------------------------------------

EK_CERT_NV_ATTRS = (
    0x00020000 | 0x00040000 | 0x02000000 | 0x00000002 | 0x00000004
)  # ownerread|authread|noDA|owner+authwrite


@pytest.fixture
def fresh_swtpm(tmp_path):
    tpm = Swtpm(tmp_path).start()
    yield tpm
    tpm.stop()


def _facts(ansible_run, args, check=True):
    r, _wall = ansible_run("tpm_facts", args, check=check)
    assert not r.get("failed"), r.get("msg")
    return r["ansible_facts"]["tpm"]


def _ek_public(tcti, algorithm):
    """The EK's DER SubjectPublicKeyInfo, derived independently of the module (tpm2-pytss + quote_verify)."""
    from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify as qv
    from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm_info import ek_template
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(tcti) as ectx:
        handle, pub, *_ = ectx.create_primary(None, ek_template(algorithm), ESYS_TR.ENDORSEMENT)
        ectx.flush_context(handle)
    return qv.spki_der(qv.parse_public(bytes(pub.marshal())))


def _certificate_for(spki):
    """A DER certificate for the public key ``spki``, issued by a throwaway CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tpmfleet test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "tpmfleet test EK CA")])  # fmt: skip
    now = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(serialization.load_der_public_key(spki))
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _write_nv(tcti, index, data, attrs=EK_CERT_NV_ATTRS, auth=None, size=None):
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
    from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

    pub = TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attrs, dataSize=size or len(data))
    )
    with ESAPI(tcti) as ectx:
        tr = ectx.nv_define_space(auth, pub, ESYS_TR.OWNER)
        for offset in range(0, len(data), 512):
            ectx.nv_write(tr, data[offset : offset + 512], offset, auth_handle=ESYS_TR.OWNER)


def test_describes_a_fresh_tpm(swtpm_tcti, ansible_run, tmp_path):
    env = tmp_path / "tcti.env"
    env.write_text("# written by a test\nTCTI=device:/dev/tpmrm0\nexport TSS2_TCTI='device:/dev/tpmrm0'\n")
    tpm = _facts(ansible_run, {"tcti": swtpm_tcti, "tcti_env_path": str(env), "groups": ["root", "no-such-group"]})
    props = tpm["properties"]
    certs = {c["index"]: c for c in props["ek_certificates"]}
    assert set(certs) == {"0x01c00002", "0x01c0000a"}  # the two low-range indices are always reported
    assert not certs["0x01c00002"]["present"] and not certs["0x01c0000a"]["present"]
    assert props["ek"]["source"] is None and props["ek"]["public_key_sha256"] is None
    assert props["persistent_handles"] == []
    assert props["lockout"]["in_lockout"] is False and props["lockout"]["owner_auth_set"] is False
    assert tpm["tcti_env"] == {
        "path": str(env),
        "exists": True,
        "variables": {"TCTI": "device:/dev/tpmrm0", "TSS2_TCTI": "device:/dev/tpmrm0"},
    }
    assert tpm["accounts"]["groups"] == {"root": {"gid": 0, "members": tpm["accounts"]["groups"]["root"]["members"]},
                                         "no-such-group": None}  # fmt: skip
    log = tpm["event_log"]
    assert log["path"] == "/sys/kernel/security/tpm0/binary_bios_measurements"
    if log["exists"]:
        assert set(log["readable_by"]) == {"owner", "group", "others"}
    else:
        assert log["reason"]


def test_ek_certificate_fingerprint_and_persistent_handles(fresh_swtpm, ansible_run):
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    spki = _ek_public(fresh_swtpm.tcti, "rsa2048")
    der = _certificate_for(spki)
    # NV indices are often larger than the certificate: pad with 0xff like vendors do
    _write_nv(fresh_swtpm.tcti, 0x01C00002, der + b"\xff" * 37)
    want_key = hashlib.sha256(spki).hexdigest()

    props = _facts(ansible_run, {"tcti": fresh_swtpm.tcti})["properties"]
    rsa = next(c for c in props["ek_certificates"] if c["index"] == "0x01c00002")
    assert rsa["present"] and rsa["readable"] and rsa["size"] == len(der) + 37
    cert = rsa["certificate"]
    assert cert["sha256"] == hashlib.sha256(der).hexdigest()
    assert cert["issuer"] == "O=tpmfleet test, CN=tpmfleet test EK CA"
    assert cert["not_before"] == "2024-01-02T03:04:05Z" and cert["not_after"].startswith("2033-12-30")
    assert cert["public_key_sha256"] == want_key
    assert props["ek"] == {"source": "certificate", "handle": None, "key": "rsa2048",
                           "public_key_sha256": want_key, "matches_certificate": True}  # fmt: skip

    created = _facts(ansible_run, {"tcti": fresh_swtpm.tcti, "ek_create": True})["properties"]["ek"]
    assert created["source"] == "created" and created["public_key_sha256"] == want_key
    assert created["matches_certificate"] is True

    # Persist an EK (ECC, so it does not match the RSA certificate) and an SRK; both are labelled.
    with ESAPI(fresh_swtpm.tcti) as ectx:
        from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm_info import ek_template

        ek, *_ = ectx.create_primary(None, ek_template("ecc_p256"), ESYS_TR.ENDORSEMENT)
        ectx.evict_control(ESYS_TR.OWNER, ek, 0x81010002)
        ectx.flush_context(ek)
        srk, *_ = ectx.create_primary(None, "ecc256:aes128cfb", ESYS_TR.OWNER)
        ectx.evict_control(ESYS_TR.OWNER, srk, 0x81000001)
        ectx.flush_context(srk)
    props = _facts(ansible_run, {"tcti": fresh_swtpm.tcti})["properties"]
    labelled = {h["handle"]: (h["range"], h["key"], h["restricted"], h["decrypt"]) for h in props["persistent_handles"]}
    assert labelled == {"0x81000001": ("owner_srk", "ecc_p256", True, True),
                        "0x81010002": ("endorsement", "ecc_p256", True, True)}  # fmt: skip
    ek = props["ek"]
    assert ek["source"] == "persistent" and ek["handle"] == "0x81010002" and ek["key"] == "ecc_p256"
    assert ek["public_key_sha256"] == hashlib.sha256(_ek_public(fresh_swtpm.tcti, "ecc_p256")).hexdigest()
    assert ek["matches_certificate"] is False


def test_dictionary_attack_lockout_is_reported(fresh_swtpm, ansible_run):
    """Drive the swtpm into lockout with wrong auth values on a DA-protected NV index."""
    from tpm2_pytss import ESAPI, TSS2_Exception
    from tpm2_pytss.constants import ESYS_TR

    max_tries = 3
    with ESAPI(fresh_swtpm.tcti) as ectx:
        ectx.dictionary_attack_parameters(max_tries, 3600, 3600, ESYS_TR.LOCKOUT)
    # authread|authwrite|ownerwrite, without noDA: wrong auth values count as failures
    _write_nv(fresh_swtpm.tcti, 0x01500001, b"secret", attrs=0x00040000 | 0x4 | 0x2, auth=b"right")

    def wrong_auth_attempt():
        with ESAPI(fresh_swtpm.tcti) as ectx:
            tr = ectx.tr_from_tpmpublic(0x01500001)
            ectx.tr_set_auth(tr, b"wrong")
            with pytest.raises(TSS2_Exception):
                ectx.nv_read(tr, 6, 0, auth_handle=tr)

    wrong_auth_attempt()
    lockout = _facts(ansible_run, {"tcti": fresh_swtpm.tcti})["properties"]["lockout"]
    assert (lockout["counter"], lockout["max_tries"], lockout["in_lockout"]) == (1, max_tries, False)
    assert lockout["recovery_s"] == 3600 and lockout["lockout_auth_set"] is False

    for _ in range(max_tries - 1):
        wrong_auth_attempt()
    tpm = _facts(ansible_run, {"tcti": fresh_swtpm.tcti})
    lockout = tpm["properties"]["lockout"]
    assert lockout["in_lockout"] is True and lockout["counter"] == max_tries
    assert not [e for e in tpm["errors"] if e["step"] == "tpm"]  # still readable: no authorization needed

    # reading the facts again does not count as a failure
    again = _facts(ansible_run, {"tcti": fresh_swtpm.tcti})["properties"]["lockout"]
    assert again["counter"] == max_tries
