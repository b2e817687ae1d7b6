"""Hosts whose TPM hierarchies have passwords (issue 22): tpm_check, tpm_quote and tpm_facts against a real
swtpm whose owner (and endorsement) authorization was changed, through ansible."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import Swtpm, extend_pcrs

pytestmark = pytest.mark.swtpm

OWNER_SECRET = "owner-Secret-22"  # noqa: S105 (a test TPM's password)
ENDORSEMENT_SECRET = "endorse ment\"'$(x)\n-22"  # noqa: S105 (quotes, a shell substitution, a newline)


def change_auth(tcti, hierarchy, new, old=""):
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    handle = {"owner": ESYS_TR.OWNER, "endorsement": ESYS_TR.ENDORSEMENT}[hierarchy]
    with ESAPI(tcti) as ectx:
        ectx.tr_set_auth(handle, old.encode())
        ectx.hierarchy_change_auth(handle, new.encode())


def tpm_state(tcti):
    """Transient objects, loaded and saved sessions, and the dictionary-attack counter."""

    def getcap(what):
        out = subprocess.run(["tpm2_getcap", "-T", tcti, what], capture_output=True, text=True, check=True).stdout
        return out.count("0x")

    var = subprocess.run(["tpm2_getcap", "-T", tcti, "properties-variable"], capture_output=True, text=True).stdout
    counter = next(line.split(":")[1].strip() for line in var.splitlines() if "TPM2_PT_LOCKOUT_COUNTER" in line)
    return {
        "transient": getcap("handles-transient"),
        "sessions": getcap("handles-loaded-session") + getcap("handles-saved-session"),
        "lockout_counter": int(counter, 0),
    }


CLEAN = {"transient": 0, "sessions": 0, "lockout_counter": 0}


@pytest.fixture
def owned_swtpm(tmp_path):
    """A fresh swtpm whose owner hierarchy has a password, as on a managed fleet."""
    tpm = Swtpm(tmp_path).start()
    extend_pcrs(tpm.tcti)
    change_auth(tpm.tcti, "owner", OWNER_SECRET)
    yield tpm
    tpm.stop()


def _assert_no_secret(result, *secrets):
    text = json.dumps(result)
    for secret in secrets:
        assert secret not in text and json.dumps(secret)[1:-1] not in text
        assert secret.encode().hex() not in text


def test_owner_password_check_quote_and_facts_succeed(owned_swtpm, ansible_run):
    tcti = owned_swtpm.tcti
    check, _ = ansible_run("tpm_check", {"tcti": tcti})
    assert not check.get("failed"), check.get("msg")
    assert check["properties"]["lockout"]["owner_auth_set"] is True

    facts, _ = ansible_run("tpm_facts", {"tcti": tcti, "ek_create": True})
    props = facts["ansible_facts"]["tpm"]["properties"]
    assert props["lockout"]["owner_auth_set"] is True and props["lockout"]["endorsement_auth_set"] is False
    assert props["ek"]["source"] == "created", props["ek"]  # derived in the endorsement hierarchy, no password

    for method in ("pytss", "cli"):
        for key_algorithm in ("ecc", "rsa"):
            r, _ = ansible_run("tpm_quote", {"tcti": tcti, "method": method, "key_algorithm": key_algorithm})
            assert not r.get("failed"), (method, r.get("msg"))
            assert r["verified"] is True and len(r["verification"]) == 2
            assert (r["ak"]["hierarchy"], r["ak"]["parent"]) == ("endorsement", "ek")
            if key_algorithm == "rsa":  # tpm_facts derived the RSA EK: the AK's parent is that EK
                assert r["ak"]["parent_public_key_sha256"] == props["ek"]["public_key_sha256"]
            assert not r.get("warnings"), r.get("warnings")
            assert tpm_state(tcti) == CLEAN


def test_both_passwords_fail_with_the_cause_and_the_fix(owned_swtpm, ansible_run):
    tcti = owned_swtpm.tcti
    change_auth(tcti, "endorsement", ENDORSEMENT_SECRET)
    for method in ("pytss", "cli"):
        r, _ = ansible_run("tpm_quote", {"tcti": tcti, "method": method, "count": 1})
        assert r["failed"] and r["reason"] == "auth", r
        assert "endorsementAuthSet and ownerAuthSet" in r["msg"]
        assert "nothing was presented to the TPM" in r["msg"]
        assert "tpm_verify_endorsement_auth" in r["msg"] and "Ansible Vault" in r["msg"]
        assert "tpm2_changeauth -c endorsement -p <current password>" in r["msg"]
        assert "Esys_" not in r["msg"]
        assert tpm_state(tcti) == CLEAN
    check, _ = ansible_run("tpm_check", {"tcti": tcti})
    assert not check.get("failed"), check.get("msg")  # opening the TPM needs no password

    facts, _ = ansible_run("tpm_facts", {"tcti": tcti, "ek_create": True})
    ek = facts["ansible_facts"]["tpm"]["properties"]["ek"]
    assert ek["source"] is None and "endorsement auth is set" in ek["error"]


@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_the_endorsement_password_from_the_variable(owned_swtpm, ansible_run, method):
    tcti = owned_swtpm.tcti
    change_auth(tcti, "endorsement", ENDORSEMENT_SECRET)
    r, _ = ansible_run("tpm_quote", {"tcti": tcti, "method": method, "endorsement_auth": ENDORSEMENT_SECRET})
    assert not r.get("failed"), r.get("msg")
    assert r["verified"] is True and r["ak"]["hierarchy"] == "endorsement"
    assert r["invocation"]["module_args"]["endorsement_auth"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    _assert_no_secret(r, ENDORSEMENT_SECRET)
    assert tpm_state(tcti) == CLEAN

    wrong = ENDORSEMENT_SECRET + "-wrong"
    r, _ = ansible_run("tpm_quote", {"tcti": tcti, "method": method, "endorsement_auth": wrong})
    assert r["failed"] and r["reason"] == "auth", r
    assert "refused the endorsement password given in endorsement_auth" in r["msg"]
    assert "presented once and is not retried" in r["msg"]
    _assert_no_secret(r, ENDORSEMENT_SECRET, wrong)
    # A hierarchy password is exempt from dictionary-attack protection: nothing counted.
    assert tpm_state(tcti) == CLEAN


def test_endorsement_password_alone_falls_back_to_the_owner_hierarchy(tmp_path, ansible_run):
    tpm = Swtpm(tmp_path).start()
    try:
        change_auth(tpm.tcti, "endorsement", ENDORSEMENT_SECRET)
        for method in ("pytss", "cli"):
            r, _ = ansible_run("tpm_quote", {"tcti": tpm.tcti, "method": method, "count": 1})
            assert not r.get("failed"), r.get("msg")
            assert r["verified"] and (r["ak"]["hierarchy"], r["ak"]["parent"]) == ("owner", "srk")
            assert any("created under the owner hierarchy" in w for w in r["warnings"]), r.get("warnings")
            assert tpm_state(tpm.tcti) == CLEAN
    finally:
        tpm.stop()


@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_persisting_needs_the_owner_password_and_creates_nothing(owned_swtpm, ansible_run, method):
    tcti = owned_swtpm.tcti
    args = {"tcti": tcti, "method": method, "persistent_handle": "0x81020005", "count": 1}
    for check in (True, False):
        r, _ = ansible_run("tpm_quote", args, check=check)
        assert r["failed"] and r["reason"] == "auth" and not r["changed"], r
        assert "persisting the AK at persistent_handle 0x81020005 needs the owner authorization" in r["msg"]
        assert "Omit persistent_handle" in r["msg"] and "tpm2_changeauth -c owner" in r["msg"]
    out = subprocess.run(["tpm2_getcap", "-T", tcti, "handles-persistent"], capture_output=True, text=True)
    assert "0x81020005" not in out.stdout
    assert tpm_state(tcti) == CLEAN


@pytest.mark.parametrize("value", ["a\0b", "x" * 65, "é" * 33])
def test_an_impossible_password_is_refused_without_quoting_it(stopped_swtpm_tcti, ansible_run, value):
    r, _ = ansible_run("tpm_quote", {"tcti": stopped_swtpm_tcti, "endorsement_auth": value})
    assert r["failed"] and r["reason"] == "endorsement_auth", r  # refused before the TPM is reached
    assert "tpm_verify_endorsement_auth" in r["msg"]
    _assert_no_secret(r, value)
