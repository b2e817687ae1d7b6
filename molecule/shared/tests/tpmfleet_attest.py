"""Attestation readiness over lab VMs, checked the same way on any lab's inventory.

Used by the default scenario's verifier (molecule/default/tests/test_attest.py) and by the on-demand
attestation lab (tests/lab/test_attest_lab.py). A lab is described by ``Lab``: its inventories and, per
host, the quote mode and the EK certificate variant that the lab role gave its TPM (``ek_certificate``:
``lab`` = signed by the lab's swtpm local CA, ``foreign`` = signed by another CA, ``none`` = no
certificate; ``None`` = no TPM). From that alone the expected outcomes follow:

* ``report``/``check_report``: playbooks/report.yml with ``tpm_attest_checks: [ek_chain, eventlog, ima]``,
  a verified test quote and the lab's CA bundle; each host's readiness in fleet.json (checked against its
  schema), junit.xml and the model the page embeds, and the export for a verifier (the EK certificate
  validates with ``openssl verify`` against the lab CA, a foreign one does not);
* ``gather``/``check_keylime``: keylime's own verification code (PyPI, tests/unit/keylime_check.py) over
  each VM's verified quote, its binary event log, its IMA list and its exported EK certificate; the same
  event log with one event changed is rejected by tpmfleet and by keylime.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

PROJECT = Path(
    os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3]
).resolve()  # fmt: skip
for _path in (PROJECT / "collections", PROJECT / "tests" / "unit"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from keylime_bridge import KEYLIME_PYTHON, keylime, request  # noqa: F401 - KEYLIME_PYTHON: the verifiers' skip
from tpmfleet_molecule import ansible_env, junit_cases, recap

REPORT = PROJECT / "playbooks" / "report.yml"
EVIDENCE = PROJECT / "tests" / "lab" / "attest_evidence.yml"
SCHEMA = PROJECT / "collections/ansible_collections/tpmfleet/tpm/plugins/plugin_utils/fleet-report.schema.json"
CHECKS = ["ek_chain", "eventlog", "ima"]
# The quotes attest_evidence.yml takes: the boot PCRs for the event log, PCR 10 for the IMA list.
QUOTE_PCRS = "sha256:0,1,2,3,4,5,6,7"
QUOTE_IMA_PCRS = "sha256:10"
BOOT_PCRS = [str(i) for i in range(8)]
# tpmfleet's ek_chain outcome (status, reason) for each EK certificate variant of the lab role.
EK_OUTCOME = {"lab": ("pass", "chained"), "foreign": ("fail", "unchained"), "none": ("fail", "no_certificate")}
IMA_NO_POLICY = "IMA has no policy loaded"
IMA_PASSES = {"no_policy", "replays"}


@dataclasses.dataclass
class Lab:
    """A lab's inventories, its hosts ``{name: {"mode": quote mode, "ek": variant or None}}`` and its EK CA
    bundle (the lab role's ``.lab/<lab_name>/ek-ca/lab/ek-ca-bundle.pem``)."""

    inventories: list
    hosts: dict
    ca_bundle: Path

    def tpm_hosts(self):
        return [n for n, h in self.hosts.items() if h["ek"] is not None]

    def playbook(self, playbook, *args, limit, timeout=1800):
        env = ansible_env()  # Ansible's own strategy, as users run the report; no colour
        inventories = [a for inv in self.inventories for a in ("-i", str(inv))]
        return subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), *inventories, "--limit", limit, str(playbook),
             *args],
            cwd=PROJECT, capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip


def lab_hosts(vms, modes):
    """``Lab.hosts`` from lab_vms items (the lab role's, or molecule's platforms) and each host's quote mode."""
    return {
        vm["name"]: {
            "mode": modes.get(vm["name"]),
            "ek": None if vm.get("tpm_interface") == "none" else vm.get("ek_certificate", "none"),
        }
        for vm in vms
    }


def ek_ca_bundle(lab_name):
    """The lab role's bundle of the lab CA (root and issuing certificate) of lab ``lab_name``."""
    return PROJECT / ".lab" / lab_name / "ek-ca" / "lab" / "ek-ca-bundle.pem"


@dataclasses.dataclass
class Report:
    run: subprocess.CompletedProcess
    fleet: dict
    junit: dict
    page: str
    embedded: dict
    out: Path


def report(lab, out, *args):
    """playbooks/report.yml over the lab with every attestation check, a verified quote and the lab CA bundle."""
    # tpm_report_timeout: the modules' own 10 s bound for the TPM read was hit on a lab at load above 20.
    run = lab.playbook(
        REPORT, "-e", f"tpm_report_dir={out}", "-e", "tpm_report_quote=true", "-e", "tpm_report_timeout=120",
        "-e", json.dumps({"tpm_attest_checks": CHECKS, "tpm_attest_ek_ca_bundle": str(lab.ca_bundle)}), *args,
        limit=",".join(lab.hosts),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    fleet = json.loads((out / "fleet.json").read_text(encoding="utf-8"))
    jsonschema.validate(fleet, json.loads(SCHEMA.read_text(encoding="utf-8")))
    page = (out / "index.html").read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json" id="fleet-data">(.*?)</script>', page, re.S)
    assert data, "the page embeds no fleet data"
    return Report(run, fleet, junit_cases(out / "junit.xml"), page, json.loads(data.group(1)), out)


def _expected(variant):
    """{check: (status, reason or a set of reasons)} of a host with a TPM and that EK variant."""
    return {
        "ek_chain": EK_OUTCOME[variant],
        "eventlog": ("pass", {"replays"}),
        "ima": ("pass", {"no_policy", "replays"}),
    }


def check_report(lab, rep):
    """Each host's readiness in fleet.json, junit.xml and the page's model, and the export: as its EK variant,
    its event log and its IMA state make it. Returns {host: {check: outcome}}."""
    hosts = {h["name"]: h for h in rep.fleet["hosts"]}
    assert set(hosts) == set(lab.hosts), sorted(hosts)
    embedded = {h["name"]: h for h in rep.embedded["hosts"]}
    seen = {}
    for name, spec in lab.hosts.items():
        assert recap(rep.run, name)["changed"] == 0, f"the report changed {name}"
        section = hosts[name]["attestation"]
        assert section is not None and section["checks_enabled"] == CHECKS, (name, section)
        outcomes = {o["check"]: o for o in section["outcomes"]}
        assert list(outcomes) == CHECKS, (name, section)
        seen[name] = outcomes
        # the page carries the model as fleet.json has it
        assert embedded[name].get("attestation", section) == section, name
        if spec["ek"] is None:
            # No TPM: nothing to judge, and never ready.
            assert section["ready"] is False, (name, section)
            assert {o["status"] for o in outcomes.values()} == {"not_run"}, (name, section)
            for check in CHECKS:
                kind, message = rep.junit[(f"tpmfleet.{name}", f"attest_{check}")]
                assert kind != "pass" and message.startswith("not run"), (name, check, kind, message)
            continue
        assert hosts[name]["quote"] == {"verified": True, "reason": None}, (name, hosts[name]["quote"])
        for check, (status, reasons) in _expected(spec["ek"]).items():
            got = outcomes[check]
            reasons = reasons if isinstance(reasons, set) else {reasons}
            assert (got["status"], got["reason"]) in {(status, r) for r in reasons}, (name, check, got)
            kind, message = rep.junit[(f"tpmfleet.{name}", f"attest_{check}")]
            if status == "pass":
                assert kind == "pass", (name, check, kind, message)
            else:
                # a failing outcome is an error test case whose message is the cause
                assert kind == "error" and message == got["cause"] and got["fix"], (name, check, kind, got)
        # the event log replays PCRs 0-7 of the signed quote; the IMA state is named
        assert set(outcomes["eventlog"]["details"]["compared"]) >= {f"sha256:{i}" for i in BOOT_PCRS}, name
        if outcomes["ima"]["reason"] == "no_policy":
            assert IMA_NO_POLICY in outcomes["ima"]["cause"], outcomes["ima"]
        assert section["ready"] is (spec["ek"] == "lab"), (name, section)
        check_export(lab, rep.out / "attestation" / name, spec["ek"])
    tpm_hosts = lab.tpm_hosts()
    summary = rep.fleet["attestation"]
    ready = sum(lab.hosts[n]["ek"] == "lab" for n in tpm_hosts)
    unchained = sum(lab.hosts[n]["ek"] in ("foreign", "none") for n in tpm_hosts)
    assert summary["hosts_judged"] == len(lab.hosts) and summary["ready"] == ready, summary
    assert summary["failing"] == {"ek_chain": unchained, "eventlog": 0, "ima": 0}, summary
    assert summary["text"].startswith(f"{ready} of {len(lab.hosts)} hosts ready for attestation"), summary
    if unchained:
        assert f"{unchained} without a chained EK certificate" in summary["text"], summary
    assert rep.embedded.get("attestation", summary) == summary
    return seen


def openssl_verify(ca_bundle, pem):
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_bundle), str(pem)], capture_output=True, text=True, check=False
    )


def check_export(lab, host_dir, variant):
    """The export of a host with a TPM: its EK certificate validates with ``openssl verify`` against the lab
    CA (a foreign one does not), holds the exported EK public key, and the reference state has PCRs 0-7."""
    files = sorted(p.name for p in host_dir.iterdir())
    certs = [f for f in files if re.fullmatch(r"ek-(rsa2048|ecc_p256)\.pem", f)]
    assert "ek-rsa2048-public.pem" in files and "measured-boot-reference.json" in files, (host_dir, files)
    if variant == "none":
        assert certs == [], (host_dir, files)
        return
    assert "ek-rsa2048.pem" in certs, (host_dir, files)
    for name in certs:
        done = openssl_verify(lab.ca_bundle, host_dir / name)
        if variant == "lab":
            assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), (name, done.stdout, done.stderr)
        else:
            assert done.returncode != 0, (name, done.stdout)
        public = (host_dir / name.replace(".pem", "-public.pem")).read_text(encoding="ascii")
        assert _spki(x509.load_pem_x509_certificate((host_dir / name).read_bytes()).public_key()) == public, name
    reference = json.loads((host_dir / "measured-boot-reference.json").read_text(encoding="utf-8"))
    assert reference["format"] == "tpmfleet-measured-boot-reference/1" and set(BOOT_PCRS) <= set(
        reference["pcrs"]["sha256"]
    ), reference


def _spki(key):
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# --------------------------------------------------------------------------
# keylime's own code over the lab's evidence
# --------------------------------------------------------------------------


def gather(lab, out, event_log=None):
    """tests/lab/attest_evidence.yml over the lab's TPM hosts: {host: {quote, evidence, ima_lines}}.
    ``event_log``: a controller path per host ("{host}" in it) to read instead of the host's own log."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["-e", f"attest_lab_out={out}"] + (["-e", f"attest_lab_event_log={event_log}"] if event_log else [])
    run = lab.playbook(EVIDENCE, *args, limit=",".join(lab.tpm_hosts()))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return {n: json.loads((out / f"{n}.json").read_text(encoding="utf-8")) for n in lab.tpm_hosts()}


def keylime_request(quote_result, log_b64=None, ek_pem=None, ca_dir=None, ima_lines=None, pcrs=QUOTE_PCRS):
    """keylime_bridge's request, with the EK certificate as the report exports it (PEM)."""
    der = x509.load_pem_x509_certificate(ek_pem.encode()).public_bytes(serialization.Encoding.DER) if ek_pem else None
    return request(
        quote_result, pcrs=pcrs, event_log_b64=log_b64, ek_der_b64=base64.b64encode(der).decode() if der else None,
        ca_dir=ca_dir, ima_lines=ima_lines,
    )  # fmt: skip


def keylime_ca_dir(ca_bundle, dest):
    """The lab CA bundle as keylime's verify_ek reads CAs: a directory of one certificate per file."""
    dest.mkdir(parents=True, exist_ok=True)
    certs = x509.load_pem_x509_certificates(Path(ca_bundle).read_bytes())
    assert certs, f"no certificate in {ca_bundle}"
    for i, cert in enumerate(certs):
        (dest / f"lab-ca-{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return dest


def tampered_copy(evidence, dest):
    """The host's binary event log with one event changed: one bit of the SHA-256 digest of the first event
    that extends a boot PCR (0-7) flipped. The event is found in tpm2_eventlog's parse of the same log."""
    log = evidence["event_log"]
    data = bytearray(base64.b64decode(log["log_b64"]))
    # YAML's base loader, as attest_replay reads it: every scalar a string (a digest stays hex)
    events = yaml.load(log["yaml"], Loader=yaml.BaseLoader)["events"]  # noqa: S506 - str, list and dict only
    for event in events:
        if event.get("EventType") == "EV_NO_ACTION" or not re.fullmatch(r"[0-7]", str(event.get("PCRIndex"))):
            continue
        digests = [d["Digest"] for d in event.get("Digests") or [] if d.get("AlgorithmId") == "sha256"]
        digest = bytes.fromhex(digests[0].removeprefix("0x")) if digests else b""
        if len(digest) == 32 and bytes(data).count(digest) == 1:
            data[bytes(data).index(digest)] ^= 0x01
            dest.write_bytes(bytes(data))
            return int(event["PCRIndex"])
    raise AssertionError("the event log has no sha256 event in PCRs 0-7 to change")


def check_keylime(lab, rep, work):
    """keylime and tpmfleet agree on each TPM host's verified quote, event log, IMA list and exported EK
    certificate; both reject the host's event log with one event changed, and the foreign EK certificate."""
    ca_dir = keylime_ca_dir(lab.ca_bundle, work / "keylime-ca")
    ca_certs = attest.load_ca_certificates(bundle=str(lab.ca_bundle))
    good = gather(lab, work / "evidence")
    tampered_pcr = {}
    for name, got in good.items():
        assert got["quote"].get("verified") is True, (name, got["quote"])
        host_dir = rep.out / "attestation" / name
        cert = host_dir / "ek-rsa2048.pem"
        ek_pem = cert.read_text(encoding="ascii") if cert.exists() else None
        theirs = keylime(
            keylime_request(got["quote"], got["evidence"]["event_log"]["log_b64"], ek_pem, ca_dir), timeout=300
        )
        quoted = got["quote"]["quotes"][-1]["pcrs"]["sha256"]
        assert theirs["quote_error"] is None, (name, theirs)
        assert theirs["quote_pcrs"] == {str(k): v for k, v in quoted.items()}, (name, theirs)
        # keylime replays the log (its measured-boot code) to the quoted PCRs: no failure
        assert theirs["failures"] == [], (name, theirs)
        # the exported reference state holds the PCR values keylime accepted
        reference = json.loads((host_dir / "measured-boot-reference.json").read_text(encoding="utf-8"))
        for index in BOOT_PCRS:
            assert reference["pcrs"]["sha256"].get(index, "00" * 32) == theirs["quote_pcrs"][index], (name, index)
        # keylime's IMA code replays the list to the quoted PCR 10
        ima = keylime(keylime_request(got["quote_ima"], ima_lines=got["ima_lines"], pcrs=QUOTE_IMA_PCRS), timeout=300)
        pcr10 = got["quote_ima"]["quotes"][-1]["pcrs"]["sha256"]["10"]
        assert ima["quote_error"] is None and ima["ima_failures"] == [], (name, ima)
        assert ima["ima_replay_sha256"] == pcr10, (name, ima)
        ours = {o["check"]: o for o in attest.judge(got["evidence"], got["quote"], CHECKS[:2], ca_certs)["checks"]}
        (ours["ima"],) = attest.judge(got["evidence"], got["quote_ima"], ["ima"])["checks"]
        want = {c: status for c, (status, _r) in _expected(lab.hosts[name]["ek"]).items()}
        assert {c: o["status"] for c, o in ours.items()} == want, (name, ours)
        if ek_pem is None:
            assert theirs["ek_verified"] is None, (name, theirs)
        else:
            # keylime's verify_ek: the lab's certificate chains, the foreign one does not
            assert theirs["ek_verified"] is (lab.hosts[name]["ek"] == "lab"), (name, theirs)
        tampered_pcr[name] = tampered_copy(got["evidence"], work / f"{name}-tampered.bin")
    bad = gather(lab, work / "evidence-tampered", event_log=work / "{host}-tampered.bin")
    for name, got in bad.items():
        assert got["evidence"]["event_log"]["sha256"] != good[name]["evidence"]["event_log"]["sha256"], name
        (ours,) = attest.judge(got["evidence"], got["quote"], ["eventlog"])["checks"]
        assert (ours["status"], ours["reason"]) == ("fail", "mismatch"), (name, ours)
        assert ours["details"]["mismatches"][0]["pcr"] == f"sha256:{tampered_pcr[name]}", (name, ours)
        theirs = keylime(keylime_request(got["quote"], got["evidence"]["event_log"]["log_b64"]), timeout=300)
        assert theirs["quote_error"] is None, (name, theirs)  # the quote itself is fine
        assert f"measured_boot.invalid_pcr_{tampered_pcr[name]}" in theirs["failures"], (name, theirs)
    return good, bad
