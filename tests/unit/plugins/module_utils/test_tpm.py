"""ESAPI helpers against a real swtpm: summary, PCR reads, AK handling, flushing, CLI quoting."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import quote_verify as qv
from ansible_collections.tpmfleet.tpm.plugins.module_utils import tpm as tp
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import Deadline
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_cli import TOOLS, cli_quote
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import TpmAccessError, open_esapi
from tpm2_pytss import TSS2_Exception

pytestmark = pytest.mark.swtpm
SEL = qv.parse_pcr_selection("sha256:0,1,2,3,4,5,6,7")


@pytest.fixture
def ectx(swtpm):
    ctx = open_esapi(swtpm.tcti)
    yield ctx
    ctx.close()


def nonces(n):
    return [os.urandom(20).hex() for _ in range(n)]


def test_summary_identifies_swtpm(ectx):
    s = tp.read_summary(ectx)
    assert s["manufacturer"] == "IBM"
    assert s["software_tpm"] is True
    assert s["spec_family"] == "2.0"
    assert s["pcr_banks"]["sha256"] == list(range(24))
    assert s["lockout"]["in_lockout"] is False
    assert s["transient_objects"] == 0


def test_read_pcrs_more_than_eight(ectx):
    sel = qv.parse_pcr_selection("sha256:0-11+sha1:0,7")
    values = tp.read_pcrs(ectx, sel)
    assert sorted(values["sha256"], key=int) == [str(i) for i in range(12)]
    assert len(values["sha1"]["7"]) == 40
    assert values["sha256"]["0"] != values["sha256"]["1"]  # the fixture extended them


def test_fifty_quotes_do_not_leak(ectx):
    """The TPM has 3 transient slots: any missing flush would fail within a few iterations."""
    for i in range(50):
        ak, quotes, changed = tp.quote_session(ectx, SEL, nonces(1), "ecc", None, False, {})
        assert not changed
        if i % 10 == 0:
            assert qv.verify_module_result(
                {"ak": ak, "quotes": quotes}, [bytes.fromhex(quotes[0]["nonce"])], "sha256:0-7"
            )
    assert tp.transient_handles(ectx) == []


def test_flushes_on_error(ectx):
    # 100-byte qualifying data does not fit TPM2B_DATA: fails in the quote loop, after the AK was loaded
    with pytest.raises((TSS2_Exception, IndexError)):
        tp.quote_session(ectx, SEL, ["ab" * 100], "ecc", None, False, {})
    assert tp.transient_handles(ectx) == []


def test_persistent_ak_created_then_reused(ectx):
    handle = 0x81020010
    timings = {}
    ak1, _q, changed1 = tp.quote_session(ectx, SEL, nonces(1), "ecc", handle, False, timings)
    ak2, _q, changed2 = tp.quote_session(ectx, SEL, nonces(2), "ecc", handle, False, {})
    try:
        assert (changed1, ak1["reused"], ak1["persisted"]) == (True, False, True)
        assert (changed2, ak2["reused"]) == (False, True)
        assert ak1["public_pem"] == ak2["public_pem"]
        assert "create_ak" in timings
        with pytest.raises(TpmAccessError) as err:  # an ECC AK is not reused as an RSA one
            tp.quote_session(ectx, SEL, nonces(1), "rsa", handle, False, {})
        assert err.value.kind == "persistent_handle"
        # Its own AK: tpmfleet names the way to reuse it, and evicting is left to the user.
        assert "holds a tpmfleet AK of key_algorithm ecc" in err.value.msg
        assert "set key_algorithm: ecc" in err.value.msg
        assert tp.transient_handles(ectx) == []
    finally:
        subprocess.run(["tpm2_evictcontrol", "-T", ectx_tcti(ectx), "-C", "o", "-c", hex(handle)], check=False)


def ectx_tcti(ectx):
    return str(ectx.tcti)


def test_check_mode_never_persists(ectx):
    handle = 0x81020011
    ak, _q, changed = tp.quote_session(ectx, SEL, nonces(1), "ecc", handle, True, {})
    assert changed is True and ak["persisted"] is False
    assert handle not in tp.handles(ectx, 0x81000000)


def _runner(args):
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("algo", ["ecc", "rsa"])
def test_cli_quotes_verify_and_leave_nothing(swtpm, ectx, algo):
    tools = {t: t for t in TOOLS}
    timings = {}
    ns = nonces(2)
    ak, quotes, changed = cli_quote(_runner, tools, swtpm.tcti, SEL, ns, algo, None, False, timings)
    assert not changed
    details = qv.verify_module_result({"ak": ak, "quotes": quotes}, [bytes.fromhex(n) for n in ns], "sha256:0-7")
    assert len(details) == 2
    assert {"open", "key", "quote"} <= set(timings)
    assert tp.transient_handles(ectx) == []


def test_cli_error_is_reported_and_cleaned(swtpm, ectx):
    tools = {t: t for t in TOOLS}
    with pytest.raises(TpmAccessError) as err:
        cli_quote(_runner, tools, swtpm.tcti, SEL, ["ab" * 100], "ecc", None, False, {})
    assert err.value.kind == "cli"
    assert "tpm2_quote failed" in err.value.msg
    assert tp.transient_handles(ectx) == []


def test_deadline_helper():
    d = Deadline(5)
    assert 4 < d.remaining() <= 5 and not d.expired()
