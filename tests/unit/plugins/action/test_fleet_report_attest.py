"""Attestation readiness through the real report playbook and the jsonfile fact cache: a cache run judges the
evidence the live run read as the live run did (with its read_at), and a record without evidence is not_run."""

from __future__ import annotations

import json
import sys

import attest_tpms as at
import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from conftest import free_port_pair
from report_runs import report_model, run_report, tpm_hosts

pytestmark = [
    pytest.mark.swtpm,
    pytest.mark.skipif(at.SWTPM_SETUP is None or at.SWTPM_LOCALCA is None,
                       reason="needs swtpm-tools (swtpm_setup, swtpm_localca)"),
]  # fmt: skip

CHECKS = ["ek_chain", "eventlog", "consumer_quote"]
# root quotes (su from root needs no password); nobody cannot even be become (its shell is nologin); the third
# user does not exist: both fail the consumer_quote check with their cause.
CONSUMERS = ["root", "nobody", "tpmfleet-no-such-user"]


def _cache_env(cache):
    return {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0"}  # fmt: skip


def _record_file(cache, name):
    path = next(p for p in cache.iterdir() if p.name in (name, f"s1_{name}"))
    return path, json.loads(path.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A swtpm with an EK certificate from a local CA of its own, read over its TCP TCTI by the real report
    playbook (the mode's profile given that TCTI): a live run with ek_chain and eventlog enabled and a jsonfile
    cache; a cache run with the host behind a closed port; a cache run after the record lost its evidence; a
    live run without attestation checks, then a cache run with them."""
    tmp = tmp_path_factory.mktemp("report-attest")
    base = tmp / "tpm"
    conf = at.make_local_ca(base / "ca")
    tpm = at.start(at.manufacture(base / "state", conf))
    try:
        profile = dict(qm.profile("kernel_rm"), tcti=tpm.tcti)
        settings = {"tpm_quote_mode_profile": profile, "tpm_attest_checks": CHECKS,
                    "tpm_attest_ek_ca_bundle": str(at.ca_bundle(base / "ca"))}  # fmt: skip
        (tmp / "extra.json").write_text(json.dumps(settings))
        (tmp / "plain.json").write_text(json.dumps({"tpm_quote_mode_profile": profile}))
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "tpm_quote_mode": "kernel_rm", "tpm_access_consumer_users": CONSUMERS,
                 "ansible_become_method": "su"}  # fmt: skip
        closed = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port_pair(),
                  "ansible_user": "nobody", "tpm_quote_mode": "kernel_rm",
                  "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5"}  # fmt: skip
        cache = tmp / "cache"
        quote = ("-e", "tpm_report_quote=true", "-e", f"@{tmp / 'extra.json'}")
        procs = {"live": run_report(tmp, tpm_hosts({"swtpm": local}), "live", _cache_env(cache), quote)}
        procs["cached"] = run_report(tmp, tpm_hosts({"swtpm": closed}), "cached", _cache_env(cache),
                                     ("-e", "tpm_report_source=cache", *quote))  # fmt: skip
        path, data = _record_file(cache, "swtpm")
        payload = json.loads(data["__payload__"]) if "__payload__" in data else data
        record = payload["tpmfleet_report_record"]
        record = record["value"] if "__ansible_type" in record else record  # ansible-core's type tags
        record.pop("attest")
        if "__payload__" in data:
            data["__payload__"] = json.dumps(payload)
        path.write_text(json.dumps(data))
        procs["no_evidence"] = run_report(tmp, tpm_hosts({"swtpm": closed}), "no_evidence", _cache_env(cache),
                                          ("-e", "tpm_report_source=cache", *quote))  # fmt: skip
        cache2 = tmp / "cache2"
        procs["live_off"] = run_report(tmp, tpm_hosts({"swtpm": local}), "live_off", _cache_env(cache2),
                                       ("-e", "tpm_report_quote=true", "-e", f"@{tmp / 'plain.json'}"))  # fmt: skip
        procs["cached_on"] = run_report(tmp, tpm_hosts({"swtpm": closed}), "cached_on", _cache_env(cache2),
                                        ("-e", "tpm_report_source=cache", *quote))  # fmt: skip
    finally:
        tpm.stop()
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stdout + proc.stderr)
    return tmp, procs


def test_the_live_run_judges_the_tpm(runs):
    tmp, _procs = runs
    model, hosts = report_model(tmp, "live")
    section = hosts["swtpm"]["attestation"]
    outcomes = {o["check"]: o for o in section["outcomes"]}
    # the certificate from the TPM's own local CA chains; the controller has no boot event log to replay
    assert outcomes["ek_chain"]["status"] == "pass" and outcomes["ek_chain"]["reason"] == "chained"
    assert outcomes["eventlog"]["status"] == "fail" and outcomes["eventlog"]["reason"] == "missing"
    assert section["ready"] is False and section["read_at"] == hosts["swtpm"]["read_at"] is not None
    assert section["stale"] is False
    consumer = outcomes["consumer_quote"]
    assert consumer["status"] == "fail", consumer
    by_user = {c["user"]: c for c in consumer["details"]["consumers"]}
    assert list(by_user) == CONSUMERS
    # root created an AK and quoted twice over the swtpm's TCTI, each quote verified on the controller
    assert by_user["root"]["status"] == "pass" and by_user["root"]["quotes"] == 2, by_user["root"]
    assert by_user["root"]["tcti"].startswith("swtpm:host=127.0.0.1,port=")
    for user in CONSUMERS[1:]:
        assert by_user[user]["status"] == "fail" and by_user[user]["quotes"] == 0, by_user[user]
        assert by_user[user]["cause"].startswith(f'as "{user}" over "swtpm:host=127.0.0.1,port='), by_user[user]
        assert by_user[user]["fix"], by_user[user]
        assert by_user[user]["reason"] == "become", by_user[user]  # Ansible could not become the user
    assert "This account is currently not available." in by_user["nobody"]["cause"]
    assert consumer["cause"] == f"{by_user['nobody']['cause']}; {by_user['tpmfleet-no-such-user']['cause']}"
    assert consumer["reason"] == "become" and consumer["fix"] == by_user["nobody"]["fix"]
    assert model["attestation"]["failing"] == {"ek_chain": 0, "eventlog": 1, "consumer_quote": 1}
    assert "1 where a consumer user cannot quote" in model["attestation"]["text"]
    junit = (tmp / "live" / "junit.xml").read_text()
    assert 'name="attest_consumer_quote"' in junit


def test_a_cache_run_judges_attestation_as_the_live_run_did(runs):
    tmp, procs = runs
    recap = procs["cached"].stdout[procs["cached"].stdout.index("PLAY RECAP") :]
    assert "unreachable=0" in recap and "failed=0" in recap  # the closed port was never tried
    live_model, live = report_model(tmp, "live")
    cache_model, cached = report_model(tmp, "cached")
    assert cached["swtpm"]["source"] == "cache"
    assert cached["swtpm"]["attestation"] == live["swtpm"]["attestation"]
    assert all(o["status"] != "not_run" for o in cached["swtpm"]["attestation"]["outcomes"])
    assert cache_model["attestation"] == live_model["attestation"]
    live_junit = (tmp / "live" / "junit.xml").read_text()
    assert 'name="attest_ek_chain"' in live_junit
    assert (tmp / "cached" / "junit.xml").read_text() == live_junit.replace(
        live_model["generated_at"], cache_model["generated_at"], 1
    )


def test_a_record_without_evidence_is_not_run_never_ready(runs):
    tmp, _procs = runs
    model, hosts = report_model(tmp, "no_evidence")
    section = hosts["swtpm"]["attestation"]
    assert section["ready"] is False
    # the evidence checks are not run; the consumers' quotes are still in the record and judged as before
    assert [o["status"] for o in section["outcomes"]] == ["not_run", "not_run", "fail"]
    assert model["attestation"]["not_run"] == {"ek_chain": 1, "eventlog": 1, "consumer_quote": 0}
    # a live run without attestation checks: nothing to judge in its record, every check not_run
    model, hosts = report_model(tmp, "cached_on")
    outcomes = hosts["swtpm"]["attestation"]["outcomes"]
    assert hosts["swtpm"]["attestation"]["ready"] is False
    assert [o["status"] for o in outcomes] == ["not_run", "not_run", "not_run"]
    assert model["attestation"]["ready"] == 0
    assert {o["cause"] for o in outcomes[:2]} == {"the evidence task was skipped"}
    assert [c["status"] for c in outcomes[2]["details"]["consumers"]] == ["not_run"] * 3
