"""Emulated TPMs for the attestation tests: swtpm with an EK certificate from swtpm's own local CA
(swtpm_setup --create-ek-cert with swtpm_localca), from another CA, or none; a measured-boot log
replayed into the TPM's PCRs as firmware would; an IMA list with only the boot aggregate."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import Swtpm

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eventlog"
GCE_LOG = FIXTURES / "gce-ubuntu-2104.bin"
SWTPM_SETUP = shutil.which("swtpm_setup")
SWTPM_LOCALCA = shutil.which("swtpm_localca")
TPM2_EVENTLOG = shutil.which("tpm2_eventlog")


def make_local_ca(base: Path):
    """swtpm_setup's configuration for a local CA of our own (its key and certificates under ``base``)."""
    ca_dir = base / "ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    (base / "localca.conf").write_text(
        f"statedir = {ca_dir}\nsigningkey = {ca_dir}/signkey.pem\n"
        f"issuercert = {ca_dir}/issuercert.pem\ncertserial = {ca_dir}/certserial\n"
    )
    (base / "localca.options").write_text("--platform-manufacturer tpmfleet\n--platform-version 2.1\n")
    (base / "setup.conf").write_text(
        f"create_certs_tool = {SWTPM_LOCALCA}\ncreate_certs_tool_config = {base}/localca.conf\n"
        f"create_certs_tool_options = {base}/localca.options\n"
    )
    return base / "setup.conf"


def ca_bundle(base: Path):
    """The local CA's root and intermediate (the EK certificate's issuer) as one PEM bundle."""
    ca_dir = base / "ca"
    bundle = base / "ek-ca-bundle.pem"
    bundle.write_text((ca_dir / "swtpm-localca-rootca-cert.pem").read_text() + (ca_dir / "issuercert.pem").read_text())
    return bundle


def manufacture(state: Path, setup_conf: Path | None):
    """A TPM state with a persisted RSA EK, and an EK certificate when ``setup_conf`` names a CA."""
    state.mkdir(parents=True, exist_ok=True)
    cmd = [SWTPM_SETUP, "--tpm2", "--tpmstate", str(state), "--createek", "--overwrite", "--pcr-banks", "sha256"]
    if setup_conf is not None:
        cmd += ["--create-ek-cert", "--config", str(setup_conf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return state


def start(state: Path):
    return Swtpm(state).start()


def log_events(log: Path):
    """The events of a binary log as tpm2_eventlog (tpm2-tools) parses them."""
    out = subprocess.run([TPM2_EVENTLOG, str(log)], capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)["events"]


def replay_into(tcti, log: Path, bank="sha256"):
    """Extend the TPM's PCRs with the log's digests, as firmware does while it boots."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
    from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA

    alg = {"sha1": TPM2_ALG.SHA1, "sha256": TPM2_ALG.SHA256}[bank]
    with ESAPI(tcti) as ectx:
        for event in log_events(log):
            if event.get("EventType") == "EV_NO_ACTION":
                continue
            digest = next(d["Digest"] for d in event["Digests"] if d["AlgorithmId"] == bank)
            value = TPMT_HA(hashAlg=alg)
            value.digest.sha256 = bytes.fromhex(digest)
            ectx.pcr_extend(ESYS_TR(event["PCRIndex"]), TPML_DIGEST_VALUES([value]))


def tampered_copy(log: Path, dest: Path):
    """The log with one byte of one event's SHA-256 digest changed (the first S-CRTM version event)."""
    data = bytearray(log.read_bytes())
    event = next(e for e in log_events(log) if e.get("EventType") == "EV_S_CRTM_VERSION")
    digest = bytes.fromhex(next(d["Digest"] for d in event["Digests"] if d["AlgorithmId"] == "sha256"))
    pos = bytes(data).index(digest)
    data[pos] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def ima_boot_aggregate(ima_dir: Path, tcti, extend=True, template="ima-ng"):
    """An IMA list with only the boot aggregate (no policy loaded), and PCR 10 extended as the kernel does:
    the sha256 bank with SHA-256 over the template data (ima-ng: digest and name; ima-sig: also an empty
    signature, as Linux 6.12 writes it)."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG
    from tpm2_pytss.types import TPML_DIGEST_VALUES, TPMT_HA

    aggregate = hashlib.sha256(b"tpmfleet test boot aggregate").hexdigest()
    field1 = b"sha256:\0" + bytes.fromhex(aggregate)
    field2 = b"boot_aggregate\0"
    template_data = len(field1).to_bytes(4, "little") + field1 + len(field2).to_bytes(4, "little") + field2
    tail = ""
    if template == "ima-sig":
        template_data += (0).to_bytes(4, "little")
        tail = " "
    ima_dir.mkdir(parents=True, exist_ok=True)
    sha1 = hashlib.sha1(template_data).hexdigest()  # noqa: S324 - the IMA list's template hash
    line = f"10 {sha1} {template} sha256:{aggregate} boot_aggregate{tail}\n"
    (ima_dir / "ascii_runtime_measurements").write_text(line)
    if extend:
        value = TPMT_HA(hashAlg=TPM2_ALG.SHA256)
        value.digest.sha256 = hashlib.sha256(template_data).digest()
        with ESAPI(tcti) as ectx:
            ectx.pcr_extend(ESYS_TR(10), TPML_DIGEST_VALUES([value]))
    return ima_dir
