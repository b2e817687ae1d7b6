"""Replays checked against values recorded from a real boot (a lab VM: Debian 13, Linux 6.12, SeaBIOS, swtpm),
not against values computed by the code under test. See tests/unit/fixtures/eventlog/README.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import attest_evidence
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest_replay

LOG = Path(__file__).resolve().parents[2] / "fixtures" / "eventlog" / "lab-trixie-seabios.bin"
# tpm2_pcrread sha256:0,1,2,3,4,5,6,7,10 on that VM, same boot
RECORDED = {
    0: "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    1: "bb788236a06dbec56a6d1afb91c10389bafe38eba01a945950178935d7b73b39",
    2: "eafc36777287f6d88290432bfb6f6cdc85a42afbc2441e3c679a718058d56d58",
    3: "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    4: "1eb9aa21337cc1fa31ce5f56900d7bf59b9dda366823095aed06544caa2557ca",
    5: "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    6: "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    7: "e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
    10: "cdae3a578dba8ace6d61de4ad528dec7b05518d5ac42d22e143eab58f05de705",
}
IMA_LINE = (
    "10 9847cdc49ab36cbae8d9f4d47b736a1e06ad7647 ima-sig "
    "sha256:302382358a5bbc6259b86d163030bd2ab29dacab69d8ae414707ed147eac7878 boot_aggregate \n"
)


@pytest.mark.skipif(shutil.which("tpm2_eventlog") is None, reason="needs tpm2_eventlog (tpm2-tools)")
def test_seabios_log_replays_to_the_recorded_pcrs():
    out = subprocess.run(["tpm2_eventlog", str(LOG)], capture_output=True, text=True, check=True).stdout
    replayed, events = attest_replay.replayed_pcrs(out)
    assert events == 15
    assert replayed == {"sha256": {i: RECORDED[i] for i in range(8)}}


@pytest.mark.parametrize("banks", [["sha256"], ["sha1", "sha256"]])
def test_ima_sig_boot_aggregate_replays_to_the_recorded_pcr10(tmp_path, banks):
    (tmp_path / "ascii_runtime_measurements").write_text(IMA_LINE)
    ima = attest_evidence.ima_state(str(tmp_path), banks)
    assert ima["replayed_pcr10"]["sha256"] == RECORDED[10]
    assert ima["first_entry"]["name"] == "boot_aggregate" and ima["boot_aggregate_only"] is True
    assert ima["policy_loaded"] is False
    if "sha1" in banks:  # the sha1 bank replays the template hashes the list shows
        assert (
            ima["replayed_pcr10"]["sha1"]
            == attest_evidence.hashlib.sha1(
                bytes(20) + bytes.fromhex("9847cdc49ab36cbae8d9f4d47b736a1e06ad7647")
            ).hexdigest()
        )


@pytest.mark.parametrize(
    "line",
    [
        "10 9847cdc49ab36cbae8d9f4d47b736a1e06ad7647 ima-sig sha256:zz boot_aggregate \n",
        "10 9847cdc49ab36cbae8d9f4d47b736a1e06ad7647 ima-sig sha256:3023 boot_aggregate nothex\n",
        "10 9847cdc49ab36cbae8d9f4d47b736a1e06ad7647 ima-buf sha256:3023 name 00\n",
    ],
)
def test_entries_that_cannot_be_replayed_are_named_not_guessed(tmp_path, line):
    (tmp_path / "ascii_runtime_measurements").write_text(line)
    ima = attest_evidence.ima_state(str(tmp_path), ["sha256"])
    assert "sha256" not in ima["replayed_pcr10"] and ima["unsupported_templates"]
    quoted = {"ok": True, "pcrs": {"sha256": {10: RECORDED[10]}}, "selection": "sha256:10", "hash": "sha256",
              "pcr_digest": "00"}  # fmt: skip
    result = attest_replay.judge_ima(ima, quoted)
    assert (result["status"], result["reason"]) == ("not_run", "unsupported_template"), result
