"""The default scenario's fleet report (playbooks/report.yml) over the lab, last: it leaves hosts broken.

The fleet as the report must show it: a healthy abrmd host; a direct host drifted on
purpose (tpm2-abrmd started by hand, holding /dev/tpm0); a kernel_rm host whose TPM
(its swtpm) is driven into dictionary-attack lockout with wrong auth values on a
DA-protected NV index; the VM without a TPM; then that VM stopped, reported unreachable, beside
the abrmd host's test quote verified on the controller.
Each with its status and its fix, in fleet.json (checked against its schema), the
page and junit.xml; the report changes no host.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import testinfra
from tpmfleet_molecule import INVENTORY, PROJECT, needs_inventory, recap, run_playbook

REPORT = os.path.join(PROJECT, "playbooks", "report.yml")
SCHEMA = os.path.join(
    PROJECT, "collections", "ansible_collections", "tpmfleet", "tpm", "plugins", "plugin_utils",
    "fleet-report.schema.json",
)  # fmt: skip
HOSTS = ("mode-direct", "mode-rm", "mode-abrmd", "mode-notpm")
NV_INDEX = "0x01500018"  # an owner-range NV index of the test's own
RM = "-T device:/dev/tpmrm0"

# On demand (make test-report-lab) until a recorded run shows it fits CI's budget.
pytestmark = [
    needs_inventory,
    pytest.mark.skipif(not os.environ.get("TPMFLEET_REPORT_LAB"), reason="on demand: make test-report-lab"),
]


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


def report(tmp_path, *args):
    """playbooks/report.yml over the scenario's hosts into tmp_path; (run, fleet.json, tmp_path)."""
    run = run_playbook(REPORT, "-e", f"tpm_report_dir={tmp_path}", *args, limit="all")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    with open(tmp_path / "fleet.json", encoding="utf-8") as fh:
        fleet = json.load(fh)
    with open(SCHEMA, encoding="utf-8") as fh:
        jsonschema.validate(fleet, json.load(fh))
    return run, fleet, tmp_path


def by_name(fleet):
    return {h["name"]: h for h in fleet["hosts"]}


def checks(host):
    return {p["check"]: p for p in host["problems"]}


@pytest.fixture(scope="module")
def broken_fleet(tmp_path_factory):
    """Drift mode-direct and lock out mode-rm's TPM; the report over the four VMs."""
    direct = lab_host("mode-direct")
    direct.run_test("systemctl unmask tpm2-abrmd && systemctl start tpm2-abrmd")
    rm = lab_host("mode-rm")
    for cmd in (
        f"tpm2_dictionarylockout {RM} -s -n 3 -t 3600 -l 3600",
        f'tpm2_nvdefine {RM} {NV_INDEX} -C o -s 6 -a "authread|authwrite|ownerwrite" -p right',
    ):
        done = rm.run(cmd)
        assert done.rc == 0, f"{cmd}: {done.stderr}"
    for _ in range(3):
        wrong = rm.run(f"tpm2_nvread {RM} {NV_INDEX} -C {NV_INDEX} -P wrong -s 6")
        assert wrong.rc != 0, "a wrong auth value was accepted"
    return report(tmp_path_factory.mktemp("report"))


def test_the_report_changes_no_host(broken_fleet):
    run, _fleet, _out = broken_fleet
    for name in HOSTS:
        assert recap(run, name)["changed"] == 0, run.stdout[-3000:]


def test_every_host_is_in_the_report_with_its_mode_and_status(broken_fleet):
    _run, fleet, _out = broken_fleet
    hosts = by_name(fleet)
    assert set(hosts) == set(HOSTS)
    assert {n: h["status"] for n, h in hosts.items()} == {
        "mode-abrmd": "healthy",
        # Cannot quote (tpm2-abrmd holds /dev/tpm0) and drifted from its mode.
        "mode-direct": "failing",
        "mode-rm": "failing",
        "mode-notpm": "no_tpm",
    }
    assert (hosts["mode-abrmd"]["mode"], hosts["mode-abrmd"]["observed_mode"]) == ("abrmd", "abrmd")
    # asked direct, tpm2-abrmd started by hand and holding /dev/tpm0: its signs disagree
    assert (hosts["mode-direct"]["mode"], hosts["mode-direct"]["observed_mode"]) == ("direct", "conflicting")
    assert fleet["summary"]["hosts"] == 4
    assert fleet["summary"]["status"] == {
        "failing": 2, "unreachable": 0, "unverified": 0, "no_tpm": 1, "drifted": 0, "healthy": 1,
    }  # fmt: skip
    assert sum(fleet["summary"]["observed_modes"].values()) == 4
    # green means proven: every check of the healthy host ran and passed (or does not apply)
    assert {c["status"] for c in hosts["mode-abrmd"]["checks"]} <= {"pass", "skip"}


def test_the_drifted_direct_host_names_abrmd_and_the_fix(broken_fleet):
    _run, fleet, _out = broken_fleet
    host = by_name(fleet)["mode-direct"]
    problems = checks(host)
    assert problems["drift_abrmd"]["drift"] is True, host["problems"]
    assert problems["drift_holders"]["drift"] is True and "tpm2-abrmd" in problems["drift_holders"]["cause"]
    assert "busy" in problems["tpm_access"]["title"].lower()
    assert "playbooks/quote_mode.yml -l mode-direct" in problems["drift_abrmd"]["fix"]
    group = next(g for g in fleet["problem_groups"] if g["id"] == problems["drift_abrmd"]["group"])
    assert "mode-direct" in group["hosts"] and "--limit @" in group["command"]


def test_the_locked_out_tpm_is_reported_with_its_counter_and_fix(broken_fleet):
    _run, fleet, _out = broken_fleet
    host = by_name(fleet)["mode-rm"]
    lockout = checks(host)["lockout"]
    assert lockout["severity"] == "error" and "3 failed authorizations reached max_tries 3" in lockout["cause"]
    assert "tpm2_dictionarylockout" in lockout["fix"]
    assert host["tpm"]["lockout"]["in_lockout"] is True
    assert not [p for p in host["problems"] if p["drift"]], "a locked-out TPM is no drift of the quote mode"


def test_the_page_and_junit_name_every_host(broken_fleet):
    _run, fleet, report_dir = broken_fleet
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    for name in HOSTS:
        assert name in page
    assert "<script src=" not in page and "<link " not in page, "the page fetches something"
    suite = ET.parse(report_dir / "junit.xml").getroot()  # noqa: S314 - the report's own output
    errors = {
        case.get("classname")
        for case in suite.iter("testcase")
        if case.find("failure") is not None and case.find("failure").get("type") == "error"
    }
    assert {"tpmfleet.mode-direct", "tpmfleet.mode-rm"} <= errors and "tpmfleet.mode-abrmd" not in errors
    assert fleet["summary"]["problems"]


def test_a_stopped_vm_is_reported_unreachable(broken_fleet, tmp_path_factory):
    stop = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "tpmfleet.lab.lab_vm",
         "-a", f"name=mode-notpm state=stopped state_dir={os.path.join(PROJECT, '.lab', 'molecule-default')}"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
        env={
            **{k: v for k, v in os.environ.items() if k != "ANSIBLE_STRATEGY"},
            "ANSIBLE_CONFIG": os.path.join(PROJECT, "ansible.cfg"),
        },
    )  # fmt: skip
    assert stop.returncode == 0, stop.stdout + stop.stderr
    # With the optional test quote, verified on the controller.
    run, fleet, _out = report(
        tmp_path_factory.mktemp("report-stopped"), "-e", "tpm_report_hosts=mode-notpm:mode-abrmd",
        "-e", "tpm_report_quote=true",
    )  # fmt: skip
    hosts = by_name(fleet)
    assert hosts["mode-abrmd"]["quote"] == {"verified": True, "reason": None}
    assert hosts["mode-notpm"]["status"] == "unreachable" and hosts["mode-notpm"]["reachable"] is False
    assert checks(hosts["mode-notpm"])["reachable"]["fix"]
    assert hosts["mode-abrmd"]["status"] == "healthy"
    assert fleet["summary"]["status"]["unreachable"] == 1
    # The play keeps the unreachable host (ignore_unreachable): Ansible counts it as ignored.
    counts = recap(run, "mode-notpm")
    assert counts["unreachable"] == 0 and counts["ignored"] >= 1, run.stdout[-3000:]
