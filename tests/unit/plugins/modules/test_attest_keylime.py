"""keylime's own code (PyPI) as the independent verifier of what tpmfleet accepts and rejects.

keylime's wheel declares no dependencies and imports ``gpg`` (Debian's python3-gpg), so it runs in an
interpreter of its own, which scripts/setup.sh makes (.cache/keylime-venv, requirements-keylime.txt). Without it
these tests fail; TPMFLEET_KEYLIME_PYTHON="" turns them off visibly (skipped, with that reason)."""

from __future__ import annotations

import base64

import attest_tpms as at
import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest

# keylime's interpreter: TPMFLEET_KEYLIME_PYTHON="" turns these tests off (the second controller's root filesystem
# has no keylime), and they say so.
from keylime_bridge import KEYLIME_PYTHON, keylime, request

QUOTE_PCRS = "sha256:0,1,2,3,4,5,6,7,8,9,14"

pytestmark = [
    pytest.mark.swtpm,
    pytest.mark.skipif(not KEYLIME_PYTHON, reason="TPMFLEET_KEYLIME_PYTHON is set to an empty string"),
    pytest.mark.skipif(at.SWTPM_SETUP is None or at.TPM2_EVENTLOG is None, reason="needs swtpm-tools and tpm2-tools"),
]


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
    """keylime_bridge's request, with the event log read from its file."""
    log_b64 = base64.b64encode(log.read_bytes()).decode() if log else None
    return request(quote_result, pcrs=pcrs, event_log_b64=log_b64, ek_der_b64=ek_der, ca_dir=ca_dir)


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
    forged = _request(quote)
    forged["nonce_hex"] = "00" * 20
    theirs = keylime(forged)
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
    theirs = keylime(request(quote, pcrs="sha256:10", ima_lines=lines))
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
    theirs_bad = keylime(request(quote_bad, pcrs="sha256:10", ima_lines=" ".join(parts)))
    assert "ima.pcr_mismatch" in theirs_bad["ima_failures"], theirs_bad
