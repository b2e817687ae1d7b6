# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each role reads on the host, in one place (the tpmfleet.tpm.host_reads lookup).

tpm_preflight asks tpmfleet.tpm.tpm_host_state once for what every role of
the role list reads; a role used without the preflight asks it for its own
part only. Each entry below names the variables the role's reads depend on
and turns their values into the module's options (units, paths, markers,
globs, kernel, kernel_modules, holders, accounts).

The preflight reads before the checks run: only values that the checks could
accept are read (unit names in systemd's grammar, paths without control
characters or '..', at most LIST_MAX items of a list); the rest is refused by
the checks with a message naming the variable, never by systemd or the module.
"""

from __future__ import annotations

import os
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    LIST_MAX,
    normalised,
    truthy,
    unit_problem,
)

TPM_NODE_GLOBS = ("/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*")
ABRMD_UNIT = "tpm2-abrmd.service"
TPM2_TARGET = "tpm2.target"
MODULES_LOAD_DIR = "/etc/modules-load.d"


def _strings(value):
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _units(value, suffixes=("service",)):
    """The unit names of a list that systemd's grammar accepts (the checks refuse the others), at most LIST_MAX."""
    units = value[:LIST_MAX] if isinstance(value, list | tuple) else []
    return [u for u in units if unit_problem(u, suffixes) is None]


def _kernel(v):
    """The drivers (is each built in, loadable or loaded) and nodes; with tpm_kernel_persistent, each driver's
    modules-load.d file and whether a line of it names the driver (as community.general.modprobe looks for it)."""
    drivers = v.get("tpm_kernel_drivers")
    drivers = [d for d in (drivers if isinstance(drivers, list | tuple) else [])[:LIST_MAX]
               if isinstance(d, str) and re.fullmatch(r"[a-z0-9_-]{1,55}", d)]  # fmt: skip
    reads = {"kernel": True, "kernel_modules": drivers, "globs": list(TPM_NODE_GLOBS)}
    if truthy(v.get("tpm_kernel_persistent")):
        reads["markers"] = {f"{MODULES_LOAD_DIR}/{d}.conf": rf" *{d} *(?:[#;].*)?$" for d in drivers}
        reads["paths"] = list(reads["markers"])
    return reads


def _udev(_v):
    return {"globs": list(TPM_NODE_GLOBS)}


def _accounts(_v):
    return {"accounts": True}


def _abrmd(v):
    profile = v.get("tpm_quote_mode_profile") or {}
    device = profile.get("exclusive_device") if isinstance(profile, dict) else None
    files = [v.get("__tpm_abrmd_dropin"), v.get("__tpm_abrmd_dbus_policy")]
    return {
        "accounts": True,
        "units": [ABRMD_UNIT, *_units(v.get("tpm_abrmd_stop_holder_units"), ("service", "scope"))],
        "holders": [device] if device else [],
        "paths": [f for f in files if isinstance(f, str) and f.startswith("/")],
    }


def _tcti_env(v):
    services = _units(v.get("tpm_tcti_env_services"))
    # tpm2.target: whether the drop-ins can order the consumers after it.
    reads = {
        "units": [*services, TPM2_TARGET] if services else [],
        "paths": [f"/etc/systemd/system/{s}.d" for s in services],
    }
    env_file, problem = normalised(v.get("tpm_tcti_env_path"))
    if not problem:
        reads["paths"] = [env_file, os.path.dirname(env_file), *reads["paths"]]
        reads["markers"] = {env_file: str(v.get("__tpm_tcti_env_marker"))}
    return reads


def _containers(v):
    profile = v.get("tpm_quote_mode_profile") or {}
    devices = (profile.get("container") or {}).get("devices") if isinstance(profile, dict) else None
    if not v.get("tpm_containers_projects"):
        return {}
    return {"accounts": True, "paths": _strings(devices)}


def _consumers(v):
    """Whether an interrupted quote mode switch left its record (the consumers it stopped)."""
    record = v.get("__tpm_consumers_record")
    return {"paths": [record]} if isinstance(record, str) and record.startswith("/") else {}


# role -> (the variables its reads depend on, how they become tpm_host_state's options)
ROLE_READS = {
    "tpm_kernel": (("tpm_kernel_drivers", "tpm_kernel_persistent"), _kernel),
    "tpm_access": ((), _accounts),
    "tpm_udev": ((), _udev),
    "tpm_abrmd": (
        ("tpm_quote_mode_profile", "tpm_abrmd_stop_holder_units", "__tpm_abrmd_dropin", "__tpm_abrmd_dbus_policy"),
        _abrmd,
    ),
    "tpm_tcti_env": (("tpm_tcti_env_path", "tpm_tcti_env_services", "__tpm_tcti_env_marker"), _tcti_env),
    "tpm_containers": (("tpm_quote_mode_profile", "tpm_containers_projects"), _containers),
    "tpm_verify": ((), _accounts),
    "tpm_consumers": (("__tpm_consumers_record",), _consumers),
}


def needed(role):
    return ROLE_READS.get(role, ((), None))[0]


def empty():
    return {
        "units": [],
        "paths": [],
        "markers": {},
        "globs": [],
        "kernel": False,
        "kernel_modules": [],
        "holders": [],
        "accounts": False,
    }


def reads(roles, values):
    """tpm_host_state's options for ``roles`` given the values of the variables they need (``values``:
    name -> value, as Ansible resolved them; a name missing from it reads as None)."""
    out = empty()
    for role in roles:
        names, fn = ROLE_READS.get(role, ((), None))
        if fn is None:
            continue
        own = {n: values.get(n) for n in names}
        part = fn(own)
        for key in ("units", "paths", "globs", "kernel_modules", "holders"):
            out[key] += [x for x in part.get(key, []) if x not in out[key]]
        out["markers"].update(part.get("markers", {}))
        out["kernel"] = out["kernel"] or bool(part.get("kernel"))
        out["accounts"] = out["accounts"] or bool(part.get("accounts"))
    return out
