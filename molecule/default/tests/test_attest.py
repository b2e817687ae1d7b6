"""Attestation readiness over the default scenario's lab (first in the verifier: the VMs as converged).

molecule.yml gives each consumer VM one of the lab's EK certificate variants (``ek_certificate``):
mode-direct a certificate from the lab's swtpm local CA, mode-rm one from another CA, mode-abrmd none;
mode-notpm has no TPM. playbooks/report.yml with ``tpm_attest_checks: [ek_chain, eventlog, ima]``, a
verified test quote and the lab CA bundle must show each VM's readiness as these make it (chained, no
certificate, foreign CA; the event log replays to the quoted PCRs 0-7; IMA without a policy) in fleet.json,
junit.xml and the page's model, and export an EK certificate that ``openssl verify`` accepts against the
lab CA. Then keylime 7.14.3's own code (PyPI) accepts each VM's verified quote, event log and IMA list,
and rejects, as tpmfleet does, the event log with one event changed and the foreign EK certificate.
Last, ``consumer_quote``: the consumer user of each VM (tpmagent, in tss after converge) creates an AK and
quotes twice over its mode's TCTI as that user, and an account outside tss (nobody) cannot.
The checks are in molecule/shared/tests/tpmfleet_attest.py, which tests/lab/test_attest_lab.py runs on a
lab of its own (make test-attest-lab).
"""

import json
import os
from pathlib import Path

import pytest
import yaml
from tpmfleet_attest import (
    KEYLIME_PYTHON,
    REPORT,
    Lab,
    check_keylime,
    check_report,
    ek_ca_bundle,
    lab_hosts,
    report,
)
from tpmfleet_molecule import INVENTORY, needs_inventory

MOLECULE_YML = Path(__file__).resolve().parent.parent / "molecule.yml"

# Part of make test (the Makefile's molecule target sets TPMFLEET_REPORT_LAB=1), as the fleet report's lab
# checks are: about 6 minutes of the verifier on a loaded 2-core machine. make test-attest-lab runs the same
# checks on a lab of its own.
pytestmark = [
    needs_inventory,
    pytest.mark.skipif(
        not os.environ.get("TPMFLEET_REPORT_LAB"), reason="TPMFLEET_REPORT_LAB is unset (make test sets it)"
    ),
]


@pytest.fixture(scope="module")
def lab():
    scenario = yaml.safe_load(MOLECULE_YML.read_text(encoding="utf-8"))
    host_vars = scenario["provisioner"]["inventory"]["host_vars"]
    modes = {name: v.get("tpm_quote_mode") for name, v in host_vars.items()}
    return Lab([INVENTORY], lab_hosts(scenario["platforms"], modes), ek_ca_bundle("molecule-default"))


@pytest.fixture(scope="module")
def attest_report(lab, tmp_path_factory):
    return report(lab, tmp_path_factory.mktemp("attest-report"))


def test_the_scenario_has_every_ek_variant(lab):
    assert sorted(str(h["ek"]) for h in lab.hosts.values()) == ["None", "foreign", "lab", "none"], lab.hosts
    assert lab.ca_bundle.is_file(), f"the lab role wrote no CA bundle at {lab.ca_bundle}"


def test_the_report_shows_each_vms_attestation_readiness(lab, attest_report):
    check_report(lab, attest_report)


@pytest.mark.skipif(not KEYLIME_PYTHON, reason="TPMFLEET_KEYLIME_PYTHON is set to an empty string")
def test_keylime_accepts_and_rejects_the_lab_evidence_as_tpmfleet_does(lab, attest_report, tmp_path):
    check_keylime(lab, attest_report, tmp_path)


def _consumer_outcomes(lab, out, *args, limit):
    """{host: the consumer_quote outcome} of a live report with that check alone."""
    checks = json.dumps({"tpm_attest_checks": ["consumer_quote"]})
    run = lab.playbook(REPORT, "-e", f"tpm_report_dir={out}", "-e", checks, "-e", "tpm_report_timeout=120", *args,
                       limit=limit)  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    fleet = json.loads((out / "fleet.json").read_text(encoding="utf-8"))
    found = {}
    for host in fleet["hosts"]:
        section = host["attestation"]
        assert section is not None and section["checks_enabled"] == ["consumer_quote"], (host["name"], section)
        (found[host["name"]],) = section["outcomes"]
    return found


def test_each_consumer_user_creates_an_ak_and_quotes_twice_over_its_modes_tcti(lab, tmp_path):
    # on sys.path once tpmfleet_attest is imported (it adds the checkout's collections)
    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode

    found = _consumer_outcomes(lab, tmp_path / "consumers", limit=",".join(lab.hosts))
    assert set(found) == set(lab.hosts), sorted(found)
    for name, spec in lab.hosts.items():
        outcome = found[name]
        if spec["ek"] is None:  # no TPM: nothing to quote with, never ready
            assert outcome["status"] == "not_run", (name, outcome)
            continue
        assert (outcome["status"], outcome["reason"]) == ("pass", "quoted"), (name, outcome)
        (consumer,) = outcome["details"]["consumers"]
        want_tcti = quote_mode.profile(spec["mode"])["tcti"]
        assert consumer["user"] == "tpmagent" and consumer["quotes"] == 2, (name, consumer)
        assert consumer["tcti"] == want_tcti, (name, consumer, want_tcti)


def test_an_account_outside_tss_cannot_quote_and_the_host_is_not_ready(lab, tmp_path):
    """nobody beside tpmagent on the kernel_rm VM: tpmagent passes, nobody fails with its cause; the host fails."""
    (host,) = [n for n, h in lab.hosts.items() if h["mode"] == "kernel_rm"]
    users = json.dumps({"tpm_access_consumer_users": ["tpmagent", "nobody"]})
    found = _consumer_outcomes(lab, tmp_path / "nobody", "-e", users, limit=host)
    outcome = found[host]
    assert outcome["status"] == "fail", outcome
    consumers = {c["user"]: c for c in outcome["details"]["consumers"]}
    assert consumers["tpmagent"]["status"] == "pass" and consumers["tpmagent"]["quotes"] == 2, consumers
    assert consumers["nobody"]["status"] == "fail" and consumers["nobody"]["quotes"] == 0, consumers
    assert '"nobody"' in outcome["cause"] and outcome["fix"], outcome
