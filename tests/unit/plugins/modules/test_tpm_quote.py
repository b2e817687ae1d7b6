"""tpm_quote run for real through ansible (the action plugin makes nonces and verifies)."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.swtpm


def evict(tcti, handle):
    subprocess.run(["tpm2_evictcontrol", "-T", tcti, "-C", "o", "-c", handle], capture_output=True, check=False)


def transient_count(tcti):
    out = subprocess.run(["tpm2_getcap", "-T", tcti, "handles-transient"], capture_output=True, text=True, check=True)
    return out.stdout.count("0x")


def test_default_ecc_two_quotes_verified(swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_quote", {"tcti": swtpm_tcti})
    assert not r.get("failed"), r.get("msg")
    assert r["verified"] is True and r["changed"] is False
    assert len(r["quotes"]) == 2 and len(r["verification"]) == 2
    assert r["quotes"][0]["nonce"] != r["quotes"][1]["nonce"]
    assert len(bytes.fromhex(r["quotes"][0]["nonce"])) == 20
    assert r["ak"]["key"] == "ecc_p256" and r["ak"]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert {"open", "key", "quote", "total"} <= set(r["timings_ms"])
    assert r["pcr_selection"] == "sha256:0,1,2,3,4,5,6,7"
    assert transient_count(swtpm_tcti) == 0


def test_persistent_ak_reused_second_run(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "persistent_handle": "0x81010002", "count": 1}
    try:
        first, _ = ansible_run("tpm_quote", args, diff=True)
        second, _ = ansible_run("tpm_quote", args)
    finally:
        evict(swtpm_tcti, "0x81010002")
    assert first["changed"] is True and first["ak"]["persisted"] and not first["ak"]["reused"]
    assert "0x81010002" in first["diff"]["after"]
    assert second["changed"] is False and second["ak"]["reused"] is True
    assert second["ak"]["public_pem"] == first["ak"]["public_pem"]
    assert second["verified"] is True
    assert "create_ak" not in second["timings_ms"]  # no key generated on reuse


def test_check_mode_does_not_persist(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "persistent_handle": "0x81010003", "count": 1}
    r, _ = ansible_run("tpm_quote", args, check=True)
    assert r["changed"] is True and r["ak"]["persisted"] is False and r["verified"] is True
    out = subprocess.run(["tpm2_getcap", "-T", swtpm_tcti, "handles-persistent"], capture_output=True, text=True)
    assert "0x81010003" not in out.stdout


def test_cli_method_rsa_three_quotes(swtpm_tcti, ansible_run):
    r, _ = ansible_run("tpm_quote", {"tcti": swtpm_tcti, "method": "cli", "key_algorithm": "rsa", "count": 3})
    assert not r.get("failed"), r.get("msg")
    assert r["verified"] is True and len(r["quotes"]) == 3
    assert r["quotes"][0]["signature_format"] == "rsassa-pkcs1v15"
    assert transient_count(swtpm_tcti) == 0


def test_cli_method_persistent_reuse(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "method": "cli", "persistent_handle": "0x81010004", "count": 1,
            "pcrs": "sha256:0-3+sha1:4"}  # fmt: skip
    try:
        first, _ = ansible_run("tpm_quote", args)
        second, _ = ansible_run("tpm_quote", args)
    finally:
        evict(swtpm_tcti, "0x81010004")
    assert (first["changed"], second["changed"]) == (True, False)
    assert second["verified"] and second["ak"]["public_pem"] == first["ak"]["public_pem"]
    assert second["verification"][0]["pcr_selection"] == "sha256:0,1,2,3+sha1:4"


def test_exhausted_object_memory_is_explained(swtpm_tcti, ansible_run):
    """Leak every transient slot like a careless direct-mode client, then quote."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(swtpm_tcti) as ectx:
        for _ in range(3):
            ectx.create_primary(None, "ecc256", ESYS_TR.OWNER)
    try:
        r, _ = ansible_run("tpm_quote", {"tcti": swtpm_tcti, "count": 1})
    finally:
        subprocess.run(["tpm2_flushcontext", "-T", swtpm_tcti, "-t"], check=True)
    assert r["failed"] and r["reason"] == "object_memory"
    assert "transient object slots" in r["msg"]


def test_stopped_tpm(stopped_swtpm_tcti, ansible_run):
    r, wall = ansible_run("tpm_quote", {"tcti": stopped_swtpm_tcti, "timeout": 5})
    assert r["failed"] and r["reason"] == "unreachable"
    assert wall < 10


def test_bad_persistent_handle(swtpm_tcti, ansible_run):
    r, _ = ansible_run("tpm_quote", {"tcti": swtpm_tcti, "persistent_handle": "0x80000001"})
    assert r["failed"] and "outside the persistent range" in r["msg"]
