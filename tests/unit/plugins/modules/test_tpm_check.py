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
    # The module's own clock bounds the TPM path; the ansible run around it only has to end (loaded machine).
    assert r["elapsed_ms"] < 5000
    assert wall < 60


def test_hanging_endpoint_is_bounded(hanging_tcti, ansible_run):
    r, wall = ansible_run("tpm_check", {"tcti": hanging_tcti, "timeout": 2})
    assert r["failed"] and r["reason"] == "timeout"
    assert "did not finish within 2s" in r["msg"]
    assert r["elapsed_ms"] < 4000
    assert wall < 60


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


def _leak(tcti):
    """What a direct-mode consumer leaves when it exits: a loaded primary and a loaded session."""
    from tpm2_pytss import ESAPI, TCTILdr
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE
    from tpm2_pytss.types import TPM2B_PUBLIC, TPMT_SYM_DEF

    tctx = TCTILdr.parse(tcti)
    ectx = ESAPI(tctx)
    try:
        ectx.create_primary(None, TPM2B_PUBLIC.parse("ecc256"), primary_handle=ESYS_TR.OWNER)
        ectx.start_auth_session(
            ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.HMAC, TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256
        )
    finally:
        ectx.close()  # closes the connection without flushing, as a process that exits
        tctx.close()


def test_flush_orphans_flushes_what_exited_processes_left(tmp_path, ansible_run):
    tpm = Swtpm(tmp_path).start()
    try:
        r, _wall = ansible_run("tpm_check", {"tcti": tpm.tcti, "flush_orphans": True})
        assert not r.get("failed"), r.get("msg")
        assert r["changed"] is False and r["flushed"] == []

        _leak(tpm.tcti)
        r, _wall = ansible_run("tpm_check", {"tcti": tpm.tcti, "flush_orphans": True}, check=True)
        assert not r.get("failed"), r.get("msg")
        assert r["changed"] is True
        assert [h[:4] for h in r["flushed"]] == ["0x80", "0x02"]
        assert r["properties"]["transient_objects"] == 1  # check mode: reported, still loaded

        r, _wall = ansible_run("tpm_check", {"tcti": tpm.tcti, "flush_orphans": True})
        assert not r.get("failed"), r.get("msg")
        assert r["changed"] is True and len(r["flushed"]) == 2
        assert r["properties"]["transient_objects"] == 0

        r, _wall = ansible_run("tpm_check", {"tcti": tpm.tcti, "flush_orphans": True})
        assert r["changed"] is False and r["flushed"] == []
    finally:
        tpm.stop()


@pytest.mark.parametrize("tcti", ["device:/dev/tpmrm0", "tabrmd:bus_type=system"])
def test_flush_orphans_is_refused_behind_a_resource_manager(tcti, ansible_run):
    r, _wall = ansible_run("tpm_check", {"tcti": tcti, "flush_orphans": True})
    assert r["failed"] and "flush_orphans applies to a TCTI without a resource manager" in r["msg"]
    assert "Nothing was flushed" in r["msg"]
