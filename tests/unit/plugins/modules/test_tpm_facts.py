"""tpm_facts run for real through ansible."""

from __future__ import annotations

import pytest

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
