"""Synthetic per-host records for the fleet report, shaped like what the report playbook registers.

``host_record(name, mode, ...)`` gives a host whose observed state is exactly what
its quote mode implies (healthy); keyword arguments break it in one way each.
``synthetic_fleet(n)`` mixes every status (failing, unreachable, unverified, no_tpm,
drifted, healthy), failed reads, busy direct-mode TPMs, conflicting observed modes and
host-provided strings with control characters, for the tests, the page and the benchmarks.
"""

from __future__ import annotations

import copy
import random

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm

ABRMD_PROC = {"pid": 611, "comm": "tpm2-abrmd", "cmdline": "/usr/sbin/tpm2-abrmd", "user": "tss",
              "unit": "tpm2-abrmd.service"}  # fmt: skip
AGENT_PROC = {"pid": 702, "comm": "keylime_agent", "cmdline": "/usr/bin/keylime_agent", "user": "keylime",
              "unit": "keylime_agent.service"}  # fmt: skip


def _props(lockout_counter=0, in_lockout=False, ek_cert=True, owner_auth=False):
    return {
        "manufacturer": "IFX",
        "manufacturer_name": "Infineon",
        "vendor_strings": "SLB9670",
        "firmware_version": "7.85.4555.0",
        "spec_family": "2.0",
        "spec_level": 0,
        "spec_revision": "1.59",
        "software_tpm": False,
        "pcr_banks": {"sha1": list(range(24)), "sha256": list(range(24))},
        "lockout": {
            "counter": lockout_counter,
            "max_tries": 32,
            "interval_s": 7200,
            "recovery_s": 86400,
            "in_lockout": in_lockout,
            "owner_auth_set": owner_auth,
            "endorsement_auth_set": False,
            "lockout_auth_set": True,
        },
        "ek_certificates": [
            {
                "index": "0x01c00002",
                "algorithm": "rsa2048",
                "present": ek_cert,
                "readable": ek_cert,
                "certificate": {
                    "sha256": "ab" * 32,
                    "issuer": "O=Infineon, CN=Infineon OPTIGA RSA TPM CA 042",
                    "not_after": "2034-01-01T00:00:00Z",
                    "public_key_sha256": "cd" * 32,
                }
                if ek_cert
                else None,
            },
            {"index": "0x01c0000a", "algorithm": "ecc_p256", "present": False},
        ],
        "ek": {
            "source": "certificate" if ek_cert else None,
            "handle": None,
            "key": "rsa2048" if ek_cert else None,
            "public_key_sha256": "cd" * 32 if ek_cert else None,
        },
        "persistent_handles": [{"handle": "0x81000001", "range": "owner_srk", "key": "ecc_p256"}],
        "transient_objects": 0,
    }


def host_record(
    name,
    mode="kernel_rm",
    groups=("tpm_hosts",),
    tss_gid=113,
    docker_gid=998,
    present=True,
    require_device=True,
    unreachable=False,
    abrmd_running=None,
    tcti_env=None,
    node_mode=None,
    extra_holders=(),
    access_error=None,
    in_lockout=False,
    lockout_counter=0,
    ek_cert=True,
    owner_auth=False,
    event_log=True,
    quote=None,
    mode_error=None,
    read_failure=None,
):
    """A registered-result record for one host; healthy in ``mode`` unless told otherwise."""
    profile = None if mode_error else qm.profile(mode)
    record = {
        "name": name,
        "groups": list(groups),
        "requested_mode": mode,
        "profile": profile,
        "mode_error": mode_error,
        "settings": {"tss_group": "tss", "docker_group": "docker", "require_device": require_device},
        "quote": quote,
    }
    if read_failure is not None:
        # What ansible registers when the module could not start (e.g. a broken
        # ansible_python_interpreter); failed_when: false would turn failed into False.
        record["facts"] = {
            "failed": read_failure != "hidden",
            "rc": 127,
            "msg": "The module failed to execute correctly, you probably need to set the interpreter.\n"
            "See stdout/stderr for the exact error",
            "module_stdout": "",
            "module_stderr": "/bin/sh: 1: /usr/bin/python3: not found\n",
            "changed": False,
        }
        if read_failure == "hidden":
            record["facts"]["failed_when_result"] = False
        return record
    if unreachable:
        record["facts"] = {"unreachable": True, "changed": False,
                           "msg": f"Failed to connect to the host via ssh: ssh: connect to host {name} port 22: "
                                  "Connection timed out"}  # fmt: skip
        return record
    spec = profile or qm.profile("kernel_rm")
    running = spec["abrmd"]["running"] if abrmd_running is None else abrmd_running
    unit_state = "masked" if spec["abrmd"]["masked"] else ("enabled" if spec["abrmd"]["running"] else "disabled")
    if abrmd_running and not spec["abrmd"]["running"]:
        unit_state = "enabled"
    devices = []
    holders = {}
    if present:
        for path, node in spec["nodes"].items():
            devices.append({"path": path, "exists": True, "char_device": True, "owner": node["owner"], "uid": 101,
                            "group": node["group"], "gid": tss_gid if node["group"] == "tss" else 0,
                            "mode": (node_mode or {}).get(path, node["mode"])})  # fmt: skip
        tpm0 = []
        if running:
            tpm0.append(dict(ABRMD_PROC, paths=["/dev/tpm0"]))
        tpm0.extend(dict(h, paths=["/dev/tpm0"]) for h in extra_holders)
        holders = {"/dev/tpm0": tpm0, "/dev/tpmrm0": []}
    errors = []
    props = None
    if present and access_error:
        errors.append({"step": "tpm", "reason": access_error[0], "msg": access_error[1]})
    elif present:
        props = _props(lockout_counter, in_lockout, ek_cert, owner_auth)
    if not present:
        errors.append({"step": "devices", "reason": "no_device", "msg": "no TPM registered with the kernel"})
    variables = dict(spec["tcti_variables"]) if tcti_env is None else tcti_env
    tpm = {
        "present": present,
        "kernel": "6.1.0-28-amd64",
        "tcti": spec["tcti"],
        "devices": devices,
        "drivers": [{"device": "tpm0", "driver": "tpm_tis", "kind": "tpm_tis"}] if present else [],
        "holders": holders,
        "holders_complete": True,
        "abrmd": {"running": running, "pids": [611] if running else [], "processes": [],
                  "systemd": {"active_state": "active" if running else "inactive", "unit_file_state": unit_state,
                              "load_state": "masked" if unit_state == "masked" else "loaded", "main_pid": "0"}},
        "properties": props,
        "event_log": {"path": "/sys/kernel/security/tpm0/binary_bios_measurements", "exists": True, "owner": "root",
                      "uid": 0, "group": "root", "gid": 0, "mode": "0440",
                      "readable_by": {"owner": "root", "group": "root", "others": False}}
        if event_log else {"path": "/sys/kernel/security/tpm0/binary_bios_measurements", "exists": False,
                           "reason": "the firmware passed no event log to the kernel (or the TPM has no tpm0 log)"},
        "tcti_env": {"path": "/etc/tpm2/tcti.env", "exists": variables is not False,
                     "variables": variables or {}},
        "accounts": {"users": {"tss": {"uid": 101, "gid": tss_gid}},
                     "groups": {"tss": {"gid": tss_gid, "members": []},
                                "docker": {"gid": docker_gid, "members": []} if docker_gid is not None else None}},
        "errors": errors,
        "elapsed_ms": 41.2,
    }  # fmt: skip
    record["facts"] = {"changed": False, "ansible_facts": {"tpm": tpm}}
    return record


def synthetic_fleet(n, seed=7):
    """``n`` hosts with every status, problem and fleet finding, deterministically."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    modes = ("direct", "kernel_rm", "abrmd")
    records = []
    for i in range(n):
        mode = modes[i % 3]
        name = f"attest-{i:04d}.dc{i % 4}.example.net"
        groups = ("tpm_hosts", f"dc{i % 4}", f"rack{i % 25:02d}")
        roll = rng.random()
        kwargs = {"tss_gid": 113 if rng.random() > 0.05 else 998, "docker_gid": 998 if rng.random() > 0.1 else 999}
        if roll < 0.03:
            kwargs["unreachable"] = True
        elif roll < 0.05:
            kwargs["present"] = False
        elif roll < 0.08:
            kwargs["in_lockout"] = True
            kwargs["lockout_counter"] = 32
        elif roll < 0.12:
            kwargs["abrmd_running"] = mode != "abrmd"
        elif roll < 0.15:
            tcti = qm.QUOTE_MODES[modes[(i + 1) % 3]]["tcti"]
            kwargs["tcti_env"] = dict.fromkeys(qm.TCTI_VARIABLES, tcti)
        elif roll < 0.17:
            kwargs["access_error"] = ("busy", "/dev/tpm0 is busy (Device or resource busy), held by pid 702")
            if mode == "direct":  # a consumer quoting: the TPM's state is unread (unverified)
                kwargs["extra_holders"] = [AGENT_PROC]
        elif roll < 0.2:
            kwargs["ek_cert"] = False
        elif roll < 0.22:
            kwargs["node_mode"] = {"/dev/tpmrm0": "0666"}
        elif roll < 0.23:
            kwargs["event_log"] = False
        elif roll < 0.25:
            kwargs["read_failure"] = "hidden" if i % 2 else "failed"
        elif roll < 0.26:
            kwargs["present"] = False
            kwargs["require_device"] = False
        elif roll < 0.27:
            # a direct host whose tpm2-abrmd was started by hand: its signs disagree (conflicting)
            kwargs["abrmd_running"] = mode == "direct"
            kwargs["tcti_env"] = dict.fromkeys(qm.TCTI_VARIABLES, "device:/dev/tpm0")
        if i % 97 == 5 and not kwargs.get("unreachable"):
            # host-provided strings with ANSI colour codes and other control characters
            kwargs["extra_holders"] = [dict(AGENT_PROC, comm="\x1b[31magent\x1b[0m\x00", unit="a\x07\r.service")]
        record = host_record(name, mode, groups=groups, **kwargs)
        if i % 101 == 3:
            record["facts"] = {"unreachable": True, "changed": False,
                               "msg": f"\x1b[0;31mFailed to connect to {name}: Connection refused\x1b[0m"}  # fmt: skip
        records.append(record)
    return copy.deepcopy(records)
