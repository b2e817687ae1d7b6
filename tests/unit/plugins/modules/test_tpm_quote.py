"""tpm_quote run for real through ansible (the action plugin makes nonces and verifies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import COLLECTION, COLLECTIONS

pytestmark = pytest.mark.swtpm


def evict(tcti, handle):
    subprocess.run(["tpm2_evictcontrol", "-T", tcti, "-C", "o", "-c", handle], capture_output=True, check=False)


def transient_count(tcti):
    out = subprocess.run(["tpm2_getcap", "-T", tcti, "handles-transient"], capture_output=True, text=True, check=True)
    return out.stdout.count("0x")


def test_default_ecc_two_quotes_verified(swtpm_tcti, ansible_run):
    r, _wall = ansible_run("tpm_quote", {"tcti": swtpm_tcti})
    assert not r.get("failed"), r.get("msg")
    assert r["verified"] is True and r["changed"] is False
    assert len(r["quotes"]) == 2 and len(r["verification"]) == 2
    assert r["quotes"][0]["nonce"] != r["quotes"][1]["nonce"]
    assert len(bytes.fromhex(r["quotes"][0]["nonce"])) == 20
    assert r["ak"]["key"] == "ecc_p256" and r["ak"]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert {"open", "key", "quote", "total"} <= set(r["timings_ms"])
    assert r["pcr_selection"] == "sha256:0,1,2,3,4,5,6,7"
    assert transient_count(swtpm_tcti) == 0


def test_persistent_ak_reused_second_run(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "persistent_handle": "0x81020002", "count": 1}
    try:
        first, _ = ansible_run("tpm_quote", args, diff=True)
        second, _ = ansible_run("tpm_quote", args)
    finally:
        evict(swtpm_tcti, "0x81020002")
    assert first["changed"] is True and first["ak"]["persisted"] and not first["ak"]["reused"]
    assert "0x81020002" in first["diff"]["after"]
    assert second["changed"] is False and second["ak"]["reused"] is True
    assert second["ak"]["public_pem"] == first["ak"]["public_pem"]
    assert second["verified"] is True
    assert "create_ak" not in second["timings_ms"]  # no key generated on reuse


def test_check_mode_does_not_persist(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "persistent_handle": "0x81020003", "count": 1}
    r, _ = ansible_run("tpm_quote", args, check=True)
    assert r["changed"] is True and r["ak"]["persisted"] is False and r["verified"] is True
    out = subprocess.run(["tpm2_getcap", "-T", swtpm_tcti, "handles-persistent"], capture_output=True, text=True)
    assert "0x81020003" not in out.stdout


def test_cli_method_rsa_three_quotes(swtpm_tcti, ansible_run):
    r, _ = ansible_run("tpm_quote", {"tcti": swtpm_tcti, "method": "cli", "key_algorithm": "rsa", "count": 3})
    assert not r.get("failed"), r.get("msg")
    assert r["verified"] is True and len(r["quotes"]) == 3
    assert r["quotes"][0]["signature_format"] == "rsassa-pkcs1v15"
    assert transient_count(swtpm_tcti) == 0


def test_cli_method_persistent_reuse(swtpm_tcti, ansible_run):
    args = {"tcti": swtpm_tcti, "method": "cli", "persistent_handle": "0x81020004", "count": 1,
            "pcrs": "sha256:0-3+sha1:4"}  # fmt: skip
    try:
        first, _ = ansible_run("tpm_quote", args)
        second, _ = ansible_run("tpm_quote", args)
    finally:
        evict(swtpm_tcti, "0x81020004")
    assert (first["changed"], second["changed"]) == (True, False)
    assert second["verified"] and second["ak"]["public_pem"] == first["ak"]["public_pem"]
    assert second["verification"][0]["pcr_selection"] == "sha256:0,1,2,3+sha1:4"


def test_exhausted_object_memory_is_explained(swtpm_tcti, ansible_run):
    """Leak every transient slot like a careless direct-mode client, then quote."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(swtpm_tcti) as ectx:
        for _ in range(3):
            ectx.create_primary(None, "ecc256", ESYS_TR.OWNER)
    try:
        r, _ = ansible_run("tpm_quote", {"tcti": swtpm_tcti, "count": 1})
    finally:
        subprocess.run(["tpm2_flushcontext", "-T", swtpm_tcti, "-t"], check=True)
    assert r["failed"] and r["reason"] == "object_memory"
    assert "transient object slots" in r["msg"]


def test_stopped_tpm(stopped_swtpm_tcti, ansible_run):
    r, wall = ansible_run("tpm_quote", {"tcti": stopped_swtpm_tcti, "timeout": 5})
    assert r["failed"] and r["reason"] == "unreachable"
    # The module's own clock bounds the TPM path (5 s timeout); the whole ansible run only has to end
    # (its start-up alone took over 10 s on a loaded 2-core machine).
    assert r["elapsed_ms"] < 5000
    assert wall < 60


# --- handles tpmfleet must never use or damage -------------------------------------------------

RESERVED = [
    ("0x81010001", "reserved endorsement range 0x81010000-0x8101ffff"),  # the RSA EK
    ("0x81010002", "reserved endorsement range 0x81010000-0x8101ffff"),  # the ECC EK
    ("0x81010016", "reserved endorsement range 0x81010000-0x8101ffff"),
    ("0x81000001", "reserved owner_srk range 0x81000000-0x8100ffff"),  # systemd's SRK
    ("0x81800000", "reserved platform range 0x81800000-0x81ffffff"),  # was a raw rc 0x1cd
    ("0x80000001", "is not a persistent handle (0x81000000-0x81ffffff)"),
    ("0x81020001 ", "is not a TPM handle"),
    ("EK", "is not a TPM handle"),
]


@pytest.mark.parametrize(("handle", "fragment"), RESERVED)
@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_reserved_handles_are_refused_before_the_tpm_is_touched(stopped_swtpm_tcti, ansible_run, handle, fragment,
                                                                method):  # fmt: skip
    # Nothing listens at this TCTI: a refusal that is not "unreachable" never reached for the TPM.
    r, _ = ansible_run("tpm_quote", {"tcti": stopped_swtpm_tcti, "persistent_handle": handle, "method": method})
    assert r["failed"] and r["reason"] == "persistent_handle", r
    assert r["msg"].startswith("persistent_handle ") and fragment in r["msg"], r["msg"]
    assert "tpm2_evictcontrol" not in r["msg"] and "rc 0x" not in r["msg"]
    if "reserved" in fragment:
        assert "Use the owner range 0x81020000-0x817fffff, e.g. 0x81020001" in r["msg"]


def test_the_module_alone_refuses_a_reserved_handle_too(stopped_swtpm_tcti, tmp_path):
    """Without the action plugin (nonces given as the plugin would), the module's own check refuses it."""
    args = tmp_path / "args.json"
    module_args = {"tcti": stopped_swtpm_tcti, "persistent_handle": "0x81010001", "nonces": ["00" * 20], "count": 1}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    proc = subprocess.run(
        [sys.executable, str(COLLECTION / "plugins" / "modules" / "tpm_quote.py"), str(args)],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(COLLECTIONS)},
    )  # fmt: skip
    r = json.loads(proc.stdout)
    assert r["failed"] and r["reason"] == "persistent_handle"
    assert "reserved endorsement range" in r["msg"] and "RSA EK 0x81010001" in r["msg"]


def persistent_names(tcti):
    """{handle: TPM name (hex)} of every persistent object."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import TPM2_CAP

    names = {}
    with ESAPI(tcti) as ectx:
        _more, cap = ectx.get_capability(TPM2_CAP.HANDLES, 0x81000000, 64)
        for handle in (int(h) for h in cap.data.handles):
            tr = ectx.tr_from_tpmpublic(handle)
            _pub, name, _qname = ectx.read_public(tr)
            names[f"0x{handle:08x}"] = bytes(name).hex()
            ectx.tr_close(tr)
    return names


FOREIGN = "0x81020010"


@pytest.fixture(params=["storage", "signing"])
def foreign_object(request, swtpm_tcti):
    """An object another program persisted in the owner range: a storage key, or a restricted signing
    key made with other attributes than tpmfleet's AK (no noDA), as another attestation agent would."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
    from tpm2_pytss.types import TPM2B_PUBLIC

    attrs = (
        TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH
    )  # fmt: skip
    if request.param == "storage":  # an SRK-like parent
        template = TPM2B_PUBLIC.parse("rsa2048:aes128cfb", objectAttributes=attrs | TPMA_OBJECT.DECRYPT)
    else:
        template = TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256:null", objectAttributes=attrs | TPMA_OBJECT.SIGN_ENCRYPT)
    with ESAPI(swtpm_tcti) as ectx:
        primary, *_ = ectx.create_primary(None, template, ESYS_TR.OWNER)
        ectx.evict_control(ESYS_TR.OWNER, primary, int(FOREIGN, 16))
        ectx.flush_context(primary)
    yield request.param
    evict(swtpm_tcti, FOREIGN)


@pytest.mark.parametrize("method", ["pytss", "cli"])
@pytest.mark.parametrize("check", [False, True])
def test_a_foreign_object_at_the_handle_is_neither_used_evicted_nor_replaced(
    swtpm_tcti, ansible_run, foreign_object, method, check
):
    before = persistent_names(swtpm_tcti)
    assert FOREIGN in before
    args = {"tcti": swtpm_tcti, "persistent_handle": FOREIGN, "method": method, "count": 1}
    r, _ = ansible_run("tpm_quote", args, check=check)
    assert r["failed"] and r["reason"] == "persistent_handle" and not r["changed"], r
    what = "storage key (rsa2048" if foreign_object == "storage" else "restricted signing key (ecc_p256"
    assert f"persistent_handle {FOREIGN} already holds a {what}" in r["msg"], r["msg"]
    assert "tpmfleet did not create" in r["msg"] and "never uses, replaces or evicts" in r["msg"]
    assert "e.g. 0x81020001 (free on this TPM)" in r["msg"]
    assert "tpm2_evictcontrol" not in r["msg"]
    assert persistent_names(swtpm_tcti) == before  # same objects, same names: nothing evicted or replaced
    assert transient_count(swtpm_tcti) == 0


def test_the_suggested_handle_is_free_on_this_tpm(swtpm_tcti, ansible_run, foreign_object):
    args = {"tcti": swtpm_tcti, "persistent_handle": "0x81020001", "count": 1}
    try:
        first, _ = ansible_run("tpm_quote", args)  # our AK at 0x81020001
        assert first["changed"] and first["ak"]["persisted"], first.get("msg")
        r, _ = ansible_run("tpm_quote", {**args, "persistent_handle": FOREIGN})
    finally:
        evict(swtpm_tcti, "0x81020001")
    assert r["failed"] and "e.g. 0x81020002 (free on this TPM)" in r["msg"], r["msg"]
