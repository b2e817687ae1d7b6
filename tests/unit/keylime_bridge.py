"""The controller side of the keylime cross-check: one request built from a quote tpmfleet verified, and keylime's
verdict on it.

keylime 7.14.3 (PyPI) declares no dependencies and imports ``gpg`` (Debian's python3-gpg), so it runs in an
interpreter of its own that scripts/setup.sh makes (.cache/keylime-venv, requirements-keylime.txt);
``keylime_check.py`` runs there, reads the request on stdin and prints keylime's verdict. TPMFLEET_KEYLIME_PYTHON
names another interpreter, or, set to "", turns the cross-check off (the callers skip it with that reason). Used by
the unit tests (tests/unit/plugins/modules/test_attest_keylime.py) and the lab's attestation checks
(molecule/shared/tests/tpmfleet_attest.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify
from tpm_marshal import tpm2_tools_pcrs_file

_UNIT = Path(__file__).resolve().parent
KEYLIME_PYTHON = os.environ.get(
    "TPMFLEET_KEYLIME_PYTHON", str(_UNIT.parents[1] / ".cache" / "keylime-venv" / "bin" / "python")
)
CHECKER = _UNIT / "keylime_check.py"


def keylime(request, timeout=120):
    """keylime's verdict (keylime_check.py in keylime's own interpreter) on one ``request``."""
    assert Path(KEYLIME_PYTHON).exists(), f"{KEYLIME_PYTHON} is missing: run scripts/setup.sh (it installs keylime)"
    proc = subprocess.run(
        [KEYLIME_PYTHON, str(CHECKER)], input=json.dumps(request), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def request(quote_result, *, pcrs, event_log_b64=None, ek_der_b64=None, ca_dir=None, ima_lines=None):
    """keylime_check.py's request for the last quote of a tpm_quote result over ``pcrs`` (its nonce and AK as
    tpmfleet verified them), with the event log, EK certificate (DER), CA directory and IMA list to check."""
    quote = quote_result["quotes"][-1]
    selection = quote_verify.parse_pcr_selection(pcrs)
    return {
        "ak_public_b64": quote_result["ak"]["public"],
        "nonce_hex": quote_result["verification"][-1]["nonce"],
        "message_b64": quote["message"],
        "signature_tpmt_b64": quote["signature_tpmt"],
        "pcrblob_b64": base64.b64encode(tpm2_tools_pcrs_file(selection, quote["pcrs"])).decode(),
        "event_log_b64": event_log_b64,
        "ek_der_b64": ek_der_b64,
        "ca_dir": str(ca_dir) if ca_dir else None,
        "ima_lines": ima_lines,
    }
