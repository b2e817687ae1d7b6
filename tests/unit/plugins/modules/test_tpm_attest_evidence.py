"""tpm_attest_evidence on real swtpm TPMs (EK certificate from a local CA, from another CA, none), judged by
plugin_utils/attest*.py against a quote the tpm_quote action plugin verified."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import attest_tpms as at
import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest

pytestmark = [
    pytest.mark.swtpm,
    pytest.mark.skipif(at.SWTPM_SETUP is None or at.SWTPM_LOCALCA is None or at.TPM2_EVENTLOG is None,
                       reason="needs swtpm-tools (swtpm_setup, swtpm_localca) and tpm2-tools (tpm2_eventlog)"),
]  # fmt: skip

QUOTE_PCRS = "sha256:0,1,2,3,4,5,6,7,8,9,10,14"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three TPMs: ``good`` (certificate from CA A, the boot log and an IMA boot aggregate replayed into its PCRs),
    ``foreign`` (certificate from CA B), ``none`` (EK, no certificate)."""
    base = tmp_path_factory.mktemp("attest")
    conf_a = at.make_local_ca(base / "ca-a")
    conf_b = at.make_local_ca(base / "ca-b")
    tpms = {
        "good": at.start(at.manufacture(base / "good", conf_a)),
        "foreign": at.start(at.manufacture(base / "foreign", conf_b)),
        "none": at.start(at.manufacture(base / "none", None)),
    }
    at.replay_into(tpms["good"].tcti, at.GCE_LOG)
    ima = at.ima_boot_aggregate(base / "ima", tpms["good"].tcti)
    yield {"tpms": tpms, "bundle_a": at.ca_bundle(base / "ca-a"), "bundle_b": at.ca_bundle(base / "ca-b"),
           "ima": ima, "base": base}  # fmt: skip
    for tpm in tpms.values():
        tpm.stop()


def _evidence(ansible_run, tcti, log=at.GCE_LOG, ima=None, check=False, **extra):
    args = {"tcti": tcti, "event_log_path": str(log), "ima_dir": str(ima or "/nonexistent"), **extra}
    result, _wall = ansible_run("tpm_attest_evidence", args, check=check)
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result["evidence"]


def _quote(ansible_run, tcti):
    result, _wall = ansible_run("tpm_quote", {"tcti": tcti, "pcrs": QUOTE_PCRS, "count": 1})
    assert result.get("verified") is True, result
    return result


def test_evidence_of_a_tpm_with_a_local_ca_certificate(lab, ansible_run, tmp_path):
    ev = _evidence(ansible_run, lab["tpms"]["good"].tcti, ima=lab["ima"], check=True)
    assert ev["errors"] == []
    certs = {c["index"]: c for c in ev["tpm"]["ek_certificates"]}
    assert certs["0x01c00002"]["present"] and certs["0x01c00002"]["readable"]
    assert certs["0x01c00002"]["pem"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert ev["tpm"]["ek_public"]["rsa2048"]["source"] == "persistent"
    assert ev["tpm"]["ek_public"]["rsa2048"]["handle"] == "0x81010001"
    assert ev["tpm"]["pcr_banks"] == {"sha256": list(range(24))}
    assert ev["event_log"]["sha256"] and "pcrs:" in ev["event_log"]["yaml"]
    assert ev["ima"]["entries"] == 1 and ev["ima"]["boot_aggregate_only"] is True
    # No policy file in the test's IMA directory: judged from the list (only the boot aggregate).
    assert ev["ima"]["policy_loaded"] is False
    # openssl, not our code: the exported PEM verifies against the local CA and not against another one.
    pem = tmp_path / "ek.pem"
    pem.write_text(certs["0x01c00002"]["pem"])
    ok = subprocess.run(
        ["openssl", "verify", "-CAfile", str(lab["bundle_a"]), str(pem)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    bad = subprocess.run(
        ["openssl", "verify", "-CAfile", str(lab["bundle_b"]), str(pem)], capture_output=True, text=True
    )
    assert bad.returncode != 0, bad.stdout


def test_ready_host_passes_every_check(lab, ansible_run):
    tcti = lab["tpms"]["good"].tcti
    ev = _evidence(ansible_run, tcti, ima=lab["ima"])
    quote = _quote(ansible_run, tcti)
    verdict = attest.judge(ev, quote, attest.CHECKS, attest.load_ca_certificates(bundle=lab["bundle_a"]))
    by_check = {o["check"]: o for o in verdict["checks"]}
    assert by_check["ek_chain"]["status"] == "pass", by_check["ek_chain"]
    assert by_check["ek_chain"]["details"]["chained"] == ["0x01c00002"]
    assert by_check["eventlog"]["status"] == "pass", by_check["eventlog"]
    assert "sha256:0" in by_check["eventlog"]["details"]["compared"]
    assert by_check["eventlog"]["details"]["events"] == 112
    assert by_check["ima"]["status"] == "pass" and by_check["ima"]["reason"] == "no_policy", by_check["ima"]
    assert "IMA has no policy loaded" in by_check["ima"]["cause"]
    assert verdict["ready"] is True


def test_tampered_event_log_does_not_replay(lab, ansible_run, tmp_path):
    tcti = lab["tpms"]["good"].tcti
    log = at.tampered_copy(at.GCE_LOG, tmp_path / "tampered.bin")
    ev = _evidence(ansible_run, tcti, log=log, ima=lab["ima"])
    verdict = attest.judge(ev, _quote(ansible_run, tcti), ["eventlog"])
    (result,) = verdict["checks"]
    assert result["status"] == "fail" and result["reason"] == "mismatch", result
    assert [m["pcr"] for m in result["details"]["mismatches"]] == ["sha256:0"]
    assert verdict["ready"] is False


def test_quote_values_edited_after_signing_are_not_compared(lab, ansible_run):
    tcti = lab["tpms"]["good"].tcti
    ev = _evidence(ansible_run, tcti)
    quote = _quote(ansible_run, tcti)
    # Someone "fixes" a quoted PCR to what the log says: the values no longer hash to the signed digest.
    quote["quotes"][-1]["pcrs"]["sha256"]["0"] = "11" * 32
    (result,) = attest.judge(ev, quote, ["eventlog"])["checks"]
    assert result["status"] == "not_run" and result["reason"] == "quote_unbound", result


def test_foreign_ca_certificate_does_not_chain(lab, ansible_run):
    ev = _evidence(ansible_run, lab["tpms"]["foreign"].tcti)
    (result,) = attest.judge(ev, None, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_a"]))["checks"]
    assert result["status"] == "fail" and result["reason"] == "unchained", result
    assert "tpm_attest_ek_ca_bundle" in result["fix"]
    # the same certificate chains to its own CA
    (own,) = attest.judge(ev, None, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_b"]))["checks"]
    assert own["status"] == "pass", own


def test_tpm_without_ek_certificate(lab, ansible_run):
    ev = _evidence(ansible_run, lab["tpms"]["none"].tcti)
    assert not any(c["present"] for c in ev["tpm"]["ek_certificates"])
    (result,) = attest.judge(ev, None, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_a"]))["checks"]
    assert result["status"] == "fail" and result["reason"] == "no_certificate", result


def test_certificate_of_another_tpm_does_not_match_the_ek(lab, ansible_run):
    good = _evidence(ansible_run, lab["tpms"]["good"].tcti)
    foreign = _evidence(ansible_run, lab["tpms"]["foreign"].tcti)
    # The good TPM's certificate presented with the other TPM's EK.
    good["tpm"]["ek_public"] = foreign["tpm"]["ek_public"]
    (result,) = attest.judge(good, None, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_a"]))["checks"]
    assert result["status"] == "fail" and result["reason"] == "key_mismatch", result


def test_derives_the_ek_when_none_is_persisted(lab, ansible_run):
    """The foreign TPM's EK evicted: the module derives it (transient) and it still matches its certificate."""
    tcti = lab["tpms"]["foreign"].tcti
    subprocess.run(["tpm2_evictcontrol", "-T", tcti, "-C", "o", "-c", "0x81010001"], check=True, capture_output=True)
    ev = _evidence(ansible_run, tcti)
    assert ev["tpm"]["ek_public"]["rsa2048"]["source"] == "derived"
    der = base64.b64decode(ev["tpm"]["ek_certificates"][0]["der_b64"])
    assert der[0] == 0x30
    (result,) = attest.judge(ev, None, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_b"]))["checks"]
    assert result["status"] == "pass", result
    off = _evidence(ansible_run, tcti, ek_derive=False)
    assert off["tpm"]["ek_public"]["rsa2048"]["source"] is None


def test_missing_event_log_and_ima(lab, ansible_run, tmp_path):
    ev = _evidence(ansible_run, lab["tpms"]["none"].tcti, log=tmp_path / "absent.bin", ima=tmp_path / "no-ima")
    assert ev["event_log"]["reason"] == "missing" and ev["ima"]["reason"] == "missing"
    verdict = attest.judge(ev, None, ["eventlog", "ima"])
    assert [(o["check"], o["status"]) for o in verdict["checks"]] == [("eventlog", "fail"), ("ima", "skip")]


def test_report_sections_schema_junit_and_export(lab, ansible_run, tmp_path):
    """Three real hosts through the report: per-host sections, the fleet summary, fleet.json against its
    schema, JUnit cases, and the export that openssl and a fresh replay accept."""
    import json
    import sys
    import xml.etree.ElementTree as ET

    import jsonschema

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin_utils"))
    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_attest, report_render
    from fleet_fixtures import host_record

    records = []
    for name in ("good", "foreign", "none"):
        tcti = lab["tpms"][name].tcti
        record = host_record(name)
        evidence, _ = ansible_run("tpm_attest_evidence", {"tcti": tcti, "event_log_path": str(at.GCE_LOG),
                                                          "ima_dir": "/nonexistent"})  # fmt: skip
        record["attest"] = evidence
        record["quote"], _ = ansible_run("tpm_quote", {"tcti": tcti, "pcrs": "sha256:0,1,2,3,4,5,6,7", "count": 1})
        records.append(record)
    records.append(host_record("down", unreachable=True))
    records[-1]["attest"] = {"unreachable": True, "msg": "ssh: connect refused"}
    model = report.build(records, quote_test=True)
    checks = ["ek_chain", "eventlog"]
    report_attest.apply(model, records, checks, attest.load_ca_certificates(bundle=lab["bundle_a"]))
    hosts = {h["name"]: h["attestation"] for h in model["hosts"]}
    assert hosts["good"]["ready"] is True
    assert [(o["check"], o["status"], o["reason"]) for o in hosts["foreign"]["outcomes"]] == [
        ("ek_chain", "fail", "unchained"), ("eventlog", "fail", "mismatch")]  # fmt: skip
    assert hosts["none"]["outcomes"][0]["reason"] == "no_certificate"
    assert {o["status"] for o in hosts["down"]["outcomes"]} == {"not_run"}
    summary = model["attestation"]
    assert summary["text"] == (
        "1 of 4 hosts ready for attestation; 2 without a chained EK certificate; "
        "2 whose event log does not replay; 1 not judged for ek_chain; 1 not judged for eventlog"
    )
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(json.loads(report_render.render_json(model)))
    suite = ET.fromstring(report_render.render_junit(model)).find("testsuite")  # noqa: S314 - our own output
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert cases[("tpmfleet.good", "attest_ek_chain")].find("failure") is None
    failure = cases[("tpmfleet.foreign", "attest_ek_chain")].find("failure")
    assert failure is not None and "tpm_attest_ek_ca_bundle" in failure.text
    not_run = cases[("tpmfleet.down", "attest_eventlog")].find("error")  # could not run: an error, never a pass
    assert not_run is not None and not_run.get("type") == "not_run"

    written = report_attest.write_exports(records, str(tmp_path))
    assert written["good"] == ["ek-rsa2048-public.pem", "ek-rsa2048.pem", "measured-boot-reference.json"]
    assert "none" in written and "ek-rsa2048.pem" not in written["none"]
    good = tmp_path / "attestation" / "good"
    ok = subprocess.run(["openssl", "verify", "-CAfile", str(lab["bundle_a"]), str(good / "ek-rsa2048.pem")],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    pub = subprocess.run(["openssl", "x509", "-in", str(good / "ek-rsa2048.pem"), "-pubkey", "-noout"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert pub == (good / "ek-rsa2048-public.pem").read_text()
    reference = json.loads((good / "measured-boot-reference.json").read_text())
    assert reference["format"] == report_attest.REFERENCE_FORMAT and reference["events"] == 112
    # the reference PCRs are what the good TPM quoted
    quoted = records[0]["quote"]["quotes"][-1]["pcrs"]["sha256"]
    assert all(reference["pcrs"]["sha256"][i] == quoted[i] for i in map(str, range(8)))
