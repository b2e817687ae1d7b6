# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The default scenario's attestation checks (molecule/default/tests/test_attest.py) on a lab of their own.

The lab of tests/lab/attest_lab.yml (make test-attest-lab): one VM per quote mode, with the EK
certificate variants lab, foreign and none, converged with site.yml (quote modes in
tests/lab/attest_lab_modes.yml). TPMFLEET_ATTEST_LAB_INVENTORY: the inventory playbooks/lab.yml wrote
for it (inventory/attestlab); unset, these tests are skipped and say so. The checks are those of
molecule/shared/tests/tpmfleet_attest.py: the same code runs against either inventory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "molecule" / "shared" / "tests"))

from tpmfleet_attest import KEYLIME_PYTHON, Lab, check_keylime, check_report, ek_ca_bundle, lab_hosts, report

INVENTORY = os.environ.get("TPMFLEET_ATTEST_LAB_INVENTORY", "")
LAB_VARS = ROOT / "tests" / "lab" / "attest_lab.yml"
MODES = ROOT / "tests" / "lab" / "attest_lab_modes.yml"

pytestmark = pytest.mark.skipif(not INVENTORY, reason="TPMFLEET_ATTEST_LAB_INVENTORY is unset (make test-attest-lab)")


@pytest.fixture(scope="module")
def lab():
    settings = yaml.safe_load(LAB_VARS.read_text(encoding="utf-8"))
    hosts = yaml.safe_load(MODES.read_text(encoding="utf-8"))["all"]["children"]["tpm_hosts"]["hosts"]
    modes = {name: v["tpm_quote_mode"] for name, v in hosts.items()}
    return Lab([INVENTORY, str(MODES)], lab_hosts(settings["lab_vms"], modes), ek_ca_bundle(settings["lab_name"]))


@pytest.fixture(scope="module")
def attest_report(lab, tmp_path_factory):
    return report(lab, tmp_path_factory.mktemp("attest-report"))


def test_the_lab_has_every_ek_variant(lab):
    assert sorted(h["ek"] for h in lab.hosts.values()) == ["foreign", "lab", "none"], lab.hosts
    assert sorted(h["mode"] for h in lab.hosts.values()) == ["abrmd", "direct", "kernel_rm"], lab.hosts
    assert lab.ca_bundle.is_file(), f"the lab role wrote no CA bundle at {lab.ca_bundle}"


def test_the_report_shows_each_vms_attestation_readiness(lab, attest_report):
    check_report(lab, attest_report)


@pytest.mark.skipif(not KEYLIME_PYTHON, reason="TPMFLEET_KEYLIME_PYTHON is set to an empty string")
def test_keylime_accepts_and_rejects_the_lab_evidence_as_tpmfleet_does(lab, attest_report, tmp_path):
    check_keylime(lab, attest_report, tmp_path)
