"""report_attest without a TPM: host names as path components, hostile evidence in exports and JUnit."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report_attest, report_consumers, report_render
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@given(st.text(max_size=300))
def test_safe_name_is_one_harmless_path_component(name):
    safe = report_attest.safe_name(name)
    assert safe and safe not in (".", "..") and "/" not in safe and "\0" not in safe
    assert safe.isascii() and os.path.basename(safe) == safe and len(safe) <= 200


@given(st.text(max_size=40), st.text(max_size=40))
def test_safe_name_keeps_distinct_names_distinct(a, b):
    if a != b:
        assert report_attest.safe_name(a) != report_attest.safe_name(b)


def test_safe_name_examples():
    assert report_attest.safe_name("web-01.example.net") == "web-01.example.net"
    assert [report_attest.safe_name(n) for n in ("a/b", "a_2fb", "", ".", "..")] == [
        "a_2fb", "a_5f2fb", "_", "__2e", "__2e_2e"]  # fmt: skip
    long = [report_attest.safe_name(n) for n in ("a" * 300, "a" * 301, "ä" * 100)]
    assert len(set(long)) == 3 and all(len(n) == 200 for n in long)


_text = st.text(max_size=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=120),
    pem=_text,
    yaml_text=_text,
    cause=st.text(max_size=80),
)
def test_hostile_strings_never_reach_files_or_break_junit(tmp_path_factory, name, pem, yaml_text, cause):
    evidence = {
        "tpm": {"ek_certificates": [{"algorithm": "rsa2048", "pem": pem}], "ek_public": {"rsa2048": {"pem": pem}}},
        "event_log": {"yaml": yaml_text, "sha256": cause},
    }
    files = report_attest.export_files(evidence)
    assert "ek-rsa2048.pem" not in files and "ek-rsa2048-public.pem" not in files  # nothing that does not parse
    dest = tmp_path_factory.mktemp("export")
    report_attest.write_exports([{"name": name, "attest": {"evidence": evidence}}], str(dest))
    for root, _dirs, names in os.walk(dest):
        assert os.path.commonpath([str(dest), root]) == str(dest)
        for file_name in names:
            assert oct(os.stat(os.path.join(root, file_name)).st_mode & 0o777) == "0o644"
    outcome = {"check": "ek_chain", "status": "fail", "reason": "x", "cause": cause, "fix": cause, "details": {}}
    attestation = {"checks_enabled": ["ek_chain"], "ready": False, "outcomes": [outcome]}
    host = {"name": name, "checks": [], "problems": [], "attestation": attestation}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    xml = "<r>" + "".join(report_render._junit_host_cases(host, counts)) + "</r>"
    case = ET.fromstring(xml).find("testcase")  # noqa: S314 - our own output
    assert case.get("name") == "attest_ek_chain" and counts == {"tests": 1, "failures": 1, "errors": 0, "skipped": 0}


def test_report_rejects_bad_attestation_inputs_before_reading_hosts(ansible_run, tmp_path):
    """The report's prepare step (run once, before any host task) names the variable and the fix."""
    result, _ = ansible_run("fleet_report", {"prepare": True, "attest_checks": ["ek_chain", " ima"]})
    assert result.get("failed") and 'tpm_attest_checks: " ima" is not a check' in result["msg"], result
    missing = str(tmp_path / "no-such-bundle.pem")
    result, _ = ansible_run("fleet_report", {"prepare": True, "attest_checks": ["ek_chain"], "ek_ca_bundle": missing})
    assert result.get("failed") and f"tpm_attest_ek_ca_bundle {json.dumps(missing)} cannot be read" in result["msg"]
    result, _ = ansible_run("fleet_report", {"prepare": True, "attest_checks": ["eventlog", "ima"]})
    assert not result.get("failed") and result["attest_checks"] == ["eventlog", "ima"], result


def test_the_binary_event_log_is_exported_only_as_the_host_hashed_and_replayed_it():
    import base64
    import hashlib

    from attest_tpms import GCE_LOG, TPM2_EVENTLOG

    if TPM2_EVENTLOG is None:
        pytest.skip("needs tpm2-tools (tpm2_eventlog)")
    data = GCE_LOG.read_bytes()
    yaml_text = subprocess.run([TPM2_EVENTLOG, str(GCE_LOG)], capture_output=True, text=True, check=True).stdout
    log = {"yaml": yaml_text, "sha256": hashlib.sha256(data).hexdigest(), "log_b64": base64.b64encode(data).decode()}
    files = report_attest.export_files({"event_log": log})
    assert files[report_attest.EVENT_LOG_FILE] == data and "measured-boot-reference.json" in files
    other = dict(log, log_b64=base64.b64encode(data[:-1]).decode())  # not the log the host hashed
    assert report_attest.EVENT_LOG_FILE not in report_attest.export_files({"event_log": other})
    broken = dict(log, log_b64="not base64!")
    assert report_attest.EVENT_LOG_FILE not in report_attest.export_files({"event_log": broken})
    assert report_attest.EVENT_LOG_FILE not in report_attest.export_files({"event_log": dict(log, log_b64=None)})


def _quote_result(user, verified=True, quotes=2, **extra):
    return {"item": user, "changed": False, "tcti": "device:/dev/tpmrm0", "verified": verified,
            "quotes": [{"message": "x"}] * quotes, **extra}  # fmt: skip


def test_consumer_quote_outcomes():
    judge = report_consumers.judge
    assert judge(None, [])["status"] == "not_run" and judge(None, [])["reason"] == "no_consumers"
    assert judge(None, "tpmagent")["reason"] == "bad_users"
    assert judge(None, ["tpmagent"])["reason"] == "no_result"  # a record without the consumers' quotes
    assert judge({"results": [], "skipped": True}, ["tpmagent"])["reason"] == "no_result"
    ok = judge({"results": [_quote_result("a"), _quote_result("b")]}, ["a", "b"])
    assert ok["status"] == "pass" and [c["status"] for c in ok["details"]["consumers"]] == ["pass", "pass"]
    assert judge([_quote_result("a")], ["a"])["status"] == "pass"  # the list a cached record keeps
    once = judge([_quote_result("a", quotes=1)], ["a"])  # one quote is not "twice in a row"
    assert (
        once["status"] == "fail"
        and once["reason"] == "quote_count"
        and "1 verified quotes instead of 2" in once["cause"]
    )
    busy = _quote_result("a", verified=False, quotes=0, failed=True, reason="busy", msg="/dev/tpm0 is busy")
    out = judge([busy, _quote_result("b")], ["a", "b"])
    assert out["status"] == "fail" and out["reason"] == "busy" and "tpm2-abrmd" in out["fix"]
    assert out["cause"] == 'as "a" over "device:/dev/tpmrm0": /dev/tpm0 is busy'
    denied = _quote_result("a", verified=False, quotes=0, failed=True, reason="permission", msg="permission denied")
    assert "tpm_access_consumer_users" in judge([denied], ["a"])["fix"]
    unverified = _quote_result("a", verified=False, failed=True, reason="verification", msg="signature")
    assert judge([unverified], ["a"])["status"] == "fail"
    gone = judge([{"item": "a", "unreachable": True, "msg": "ssh: timeout"}], ["a"])
    assert gone["status"] == "not_run" and gone["reason"] == "unreachable"
    missing = judge([_quote_result("a")], ["a", "b"])  # b's quote never ran: never a pass
    assert missing["status"] == "not_run" and missing["details"]["consumers"][1]["status"] == "not_run"


@settings(max_examples=60, deadline=None)
@given(user=st.text(max_size=60), msg=st.text(max_size=200), reason=st.one_of(st.none(), st.text(max_size=20)))
def test_consumer_quote_any_strings_stay_valid_json_and_junit(user, msg, reason):
    result = _quote_result(user, verified=False, quotes=0, failed=True, reason=reason, msg=msg)
    out = report_consumers.judge([result], [user])
    assert out["status"] == "fail" and out["cause"].startswith(f"as {json.dumps(user)} over ")
    host = {"name": user, "checks": [], "problems": [],
            "attestation": {"checks_enabled": ["consumer_quote"], "ready": False, "outcomes": [out]}}  # fmt: skip
    json.loads(json.dumps(out))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    xml = "<r>" + "".join(report_render._junit_host_cases(host, counts)) + "</r>"
    case = ET.fromstring(xml).find("testcase")  # noqa: S314 - our own output
    assert case.get("name") == "attest_consumer_quote" and counts["failures"] == 1
