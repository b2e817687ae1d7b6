"""keylime's measured-boot policy check (from PyPI) over a quote and an event log, against a reference state that
keylime's own tool (``keylime-policy create measured-boot``) made: run by the keylime interpreter, not pytest's.

Reads one JSON document on stdin

    {"ak_public_b64", "nonce_hex", "message_b64", "signature_tpmt_b64", "pcrblob_b64", "event_log_b64",
     "refstate"}

and prints {"policy_name", "quote_failures", "parse_failures", "policy_failures", "policy_reasons"}: the event
ids of keylime's Failure from ``Tpm.check_quote`` (the quote, the log's replay against the quoted PCRs and the
measured-boot policy), from parsing the log, and from ``mba.bootlog_evaluate`` alone (the policy over the parsed
log, whatever the PCRs), with the reason of each policy failure (without the reference state it quotes).
The policy keylime applies is the one its verifier configuration names (``measured_boot_policy_name``): the
test points ``KEYLIME_VERIFIER_CONFIG`` at a file that names keylime's ``example`` policy, the one that reads
the reference states its tool makes.
"""

import base64
import json
import logging
import sys

logging.disable(logging.CRITICAL)

from keylime import config
from keylime.common.algorithms import Hash
from keylime.mba import mba
from keylime.tpm import tpm_main


def _reason(context):
    try:
        context = json.loads(context) if isinstance(context, str) else context
    except ValueError:
        return str(context)
    return str(context.get("reason", context.get("context"))) if isinstance(context, dict) else str(context)


def main():
    req = json.load(sys.stdin)
    mba.load_imports(skip_custom_policies=True)
    policy_name = config.get("verifier", "measured_boot_policy_name")
    quoteblob = base64.b64decode(req["message_b64"])
    sigblob = base64.b64decode(req["signature_tpmt_b64"])
    pcrblob = base64.b64decode(req["pcrblob_b64"])
    log = base64.b64decode(req["event_log_b64"])
    quote = "r" + ":".join(base64.b64encode(b).decode() for b in (quoteblob, sigblob, pcrblob))
    failure = tpm_main.Tpm().check_quote(
        None,
        bytes.fromhex(req["nonce_hex"]),
        None,
        quote,
        base64.b64decode(req["ak_public_b64"]),
        tpm_policy={},
        hash_alg=Hash.SHA256,
        mb_measurement_list=log,
        mb_policy=req["refstate"],
        mb_policy_name=policy_name,
        skip_clock_check=True,
    )
    _pcrs, _aggregates, data, parse_failure = mba.bootlog_parse(base64.b64encode(log).decode(), "sha256")
    policy = mba.bootlog_evaluate(req["refstate"], data, set(range(24)), "tpmfleet")
    json.dump(
        {
            "policy_name": policy_name,
            "quote_failures": [e.event_id for e in failure.events],
            "parse_failures": [e.event_id for e in parse_failure.events],
            "policy_failures": [e.event_id for e in policy.events],
            "policy_reasons": [_reason(e.context) for e in policy.events],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
