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

from ansible_collections.tpmfleet.tpm.plugins.module_utils.ak_parent import (
    ENDORSEMENT,
    auth_flags_from_getcap,
    auth_refused,
    parent_result,
    plan_new_ak,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import HASH_SIZES, format_pcr_selection
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    RC_AUTH_FAIL,
    RC_BAD_AUTH,
    TpmAccessError,
    parse_tcti,
    tpm_rc_code,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import (
    KEY_TEMPLATES,
    ak_result,
    build_quote,
    check_persistent_ak,
    digest_matches,
    no_resource_manager,
)

TOOLS = (
    "tpm2_getcap",
    "tpm2_createprimary",
    "tpm2_createek",
    "tpm2_startauthsession",
    "tpm2_policysecret",
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
# tpm2-tools report a TPM error as "Esys_CreatePrimary(0x9A2) - tpm:session(1):authorization failure ..."
_ESYS_RC_RE = re.compile(r"Esys_\w+\((0x[0-9a-fA-F]+)\)")
_EK_ALG = {"ecc": "ecc", "rsa": "rsa"}


def _ms(t0):
    return round((time.perf_counter() - t0) * 1000.0, 3)


class CliQuoter:
    def __init__(self, run, tools, tcti):
        self.run = run
        self.tools = tools
        self.tcti = tcti
        name, conf = parse_tcti(tcti)
        self.resource_manager = not no_resource_manager(name, conf)

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
        """Run a tool, then flush what it left loaded (``baseline=None``: nothing to flush). Behind a resource
        manager (/dev/tpmrm0, tabrmd) the tool's objects are flushed when it exits: nothing to do."""
        if self.resource_manager:
            baseline = None
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


def _is_auth_failure(err):
    """Whether a tool's TpmAccessError is TPM_RC_BAD_AUTH / TPM_RC_AUTH_FAIL (from the Esys rc it printed)."""
    return any(tpm_rc_code(int(rc, 16)) in (RC_AUTH_FAIL, RC_BAD_AUTH) for rc in _ESYS_RC_RE.findall(err.msg))


def _write_auth_file(tmp, password):
    """The password in a 0600 file of the 0700 temp dir, as tpm2-tools' ``file:`` auth reads it. Written as
    ``hex:`` so that no character of it (a newline, a leading ``str:``) changes its meaning."""
    path = os.path.join(tmp, "endorsement.auth")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("hex:" + password.encode("utf-8").hex())
    return f"file:{path}"


class _PolicySession:
    """One policy session for the uses of the EK (create, load), as tpm2_createak does: PolicySecret(TPM_RH_
    ENDORSEMENT) before each use, since the TPM resets a policy session after it authorized a command.
    ``close`` flushes it, also after an error."""

    def __init__(self, q, tmp, auth_arg):
        self.q, self.auth_arg = q, auth_arg
        self.path = os.path.join(tmp, "session.ctx")
        self.started = False

    def satisfy(self):
        if not self.started:
            self.q.call("tpm2_startauthsession", "--policy-session", "-S", self.path)
            self.started = True
        self.q.call("tpm2_policysecret", "-S", self.path, "-c", "e", *([self.auth_arg] if self.auth_arg else []))
        return f"session:{self.path}"

    def close(self, quiet):
        if self.started and os.path.exists(self.path):
            try:
                self.q.call("tpm2_flushcontext", self.path)
            except TpmAccessError:
                if not quiet:
                    raise
            os.unlink(self.path)


def _create_ak(q, tmp, before, key_algorithm, hierarchy, auth_arg, paths):
    """tpm2-tools: the parent (the EK from the TCG default template, or an SRK-like owner primary) and
    the AK under it, loaded into ``paths['ak_ctx']``; returns the parent's public (TPM2B_PUBLIC bytes)."""
    primary_tmpl, ak_tmpl = KEY_TEMPLATES[key_algorithm]
    parent_ctx, parent_pub = os.path.join(tmp, "parent.ctx"), os.path.join(tmp, "parent.pub")
    create = ("tpm2_create", "-g", "sha256", "-G", ak_tmpl, "-a", _AK_ATTRS, "-u", paths["ak_pub"],
              "-r", paths["ak_priv"])  # fmt: skip
    load = ("tpm2_load", "-u", paths["ak_pub"], "-r", paths["ak_priv"], "-c", paths["ak_ctx"])
    if hierarchy != ENDORSEMENT:
        q.step(before, "tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", primary_tmpl, "-a", _SRK_ATTRS,
               "-c", parent_ctx)  # fmt: skip
        q.step(before, "tpm2_readpublic", "-c", parent_ctx, "-o", parent_pub)  # createprimary's -u is an input
        q.step(before, *create, "-C", parent_ctx)
        q.step(before, *load, "-C", parent_ctx)
    else:
        q.step(before, "tpm2_createek", "-c", parent_ctx, "-G", _EK_ALG[key_algorithm], "-u", parent_pub,
               *(["-P", auth_arg] if auth_arg else []))  # fmt: skip
        session = _PolicySession(q, tmp, auth_arg)
        try:
            q.step(before, *create, "-C", parent_ctx, "-P", session.satisfy())
            q.step(before, *load, "-C", parent_ctx, "-P", session.satisfy())
        except BaseException:
            session.close(quiet=True)  # keep the original error
            raise
        session.close(quiet=False)
    with open(parent_pub, "rb") as fh:
        return fh.read()


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


def cli_quote(run, tools, tcti, selection, nonces, key_algorithm, persistent_handle, check_mode, timings,
              endorsement_auth=None, notes=None):  # fmt: skip
    """Same contract as tpmfleet_tpm.quote_session, using tpm2-tools."""
    q = CliQuoter(run, tools, tcti)
    tmp = tempfile.mkdtemp(prefix="tpmfleet-quote-")
    before = None
    changed = False
    notes = [] if notes is None else notes
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
            flags = auth_flags_from_getcap(q.call("tpm2_getcap", "properties-variable"))
            hierarchy, use_password, plan_notes = plan_new_ak(flags, endorsement_auth, persistent_handle)
            notes.extend(plan_notes)
            auth_arg = _write_auth_file(tmp, endorsement_auth) if use_password else None
            paths = {"ak_pub": ak_pub, "ak_priv": os.path.join(tmp, "ak.priv"), "ak_ctx": os.path.join(tmp, "ak.ctx")}
            try:
                parent_bytes = _create_ak(q, tmp, before, key_algorithm, hierarchy, auth_arg, paths)
            except TpmAccessError as err:
                if _is_auth_failure(err):
                    raise auth_refused(hierarchy, use_password) from None
                raise
            finally:
                if auth_arg:
                    os.unlink(auth_arg[len("file:") :])
            with open(ak_pub, "rb") as fh:
                pub_bytes = fh.read()
            ak_ref = ak_ctx_ref = paths["ak_ctx"]
            persisted = False
            if persistent_handle:
                changed = True
                if not check_mode:
                    q.step(before, "tpm2_evictcontrol", "-C", "o", "-c", ak_ref, f"0x{persistent_handle:08x}")
                    ak_ref = f"0x{persistent_handle:08x}"
                    persisted = True
            info = ak_result(pub_bytes, persistent_handle, persisted, False, key_algorithm,
                             parent_result(hierarchy, parent_bytes))  # fmt: skip
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
