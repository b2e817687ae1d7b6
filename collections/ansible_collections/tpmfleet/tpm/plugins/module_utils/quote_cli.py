# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quote through the tpm2-tools CLI (what an agent in direct quote mode does).

``run(args) -> (rc, stdout, stderr)`` is supplied by the caller (the module passes a
bounded wrapper around ``module.run_command``). Without a resource manager every
tpm2-tools invocation leaves the objects it loaded in the TPM, so the transient
handles that appear during the run are flushed at the end, and the temp dir removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time

from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import HASH_SIZES, format_pcr_selection
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import TpmAccessError
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import (
    KEY_TEMPLATES,
    ak_result,
    build_quote,
    check_persistent_ak,
    digest_matches,
)

TOOLS = (
    "tpm2_getcap",
    "tpm2_createprimary",
    "tpm2_create",
    "tpm2_load",
    "tpm2_quote",
    "tpm2_readpublic",
    "tpm2_evictcontrol",
    "tpm2_flushcontext",
)
_AK_ATTRS = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda"
_SRK_ATTRS = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda"
_HANDLE_RE = re.compile(r"0x[0-9a-fA-F]{8}")


def _ms(t0):
    return round((time.perf_counter() - t0) * 1000.0, 3)


class CliQuoter:
    def __init__(self, run, tools, tcti):
        self.run = run
        self.tools = tools
        self.tcti = tcti

    def call(self, tool, *args):
        cmd = [self.tools[tool], "-T", self.tcti, *args]
        rc, out, err = self.run(cmd)
        if rc != 0:
            raise TpmAccessError(
                "cli",
                f"{tool} failed (rc {rc}): {(err or out).strip()[-800:]}",
                command=" ".join(cmd),
                rc=rc,
            )
        return out

    def handles(self, kind):
        return [int(h, 16) for h in _HANDLE_RE.findall(self.call("tpm2_getcap", f"handles-{kind}"))]

    def flush_new(self, baseline):
        """Flush transient objects that appeared since ``baseline`` (tpm2-tools leaves every object it
        loaded in the TPM when there is no resource manager; the TPM may have only 3 slots)."""
        for handle in sorted(set(self.handles("transient")) - baseline):
            self.call("tpm2_flushcontext", f"0x{handle:08x}")

    def step(self, baseline, tool, *args):
        """Run a tool, then flush what it left loaded (``baseline=None``: nothing to flush)."""
        try:
            out = self.call(tool, *args)
        except TpmAccessError:
            if baseline is not None:
                with contextlib.suppress(TpmAccessError):  # report the tool's error, not the cleanup's
                    self.flush_new(baseline)
            raise
        if baseline is not None:
            self.flush_new(baseline)
        return out


def read_values_file(path, selection):
    """Parse tpm2_quote -F values output (digests concatenated in selection order)."""
    with open(path, "rb") as fh:
        data = fh.read()
    values, pos = {}, 0
    for bank, indices in selection:
        values[bank] = {}
        size = HASH_SIZES[bank]
        for i in indices:
            chunk = data[pos : pos + size]
            if len(chunk) != size:
                raise TpmAccessError("cli", f"tpm2_quote PCR output is truncated at {bank}:{i}")
            values[bank][str(i)] = chunk.hex()
            pos += size
    return values


def cli_quote(run, tools, tcti, selection, nonces, key_algorithm, persistent_handle, check_mode, timings):
    """Same contract as tpmfleet_tpm.quote_session, using tpm2-tools."""
    q = CliQuoter(run, tools, tcti)
    tmp = tempfile.mkdtemp(prefix="tpmfleet-quote-")
    before = None
    changed = False
    try:
        t0 = time.perf_counter()
        before = set(q.handles("transient"))
        timings["open"] = _ms(t0)
        t0 = time.perf_counter()
        ak_pub = os.path.join(tmp, "ak.pub")
        ak_ref = ak_ctx_ref = None
        if persistent_handle and persistent_handle in q.handles("persistent"):
            q.call("tpm2_readpublic", "-c", f"0x{persistent_handle:08x}", "-o", ak_pub)
            with open(ak_pub, "rb") as fh:
                pub_bytes = fh.read()
            check_persistent_ak(pub_bytes, key_algorithm, persistent_handle, lambda: q.handles("persistent"))
            ak_ref = f"0x{persistent_handle:08x}"
            info = ak_result(pub_bytes, persistent_handle, True, True, key_algorithm)
        else:
            primary_tmpl, ak_tmpl = KEY_TEMPLATES[key_algorithm]
            primary_ctx = os.path.join(tmp, "primary.ctx")
            ak_ctx = os.path.join(tmp, "ak.ctx")
            ak_priv = os.path.join(tmp, "ak.priv")
            q.step(before, "tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", primary_tmpl, "-a", _SRK_ATTRS,
                   "-c", primary_ctx)  # fmt: skip
            q.step(before, "tpm2_create", "-C", primary_ctx, "-g", "sha256", "-G", ak_tmpl, "-a", _AK_ATTRS,
                   "-u", ak_pub, "-r", ak_priv)  # fmt: skip
            q.step(before, "tpm2_load", "-C", primary_ctx, "-u", ak_pub, "-r", ak_priv, "-c", ak_ctx)
            with open(ak_pub, "rb") as fh:
                pub_bytes = fh.read()
            ak_ref = ak_ctx_ref = ak_ctx
            persisted = False
            if persistent_handle:
                changed = True
                if not check_mode:
                    q.step(before, "tpm2_evictcontrol", "-C", "o", "-c", ak_ctx, f"0x{persistent_handle:08x}")
                    ak_ref = f"0x{persistent_handle:08x}"
                    persisted = True
            info = ak_result(pub_bytes, persistent_handle, persisted, False, key_algorithm)
        timings["key"] = _ms(t0)

        quotes = []
        total = 0.0
        sel_text = format_pcr_selection(selection)
        for n, nonce_hex in enumerate(nonces):
            msg, sig, pcrs = (os.path.join(tmp, f"{n}.{ext}") for ext in ("msg", "sig", "pcrs"))
            tq = time.perf_counter()
            for _attempt in range(3):
                q.step(
                    before if ak_ref == ak_ctx_ref else None,
                    "tpm2_quote", "-c", ak_ref, "-l", sel_text, "-q", nonce_hex, "-g", "sha256",
                    "-m", msg, "-s", sig, "-o", pcrs, "-F", "values",
                )  # fmt: skip
                with open(msg, "rb") as fh:
                    attest_bytes = fh.read()
                with open(sig, "rb") as fh:
                    sig_bytes = fh.read()
                values = read_values_file(pcrs, selection)
                if digest_matches(attest_bytes, sig_bytes, values, selection):
                    break
            quote = build_quote(attest_bytes, sig_bytes, values, nonce_hex, selection)
            quote["quote_ms"] = _ms(tq)
            total += quote["quote_ms"]
            quotes.append(quote)
        timings["quote"] = round(total, 3)
        return info, quotes, changed
    finally:
        try:
            if before is not None:  # best effort: never mask the error that got us here
                for handle in sorted(set(q.handles("transient")) - before):
                    with contextlib.suppress(TpmAccessError):  # keep the original error
                        q.call("tpm2_flushcontext", f"0x{handle:08x}")
        except TpmAccessError:
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
