"""The report playbook (tpmfleet.tpm.report) end to end on this controller: read-only, every host reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest
import yaml
from ansible_collections.tpmfleet.tpm.plugins.action.fleet_report import host_input
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report
from conftest import ANSIBLE, REPO, free_port_pair

PLAYBOOK = str(ANSIBLE) + "-playbook"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run playbooks/report.yml over a local host without TPM, a host with an invalid mode and an
    unreachable host, in check mode; returns (process, report dir)."""
    tmp = tmp_path_factory.mktemp("report")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "children": {
                "tpm_hosts": {
                    "hosts": {
                        "tpmless": dict(local, tpm_quote_mode="direct", tpm_kernel_require_device=False),
                        "badmode": dict(local, tpm_quote_mode="fast"),
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
    for host in ("tpmless", "badmode", "gone"):
        line = next(x for x in recap.splitlines() if x.startswith(host))
        assert "changed=0" in line and "failed=0" in line, line
    assert "3 hosts: 0 healthy, 0 drifted, 1 failing, 1 unreachable, 1 without TPM" in proc.stdout


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
    assert model["summary"]["status"] == {"failing": 1, "unreachable": 1, "no_tpm": 1, "drifted": 0, "healthy": 0}
    assert "hosts.yml" in model["inventory"]
    page = (out / "index.html").read_text()
    assert all(f'"name":"{h}"' in page for h in hosts)  # in the page's embedded model (rows are built from it)
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 3 * len(report.CHECKS) + len(model["fleet_findings"])


def test_host_input_reads_what_the_playbook_left():
    profile = qm.profile("abrmd")
    hv = {"group_names": ["tpm_hosts"], "tpm_quote_mode_profile": profile, "__tpm_report_facts": {"x": 1},
          "__tpm_report_settings": {"tss_group": "tss"}}  # fmt: skip
    record = host_input("h", hv)
    assert record["requested_mode"] == "abrmd" and record["profile"] == profile and record["quote"] is None
    record = host_input("h", dict(hv, tpm_quote_mode="x", __tpm_report_mode_error="bad"))
    assert record["profile"] is None and record["mode_error"] == "bad" and record["requested_mode"] == "x"
