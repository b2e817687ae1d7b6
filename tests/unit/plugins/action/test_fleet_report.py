"""The report playbook (tpmfleet.tpm.report) end to end on this controller: read-only, every host reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest
import yaml
from ansible_collections.tpmfleet.tpm.plugins.action.fleet_report import host_input, playbooks
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report
from conftest import ANSIBLE, REPO, free_port_pair

PLAYBOOK = str(ANSIBLE) + "-playbook"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run playbooks/report.yml over a local host without TPM, a host with an invalid mode, a host whose
    TPM read cannot start (a broken ansible_python_interpreter) and an unreachable host, in check mode;
    returns (process, report dir)."""
    tmp = tmp_path_factory.mktemp("report")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "children": {
                "tpm_hosts": {
                    "hosts": {
                        "tpmless": dict(local, tpm_quote_mode="direct", tpm_kernel_require_device=False),
                        "badmode": dict(local, tpm_quote_mode="fast"),
                        "brokenpy": dict(local, tpm_quote_mode="direct", ansible_python_interpreter="/usr/bin/false"),
                        "gone": {
                            "ansible_host": "127.0.0.1",
                            "ansible_port": free_port_pair(),
                            "ansible_user": "nobody",
                            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5",
                        },
                    }
                }
            }
        }
    }
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [PLAYBOOK, "-i", str(tmp / "hosts.yml"), "playbooks/report.yml", "--check",
         "-e", f"tpm_report_dir={tmp / 'out'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc, tmp / "out"


def test_playbook_succeeds_and_changes_nothing(run):
    proc, _out = run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    for host in ("tpmless", "badmode", "gone", "brokenpy"):
        line = next(x for x in recap.splitlines() if x.startswith(host))
        assert "changed=0" in line and "failed=0" in line, line
    # the failed read is not hidden: Ansible counts it as ignored, the report as failing
    assert "ignored=1" in next(x for x in recap.splitlines() if x.startswith("brokenpy"))
    assert "4 hosts: 0 healthy, 0 drifted, 0 unverified, 2 failing, 1 unreachable, 1 without TPM" in proc.stdout


def test_every_host_is_in_the_report(run):
    _proc, out = run
    model = json.loads((out / "fleet.json").read_text())
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(model)
    hosts = {h["name"]: h for h in model["hosts"]}
    assert hosts["gone"]["status"] == "unreachable" and hosts["gone"]["tpm"] is None
    assert hosts["tpmless"]["status"] == "no_tpm" and hosts["tpmless"]["mode"] == "direct"
    assert hosts["tpmless"]["tpm"]["present"] is False and hosts["tpmless"]["expected"]["tcti"] == "device:/dev/tpm0"
    assert hosts["badmode"]["status"] == "failing" and hosts["badmode"]["mode"] == "fast"
    assert "tpm_quote_mode must be one of" in hosts["badmode"]["problems"][0]["cause"]
    broken = hosts["brokenpy"]
    assert broken["status"] == "failing" and broken["tpm"] is None
    facts = next(p for p in broken["problems"] if p["check"] == "facts")
    assert facts["cause"].startswith("tpm_facts failed: rc 1; Module result deserialization failed"), facts
    assert model["summary"]["status"] == {
        "failing": 2, "unreachable": 1, "unverified": 0, "no_tpm": 1, "drifted": 0, "healthy": 0,
    }  # fmt: skip
    observed = model["summary"]["observed_modes"]
    assert observed["not_read"] == 2 and sum(observed.values()) == 4  # gone and brokenpy were not read
    # run from the checkout: the fixes name its playbook files; a limit file per problem group
    group = next(g for g in model["problem_groups"] if g["check"] == "facts")
    assert group["command"] == f"ansible-playbook playbooks/report.yml --limit @{out}/{group['limit_file']}"
    assert (out / group["limit_file"]).read_text() == "brokenpy\n"
    assert "hosts.yml" in model["inventory"]
    page = (out / "index.html").read_text()
    assert all(f'"name":"{h}"' in page for h in hosts)  # in the page's embedded model (rows are built from it)
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 4 * len(report.CHECKS) + len(model["fleet_findings"])


def test_host_input_reads_what_the_playbook_left():
    profile = qm.profile("abrmd")
    hv = {"group_names": ["tpm_hosts"], "tpm_quote_mode_profile": profile, "__tpm_report_facts": {"x": 1},
          "__tpm_report_settings": {"tss_group": "tss"}}  # fmt: skip
    record = host_input("h", hv)
    assert record["requested_mode"] == "abrmd" and record["profile"] == profile and record["quote"] is None
    record = host_input("h", dict(hv, tpm_quote_mode="x", __tpm_report_mode_error="bad"))
    assert record["profile"] is None and record["mode_error"] == "bad" and record["requested_mode"] == "x"


def test_fix_commands_name_the_checkout_or_the_collection(tmp_path):
    assert playbooks(str(REPO / "playbooks"), cwd=str(REPO)) == {
        "site": "site.yml", "quote_mode": "playbooks/quote_mode.yml", "report": "playbooks/report.yml",
    }  # fmt: skip
    assert playbooks(str(REPO), cwd=str(tmp_path))["site"] == os.path.join(os.path.relpath(REPO, tmp_path), "site.yml")
    collection_playbooks = REPO / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "playbooks"
    assert playbooks(str(collection_playbooks), cwd=str(tmp_path)) == report.PLAYBOOKS
    assert playbooks(None, cwd=str(tmp_path)) == report.PLAYBOOKS == {
        "site": "tpmfleet.tpm.site", "quote_mode": "tpmfleet.tpm.quote_mode", "report": "tpmfleet.tpm.report",
    }  # fmt: skip
