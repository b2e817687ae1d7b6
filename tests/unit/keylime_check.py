"""Run keylime's own verification code (from PyPI) over tpmfleet's evidence: a verifier no one here wrote.

Run by the keylime interpreter (``TPMFLEET_KEYLIME_PYTHON``), not by pytest's: reads one JSON document on stdin

    {"ak_public_b64", "nonce_hex", "message_b64", "signature_tpmt_b64", "pcrblob_b64",
     "event_log_b64", "ek_der_b64", "ca_dir", "ima_lines"}

and prints {"quote_pcrs": {index: hex} | null, "quote_error", "failures": [...], "ek_verified": bool | null,
"ima_replay_sha256": hex | null, "ima_failures": [...]}.
Only keylime's public module functions are called: tpm_util.checkquote (signature, nonce, PCR digest),
Tpm.check_quote with a measured-boot log (tpm2_eventlog replay compared with the quoted PCRs),
cert_utils.verify_ek (the EK certificate against a directory of trusted CA certificates) and
ima.process_measurement_list (the IMA list replayed to PCR 10 in the sha256 bank, against the quoted value).
"""

import base64
import json
import logging
import sys

logging.disable(logging.CRITICAL)

from keylime import cert_utils
from keylime.common.algorithms import Hash
from keylime.ima import ima
from keylime.mba import mba
from keylime.tpm import tpm2_objects, tpm_main, tpm_util

# A non-empty measured-boot policy makes keylime replay the log and compare it with the quoted PCRs;
# keylime's built-in "accept-all" engine then accepts any event content.
MB_POLICY = json.dumps({"tpmfleet": "compare the replayed PCRs only"})


def main():
    req = json.load(sys.stdin)
    out = {"quote_pcrs": None, "quote_error": None, "failures": [], "ek_verified": None,
           "ima_replay_sha256": None, "ima_failures": []}  # fmt: skip
    quoteblob = base64.b64decode(req["message_b64"])
    sigblob = base64.b64decode(req["signature_tpmt_b64"])
    pcrblob = base64.b64decode(req["pcrblob_b64"])
    nonce = bytes.fromhex(req["nonce_hex"])
    ak_pem = tpm2_objects.pubkey_from_tpm2b_public(base64.b64decode(req["ak_public_b64"]))
    from cryptography.hazmat.primitives import serialization

    ak_pem = ak_pem.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        pcrs = tpm_util.checkquote(ak_pem, nonce, sigblob, quoteblob, pcrblob, "sha256")
        out["quote_pcrs"] = {str(k): v for k, v in pcrs.items()}
    except Exception as exc:  # keylime raises plain Exceptions
        out["quote_error"] = str(exc)
    if req.get("event_log_b64") is not None:
        mba.load_imports(skip_custom_policies=True)
        quote = "r" + ":".join(base64.b64encode(b).decode() for b in (quoteblob, sigblob, pcrblob))
        failure = tpm_main.Tpm().check_quote(
            None,
            nonce,
            None,
            quote,
            base64.b64decode(req["ak_public_b64"]),
            tpm_policy={},
            hash_alg=Hash.SHA256,
            mb_measurement_list=base64.b64decode(req["event_log_b64"]),
            mb_policy=MB_POLICY,
            mb_policy_name="accept-all",
            skip_clock_check=True,
        )
        out["failures"] = [e.event_id for e in failure.events]
    if req.get("ek_der_b64") is not None:
        out["ek_verified"] = bool(cert_utils.verify_ek(base64.b64decode(req["ek_der_b64"]), req["ca_dir"]))
    if req.get("ima_lines") is not None and out["quote_pcrs"] is not None:
        running, failure = ima.process_measurement_list(
            None, req["ima_lines"].splitlines(True), pcrval=out["quote_pcrs"].get("10"), hash_alg=Hash.SHA256
        )
        out["ima_replay_sha256"] = running
        out["ima_failures"] = [e.event_id for e in failure.events]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
