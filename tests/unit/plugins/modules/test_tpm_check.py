"""tpm_check run for real through ansible against swtpm, dead and hanging endpoints."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import Swtpm

pytestmark = pytest.mark.swtpm


def test_success(swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_check", {"tcti": swtpm_tcti})
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False
    assert r["random_bytes"] == 16
    assert r["user"] == "root" and r["uid"] == os.geteuid()
    assert r["properties"]["software_tpm"] is True
    assert r["properties"]["manufacturer"] == "IBM"
    assert r["elapsed_ms"] < 5000


def test_check_mode_runs_the_check(swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_check", {"tcti": swtpm_tcti, "random_bytes": 8}, check=True)
    assert not r.get("failed") and r["changed"] is False
    assert r["random_bytes"] == 8


def test_stopped_swtpm_is_refused_quickly(stopped_swtpm_tcti, ansible_run):
    r, wall = ansible_run("tpm_check", {"tcti": stopped_swtpm_tcti, "timeout": 5})
    assert r["failed"] and r["reason"] == "unreachable"
    assert "Connection refused" in r["msg"] and "is swtpm running" in r["msg"]
    assert wall < 10


def test_hanging_endpoint_is_bounded(hanging_tcti, ansible_run):
    r, wall = ansible_run("tpm_check", {"tcti": hanging_tcti, "timeout": 2})
    assert r["failed"] and r["reason"] == "timeout"
    assert "did not finish within 2s" in r["msg"]
    assert wall < 8


@pytest.mark.parametrize(
    ("tcti", "reason", "fragment"),
    [
        ("device:/dev/tpm-does-not-exist", "no_device", "/dev/tpm-does-not-exist does not exist"),
        ("swtpm:port=notanumber", "tcti_invalid", "port must be a number"),
        ("nosuchtcti:foo", "tcti_invalid", "unknown TCTI 'nosuchtcti'"),
    ],
)
def test_classified_failures(tcti, reason, fragment, ansible_run):
    r, _wall = ansible_run("tpm_check", {"tcti": tcti, "timeout": 5})
    assert r["failed"] and r["reason"] == reason
    assert fragment in r["msg"]


def test_tpm_without_startup(tmp_path, ansible_run):
    """A real TPM that never received TPM2_Startup answers TPM_RC_INITIALIZE."""
    tpm = Swtpm(tmp_path, startup=False).start()
    try:
        r, _wall = ansible_run("tpm_check", {"tcti": tpm.tcti, "timeout": 5})
    finally:
        tpm.stop()
    assert r["failed"] and r["reason"] == "not_started"
    assert "tpm2_startup -c" in r["msg"]


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3.11"), reason="needs a Python without tpm2-pytss")
def test_missing_pytss_says_how_to_install(swtpm_tcti, ansible_run):
    probe = subprocess.run(["/usr/bin/python3.11", "-c", "import tpm2_pytss"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip("/usr/bin/python3.11 has tpm2-pytss")
    r, _wall = ansible_run("tpm_check", {"tcti": swtpm_tcti}, python="/usr/bin/python3.11")
    assert r["failed"] and r["reason"] == "missing_library"
    assert "Failed to import the required Python library (tpm2-pytss)" in r["msg"]
    assert "python3-tpm2-pytss" in r["msg"] and "ansible_python_interpreter" in r["msg"]
