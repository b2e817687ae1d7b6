# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a TPM over an explicit TCTI, with bounded time and precise failure messages.

Works with tpm2-pytss 1.2 (Debian 12 python3-tpm2-pytss) and 3.x: only ESAPI(str),
TCTILdr.is_available, TSS2_Exception.rc and long-standing ESAPI calls are used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time

# tpm2-tss logs to stderr (e.g. "ERROR:tcti:... Connection refused"); we report
# errors ourselves, so keep the module's stderr clean unless the user asked for logs.
os.environ.setdefault("TSS2_LOG", "all+none")

PYTSS_IMPORT_ERROR = None
try:
    from tpm2_pytss import ESAPI, TCTILdr, TSS2_Exception

    HAS_PYTSS = True
except Exception as _exc:  # ImportError, or cffi failing to load libtss2
    HAS_PYTSS = False
    PYTSS_IMPORT_ERROR = _exc
    ESAPI = TCTILdr = None

    class TSS2_Exception(Exception):
        rc = 0


# The TCTI grammar and TpmAccessError live in tcti_grammar (no tpm2-pytss there: the controller's
# filters use them).
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import (
    UDEV_HINT,
    abrmd_state,
    access_analysis,
    current_identity,
    describe_node,
    describe_process,
    driver_info,
    find_holders,
    node_info,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import (
    TpmAccessError,
    host_port,
    parse_tcti,
)

PYTSS_FIX = (
    "install python3-tpm2-pytss (Debian/Ubuntu) or python3-tpm2-pytss (Fedora), or pip install tpm2-pytss "
    "in a virtualenv and point ansible_python_interpreter at it"
)

KNOWN_TCTIS = ("device", "tabrmd", "swtpm", "mssim", "cmd", "libtpms", "spi-helper", "pcap", "i2c-helper")
TCTI_PACKAGES = {
    "tabrmd": "libtss2-tcti-tabrmd0 (Debian/Ubuntu) / tpm2-abrmd (Fedora)",
    "swtpm": "libtss2-tcti-swtpm0 (Debian/Ubuntu) / tpm2-tss (Fedora)",
    "mssim": "libtss2-tcti-mssim0 (Debian/Ubuntu) / tpm2-tss (Fedora)",
    "device": "libtss2-tcti-device0 (Debian/Ubuntu) / tpm2-tss (Fedora)",
}

# TPM response codes (format-zero / warning codes, TPM layer)
RC_INITIALIZE = 0x100
RC_FAILURE = 0x101
RC_RETRY = 0x922
RC_TESTING = 0x90A
RC_YIELDED = 0x908
RC_LOCKOUT = 0x921
RC_OBJECT_MEMORY = 0x902
RC_NV_RATE = 0x920
RC_HANDLE = 0x08B  # format-one
RC_AUTH_FAIL = 0x08E
RC_BAD_AUTH = 0x0A2
RC_NV_SPACE = 0x14B
RC_NV_DEFINED = 0x14C
LAYER_TPM = 0x000000
LAYER_RESMGR_TPM = 0x0C0000
LAYER_TCTI = 0x0A0000
TCTI_RC_IO_ERROR = 0x0A000A
TCTI_RC_NOT_SUPPORTED = 0x0A0015
TCTI_RC_BAD_VALUE = 0x0A000B
TCTI_RC_NOT_PERMITTED = 0x0A0019
TCTI_RC_TRY_AGAIN = 0x0A0009
TCTI_RC_NO_CONNECTION = 0x0A0008

TRANSIENT_RCS = (RC_RETRY, RC_TESTING, RC_YIELDED, RC_NV_RATE)


def tpm_rc_code(rc):
    """Normalise a TSS2_RC to the TPM response code without parameter/handle/session numbers.

    Returns None for TSS (non-TPM) layers."""
    rc = int(rc)
    layer = rc & 0xFF0000
    if layer not in (LAYER_TPM, LAYER_RESMGR_TPM):
        return None
    base = rc & 0xFFFF
    if base & 0x080:  # format one
        return 0x080 | (base & 0x03F)
    return base & 0x97F


# --------------------------------------------------------------------------
# TCTI strings (the grammar itself: tcti_grammar.py)
# --------------------------------------------------------------------------


def device_path(conf):
    return conf or "/dev/tpm0"


# --------------------------------------------------------------------------
# Pre-open probes: classify precisely before tpm2-tss turns everything into "IO failure"
# --------------------------------------------------------------------------


def _device_missing_error(path):
    drivers = driver_info()
    bound = [d for d in drivers if d.get("driver")]
    if bound:
        why = (
            f"the kernel has {', '.join(d['device'] for d in bound)} (driver {bound[0]['driver']}) but {path} is "
            "missing: udev did not create the node, or the path is wrong"
        )
        if path.startswith("/dev/tpmrm"):
            why += " (/dev/tpmrmN needs kernel >= 4.12)"
    else:
        why = (
            "no TPM device is registered with the kernel (/sys/class/tpm is empty): enable the TPM in "
            "firmware/hypervisor and load the driver (modprobe tpm_tis or tpm_crb; the tpm_kernel role does this)"
        )
    return TpmAccessError("no_device", f"TPM device node {path} does not exist: {why}", path=path, drivers=drivers)


def busy_error(path):
    """EBUSY on a /dev/tpmN node: name the holders (pid, command, unit) and what to do."""
    holders, complete = find_holders([path])
    who = "; ".join(describe_process(h) for h in holders) or (
        "an unknown process (run as root to see holders)" if not complete else "an unknown process"
    )
    abrmd = any(h["comm"] == "tpm2-abrmd" for h in holders)
    advice = (
        "tpm2-abrmd owns the TPM: stop and mask it (systemctl disable --now tpm2-abrmd; systemctl mask "
        "tpm2-abrmd) or make this consumer use tabrmd / device:/dev/tpmrm0 (switch the agent's quote mode)"
        if abrmd
        else "only one process may open a /dev/tpmN node: stop that process or use device:/dev/tpmrm0 "
        "(kernel resource manager)"
    )
    return TpmAccessError(
        "busy",
        f"{path} is busy (Device or resource busy), held by {who}: {advice}",
        holders=holders,
        holders_complete=complete,
    )


def probe_device(path, identity=None):
    """Open the node O_RDWR|O_NONBLOCK and close it; classify ENOENT/EACCES/EBUSY/ENODEV."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        code = exc.errno
        if code == errno.ENOENT:
            raise _device_missing_error(path) from None
        node = node_info(path)
        if code in (errno.EACCES, errno.EPERM):
            identity = identity or current_identity()
            _allowed, why = access_analysis(node, identity)
            raise TpmAccessError(
                "permission",
                f"permission denied opening {path} as user {identity['user']} (uid {identity['uid']}, groups "
                f"{', '.join(identity['groups'])}): node is {describe_node(node)}; {why}. {UDEV_HINT}",
                node=node,
                identity=identity,
            ) from None
        if code == errno.EBUSY:
            raise busy_error(path) from None
        if code in (errno.ENODEV, errno.ENXIO):
            raise TpmAccessError(
                "no_device",
                f"{path} exists but no TPM driver is bound to it ({os.strerror(code)}): check dmesg for tpm errors, "
                "reload the driver (modprobe -r tpm_tis && modprobe tpm_tis) or apply the tpm_kernel role",
                node=node,
                drivers=driver_info(),
            ) from None
        raise TpmAccessError("open_failed", f"cannot open {path}: {os.strerror(code)}", node=node) from None
    os.close(fd)


def probe_socket(name, host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=max(0.1, min(timeout, 5.0))):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise TpmAccessError(
            "unreachable",
            f"cannot connect to the {name} TPM at {host}:{port} ({reason}): is swtpm running with "
            f"--server type=tcp,port={port} --ctrl type=tcp,port={port + 1}? Check the host/port in the tcti",
            host=host,
            port=port,
        ) from None


def probe_tabrmd(conf, module=None):
    abrmd = abrmd_state(module)
    if not abrmd["running"]:
        unit = abrmd.get("systemd") or {}
        state = f"unit tpm2-abrmd.service ActiveState={unit.get('active_state')}" if unit else "no systemd state"
        raise TpmAccessError(
            "broker_unreachable",
            f"tabrmd TCTI: the access broker tpm2-abrmd is not running ({state}), so its D-Bus name "
            "com.intel.tss2.Tabrmd is not present: start it (systemctl enable --now tpm2-abrmd) or use "
            "device:/dev/tpmrm0 (kernel resource manager) instead",
            abrmd=abrmd,
        )
    if "bus_type=session" not in conf and not os.path.exists("/run/dbus/system_bus_socket"):
        raise TpmAccessError(
            "broker_unreachable",
            "tabrmd TCTI: tpm2-abrmd runs but the system D-Bus socket /run/dbus/system_bus_socket is missing "
            "(is dbus running?)",
            abrmd=abrmd,
        )
    return abrmd


def _tcti_library_dirs():
    import sysconfig

    dirs = ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64", "/lib", "/lib64"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs[:0] = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    dirs.extend(filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")))
    return dirs


def tcti_available(name):
    """True/False when we can tell whether tpm2-tss can load the TCTI, None when unsure.

    tpm2-pytss >= 2 has TCTILdr.is_available; 1.2 (Debian 12) does not, so look for the library."""
    if not HAS_PYTSS:
        return None
    checker = getattr(TCTILdr, "is_available", None)
    if checker is not None:
        try:
            return bool(checker(name))
        except Exception:
            return None
    if "/" in name:
        return None
    for d in _tcti_library_dirs():
        for candidate in (f"libtss2-tcti-{name}.so.0", f"libtss2-tcti-{name}.so", f"libtss2-{name}.so.0"):
            if os.path.exists(os.path.join(d, candidate)):
                return True
    return False


def probe(name, conf, timeout, module=None, identity=None):
    """Classify reachability before handing the TCTI to tpm2-tss. Raises TpmAccessError."""
    available = tcti_available(name)
    if available is False:
        if name not in KNOWN_TCTIS:
            raise TpmAccessError(
                "tcti_invalid",
                f"unknown TCTI {name!r}: tpm2-tss has no libtss2-tcti-{name}.so; use one of device, tabrmd, "
                "swtpm, mssim (e.g. device:/dev/tpmrm0)",
            )
        pkg = TCTI_PACKAGES.get(name, f"the package providing libtss2-tcti-{name}.so.0")
        raise TpmAccessError(
            "tcti_unavailable",
            f"the {name} TCTI library (libtss2-tcti-{name}.so.0) is not installed on this host: install {pkg}",
        )
    if name == "device":
        probe_device(device_path(conf), identity)
    elif name in ("swtpm", "mssim"):
        host, port = host_port(name, conf)
        probe_socket(name, host, port, timeout)
    elif name == "tabrmd":
        probe_tabrmd(conf, module)


# --------------------------------------------------------------------------
# Exceptions from tpm2-tss
# --------------------------------------------------------------------------


def classify_exception(exc, name, conf, what="TPM command", module=None, identity=None):
    """Turn a TSS2_Exception (or OSError) into a TpmAccessError with advice."""
    if isinstance(exc, TpmAccessError):
        return exc
    rc = int(getattr(exc, "rc", 0) or 0)
    code = tpm_rc_code(rc) if rc else None
    text = f"{what} failed: {exc} (rc 0x{rc:x})" if rc else f"{what} failed: {exc}"
    if code == RC_LOCKOUT:
        return TpmAccessError(
            "lockout",
            f"{text}: the TPM is in dictionary-attack lockout (too many failed authorizations). Wait for the "
            "lockout recovery time (see tpm_facts tpm.lockout.recovery_s) or clear it with the lockout "
            "authorization: tpm2_dictionarylockout --clear-lockout -p <lockout auth>",
            tss_rc=f"0x{rc:x}",
        )
    if code in (RC_RETRY, RC_TESTING, RC_YIELDED):
        return TpmAccessError(
            "selftest",
            f"{text}: the TPM is still running its self-test and kept asking to retry; check tpm2_gettestresult, "
            "then reboot or update the TPM firmware if it never completes",
            tss_rc=f"0x{rc:x}",
        )
    if code == RC_INITIALIZE:
        return TpmAccessError(
            "not_started",
            f"{text}: the TPM has not received TPM2_Startup (normally done by firmware or the kernel); run "
            "tpm2_startup -c with the same tcti",
            tss_rc=f"0x{rc:x}",
        )
    if code == RC_FAILURE:
        return TpmAccessError(
            "failure_mode",
            f"{text}: the TPM is in failure mode; reboot (power cycle) the machine, check tpm2_gettestresult",
            tss_rc=f"0x{rc:x}",
        )
    if code == RC_OBJECT_MEMORY:
        return TpmAccessError(
            "object_memory",
            f"{text}: the TPM has no free transient object slots; some process leaked transient objects "
            "(flush them with tpm2_flushcontext -t, or use device:/dev/tpmrm0 which flushes per connection)",
            tss_rc=f"0x{rc:x}",
        )
    if code in (RC_AUTH_FAIL, RC_BAD_AUTH):
        return TpmAccessError(
            "auth",
            f"{text}: authorization failed: an owner or endorsement hierarchy password (or an object's) is set "
            "that this task did not present; tpm_facts shows which hierarchies have one (lockout.owner_auth_set, "
            "endorsement_auth_set). tpm_quote needs none for the owner hierarchy and takes the endorsement one in "
            "endorsement_auth; tpm2_changeauth -c owner|endorsement -p <current password> clears one",
            tss_rc=f"0x{rc:x}",
        )
    if rc & 0xFF0000 == LAYER_TCTI or isinstance(exc, OSError):
        # re-probe: the state may have changed since the pre-check (or the TCTI hides the errno)
        try:
            probe(name, conf, 2.0, module=module, identity=identity)
        except TpmAccessError as precise:
            return precise
        if rc == TCTI_RC_BAD_VALUE:
            return TpmAccessError("tcti_invalid", f"{text}: tpm2-tss rejected the TCTI configuration {conf!r}")
        if rc == TCTI_RC_NOT_SUPPORTED and name not in KNOWN_TCTIS:
            return TpmAccessError(
                "tcti_invalid", f"{text}: unknown TCTI {name!r}; use one of device, tabrmd, swtpm, mssim"
            )
        if rc == TCTI_RC_NOT_SUPPORTED:
            return TpmAccessError(
                "tcti_unavailable", f"{text}: TCTI {name!r} is not supported or could not be loaded by tpm2-tss"
            )
        if name == "tabrmd":
            return TpmAccessError(
                "broker_unreachable",
                f"{text}: could not talk to tpm2-abrmd over D-Bus (is it running and is this user allowed by its "
                "D-Bus policy, i.e. in the tss group?)",
                tss_rc=f"0x{rc:x}",
            )
        return TpmAccessError("io", f"{text}: communication with the TPM over {name} failed", tss_rc=f"0x{rc:x}")
    return TpmAccessError("tpm_error", text, tss_rc=f"0x{rc:x}")


# --------------------------------------------------------------------------
# Bounded execution and retries
# --------------------------------------------------------------------------


def run_with_deadline(func, deadline, what):
    """Run ``func()`` in a daemon thread; raise TpmAccessError('timeout') when it does not finish
    in time. tpm2-tss calls cannot be interrupted, so a hung call is abandoned (the module then
    exits, which closes the TPM connection)."""
    box = {}

    def target():
        try:
            box["result"] = func()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, name="tpmfleet-tpm", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise TpmAccessError(
            "timeout",
            f"{what} did not finish within {deadline.timeout:g}s: the TPM or the TCTI endpoint is not answering "
            "(hung TPM, wrong port, or a broker that accepts but does not respond); raise 'timeout' only if the TPM "
            "is known to be slow",
        )
    if "error" in box:
        raise box["error"]
    return box.get("result")


def call_with_retry(ectx, func, deadline, selftest_after=3, max_attempts=8):
    """Call ``func()`` retrying TPM_RC_RETRY/TESTING/YIELDED with exponential backoff.

    After ``selftest_after`` retries the TPM is asked for a full self-test (TPM2_SelfTest(YES)) once;
    retries stop at ``max_attempts`` or the deadline. Returns ``(result, retries)``."""
    delay = 0.05
    retries = 0
    selftest_done = False
    while True:
        try:
            return func(), retries
        except TSS2_Exception as exc:
            code = tpm_rc_code(getattr(exc, "rc", 0))
            if code not in TRANSIENT_RCS or retries + 1 >= max_attempts or deadline.remaining() < delay:
                raise
        retries += 1
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
        if retries >= selftest_after and not selftest_done and ectx is not None:
            selftest_done = True
            with contextlib.suppress(TSS2_Exception):  # TESTING again: keep retrying the original call
                ectx.self_test(True)


def open_esapi(tcti):
    """ESAPI over an explicit TCTI string (never the loader's default search)."""
    return ESAPI(tcti)


def tpm_session(tcti, work, deadline, what, module=None, identity=None, timings=None):
    """Probe ``tcti``, open an ESAPI context on it, return ``work(ectx)`` and close the context.

    Everything runs under ``deadline``; every failure (probe, TSS2 error, OS error, timeout)
    is raised as a classified TpmAccessError. With ``timings``, the time to open the context
    is recorded as ``timings['open']`` (ms)."""
    name, conf = parse_tcti(tcti)

    def session():
        start = time.perf_counter()
        ectx = open_esapi(tcti)
        if timings is not None:
            timings["open"] = round((time.perf_counter() - start) * 1000.0, 3)
        try:
            return work(ectx)
        finally:
            ectx.close()

    try:
        probe(name, conf, deadline.remaining(), module=module, identity=identity)
        return run_with_deadline(session, deadline, what)
    except (TSS2_Exception, OSError) as exc:
        raise classify_exception(exc, name, conf, what=what, module=module, identity=identity) from exc


def fail_access(module, err, deadline, result):
    """fail_json for a TpmAccessError: its message, class (``reason``) and details, with ``result``."""
    details = {k: v for k, v in err.details.items() if k not in result}
    module.fail_json(msg=err.msg, reason=err.kind, elapsed_ms=deadline.elapsed_ms(), **result, **details)


def pytss_missing_msg(purpose):
    """What to do when tpm2-pytss cannot be imported on the managed host."""
    # Imported here: the probes above also run outside a module (tests as another user).
    from ansible.module_utils.basic import missing_required_lib

    return missing_required_lib("tpm2-pytss", reason=f"{purpose}; {PYTSS_FIX}")


def require_pytss(module, purpose, result):
    """Fail the module with the install hint when tpm2-pytss is missing."""
    if not HAS_PYTSS:
        module.fail_json(
            msg=pytss_missing_msg(purpose),
            exception=str(PYTSS_IMPORT_ERROR),
            reason="missing_library",
            **result,
        )
