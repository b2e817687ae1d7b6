"""The default scenario's fleet report (playbooks/report.yml) over the lab, last: it leaves hosts broken.

The fleet as the report must show it: a healthy abrmd host; a direct host drifted on
purpose (tpm2-abrmd started by hand, holding /dev/tpm0); a kernel_rm host whose TPM
(its swtpm) is driven into dictionary-attack lockout with wrong auth values on a
DA-protected NV index; the VM without a TPM; then that VM stopped, reported unreachable, beside
the abrmd host's test quote verified on the controller.
Each with its status and its fix, in fleet.json (checked against its schema), the
page and junit.xml; the report changes no host.

The live run fills a jsonfile fact cache; a run with ``tpm_report_source: cache`` from it, with every
host's SSH port closed, gives the same statuses and problems and names each host's data age. Then
the three ways a host is not healthy although nothing on it "failed": a TPM read that cannot start
(the host's Python interpreter missing: rc 127), a direct-mode TPM held by a consumer while the report
reads it, and a host that requires a TPM and has none; each not healthy in fleet.json, the page and
junit.xml.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import testinfra
import yaml
from tpmfleet_molecule import INVENTORY, PROJECT, junit_cases, needs_inventory, recap, run_playbook

REPORT = os.path.join(PROJECT, "playbooks", "report.yml")
SCHEMA = os.path.join(
    PROJECT, "collections", "ansible_collections", "tpmfleet", "tpm", "plugins", "plugin_utils",
    "fleet-report.schema.json",
)  # fmt: skip
HOSTS = ("mode-direct", "mode-rm", "mode-abrmd", "mode-notpm")
NV_INDEX = "0x01500018"  # an owner-range NV index of the test's own
RM = "-T device:/dev/tpmrm0"

# Part of make test (the Makefile's molecule target sets TPMFLEET_REPORT_LAB=1): the recorded run took about
# 90 s of the verifier. A bare `molecule test -s default` skips it and says so.
pytestmark = [
    needs_inventory,
    pytest.mark.skipif(
        not os.environ.get("TPMFLEET_REPORT_LAB"), reason="TPMFLEET_REPORT_LAB is unset (make test sets it)"
    ),
]


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


@contextlib.contextmanager
def fact_cache(cache_dir):
    """Ansible's jsonfile fact cache in cache_dir for the playbook runs inside (never expiring)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANSIBLE_CACHE_PLUGIN", "jsonfile")
        mp.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(cache_dir))
        mp.setenv("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "0")
        yield


def report(tmp_path, *args, cache_dir=None):
    """playbooks/report.yml over the scenario's hosts into tmp_path; (run, fleet.json, tmp_path).

    ``cache_dir``: with a jsonfile fact cache there."""
    with fact_cache(cache_dir) if cache_dir else contextlib.nullcontext():
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


def states(host):
    return {c["id"]: c["status"] for c in host["checks"]}


def page_model(report_dir):
    """The page's counts per status (its summary cards) and the model it embeds (its host table's data)."""
    page = (report_dir / "index.html").read_text(encoding="utf-8")
    cards = {k: int(v) for k, v in re.findall(r'id="count-(\w+)"><div class="n">(\d+)<', page)}
    data = re.search(r'<script type="application/json" id="fleet-data">(.*?)</script>', page, re.S)
    assert data, "the page embeds no fleet data"
    return page, cards, json.loads(data.group(1))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """The jsonfile fact cache the live report run fills."""
    return tmp_path_factory.mktemp("fact-cache")


@pytest.fixture(scope="module")
def broken_fleet(tmp_path_factory, cache_dir):
    """Drift mode-direct and lock out mode-rm's TPM; the report over the four VMs, filling a fact cache."""
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
    return report(tmp_path_factory.mktemp("report"), cache_dir=cache_dir)


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


def test_the_report_from_the_fact_cache_matches_the_one_over_ssh(broken_fleet, cache_dir, tmp_path_factory):
    _run, live, live_dir = broken_fleet
    assert sorted(p.name for p in cache_dir.iterdir()), "the live run left nothing in the fact cache"
    # Every host's SSH port closed (port 1 on the loopback): a task that reached for a host would fail.
    run, cached, cache_out = report(
        tmp_path_factory.mktemp("report-cache"), "-e", "tpm_report_source=cache", "-e", "ansible_port=1",
        cache_dir=cache_dir,
    )  # fmt: skip
    lines = [x for x in run.stdout[run.stdout.index("PLAY RECAP") :].splitlines() if "ok=" in x]
    assert lines, run.stdout[-3000:]
    for line in lines:
        assert line.split()[0] in HOSTS, line
        for counter in ("unreachable=0", "failed=0", "changed=0", "ignored=0"):
            assert counter in line, line
    assert "fatal:" not in run.stdout and "...ignoring" not in run.stdout
    assert cached["options"]["source"] == "cache" and live["options"]["source"] == "live"
    live_hosts, cache_hosts = by_name(live), by_name(cached)
    assert set(cache_hosts) == set(live_hosts) == set(HOSTS)
    for name, host in cache_hosts.items():
        want = live_hosts[name]
        for key in ("status", "mode", "observed_mode", "reachable", "tpm", "expected", "observed", "quote",
                    "problems", "checks"):  # fmt: skip
            assert host[key] == want[key], (name, key, host[key], want[key])
        # each host's data age: read by the live run, not stale
        assert (host["source"], want["source"]) == ("cache", "live")
        assert host["read_at"] == want["read_at"] and host["stale"] is False, name
        assert isinstance(host["age_seconds"], int) and 0 <= host["age_seconds"] < 86400, name
    assert cached["summary"]["status"] == live["summary"]["status"]
    assert {g["id"]: sorted(g["hosts"]) for g in cached["problem_groups"]} == {
        g["id"]: sorted(g["hosts"]) for g in live["problem_groups"]
    }
    assert cached["summary"]["data"]["stale"] == 0 and cached["summary"]["data"]["not_cached"] == 0
    assert junit_cases(cache_out / "junit.xml") == junit_cases(live_dir / "junit.xml")
    page, cards, embedded = page_model(cache_out)
    assert "from the fact cache (no host contacted)" in page
    assert cards == page_model(live_dir)[1]
    assert {h["name"]: (h["status"], h["read_at"]) for h in embedded["hosts"]} == {
        n: (h["status"], h["read_at"]) for n, h in live_hosts.items()
    }


@pytest.fixture(scope="module")
def unhealthy_fleet(broken_fleet, tmp_path_factory):
    """mode-direct back in its mode, its TPM held by a consumer; mode-abrmd's Python interpreter missing
    (for this run: an inventory of the test's own); mode-notpm required to have a TPM (an extra var)."""
    direct = lab_host("mode-direct")
    direct.run_test("systemctl stop tpm2-abrmd && systemctl mask tpm2-abrmd")
    direct.run("systemctl stop tpm-hog.service; systemctl reset-failed tpm-hog.service")
    started = direct.run(
        "systemd-run --collect --unit=tpm-hog.service --property=User=tss"
        " /bin/sh -c 'exec 3<>/dev/tpm0; exec sleep 900'"
    )
    assert started.rc == 0, started.stderr
    tmp = tmp_path_factory.mktemp("report-unhealthy")
    inventory = tmp / "stopped-python.yml"
    inventory.write_text(yaml.safe_dump(
        {"all": {"hosts": {"mode-abrmd": {"ansible_python_interpreter": "/usr/bin/python3-stopped"}}}}
    ))  # fmt: skip
    try:
        yield report(
            tmp / "out", "-i", str(inventory), "-e", "tpm_report_hosts=mode-direct:mode-abrmd:mode-notpm",
            "-e", "tpm_kernel_require_device=true",
        )  # fmt: skip
    finally:
        direct.run("systemctl stop tpm-hog.service")


def test_a_failed_read_a_busy_tpm_and_a_missing_required_tpm_are_not_healthy_in_json(unhealthy_fleet):
    run, fleet, _out = unhealthy_fleet
    hosts = by_name(fleet)
    assert {n: h["status"] for n, h in hosts.items()} == {
        "mode-abrmd": "failing", "mode-direct": "unverified", "mode-notpm": "failing",
    }  # fmt: skip
    assert fleet["summary"]["status"]["healthy"] == 0 and sum(fleet["summary"]["status"].values()) == 3
    # the failed read: its rc and message, every TPM check not run
    read = checks(hosts["mode-abrmd"])["facts"]
    assert read["severity"] == "error" and read["title"] == "TPM facts could not be read", read
    assert "127" in read["cause"] or "python3-stopped" in read["cause"], read
    assert hosts["mode-abrmd"]["tpm"] is None
    assert {states(hosts["mode-abrmd"])[c] for c in ("lockout", "ek_certificate", "auth")} == {"not_run"}
    # the busy TPM: held by the consumer, its state not read
    busy = checks(hosts["mode-direct"])["tpm_access"]
    assert busy["title"] == "TPM busy: a consumer holds /dev/tpm0" and "held by pid " in busy["cause"], busy
    tpm_checks = ("tpm_access", "lockout", "ek_certificate", "auth")
    assert {c: states(hosts["mode-direct"])[c] for c in tpm_checks} == dict.fromkeys(tpm_checks, "not_run")
    # the missing required TPM
    missing = checks(hosts["mode-notpm"])["tpm_present"]
    assert missing["severity"] == "error" and "tpm_kernel_require_device is true" in missing["cause"], missing
    # the failed read is carried into the recap (ignored), not dropped
    assert recap(run, "mode-abrmd")["ignored"] >= 1, run.stdout[-3000:]


def test_a_failed_read_a_busy_tpm_and_a_missing_required_tpm_are_not_healthy_on_the_page(unhealthy_fleet):
    _run, fleet, out = unhealthy_fleet
    _page, cards, embedded = page_model(out)
    assert cards["healthy"] == 0 and cards["failing"] == 2 and cards["unverified"] == 1, cards
    assert {h["name"]: h["status"] for h in embedded["hosts"]} == {h["name"]: h["status"] for h in fleet["hosts"]}


def test_a_failed_read_a_busy_tpm_and_a_missing_required_tpm_are_not_healthy_in_junit(unhealthy_fleet):
    _run, _fleet, out = unhealthy_fleet
    cases = junit_cases(out / "junit.xml")
    assert cases[("tpmfleet.mode-abrmd", "facts")][0] == "error"
    assert cases[("tpmfleet.mode-notpm", "tpm_present")][0] == "error"
    kind, message = cases[("tpmfleet.mode-direct", "tpm_access")]
    assert kind == "not_run" and message.startswith("not run: the TPM was busy"), (kind, message)
    for check in ("lockout", "ek_certificate", "auth"):
        for host in ("mode-direct", "mode-abrmd"):
            kind, message = cases[(f"tpmfleet.{host}", check)]
            assert kind == "not_run" and message.startswith("not run"), (host, check, kind, message)
    # no host passes every one of its cases
    for host in ("mode-direct", "mode-abrmd", "mode-notpm"):
        assert {v[0] for (cls, _n), v in cases.items() if cls == f"tpmfleet.{host}"} != {"pass"}, host


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
