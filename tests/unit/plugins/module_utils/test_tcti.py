"""TCTI parsing, pre-open probes, error classification, bounded execution and retry policy."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import tcti as tt
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import Deadline
from conftest import COLLECTIONS
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_RC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("device:/dev/tpmrm0", ("device", "/dev/tpmrm0")),
        ("device", ("device", "")),
        ("tabrmd:bus_type=system", ("tabrmd", "bus_type=system")),
        ("swtpm:host=127.0.0.1,port=2321", ("swtpm", "host=127.0.0.1,port=2321")),
        ("libtss2-tcti-mssim.so.0:port=2321", ("mssim", "port=2321")),
    ],
)
def test_parse_tcti_valid(text, expected):
    assert tt.parse_tcti(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" :x", "malformed"),
        ("device:dev/tpm0", "absolute path"),
        ("swtpm:port=abc", "port must be a number"),
        ("swtpm:hostname=x", "host=HOST,port=PORT"),
        ("swtpm:port=70000", "port must be"),
    ],
)
def test_parse_tcti_invalid(text, fragment):
    with pytest.raises(tt.TpmAccessError) as err:
        tt.parse_tcti(text)
    assert err.value.kind == "tcti_invalid"
    assert fragment in err.value.msg


def test_host_port_defaults_and_legacy():
    assert tt.host_port("swtpm", "") == ("localhost", 2321)
    assert tt.host_port("mssim", "tcp://10.0.0.1:4000") == ("10.0.0.1", 4000)


@pytest.mark.parametrize(
    ("rc", "code"),
    [
        (TPM2_RC.RETRY, tt.RC_RETRY),
        (TPM2_RC.TESTING, tt.RC_TESTING),
        (TPM2_RC.LOCKOUT, tt.RC_LOCKOUT),
        (0x98E, tt.RC_AUTH_FAIL),  # AUTH_FAIL on session 1
        (0x18B, tt.RC_HANDLE),  # HANDLE, handle 1
        (0x0C0922, tt.RC_RETRY),  # resource manager passing a TPM warning through
        (0x0A000A, None),  # TCTI layer
    ],
)
def test_tpm_rc_code(rc, code):
    assert tt.tpm_rc_code(rc) == code


@pytest.mark.parametrize(
    ("rc", "kind", "fragment"),
    [
        (TPM2_RC.LOCKOUT, "lockout", "tpm2_dictionarylockout --clear-lockout"),
        (TPM2_RC.INITIALIZE, "not_started", "tpm2_startup -c"),
        (TPM2_RC.FAILURE, "failure_mode", "failure mode"),
        (TPM2_RC.OBJECT_MEMORY, "object_memory", "tpm2_flushcontext"),
        (TPM2_RC.TESTING, "selftest", "self-test"),
        (0x9A2, "auth", "owner hierarchy"),
    ],
)
def test_classify_tpm_codes(rc, kind, fragment):
    err = tt.classify_exception(TSS2_Exception(rc), "swtpm", "port=1")
    assert err.kind == kind
    assert fragment in err.msg


class _Counter:
    """Stands in for the ESAPI context only to count TPM2_SelfTest calls made by the retry policy.
    (swtpm cannot be put into the self-test-in-progress state, so the policy is tested with real
    TSS2_Exception objects carrying TPM_RC_TESTING / TPM_RC_RETRY.)"""

    def __init__(self):
        self.selftests = 0

    def self_test(self, full):
        assert full is True
        self.selftests += 1


def test_retry_then_success_runs_selftest():
    ctx, calls = _Counter(), []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 5:
            raise TSS2_Exception(TPM2_RC.TESTING if len(calls) % 2 else TPM2_RC.RETRY)
        return "ok"

    result, retries = tt.call_with_retry(ctx, flaky, Deadline(10))
    assert (result, retries) == ("ok", 4)
    assert ctx.selftests == 1
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0]  # exponential backoff


def test_retry_is_bounded_and_other_errors_pass_through():
    ctx = _Counter()

    def always_testing():
        raise TSS2_Exception(TPM2_RC.TESTING)

    start = time.monotonic()
    with pytest.raises(TSS2_Exception):
        tt.call_with_retry(ctx, always_testing, Deadline(10), max_attempts=5)
    assert time.monotonic() - start < 2
    assert ctx.selftests == 1

    def lockout():
        raise TSS2_Exception(TPM2_RC.LOCKOUT)

    with pytest.raises(TSS2_Exception):
        tt.call_with_retry(ctx, lockout, Deadline(10))


def test_run_with_deadline_times_out():
    start = time.monotonic()
    with pytest.raises(tt.TpmAccessError) as err:
        tt.run_with_deadline(lambda: time.sleep(5), Deadline(0.3), "sleeping")
    assert err.value.kind == "timeout"
    assert time.monotonic() - start < 1.5
    assert tt.run_with_deadline(lambda: 42, Deadline(1), "x") == 42
    with pytest.raises(ZeroDivisionError):
        tt.run_with_deadline(lambda: 1 / 0, Deadline(1), "x")


@pytest.mark.swtpm
def test_probe_socket_refused(stopped_swtpm_tcti):
    name, conf = tt.parse_tcti(stopped_swtpm_tcti)
    with pytest.raises(tt.TpmAccessError) as err:
        tt.probe(name, conf, 5)
    assert err.value.kind == "unreachable"
    assert "Connection refused" in err.value.msg


def test_probe_device_missing():
    with pytest.raises(tt.TpmAccessError) as err:
        tt.probe("device", "/dev/tpm-does-not-exist", 5)
    assert err.value.kind == "no_device"
    assert "modprobe" in err.value.msg or "udev" in err.value.msg


def test_probe_unknown_tcti():
    with pytest.raises(tt.TpmAccessError) as err:
        tt.probe("bogus", "", 5)
    assert err.value.kind == "tcti_invalid"


def test_busy_classification_names_holder(tmp_path):
    """A real holder scan: a process named tpm2-abrmd holds a file open. (EBUSY itself needs a real
    /dev/tpm0; the lab VM tests cover that path end to end.)"""
    node = tmp_path / "tpm0"
    node.write_bytes(b"")
    fake = tmp_path / "tpm2-abrmd"
    fake.symlink_to(sys.executable)
    holder = subprocess.Popen(
        [str(fake), "-c", f"import time; f = open({str(node)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"ready"
        err = tt.busy_error(str(node))
        assert err.kind == "busy"
        assert f"pid {holder.pid}" in err.msg
        assert "systemctl disable --now tpm2-abrmd" in err.msg
        assert [h["pid"] for h in err.details["holders"]] == [holder.pid]
        from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import abrmd_state

        assert holder.pid in abrmd_state()["pids"]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_permission_denied_as_unprivileged_user(scratch):
    """Real EACCES: a root-owned 0600 node opened by uid/gid 65534 (nobody) via setpriv."""
    scratch.chmod(0o755)  # pytest's tmp_path parents are 0700: nobody could not even stat the node
    node = scratch / "tpmrm9"
    node.write_bytes(b"")
    node.chmod(0o600)
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(COLLECTIONS)!r})\n"
        "from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import probe_device, TpmAccessError\n"
        "try:\n"
        f"    probe_device({str(node)!r})\n"
        "except TpmAccessError as e:\n"
        "    print(json.dumps({'kind': e.kind, 'msg': e.msg}))\n"
    )
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", script],
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kind"] == "permission"
    assert "uid 65534" in out["msg"]
    assert "owner=root(0)" in out["msg"] and "mode=0600" in out["msg"]
    assert 'GROUP="tss"' in out["msg"]
