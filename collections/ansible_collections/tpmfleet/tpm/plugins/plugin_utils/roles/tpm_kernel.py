# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_kernel's controller knowledge: the driver names and the udev wait; what it reads (the running kernel's
drivers, the TPM nodes, the modules-load.d files); the drivers against the running kernel."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    LIST_MAX,
    TPM_NODE_GLOBS,
    bad_names,
    few,
    int_range_error,
    list_error,
    messages,
    truthy,
)

INPUTS = ("tpm_kernel_drivers", "tpm_kernel_device_timeout", "tpm_kernel_persistent")
READS_FROM = ("tpm_kernel_drivers", "tpm_kernel_persistent")
# What its plan (``changes``) takes besides INPUTS, rests on and may change (the registry's PARTS); with nothing to
# change it runs tasks/published.yml: its facts from the preflight's read, no remote task.
CHANGES_FROM = ("tpm_kernel_require_device",)
PLANS_FROM = ("kernel", "nodes")
CHANGES = ("kernel", "nodes")
UNCHANGED = "published"
_TPM_CHAR_RE = re.compile(r"/dev/tpm[0-9]+")

_MODULE_RE = re.compile(r"[a-z0-9_-]{1,55}")
_MODULES_LOAD_DIR = "/etc/modules-load.d"


def input_errors(v):
    """tpm_kernel_*: module names, the udev wait."""
    drivers = v.get("tpm_kernel_drivers")
    errors = []
    error = list_error("tpm_kernel_drivers", drivers, "[tpm_tis, tpm_crb]")
    if error:
        errors.append(error)
    elif not drivers:
        errors.append(
            "tpm_kernel_drivers must name at least one kernel driver such as [tpm_tis, tpm_crb] "
            "(the one that matches the TPM: tpm_tis for TIS/FIFO TPMs, tpm_crb for firmware TPMs)."
        )
    else:
        bad = bad_names(drivers, lambda d: isinstance(d, str) and _MODULE_RE.fullmatch(d) is not None)
        if bad:
            errors.append(
                "tpm_kernel_drivers items must be kernel module names (lower-case letters, digits, '_' and '-') "
                f"such as tpm_tis; these are not: {few(bad)}."
            )
    return errors + messages(
        int_range_error("tpm_kernel_device_timeout", v.get("tpm_kernel_device_timeout"), 0, 600, "a number of seconds"),
    )


def reads(v):
    """The drivers (is each built in, loadable or loaded) and nodes; with tpm_kernel_persistent, each driver's
    modules-load.d file and whether a line of it names the driver (as community.general.modprobe looks for it)."""
    drivers = v.get("tpm_kernel_drivers")
    drivers = [d for d in (drivers if isinstance(drivers, list | tuple) else [])[:LIST_MAX]
               if isinstance(d, str) and _MODULE_RE.fullmatch(d)]  # fmt: skip
    reads = {"kernel": True, "kernel_modules": drivers, "globs": list(TPM_NODE_GLOBS)}
    if truthy(v.get("tpm_kernel_persistent")):
        reads["markers"] = {f"{_MODULES_LOAD_DIR}/{d}.conf": rf" *{d} *(?:[#;].*)?$" for d in drivers}
        reads["paths"] = list(reads["markers"])
    return reads


def driver_errors(values, kernel, host="this host"):
    """tpm_kernel_drivers against the running kernel (``kernel``: what tpm_host_state read, with ``modules_read``,
    ``builtin``, ``loadable``, ``loaded``, ``tpm_drivers``). Built-in drivers count as present. Nothing is
    refused when the kernel's module lists could not be read (modprobe then has the last word)."""
    kernel = kernel or {}
    drivers = values.get("tpm_kernel_drivers")
    if not kernel.get("modules_read") or not isinstance(drivers, (list, tuple)):
        return []
    builtin = set(kernel.get("builtin") or [])
    present = builtin | set(kernel.get("loadable") or []) | set(kernel.get("loaded") or [])
    missing = [d for d in drivers if isinstance(d, str) and d.replace("-", "_") not in present]
    if not missing:
        return []
    tpm = [f"{d} (built-in)" if d in builtin else d for d in kernel.get("tpm_drivers") or []]
    has = f"its TPM drivers are {few(tpm, 12)}" if tpm else "it has no TPM driver at all (no CONFIG_TCG_TPM)"
    return [
        f"tpm_kernel_drivers names {few(missing)}, which the running kernel of {host} "
        f"({kernel.get('release', 'unknown release')}) has neither built in nor as a loadable module; {has}. "
        "Set tpm_kernel_drivers to the ones that match the TPM (tpm_tis for TIS/FIFO TPMs, tpm_crb for CRB and "
        "firmware TPMs). Nothing was changed."
    ]


def host_errors(values, host):
    """The drivers against the running kernel's modules, as the preflight read them; without it (or for other
    drivers) read now, with the device nodes and modules-load.d files tasks/apply.yml plans from."""
    wanted = reads(values)
    known = host.facts.get("tpmfleet_host_state") or {}
    kernel = known.get("kernel")
    if (
        not kernel
        or not set(wanted["kernel_modules"]) <= set(kernel.get("asked") or [])
        or any(g not in (known.get("globs") or {}) for g in wanted["globs"])
        or any(p not in (known.get("paths") or {}) for p in wanted.get("paths", []))
    ):
        options = {
            k: wanted.get(k, [] if k != "markers" else {})
            for k in ("kernel", "kernel_modules", "globs", "paths", "markers")
        }
        kernel = host.read(checksum=False, **options)["tpmfleet_host_state"]["kernel"]
    return driver_errors(values, kernel, host=host.name)


def changes(values, host):
    """What tasks/apply.yml would change, from the preflight's read: each loadable driver not loaded (or, with
    tpm_kernel_persistent, not named by its modules-load.d file), and a missing TPM character device when one is
    required (the role then fails with its message). None when the read lacks a part."""
    state = host.facts.get("tpmfleet_host_state") or {}
    kernel, globs, paths = state.get("kernel"), state.get("globs"), state.get("paths") or {}
    wanted = reads(values)
    if not isinstance(kernel, dict) or "loaded" not in kernel or not isinstance(globs, dict):
        return None
    if any(g not in globs for g in wanted["globs"]) or any(p not in paths for p in wanted.get("paths", [])):
        return None
    out = []
    persistent = truthy(values.get("tpm_kernel_persistent"))
    builtin, loaded = kernel.get("builtin") or [], kernel.get("loaded") or []
    for driver in values.get("tpm_kernel_drivers") or []:
        if driver in builtin:
            continue
        if driver.replace("-", "_") not in loaded:
            out.append(f"load the driver {driver}")
        elif persistent and not paths[f"{_MODULES_LOAD_DIR}/{driver}.conf"].get("has_marker"):
            out.append(f"name {driver} in {_MODULES_LOAD_DIR}/{driver}.conf")
    nodes = [f.get("path") for g in wanted["globs"] for f in globs[g] or []]
    if truthy(values.get("tpm_kernel_require_device")) and not any(
        isinstance(n, str) and _TPM_CHAR_RE.fullmatch(n) for n in nodes
    ):
        out.append("find a TPM character device (there is none)")
    return out
