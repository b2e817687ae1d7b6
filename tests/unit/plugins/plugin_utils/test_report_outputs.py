"""The fleet report's outputs survive any string, and its fixes reach every host: green means proven,
problem groups with one quoted command and a limit file Ansible reads, JUnit/JSON under hypothesis."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import xmlschema
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_fleet, report_render
from fleet_fixtures import AGENT_PROC, host_record, synthetic_fleet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# junitparser is in requirements.txt; a .venv made before it was added may lack it.
# TPMFLEET_JUNITPARSER_PATH may name a directory it was installed into (pip install --target).
if os.environ.get("TPMFLEET_JUNITPARSER_PATH"):
    sys.path.append(os.environ["TPMFLEET_JUNITPARSER_PATH"])
try:
    import junitparser
except ImportError:  # pragma: no cover - depends on the environment
    junitparser = None

with open(report.SCHEMA_PATH, encoding="utf-8") as _fh:
    SCHEMA = jsonschema.Draft202012Validator(json.load(_fh))

# The published JUnit schema junit.xml must be valid against: Jenkins' junit-10.xsd as pytest's sdist
# ships it (junit-schema/SOURCE.md says where from, with its sha256 and licence).
JUNIT_XSD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "junit-schema", "junit-10.xsd")
JUNIT_SCHEMA = xmlschema.XMLSchema(JUNIT_XSD)


def one(record, **kw):
    return report.build([record], **kw)["hosts"][0]


def checks(host):
    return {c["id"]: c["status"] for c in host["checks"]}


# --------------------------------------------------------------------------
# Green means proven
# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["failed", "hidden"])
def test_a_failed_read_is_failing_with_its_rc_and_error(how):
    """tpm_facts could not start (rc 127); failed_when: false would have hidden it (failed: False)."""
    host = one(host_record("h1", "direct", read_failure=how))
    assert host["status"] == "failing" and host["tpm"] is None and host["observed_mode"] is None
    assert checks(host)["facts"] == "fail"
    assert {s for c, s in checks(host).items() if c not in ("reachable", "facts", "mode", "quote")} == {"not_run"}
    cause = host["problems"][0]["cause"]
    assert "rc 127" in cause and "module_stderr: /bin/sh: 1: /usr/bin/python3: not found" in cause
    assert "ansible-playbook tpmfleet.tpm.report -l h1" in host["problems"][0]["fix"]
    # rc alone, or facts missing from an otherwise "ok" result, is no read either
    for facts in ({"changed": False, "rc": 1}, {"changed": False, "ansible_facts": {}}, {"changed": False}):
        record = host_record("h2", "direct")
        record["facts"] = facts
        assert one(record)["status"] == "failing", facts


def test_only_a_host_whose_checks_all_ran_and_passed_is_healthy():
    model = report.build(synthetic_fleet(400), quote_test=True)
    for host in model["hosts"]:
        states = {c["status"] for c in host["checks"]}
        if host["status"] == "healthy":
            assert states <= {"pass", "skip"}, host["checks"]
        if "not_run" in states and host["status"] not in ("failing", "unreachable"):
            assert host["status"] == "unverified", host["name"]


def test_holders_that_could_not_be_read_leave_the_host_unverified():
    record = host_record("h1", "kernel_rm")
    record["facts"]["ansible_facts"]["tpm"]["holders_complete"] = False
    host = one(record)
    assert host["status"] == "unverified" and checks(host)["drift_holders"] == "not_run"


def test_observed_mode_comes_from_the_host_not_the_request():
    # direct asked, tpm2-abrmd started by hand and holding /dev/tpm0, env file and nodes say direct
    host = one(host_record("h1", "direct", abrmd_running=True))
    assert host["mode"] == "direct" and host["observed_mode"] == "conflicting"
    # no TPM, no env file, tpm2-abrmd stopped and not masked: direct or kernel_rm, no evidence either way
    host = one(host_record("h1", "kernel_rm", present=False, require_device=False, tcti_env=False))
    assert host["observed_mode"] == "unknown"
    # a consumer on /dev/tpm0 and the rest as kernel_rm: disagree
    assert one(host_record("h1", "kernel_rm", extra_holders=[AGENT_PROC]))["observed_mode"] == "conflicting"
    for mode in qm.modes():
        assert one(host_record("h1", mode))["observed_mode"] == mode


# --------------------------------------------------------------------------
# One fix per problem for all its hosts
# --------------------------------------------------------------------------

EVIL = "<script>alert(1)</script>-347"


def test_fix_commands_quote_the_host_name():
    host = one(host_record(EVIL, "direct", abrmd_running=True))
    fixes = [p["fix"] for p in host["problems"] if "ansible-playbook" in p["fix"]]
    assert fixes and all(f"-l '{EVIL}'" in f for f in fixes)
    cmd = fixes[0][fixes[0].index("ansible-playbook") :].split(" to bring")[0]
    assert shlex.split(cmd) == ["ansible-playbook", "tpmfleet.tpm.quote_mode", "-l", EVIL]


def test_problem_groups_give_one_command_for_all_their_hosts():
    names = ["web-1", "web-2", "db.example", EVIL]
    records = [host_record(n, "direct", abrmd_running=True) for n in names]
    records.append(host_record("ok", "kernel_rm"))
    model = report.build(records, limits_dir="out dir")
    SCHEMA.validate(json.loads(report_render.render_json(model)))
    running = next(g for g in model["problem_groups"] if g["title"] == "tpm2-abrmd is running")
    assert running["count"] == 4 and running["hosts"] == sorted(
        names, key=lambda n: [h["name"] for h in model["hosts"]].index(n)
    )
    assert running["limit_file"] == f"limits/{running['id']}.txt" and running["not_in_limit_file"] == []
    assert (
        running["command"] == f"ansible-playbook tpmfleet.tpm.quote_mode --limit '@out dir/limits/{running['id']}.txt'"
    )
    assert running["command"] in running["fix"] and EVIL not in running["fix"]
    for h in model["hosts"]:
        for p in h["problems"]:
            group = next(g for g in model["problem_groups"] if g["id"] == p["group"])
            assert h["name"] in group["hosts"] and group["check"] == p["check"]
    assert sum(g["count"] for g in model["problem_groups"]) == sum(len(h["problems"]) for h in model["hosts"])
    order = [(report.SEVERITIES.index(g["severity"]), -g["count"]) for g in model["problem_groups"]]
    assert order == sorted(order)


def test_a_checkout_run_names_its_playbook_files():
    pb = {"site": "site.yml", "quote_mode": "playbooks/quote_mode.yml", "report": "playbooks/report.yml"}
    model = report.build([host_record("h1", "direct", abrmd_running=True)], playbooks=pb)
    assert "ansible-playbook playbooks/quote_mode.yml -l h1" in model["hosts"][0]["problems"][0]["fix"]
    assert model["problem_groups"][0]["command"].startswith("ansible-playbook playbooks/quote_mode.yml --limit @")


# Names an inventory can hold but a --limit @file line cannot carry as themselves.
TRICKY = ["web*", "!web-1", "~web", "two words", "db[0]", "tpm_hosts", "all"]


def test_limit_files_select_exactly_the_hosts_of_their_group(tmp_path):
    """The real Ansible inventory manager reads the limit file: the group's hosts, no other host."""
    names = ["web-1", "web-2", "10.0.0.7", "db.example.net", "ungrouped-x", *TRICKY[:-1]]
    bystanders = ["web-3", "db0"]  # what a glob or pattern would wrongly pull in
    records = [host_record(n, "direct", abrmd_running=True) for n in names]
    records += [host_record(n, "direct") for n in bystanders]
    records.append(host_record("all", "direct", abrmd_running=True))
    model = report.build(records)
    report_fleet.write_limit_files(model, str(tmp_path))
    group = next(g for g in model["problem_groups"] if g["title"] == "tpm2-abrmd is running")
    assert set(group["hosts"]) == {*names, "all"}
    assert set(group["not_in_limit_file"]) == set(TRICKY)
    manager = InventoryManager(loader=DataLoader(), sources=[])
    manager.add_group("tpm_hosts")
    for name in [*names, *bystanders]:  # (a host named "all" would break the inventory itself)
        manager.add_host(name, group="tpm_hosts")
    manager.reconcile_inventory()
    manager.subset("@" + str(tmp_path / group["limit_file"]))
    picked = {h.name for h in manager.get_hosts("all")}
    assert picked == set(names) - set(TRICKY)
    for name in ("new\nline", " lead", "tab\tx", "", "a,b*"):
        assert not report_fleet.limit_safe(name)


def test_gid_findings_list_every_host_with_a_limit_file(tmp_path):
    records = [host_record(f"h{i:02d}", "kernel_rm", tss_gid=113) for i in range(20)]
    records += [host_record(f"odd{i:02d}", "kernel_rm", tss_gid=990) for i in range(9)]
    model = report.build(records)
    finding = next(f for f in model["fleet_findings"] if f["id"] == "tss_gid_differs")
    assert finding["hosts"] == [f"odd{i:02d}" for i in range(9)]
    assert "and 3 more" in finding["cause"]  # the summary stays short; hosts has all
    assert finding["command"] == (
        f"ansible-playbook tpmfleet.tpm.site --limit @report/{finding['limit_file']} --tags tpm_access"
    )
    report_fleet.write_limit_files(model, str(tmp_path))
    assert (tmp_path / finding["limit_file"]).read_text().split() == finding["hosts"]


# --------------------------------------------------------------------------
# Outputs survive any string
# --------------------------------------------------------------------------

ANY = st.text(st.characters(blacklist_categories=()), max_size=40) | st.sampled_from(
    ["\x1b[31mred\x1b[0m", "\x00", "\r\n", "\ud800", "\ufffe", "\x7f", "]]>", "a\tb", "&#0;", "\\x1b"]
)


def _poison(record, s):
    """Every host-provided string of ``record`` set from ``s`` (a dict of strings)."""
    record = copy.deepcopy(record)
    record["name"] = s["name"]
    record["groups"] = [s["group"], "tpm_hosts"]
    record["settings"]["tss_group"] = s["group"]
    facts = record["facts"]
    if "ansible_facts" not in facts:
        facts["msg"] = s["msg"]
        return record
    tpm = facts["ansible_facts"]["tpm"]
    tpm["kernel"] = s["msg"]
    for dev in tpm["devices"]:
        dev["owner"], dev["group"] = s["unit"], s["group"]
    tpm["holders"]["/dev/tpm0"] = [dict(AGENT_PROC, comm=s["comm"], unit=s["unit"], cmdline=s["msg"])]
    tpm["tcti_env"]["path"] = s["path"]
    tpm["tcti_env"]["variables"] = dict.fromkeys(qm.TCTI_VARIABLES, s["tcti"])
    tpm["event_log"] = {"path": s["path"], "exists": False, "reason": s["msg"]}
    tpm["accounts"]["groups"] = {s["group"]: {"gid": 5, "members": [s["name"]]}}
    tpm["abrmd"]["systemd"]["active_state"] = s["unit"]
    tpm["abrmd"]["systemd"]["unit_file_state"] = s["unit"]
    if tpm["properties"]:
        props = tpm["properties"]
        props["vendor_strings"], props["manufacturer_name"] = s["vendor"], s["vendor"]
        props["firmware_version"] = s["vendor"]
        props["ek_certificates"][0]["certificate"]["issuer"] = s["msg"]
    else:
        tpm["errors"].append({"step": "tpm", "reason": s["reason"], "msg": s["msg"]})
    return record


STRINGS = st.fixed_dictionaries(
    {k: ANY for k in ("group", "msg", "comm", "unit", "path", "tcti", "vendor", "reason", "mode")}
    | {"name": ANY.filter(bool)}  # an inventory host always has a name
)
BASES = [
    host_record("x", "direct"),
    host_record("x", "abrmd", access_error=("busy", "held")),
    host_record("x", "kernel_rm", unreachable=True),
    host_record("x", "kernel_rm", present=False),
]


def _check_junit(text, model):
    """Well-formed (ElementTree, junitparser), valid against junit-10.xsd, one case per host and check."""
    root = ET.fromstring(text.encode("utf-8"))  # noqa: S314 - our own output
    JUNIT_SCHEMA.validate(text)
    assert root.tag == "testsuites" and [c.tag for c in root] == ["testsuite"]
    suite = root[0]
    cases = suite.findall("testcase")
    assert (
        len(cases) == len(list(suite)) == sum(len(h["checks"]) for h in model["hosts"]) + len(model["fleet_findings"])
    )
    for attr in ("tests", "failures", "errors", "skipped"):
        assert suite.get(attr).isdigit()
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))
    assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
    for case in cases:
        assert case.get("classname") is not None and case.get("name")
        assert len(case) <= 1 and all(c.tag in ("failure", "error", "skipped", "system-out") for c in case)
    names = {c.get("classname") for c in cases} - {"tpmfleet.fleet"}
    assert names == {report_render.xml_safe("tpmfleet." + h["name"]) for h in model["hosts"]}
    if junitparser is not None:
        xml = junitparser.JUnitXml.fromstring(text.encode("utf-8"))
        parsed = next(iter(xml))
        assert parsed.tests == len(cases) and parsed.failures == int(suite.get("failures"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strings=STRINGS, base=st.sampled_from(BASES), quote=st.booleans())
def test_junit_and_json_survive_any_string(strings, base, quote):
    record = _poison(base, strings)
    record["requested_mode"] = strings["mode"]
    if strings["mode"] not in qm.modes():
        record.update(profile=None, mode_error=f"tpm_quote_mode {strings['mode']!r} is invalid")
    if quote:
        record["quote"] = {"failed": True, "reason": strings["reason"], "msg": strings["msg"]}
    other = host_record(strings["name"] + "2", "kernel_rm", tss_gid=7, groups=(strings["group"],))
    model = report.build([record, other], quote_test=quote, ignore_groups=(strings["group"],),
                         inventory=strings["path"], limits_dir=strings["path"])  # fmt: skip
    _check_junit(report_render.render_junit(model), model)
    text = report_render.render_json(model)
    assert text.isascii()
    data = json.loads(text)
    SCHEMA.validate(data)
    assert {h["name"] for h in data["hosts"]} == {strings["name"], strings["name"] + "2"}


def test_junit_keeps_control_characters_visible_and_long_strings_whole():
    name = "\x1b[31mhost\x1b[0m\x00\x7f" + "é" * 10_000
    record = host_record(name, "kernel_rm", unreachable=True)
    record["facts"]["msg"] = "ssh: \x1b[0;31mConnection refused\x1b[0m\r\n"
    model = report.build([record])
    text = report_render.render_junit(model)
    root = ET.fromstring(text.encode("utf-8"))  # noqa: S314 - our own output
    case = root[0].find("testcase")
    assert case.get("classname") == "tpmfleet.\\x1b[31mhost\\x1b[0m\\x00\x7f" + "é" * 10_000
    failure = case.find("failure")
    assert failure.get("message").startswith("Host is unreachable: ssh: \\x1b[0;31mConnection refused\\x1b[0m\r\n")
    assert "\x1b" not in text and "\x00" not in text


def test_the_junit_schema_is_the_published_file_and_rejects_what_it_should():
    """The kept junit-10.xsd is the file SOURCE.md names (its sha256), and it can fail a file."""
    with open(os.path.join(os.path.dirname(JUNIT_XSD), "SOURCE.md"), encoding="utf-8") as fh:
        source = fh.read()
    want = re.search(r"\| file sha256 \| `([0-9a-f]{64})` \|", source)
    with open(JUNIT_XSD, "rb") as fh:
        assert want and hashlib.sha256(fh.read()).hexdigest() == want.group(1)
    good = report_render.render_junit(report.build(synthetic_fleet(20), quote_test=True))
    assert JUNIT_SCHEMA.is_valid(good)
    # what a JUnit consumer cannot rely on: a suite without its counts, a case without a name, an unknown element
    for bad in (
        good.replace(' tests="', ' count="', 1),
        re.sub(r'(<testcase classname="[^"]*") name="[^"]*"', r"\1", good, count=1),
        good.replace("  </testsuite>", "    <note>ok</note>\n  </testsuite>", 1),
    ):
        assert bad != good and not JUNIT_SCHEMA.is_valid(bad)


@pytest.mark.skipif(junitparser is None, reason="junitparser is not installed in this .venv (requirements.txt)")
def test_junitparser_reads_the_synthetic_fleet():
    model = report.build(synthetic_fleet(300), quote_test=True)
    xml = junitparser.JUnitXml.fromstring(report_render.render_junit(model).encode("utf-8"))
    suite = next(iter(xml))
    assert suite.tests == 300 * len(report.CHECKS) + len(model["fleet_findings"])
    skipped = [c for c in suite if any(isinstance(r, junitparser.Skipped) for r in c.result)]
    assert len(skipped) == suite.skipped > 0


def test_a_software_tpm_without_ek_certificate_is_not_judged_by_one():
    record = host_record("h1", "kernel_rm", ek_cert=False)
    record["facts"]["ansible_facts"]["tpm"]["properties"]["software_tpm"] = True
    host = one(record)
    assert host["status"] == "healthy" and checks(host)["ek_certificate"] == "skip"
    record["facts"]["ansible_facts"]["tpm"]["properties"]["software_tpm"] = False
    assert one(record)["status"] == "failing"
