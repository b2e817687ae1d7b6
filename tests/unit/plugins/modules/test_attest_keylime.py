"""keylime's own code (PyPI) as the independent verifier of what tpmfleet accepts and rejects.

keylime's wheel declares no dependencies and imports ``gpg`` (Debian's python3-gpg), so it runs in an
interpreter of its own, which scripts/setup.sh makes (.cache/keylime-venv, requirements-keylime.txt). Without it
these tests fail; TPMFLEET_KEYLIME_PYTHON="" turns them off visibly (skipped, with that reason)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import attest_tpms as at
import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest
from tpm_marshal import tpm2_tools_pcrs_file

# scripts/setup.sh makes .cache/keylime-venv; TPMFLEET_KEYLIME_PYTHON names another interpreter, or, set to
# "", turns these tests off (the second controller's root filesystem has no keylime), and they say so.
KEYLIME_PYTHON = os.environ.get(
    "TPMFLEET_KEYLIME_PYTHON", str(Path(__file__).resolve().parents[4] / ".cache" / "keylime-venv" / "bin" / "python")
)
CHECKER = Path(__file__).resolve().parents[2] / "keylime_check.py"
QUOTE_PCRS = "sha256:0,1,2,3,4,5,6,7,8,9,14"

pytestmark = [
    pytest.mark.swtpm,
    pytest.mark.skipif(not KEYLIME_PYTHON, reason="TPMFLEET_KEYLIME_PYTHON is set to an empty string"),
    pytest.mark.skipif(at.SWTPM_SETUP is None or at.TPM2_EVENTLOG is None, reason="needs swtpm-tools and tpm2-tools"),
]


def keylime(request):
    assert Path(KEYLIME_PYTHON).exists(), f"{KEYLIME_PYTHON} is missing: run scripts/setup.sh (it installs keylime)"
    proc = subprocess.run(
        [KEYLIME_PYTHON, str(CHECKER)], input=json.dumps(request), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("keylime")
    conf_a = at.make_local_ca(base / "ca-a")
    conf_b = at.make_local_ca(base / "ca-b")
    good = at.start(at.manufacture(base / "good", conf_a))
    foreign = at.start(at.manufacture(base / "foreign", conf_b))
    at.replay_into(good.tcti, at.GCE_LOG)
    ima_dir = at.ima_boot_aggregate(base / "ima", good.tcti)
    ima_sig_dir = at.ima_boot_aggregate(base / "ima-sig", foreign.tcti, template="ima-sig")
    # keylime's verify_ek reads a directory of CA certificates: the local CA's issuing certificate
    ca_dir = base / "keylime-ca"
    ca_dir.mkdir()
    (ca_dir / "swtpm-localca.pem").write_text((base / "ca-a" / "ca" / "issuercert.pem").read_text())
    yield {"good": good, "foreign": foreign, "bundle_a": at.ca_bundle(base / "ca-a"), "ca_dir": ca_dir,
           "ima": ima_dir, "ima_sig": ima_sig_dir}  # fmt: skip
    good.stop()
    foreign.stop()


def _request(quote_result, log=None, ek_der=None, ca_dir=None, pcrs=QUOTE_PCRS):
    quote = quote_result["quotes"][-1]
    selection = quote_verify.parse_pcr_selection(pcrs)
    return {
        "ak_public_b64": quote_result["ak"]["public"],
        "nonce_hex": quote_result["verification"][-1]["nonce"],
        "message_b64": quote["message"],
        "signature_tpmt_b64": quote["signature_tpmt"],
        "pcrblob_b64": base64.b64encode(tpm2_tools_pcrs_file(selection, quote["pcrs"])).decode(),
        "event_log_b64": base64.b64encode(log.read_bytes()).decode() if log else None,
        "ek_der_b64": ek_der,
        "ca_dir": str(ca_dir) if ca_dir else None,
    }


def _run(ansible_run, tcti, log, method="pytss", ima_dir="/nonexistent", pcrs=QUOTE_PCRS):
    ev, _ = ansible_run("tpm_attest_evidence", {"tcti": tcti, "event_log_path": str(log), "ima_dir": str(ima_dir)})
    quote, _ = ansible_run("tpm_quote", {"tcti": tcti, "pcrs": pcrs, "count": 1, "method": method})
    assert quote.get("verified") is True, quote
    return ev["evidence"], quote


@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_good_host_accepted_by_both(lab, ansible_run, method):
    ev, quote = _run(ansible_run, lab["good"].tcti, at.GCE_LOG, method)
    ours = attest.judge(ev, quote, attest.CHECKS[:2], attest.load_ca_certificates(bundle=lab["bundle_a"]))
    assert ours["ready"] is True, ours
    ek_der = ev["tpm"]["ek_certificates"][0]["der_b64"]
    theirs = keylime(_request(quote, at.GCE_LOG, ek_der, lab["ca_dir"]))
    assert theirs["quote_error"] is None and theirs["quote_pcrs"]["0"] == quote["quotes"][-1]["pcrs"]["sha256"]["0"]
    assert theirs["failures"] == [], theirs
    assert theirs["ek_verified"] is True


def test_tampered_log_rejected_by_both(lab, ansible_run, tmp_path):
    log = at.tampered_copy(at.GCE_LOG, tmp_path / "tampered.bin")
    ev, quote = _run(ansible_run, lab["good"].tcti, log)
    (ours,) = attest.judge(ev, quote, ["eventlog"])["checks"]
    assert ours["status"] == "fail" and ours["reason"] == "mismatch"
    theirs = keylime(_request(quote, log))
    assert theirs["quote_error"] is None  # the quote itself is fine
    assert "measured_boot.invalid_pcr_0" in theirs["failures"], theirs


def test_foreign_ek_certificate_rejected_by_both(lab, ansible_run):
    ev, quote = _run(ansible_run, lab["foreign"].tcti, at.GCE_LOG)
    (ours,) = attest.judge(ev, quote, ["ek_chain"], attest.load_ca_certificates(bundle=lab["bundle_a"]))["checks"]
    assert ours["status"] == "fail" and ours["reason"] == "unchained"
    theirs = keylime(_request(quote, ek_der=ev["tpm"]["ek_certificates"][0]["der_b64"], ca_dir=lab["ca_dir"]))
    assert theirs["ek_verified"] is False


def test_quote_with_a_foreign_nonce_rejected_by_keylime(lab, ansible_run):
    """The control: keylime's quote check can fail here (another nonce than the TPM signed)."""
    _ev, quote = _run(ansible_run, lab["good"].tcti, at.GCE_LOG)
    request = _request(quote)
    request["nonce_hex"] = "00" * 20
    theirs = keylime(request)
    assert theirs["quote_pcrs"] is None and "nonce" in theirs["quote_error"]


@pytest.mark.parametrize(("tpm", "ima"), [("good", "ima"), ("foreign", "ima_sig")])
def test_ima_replay_agrees_with_keylime(lab, ansible_run, tmp_path, tpm, ima):
    """keylime's IMA code computes the sha256-bank template hash itself: its PCR 10 replay of the list equals
    tpmfleet's and the quoted PCR 10 (ima-ng and ima-sig); the list with its entry's digest changed is rejected
    by both."""
    tcti = lab[tpm].tcti
    ev, quote = _run(ansible_run, tcti, at.GCE_LOG, ima_dir=lab[ima], pcrs="sha256:10")
    (ours,) = attest.judge(ev, quote, ["ima"])["checks"]
    assert ours["status"] == "pass", ours
    lines = (lab[ima] / "ascii_runtime_measurements").read_text()
    theirs = keylime(dict(_request(quote, pcrs="sha256:10"), ima_lines=lines))
    assert theirs["ima_failures"] == [] and theirs["ima_replay_sha256"] == ev["ima"]["replayed_pcr10"]["sha256"]
    assert theirs["ima_replay_sha256"] == quote["quotes"][-1]["pcrs"]["sha256"]["10"]
    # one hex digit of the boot aggregate's file digest changed
    bad_dir = tmp_path / "ima"
    bad_dir.mkdir()
    parts = lines.split(" ")
    parts[3] = parts[3][:-1] + ("0" if parts[3][-1] != "0" else "1")
    (bad_dir / "ascii_runtime_measurements").write_text(" ".join(parts))
    ev_bad, quote_bad = _run(ansible_run, tcti, at.GCE_LOG, ima_dir=bad_dir, pcrs="sha256:10")
    (ours_bad,) = attest.judge(ev_bad, quote_bad, ["ima"])["checks"]
    assert ours_bad["status"] == "fail" and ours_bad["reason"] == "mismatch", ours_bad
    theirs_bad = keylime(dict(_request(quote_bad, pcrs="sha256:10"), ima_lines=" ".join(parts)))
    assert "ima.pcr_mismatch" in theirs_bad["ima_failures"], theirs_bad
