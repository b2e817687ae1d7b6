# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_abrmd's controller knowledge: its options (not those the quote mode decides), the D-Bus policy's names and
the holder units; what it reads (its unit, its files, who holds the exclusive device, the accounts); in abrmd mode
the policy's users and groups must exist, in direct mode nothing but the allowed units may hold the device."""

from __future__ import annotations

import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    ACCOUNT_NAME_RULE,
    SHARED_ACCOUNTS,
    bad_names,
    few,
    list_error,
    shown,
    unit_list_errors,
    valid_units,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles.tpm_access import GROUP_INPUTS, ensured_groups

INPUTS = (
    "tpm_abrmd_options",
    "tpm_abrmd_dbus_allowed_users",
    "tpm_abrmd_dbus_extra_groups",
    "tpm_abrmd_stop_holder_units",
    "tpm_quote_mode_tss_user",
    "tpm_quote_mode_tss_group",
    "tpm_quote_mode_profile",
    "__tpm_abrmd_service",
    *GROUP_INPUTS,
)
READS_FROM = (
    "tpm_quote_mode_profile",
    "tpm_abrmd_stop_holder_units",
    "__tpm_abrmd_service",
    "__tpm_abrmd_dropin",
    "__tpm_abrmd_dbus_policy",
    "__tpm_abrmd_distro_dbus_policy",
)
# What its plan (``changes``) takes besides INPUTS, rests on and may change (the registry's PARTS).
CHANGES_FROM = (
    "__tpm_abrmd_dropin",
    "__tpm_abrmd_dbus_policy",
    "__tpm_abrmd_distro_dbus_policy",
    "__tpm_abrmd_off_statuses",
)
PLANS_FROM = ("units", "holders")
CHANGES = ("units", "holders")
# The statuses of a holder unit that "stopped and disabled" leaves as they are.
_HOLDER_OFF = ("disabled", "masked")
# dpkg's list of diversions: three lines per diversion, the first the diverted path.
_DIVERSIONS = "/var/lib/dpkg/diversions"

# A long option and a value without spaces, quotes, '$', '%', ';' or '\'
# (ExecStart= of a systemd drop-in would expand or split them).
_OPTION_RE = re.compile(r"--([a-z][a-z0-9-]*)(=[A-Za-z0-9_.,:/+@=-]+)?")


# Options the quote mode decides: its TCTI, the system bus and the bus name
# that the consumers' TCTI and the D-Bus policy use.
_FIXED_OPTIONS = {
    "tcti": "the TCTI comes from tpm_quote_mode_abrmd_tcti",
    "session": "consumers and the D-Bus policy use the system bus",
    "dbus-name": "consumers and the D-Bus policy use the bus name com.intel.tss2.Tabrmd",
}


def input_errors(v):
    """tpm_abrmd_*: long options (not those the quote mode decides), D-Bus names, unit names."""
    errors = []
    options = v.get("tpm_abrmd_options")
    error = list_error("tpm_abrmd_options", options, '["--flush-all"]')
    if error:
        errors.append(error)
    else:
        bad, fixed = [], []
        for opt in options:
            match = _OPTION_RE.fullmatch(opt) if isinstance(opt, str) else None
            if not match:
                bad.append(shown(opt))
            elif match.group(1) in _FIXED_OPTIONS:
                fixed.append(f"--{match.group(1)} ({_FIXED_OPTIONS[match.group(1)]})")
        if bad:
            errors.append(
                "tpm_abrmd_options must be long options such as --flush-all or --max-connections=64, values without "
                f"spaces, quotes or $ % ; \\; these are not: {few(bad)}."
            )
        if fixed:
            errors.append(f"tpm_abrmd_options must not set {few(fixed)}: remove it from tpm_abrmd_options.")
    for var, kind, example in (
        ("tpm_abrmd_dbus_allowed_users", "user", "[root]"),
        ("tpm_abrmd_dbus_extra_groups", "group", "[keylime]"),
    ):
        names = v.get(var)
        error = list_error(var, names, example)
        if error:
            errors.append(error)
            continue
        bad = bad_names(names)
        shared = list(dict.fromkeys(n for n in names if n in SHARED_ACCOUNTS))
        if bad:
            errors.append(f"{var} must list {kind} names ({ACCOUNT_NAME_RULE}); these are not: {few(bad)}.")
        elif shared:
            errors.append(
                f"{var} must not list {', '.join(shared)}: every daemon that drops privileges to nobody/nogroup "
                "(and every ID a user namespace does not map) would reach the broker. List the consumer's own "
                f"{kind}."
            )
    errors += unit_list_errors(
        "tpm_abrmd_stop_holder_units", v.get("tpm_abrmd_stop_holder_units"), ("service", "scope"),
        "keylime_agent.service",
    )  # fmt: skip
    return errors


def reads(v):
    profile = v.get("tpm_quote_mode_profile") or {}
    device = profile.get("exclusive_device") if isinstance(profile, dict) else None
    files = [v.get("__tpm_abrmd_dropin"), v.get("__tpm_abrmd_dbus_policy")]
    service = v.get("__tpm_abrmd_service")
    out = {
        "accounts": True,
        "units": [*valid_units([service]), *valid_units(v.get("tpm_abrmd_stop_holder_units"), ("service", "scope"))],
        "holders": [device] if device else [],
        "paths": [f for f in files if isinstance(f, str) and f.startswith("/")],
    }
    distro = v.get("__tpm_abrmd_distro_dbus_policy")
    if isinstance(distro, str) and distro.startswith("/"):
        out["markers"] = {_DIVERSIONS: _diverted(distro)}
    return out


def _diverted(path):
    """The regular expression of dpkg's diversions file line that names ``path`` as diverted (the whole line)."""
    return re.escape(path) + r"(?=\n|\Z)"


def changes(values, host):
    """What tasks/apply.yml would change, from the preflight's read, where tpm2-abrmd must not serve the TPM
    (tasks/stopped.yml): tpm2-abrmd running or enabled, its mask, the holder units to stop (exclusive device),
    tpmfleet's drop-in and D-Bus policy, the distribution's diverted policy. None in abrmd mode (the package, the
    files' contents, the diversion and the unit are not planned here: the role runs), without the host's
    distribution (its policy path comes from vars/<distribution>.yml, loaded with the preflight's variables) or
    when a part was not read."""
    profile = values.get("tpm_quote_mode_profile") or {}
    abrmd = profile.get("abrmd") or {}
    facts = host.facts
    services = facts.get("services")
    paths = (facts.get("tpmfleet_host_state") or {}).get("paths") or {}
    files = [values.get("__tpm_abrmd_dropin"), values.get("__tpm_abrmd_dbus_policy")]
    distro = values.get("__tpm_abrmd_distro_dbus_policy")
    if abrmd.get("running") is not False or not isinstance(services, dict) or "distribution" not in facts:
        return None
    off = values.get("__tpm_abrmd_off_statuses") or []
    service = values.get("__tpm_abrmd_service")
    unit = services.get(service) or {}
    if any(f not in paths for f in files) or (distro and _DIVERSIONS not in paths) or not isinstance(unit, dict):
        return None
    out = []
    if service in services and (unit.get("state") != "stopped" or unit.get("status") not in off):
        out.append(f"stop and disable {service}")
    if (unit.get("status") == "masked") != bool(abrmd.get("masked")):
        out.append(f"{'mask' if abrmd.get('masked') else 'unmask'} {service}")
    if profile.get("exclusive_device") is not None:
        for name in values.get("tpm_abrmd_stop_holder_units") or []:
            held = services.get(name)
            if held is not None and (held.get("state"), held.get("status") in ("disabled", "masked")) != (
                "stopped",
                True,
            ):
                out.append(f"stop and disable {name}")
    out += [f"remove {f}" for f in files if paths[f].get("exists")]
    if distro:
        diversions = paths[_DIVERSIONS]
        if not diversions.get("isreg") or "has_marker" not in diversions:
            return None
        if diversions["has_marker"]:
            out.append(f"put the distribution's {distro} back (remove its dpkg diversion)")
    return out


def account_errors(values, users, groups, host="this host"):
    """The D-Bus policy's users and groups that neither exist on ``host`` (getent passwd/group dicts) nor are made
    by tpm_access (the tss user and group; the docker group when managed). They matter only where tpm2-abrmd runs
    (abrmd mode)."""
    users, groups = set(users or {}), set(groups or {})
    tss_user = values.get("tpm_quote_mode_tss_user")
    errors = []
    missing = [u for u in values.get("tpm_abrmd_dbus_allowed_users") or [] if u not in users and u != tss_user]
    if missing:
        errors.append(
            f"tpm_abrmd_dbus_allowed_users: user(s) {few(missing)} do not exist on {host}; the D-Bus "
            "policy would silently give them nothing. Create them first or remove them from "
            "tpm_abrmd_dbus_allowed_users."
        )
    made = ensured_groups(values)
    missing = [g for g in values.get("tpm_abrmd_dbus_extra_groups") or [] if g not in groups and g not in made]
    if missing:
        errors.append(
            f"tpm_abrmd_dbus_extra_groups: group(s) {few(missing)} do not exist on {host}; the D-Bus "
            "policy would silently give them nothing. Create them first or remove them from "
            "tpm_abrmd_dbus_extra_groups."
        )
    return errors


def holder_errors(profile, holders, allowed):
    """Direct mode: the processes other than the ``allowed`` units that hold the mode's exclusive device.
    ``holders``: device -> [{pid, comm, cmdline, unit}] as tpm_host_state reads them."""
    device = (profile or {}).get("exclusive_device")
    if not device:
        return []
    foreign = [h for h in (holders or {}).get(device) or [] if h.get("unit") not in allowed]
    if not foreign:
        return []
    shown_holders = few(
        f"pid {h.get('pid')} ({h.get('cmdline') or h.get('comm')}, unit {h.get('unit') or 'none'})" for h in foreign
    )
    return [
        f"Quote mode {profile.get('mode')} needs {device} to itself, but it is held by {shown_holders}. Nothing was "
        "changed. Stop that program, or list its unit in tpm_abrmd_stop_holder_units so that the run stops it, or "
        "use quote mode kernel_rm."
    ]


def host_errors(values, host):
    profile = values["tpm_quote_mode_profile"] or {}
    errors = []
    if profile["abrmd"]["running"]:
        users, groups = host.accounts()
        errors += account_errors(values, users, groups, host=host.name)
    device = profile["exclusive_device"]
    if device:
        holders = (host.facts.get("tpmfleet_host_state") or {}).get("holders") or {}
        if device not in holders:
            holders = host.read(holders=[device])["tpmfleet_host_state"]["holders"]
        allowed = [values["__tpm_abrmd_service"], *values["tpm_abrmd_stop_holder_units"]]
        errors += holder_errors(profile, holders, allowed)
    return errors
