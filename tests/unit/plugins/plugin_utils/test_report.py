"""The fleet report model: drift rules, problems with fixes, fleet findings, JSON schema, JUnit and HTML."""

from __future__ import annotations

import copy
import html.parser
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_page, report_render
from fleet_fixtures import AGENT_PROC, host_record, synthetic_fleet

MODES = ("direct", "kernel_rm", "abrmd")


def one(record, **kw):
    return report.build([record], **kw)["hosts"][0]


def checks(host):
    return {c["id"]: c["status"] for c in host["checks"]}


def problem_ids(host):
    return sorted({p["check"] for p in host["problems"] if p["severity"] != "info"})


@pytest.mark.parametrize("mode", MODES)
def test_a_host_as_its_mode_implies_is_healthy(mode):
    host = one(host_record("h1", mode))
    assert host["status"] == "healthy", host["problems"]
    assert host["observed_mode"] == mode and host["mode"] == mode
    assert [p for p in host["problems"] if p["severity"] != "info"] == []
    assert all(s == "pass" for c, s in checks(host).items() if c != "quote")
    assert checks(host)["quote"] == "skip"
    assert host["expected"]["tcti"] == qm.profile(mode)["tcti"]


@pytest.mark.parametrize("mode", MODES)
def test_every_other_mode_is_drift(mode):
    """A host set up for one mode but asked for another drifts, and its observed mode is the set-up one."""
    for other in MODES:
        if other == mode:
            continue
        record = host_record("h1", other)
        record["requested_mode"] = mode
        record["profile"] = qm.profile(mode)
        host = one(record)
        assert host["status"] == "drifted", (mode, other)
        assert host["observed_mode"] == other
        assert "drift_tcti_env" in problem_ids(host)
        assert all(
            p["drift"] and "ansible-playbook tpmfleet.tpm.quote_mode -l h1" in p["fix"] for p in host["problems"]
        )


def test_abrmd_running_in_direct_mode():
    host = one(host_record("h1", "direct", abrmd_running=True))
    assert host["status"] == "drifted"
    assert problem_ids(host) == ["drift_abrmd", "drift_holders"]
    titles = [p["title"] for p in host["problems"]]
    assert "tpm2-abrmd is running" in titles and "tpm2-abrmd is not masked" in titles
    holder = next(p for p in host["problems"] if p["check"] == "drift_holders")
    assert "tpm2-abrmd" in holder["cause"] and "never tpm2-abrmd" in holder["cause"]


def test_abrmd_stopped_in_abrmd_mode():
    host = one(host_record("h1", "abrmd", abrmd_running=False))
    assert host["status"] == "drifted"
    assert [p["title"] for p in host["problems"]] == ["tpm2-abrmd is not running"]
    record = host_record("h2", "abrmd", abrmd_running=False)
    record["facts"]["ansible_facts"]["tpm"]["abrmd"]["systemd"]["unit_file_state"] = "disabled"
    assert [p["title"] for p in one(record)["problems"]] == [
        "tpm2-abrmd is not running",
        "tpm2-abrmd does not start at boot",
    ]


def test_holders_of_tpm0_per_mode():
    assert one(host_record("h1", "direct", extra_holders=[AGENT_PROC]))["status"] == "healthy"
    kernel_rm = one(host_record("h1", "kernel_rm", extra_holders=[AGENT_PROC]))
    assert problem_ids(kernel_rm) == ["drift_holders"] and "keylime_agent.service" in kernel_rm["problems"][0]["cause"]
    abrmd = one(host_record("h1", "abrmd", extra_holders=[AGENT_PROC]))
    assert problem_ids(abrmd) == ["drift_holders"] and "only tpm2-abrmd" in abrmd["problems"][0]["cause"]


def test_tcti_env_missing_or_partly_wrong():
    missing = one(host_record("h1", "kernel_rm", tcti_env=False))
    assert missing["status"] == "drifted" and missing["problems"][0]["title"] == "TCTI environment file is missing"
    partly = dict.fromkeys(qm.TCTI_VARIABLES, "device:/dev/tpmrm0")
    partly["TPM2TOOLS_TCTI"] = "device:/dev/tpm0"
    host = one(host_record("h1", "kernel_rm", tcti_env=partly))
    assert host["status"] == "drifted"
    assert "TPM2TOOLS_TCTI=device:/dev/tpm0" in host["problems"][0]["cause"]


def test_node_mode_and_group_drift():
    host = one(host_record("h1", "kernel_rm", node_mode={"/dev/tpmrm0": "0666"}))
    assert problem_ids(host) == ["drift_nodes"]
    assert "/dev/tpmrm0 is tss:tss 0666" in host["problems"][0]["cause"]
    # direct mode gives the tss group the raw node: a kernel_rm host has root there
    record = host_record("h1", "kernel_rm")
    record["requested_mode"], record["profile"] = "direct", qm.profile("direct")
    causes = [p["cause"] for p in one(record)["problems"] if p["check"] == "drift_nodes"]
    assert causes == ["/dev/tpm0 is tss:root 0660; quote mode direct needs tss:tss 0660"]


def test_lockout_is_failing_and_a_counter_is_a_warning():
    locked = one(host_record("h1", "kernel_rm", in_lockout=True, lockout_counter=32))
    assert locked["status"] == "failing" and checks(locked)["lockout"] == "fail"
    assert "tpm2_dictionarylockout --clear-lockout" in locked["problems"][0]["fix"]
    counting = one(host_record("h1", "kernel_rm", lockout_counter=3))
    # a warning fails its check: not proven healthy
    assert counting["status"] == "failing" and checks(counting)["lockout"] == "fail"
    assert counting["problems"][0]["severity"] == "warning" and "3 of max_tries 32" in counting["problems"][0]["cause"]


def test_missing_ek_certificate_owner_auth_and_event_log():
    host = one(host_record("h1", "abrmd", ek_cert=False, owner_auth=True, event_log=False))
    assert problem_ids(host) == ["ek_certificate", "event_log"]  # the owner password is a note (info)
    assert host["status"] == "failing"  # warnings fail their checks: green means every check passed
    ek = next(p for p in host["problems"] if p["check"] == "ek_certificate")
    assert "0x01c00002" in ek["cause"] and "0x01c0000a" in ek["cause"]


def test_owner_password_is_a_note_and_a_host_whose_checks_pass_is_healthy():
    """tpmfleet's checks create their keys under the endorsement hierarchy: an owner password is a note
    for the consumers that create keys under the owner hierarchy, not a failure (as site.yml sees it)."""
    host = one(host_record("h1", "kernel_rm", owner_auth=True))
    assert host["status"] == "healthy" and checks(host)["auth"] == "pass"
    (auth,) = host["problems"]
    assert auth["check"] == "auth" and auth["severity"] == "info"
    assert "endorsement hierarchy" in auth["cause"] and "Ansible Vault" in auth["fix"]
    assert one(host_record("h1", "kernel_rm"))["tpm"]["auth"]["owner"] is False


def test_event_log_readers_are_shown_not_judged():
    host = one(host_record("h1", "direct"))
    assert not [p for p in host["problems"] if p["check"] == "event_log"] and checks(host)["event_log"] == "pass"
    assert host["tpm"]["event_log"]["readable_by"] == {"owner": "root", "group": "root", "others": False}


def test_access_failure_names_its_fix():
    host = one(host_record("h1", "direct", access_error=("busy", "/dev/tpm0 is busy, held by pid 702")))
    assert host["status"] == "failing" and checks(host)["tpm_access"] == "fail"
    problem = host["problems"][0]
    assert problem["title"] == "Cannot open the TPM (busy)" and "held by pid 702" in problem["cause"]
    assert "ansible-playbook tpmfleet.tpm.quote_mode -l h1" in problem["fix"]
    assert checks(host)["lockout"] == "not_run"


def test_busy_in_direct_mode_with_a_consumer_holding_the_tpm_is_unverified():
    """The TPM's state was not read: lockout, EK and auth did not run, so the host is not green."""
    busy = ("busy", "/dev/tpm0 is busy (Device or resource busy), held by pid 702 (keylime_agent)")
    host = one(host_record("h1", "direct", extra_holders=[AGENT_PROC], access_error=busy))
    assert host["status"] == "unverified"
    states = checks(host)
    tpm_checks = ("tpm_access", "lockout", "ek_certificate", "auth")
    assert {c: states[c] for c in tpm_checks} == dict.fromkeys(tpm_checks, "not_run")
    assert host["problems"][0]["title"] == "TPM busy: a consumer holds /dev/tpm0"
    assert host["observed_mode"] == "direct"  # a consumer holds /dev/tpm0, abrmd masked
    # tpm2-abrmd holding it in direct mode is drift and a failure
    host = one(host_record("h1", "direct", abrmd_running=True, access_error=busy))
    assert host["status"] == "failing" and host["problems"][0]["title"] == "Cannot open the TPM (busy)"


def test_unreachable_host_is_kept_with_every_other_check_skipped():
    host = one(host_record("h1", "kernel_rm", unreachable=True))
    assert host["status"] == "unreachable" and host["reachable"] is False and host["tpm"] is None
    states = checks(host)
    assert states.pop("reachable") == "fail" and set(states.values()) == {"not_run"}
    assert "Connection timed out" in host["problems"][0]["cause"]


def test_host_without_tpm():
    expected = one(host_record("h1", "kernel_rm", present=False, require_device=False))
    assert expected["status"] == "no_tpm" and checks(expected)["tpm_present"] == "pass"
    assert expected["problems"][0]["severity"] == "info"
    assert checks(expected)["lockout"] == "skip"
    # tpm_kernel_require_device true (the default) and no TPM: failing, the TPM checks did not run
    required = one(host_record("h1", "kernel_rm", present=False))
    assert required["status"] == "failing" and checks(required)["tpm_present"] == "fail"
    assert checks(required)["lockout"] == "not_run"
    assert "tpm_kernel_require_device: false" in required["problems"][0]["fix"]
    assert "ansible-playbook tpmfleet.tpm.site -l h1" in required["problems"][0]["fix"]


def test_invalid_mode():
    record = host_record("h1", "kernel_rm")
    record.update(requested_mode="fast", profile=None, mode_error="tpm_quote_mode must be one of direct, ...")
    host = one(record)
    assert host["status"] == "failing" and host["mode"] == "fast"
    assert checks(host)["mode"] == "fail" and checks(host)["drift_abrmd"] == "not_run"
    assert "host_vars" in host["problems"][0]["fix"]
    assert host["observed_mode"] == "kernel_rm"  # read from the host, whatever was asked


def test_failed_facts():
    record = host_record("h1", "kernel_rm")
    record["facts"] = {"failed": True, "msg": "Failed to import the required Python library (tpm2-pytss)"}
    host = one(record)
    assert host["status"] == "failing" and checks(host)["facts"] == "fail"
    assert checks(host)["tpm_present"] == "not_run"


def test_test_quote_only_when_asked():
    ok = host_record("h1", "kernel_rm", quote={"changed": False, "verified": True})
    assert checks(one(ok, quote_test=True))["quote"] == "pass"
    assert checks(one(ok))["quote"] == "skip"
    bad = host_record("h1", "kernel_rm", quote={"failed": True, "reason": "verification", "msg": "bad signature"})
    host = one(bad, quote_test=True)
    assert host["status"] == "failing" and host["quote"] == {"verified": False, "reason": "verification"}


def test_fleet_findings_gids_and_mixed_modes():
    records = [
        host_record("a", "direct", groups=("tpm_hosts", "web"), tss_gid=113),
        host_record("b", "direct", groups=("tpm_hosts", "web"), tss_gid=113),
        host_record("c", "abrmd", groups=("tpm_hosts", "web"), tss_gid=990, docker_gid=None),
        host_record("d", "kernel_rm", groups=("tpm_hosts", "db"), tss_gid=113, docker_gid=997),
    ]
    model = report.build(records, ignore_groups=("tpm_hosts",))
    findings = {f["id"]: f for f in model["fleet_findings"]}
    assert set(findings) == {"tss_gid_differs", "docker_gid_differs", "mixed_modes"}
    tss = findings["tss_gid_differs"]
    assert tss["hosts"] == ["c"] and "113 on a, b, d; 990 on c" in tss["cause"]
    assert "tpm_access_tss_gid: 113" in tss["fix"]
    assert findings["docker_gid_differs"]["hosts"] == ["d"]
    mixed = findings["mixed_modes"]
    assert mixed["title"] == "Group web mixes quote modes" and mixed["cause"] == "abrmd: c; direct: a, b"
    assert "tpm_hosts" not in json.dumps(model["fleet_findings"])  # ignored group
    model = report.build(records)
    assert [f["title"] for f in model["fleet_findings"] if f["id"] == "mixed_modes"] == [
        "Group tpm_hosts mixes quote modes",
        "Group web mixes quote modes",
    ]


def test_summary_counts_and_problems_first():
    model = report.build(synthetic_fleet(300))
    s = model["summary"]
    assert s["hosts"] == 300 == sum(s["status"].values()) == sum(s["observed_modes"].values())
    assert s["observed_modes"]["not_read"] == sum(h["tpm"] is None for h in model["hosts"]) > 0
    assert s["observed_modes"]["conflicting"] > 0
    for status in report.STATUSES:
        assert s["status"][status] == sum(h["status"] == status for h in model["hosts"])
        assert s["status"][status] > 0, status  # the synthetic fleet has every status
    assert sum(s["modes"].values()) == 300 and s["modes"]["direct"] == 100
    assert sum(sum(v.values()) for v in s["by_mode"].values()) == 300
    order = [report.STATUSES.index(h["status"]) for h in model["hosts"]]
    assert order == sorted(order) and model["hosts"][0]["status"] == "failing"


def test_fleet_json_matches_its_schema():
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    model = json.loads(report_render.render_json(report.build(synthetic_fleet(120), quote_test=True, inventory="lab")))
    jsonschema.Draft202012Validator(schema).validate(model)
    assert model["schema"] == schema["$id"] and model["schema_version"] == report.SCHEMA_VERSION
    broken = copy.deepcopy(model)
    broken["hosts"][0]["status"] = "ok"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)
    broken = copy.deepcopy(model)
    del broken["summary"]["status"]["healthy"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_junit_has_one_case_per_host_and_check():
    model = report.build(synthetic_fleet(40))
    root = ET.fromstring(report_render.render_junit(model).split("\n", 1)[1])  # noqa: S314 - our own output
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 40 * len(report.CHECKS) + len(model["fleet_findings"])
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure")) > 0
    assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped")) > 0
    assert int(suite.get("errors")) == len(suite.findall("testcase/error")) > 0
    # a check that could not run is an error, never a skip a CI system would count as passed
    assert all(e.get("type") == "not_run" for e in suite.findall("testcase/error"))
    assert all(e.get("message").startswith("not run: ") for e in suite.findall("testcase/error"))
    assert not any(s.get("message").startswith("not run") for s in suite.findall("testcase/skipped"))
    unreachable = next(h["name"] for h in model["hosts"] if h["status"] == "unreachable")
    mine = [c for c in cases if c.get("classname") == f"tpmfleet.{unreachable}"]
    assert [c.get("name") for c in mine] == [c for c, _ in report.CHECKS]
    assert sum(c.find("error") is not None for c in mine) == len(report.CHECKS) - 1
    failure = mine[0].find("failure")
    assert failure.get("type") == "error" and "fix: Check the connection (ansible all -l " in failure.text


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


XSS_NAME = '<img src=x onerror="window.__xss=1">"\'&</script>'


def test_html_escapes_every_host_provided_string():
    records = [host_record(XSS_NAME, "direct", groups=("tpm_hosts", "<b>grp</b>"), extra_holders=[
        dict(AGENT_PROC, comm="<script>alert(1)</script>", unit='x"><svg onload=alert(2)>')])]  # fmt: skip
    record = host_record("plain", "kernel_rm")
    record.update(requested_mode="<i>mode</i>", profile=None, mode_error="<u>bad</u> mode")
    records.append(record)
    page = report_page.render_html(report.build(records))
    for raw in (XSS_NAME, "<b>grp</b>", "<script>alert(1)</script>", "<svg onload", "<i>mode</i>", "<u>bad</u>"):
        assert raw not in page, raw
    assert '\\u003cimg src=x onerror=\\"window.__xss=1\\"\\u003e\\"\'\\u0026\\u003c/script\\u003e' in page
    parser = _Tags()
    parser.feed(page)
    tags = [t for t, _a in parser.tags]
    assert tags.count("script") == 3 and "img" not in tags and "u" not in tags and "i" not in tags
    assert page.count("</script>") == 3
    # the embedded data still carries the exact names
    start = page.index('<script type="application/json" id="fleet-data">') + len(
        '<script type="application/json" id="fleet-data">'
    )
    data = json.loads(page[start : page.index("</script>", start)])
    assert {h["name"] for h in data["hosts"]} == {XSS_NAME, "plain"}


def test_html_summary_numbers_and_chart():
    model = report.build(synthetic_fleet(90))
    page = report_page.render_html(model)
    for status, n in model["summary"]["status"].items():
        assert f'id="count-{status}"><div class="n">{n}</div>' in page
    assert "<tbody></tbody>" in page  # the host rows are built in the browser (test_report_browser.py)
    assert '<svg id="mode-chart"' in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_write_report(tmp_path):
    paths = report_page.write_report(report.build(synthetic_fleet(5)), str(tmp_path / "report"))
    assert sorted(p.rsplit("/", 1)[1] for p in paths.values()) == ["fleet.json", "index.html", "junit.xml"]
    assert json.loads((tmp_path / "report" / "fleet.json").read_text())["summary"]["hosts"] == 5
