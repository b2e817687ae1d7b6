# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_tcti_env's controller knowledge: the environment file's path (in a directory of TPM configuration only),
those directories and the consumers' services; what it reads (the services, tpm2.target, the file, its directory,
the drop-in directories and files); the services must exist and the file's path must be tpmfleet's to write; what
its apply would change (the files as its templates render them, the consumers to reload or restart)."""

from __future__ import annotations

import json
import os
import posixpath
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import template_file
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    few,
    is_list,
    normalised,
    path_problem,
    shown,
    too_long,
    truthy,
    unit_list_errors,
    valid_units,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import TCTI_VARIABLES
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.template_file import stat_kind

INPUTS = (
    "tpm_tcti_env_path",
    "tpm_tcti_env_dirs",
    "tpm_tcti_env_services",
    "tpm_tcti_env_require_services",
    "tpm_tcti_env_restart_services",
    "tpm_quote_mode_profile",
    "__tpm_tcti_env_marker",
)
READS_FROM = ("tpm_tcti_env_path", "tpm_tcti_env_services", "__tpm_tcti_env_marker")
_TPM2_TARGET = "tpm2.target"
# The consumers' plan (consumer_plan), published for tasks/apply.yml and the handlers.
PLAN_FACT = "tpmfleet_tcti_env_consumers"
# What its plan (``changes``) rests on and may change (the registry's PARTS): the units (which consumers exist
# and run with which TCTI, tpm2.target); it writes the consumers' drop-ins and restarts them, and a restarted
# consumer may hold the TPM.
PLANS_FROM = ("units",)
CHANGES = ("units", "holders")
_DROPIN = "10-tpmfleet-tcti.conf"
_ENV_TEMPLATE = "tcti.env.j2"
_DROPIN_TEMPLATE = "dropin.conf.j2"

# A path systemd's EnvironmentFile= takes as it is (no quoting, no specifiers).
_PATH_RE = re.compile(r"(/[A-Za-z0-9_.@+-]+)+")


_PATH_CHARS = "characters other than letters, digits and / . _ @ + -"


_DIR_RULE = (
    "directories that hold only TPM configuration, such as /etc/tpm2: never /etc itself, a whole system tree, "
    "/tmp, or a place other programs read (apt, sudoers, cron, profile.d, modprobe.d, systemd's unit directories, "
    "pam.d, security, ld.so.*, sysctl.d, udev, environment, default, logrotate.d, rsyslog.d, the network's "
    "configuration, init.d, dbus-1 ...)"
)


def _allowed_dirs(v):
    """``(the directories tpm_tcti_env_path may be in, normalised; the messages for a bad list)``."""
    dirs = v.get("tpm_tcti_env_dirs")
    if not is_list(dirs) or not dirs:
        return [], [f"tpm_tcti_env_dirs must be a YAML list of {_DIR_RULE} (got {shown(dirs)})."]
    error = too_long("tpm_tcti_env_dirs", dirs)
    if error:
        return [], [error]
    allowed, bad = [], []
    for d in dirs:
        norm, problem = path_problem(d)
        if not problem and not _PATH_RE.fullmatch(norm):
            problem = _PATH_CHARS
        if problem:
            bad.append(f"{shown(d)} ({problem})")
        else:
            allowed.append(norm)
    if bad:
        return allowed, [f"tpm_tcti_env_dirs must list {_DIR_RULE}; fix: {few(bad)}."]
    return allowed, []


def _in_dirs(path, dirs):
    return any(path.startswith(d.rstrip("/") + "/") for d in dirs)


def input_errors(v):
    """tpm_tcti_env_*: the environment file's path (in a directory of TPM configuration only), those
    directories, and the consumers' service names."""
    allowed, errors = _allowed_dirs(v)
    path = v.get("tpm_tcti_env_path")
    norm, problem = path_problem(path)
    if not problem and (path.endswith("/") or not _PATH_RE.fullmatch(norm)):
        problem = "not a file name" if path.endswith("/") else _PATH_CHARS
    if not problem and allowed and not _in_dirs(norm, allowed):
        problem = f"{posixpath.dirname(norm)} is not one of tpm_tcti_env_dirs {shown(allowed)}"
    if problem:
        errors.append(
            "tpm_tcti_env_path must be a file in a directory that holds only TPM configuration, such as "
            f"/etc/tpm2/tcti.env (got {shown(path)}: {problem}). Put it in /etc/tpm2, or list a directory of "
            "its own in tpm_tcti_env_dirs. Nothing was changed."
        )
    errors += unit_list_errors(
        "tpm_tcti_env_services", v.get("tpm_tcti_env_services"), ("service",), "keylime_agent.service"
    )
    return errors


def reads(v):
    services = valid_units(v.get("tpm_tcti_env_services"))
    # tpm2.target: whether the drop-ins can order the consumers after it.
    reads = {
        "units": [*services, _TPM2_TARGET] if services else [],
        "paths": [p for s in services for p in (_dropin_dir(s), dropin_path(s))],
        # Whether each consumer waits for a daemon-reload and the TCTI its running process started with.
        "consumers": services,
        "consumer_environ": list(TCTI_VARIABLES) if services else [],
    }
    env_file, problem = normalised(v.get("tpm_tcti_env_path"))
    if not problem:
        reads["paths"] = [env_file, os.path.dirname(env_file), *reads["paths"]]
        reads["markers"] = {env_file: str(v.get("__tpm_tcti_env_marker"))}
    return reads


def _dropin_dir(service):
    return f"/etc/systemd/system/{service}.d"


def dropin_path(service):
    """The drop-in that makes ``service`` load the environment file (tasks/apply.yml writes it)."""
    return f"{_dropin_dir(service)}/{_DROPIN}"


def file_errors(v, services, env_file, file_stat, dir_stat, host="this host"):
    """tpm_tcti_env against the host: the consumers' services exist (unless tpm_tcti_env_require_services is
    false), and the environment file's path is tpmfleet's to write (``file_stat``/``dir_stat``: what
    tpm_host_state read at the file and its directory; ``has_marker``: a line starts with tpmfleet's marker)."""
    errors = []
    wanted = v.get("tpm_tcti_env_services")
    if isinstance(wanted, (list, tuple)) and truthy(v.get("tpm_tcti_env_require_services")):
        unknown = list(dict.fromkeys(str(s) for s in wanted if s not in (services or {})))
        if unknown:
            errors.append(
                f"tpm_tcti_env_services names services that do not exist on {host}: {few(unknown)}; install "
                "them first, fix the names, or set tpm_tcti_env_require_services=false."
            )
    directory = posixpath.dirname(env_file)
    own = "Set tpm_tcti_env_path to a file of its own such as /etc/tpm2/tcti.env"
    if file_stat.get("exists") and not file_stat.get("isreg"):
        errors.append(
            f"tpm_tcti_env_path {env_file} exists on {host} and is {stat_kind(file_stat)}; tpmfleet does not "
            f"replace it. {own}. Nothing was changed."
        )
    elif file_stat.get("exists") and not file_stat.get("has_marker"):
        errors.append(
            f"tpm_tcti_env_path {env_file} is an existing file on {host} that tpmfleet did not write (it has no line "
            f'starting "{str(v.get("__tpm_tcti_env_marker", "")).strip()}"); tpmfleet never replaces it. {own} '
            "(or move that file away if it is an old copy of the environment file). Nothing was changed."
        )
    if dir_stat.get("exists") and not dir_stat.get("isdir"):
        errors.append(
            f"The directory of tpm_tcti_env_path, {directory}, is {stat_kind(dir_stat, directory=True)} on {host}; "
            "tpmfleet writes the environment file only into a real directory. Set tpm_tcti_env_path to a file in "
            "one, such as /etc/tpm2/tcti.env. Nothing was changed."
        )
    return errors


def host_errors(values, host):
    """The services and the file's path against the host, as the preflight read them; what it did not read
    (the role used alone, or with other values) is read now, in one call."""
    wanted = reads(values)
    read_before = host.facts.get("tpmfleet_host_state") or {}
    known = read_before.get("paths") or {}
    options = {}
    if values["tpm_tcti_env_services"] and "services" not in host.facts:
        options["units"] = wanted["units"]
    if wanted["consumers"] and "consumers" not in read_before:
        options.update(consumers=wanted["consumers"], consumer_environ=wanted["consumer_environ"])
    missing = [p for p in wanted["paths"] if p not in known]
    if missing:
        options.update(paths=missing, markers={p: m for p, m in wanted["markers"].items() if p in missing})
    state = host.read(**options) if options else {}
    services = state.get("services") if "units" in options else host.facts.get("services")
    paths = {**known, **(state.get("tpmfleet_host_state") or {}).get("paths", {})}
    read_now = state.get("tpmfleet_host_state") or {}
    consumers = {**(read_before.get("consumers") or {}), **(read_now.get("consumers") or {})}
    env_file = normalised(values["tpm_tcti_env_path"])[0]
    directory = posixpath.dirname(env_file)
    errors = file_errors(values, services, env_file, paths[env_file], paths[directory], host=host.name)
    if not errors:
        host.publish(PLAN_FACT, consumer_plan(values, services or {}, consumers))
    return errors


# --- what the apply would change, from the preflight's read -------------------------------------------


def changes(values, host):
    """What tasks/apply.yml would change, from the preflight's read: the environment file and each consumer's
    drop-in (their directories, their contents as the templates render them, root:root 0644) and the consumers to
    reload or restart (consumer_plan). None when a part was not read or a file cannot be compared."""
    facts = host.facts
    state = facts.get("tpmfleet_host_state") or {}
    paths = state.get("paths") or {}
    env_file, problem = normalised(values.get("tpm_tcti_env_path"))
    if problem or not (values.get("tpm_quote_mode_profile") or {}).get("tcti_variables"):
        return None
    services = valid_units(values.get("tpm_tcti_env_services"))
    directory = posixpath.dirname(env_file)
    needed = [env_file, directory, *(p for s in services for p in (_dropin_dir(s), dropin_path(s)))]
    units, consumers = facts.get("services"), state.get("consumers")
    if any(not isinstance(paths.get(p), dict) for p in needed):
        return None
    if services and not (isinstance(units, dict) and isinstance(consumers, dict)):
        return None
    out = [] if paths[directory].get("exists") else [f"create {directory}"]
    files = [(env_file, _ENV_TEMPLATE, None)] + [(dropin_path(s), _DROPIN_TEMPLATE, {"item": s}) for s in services]
    for service in services:
        if not paths[_dropin_dir(service)].get("exists"):
            out.append(f"create {_dropin_dir(service)}")
    for path, template, variables in files:
        found = template_file.changes(host, "tpm_tcti_env", path, paths[path], template, variables)
        if found is None:
            return None
        out += found
    plan = consumer_plan(values, units or {}, consumers or {})
    out += [f"reload systemd for {json.dumps(u)}: {plan['why'][u]}" for u in plan["reload"]]
    out += [f"restart {json.dumps(u)}: {plan['why'][u]}" for u in plan["restart"] if u not in plan["reload"]]
    return out


# --- the consumers: decided from what the host shows, never from what this run changed ---------------


def _shown_value(value):
    return "unset" if value is None else json.dumps(value)


def consumer_plan(values, services, consumers):
    """Which consumer services must be reloaded or restarted, from what the host shows now, so that a run killed
    between writing the environment file or a drop-in and the handlers is finished by the next one (which finds
    the files already right). ``services``: the units' states (ansible_facts.services); ``consumers``:
    tpm_host_state's consumers (NeedDaemonReload, and the TCTI variables of the running main process).

    ``reload``: the consumers systemd holds with older unit files or drop-ins (NeedDaemonReload=yes).
    ``restart``: the running consumers whose main process started with another value of a TCTI variable than the
    quote mode's (what the environment file sets), or whose environment could not be read (nothing says it is
    right), when tpm_tcti_env_restart_services is true. ``why``: unit -> what was seen, for the task's message.

    The process's environment, not the files' mtimes against its start time: it is what the consumer uses, a
    clock step (common at a VM's boot) or a file rewritten with the same content does not change it, and it is
    compared with the mode's values, so check mode tells the same before the file is written."""
    wanted_vars = ((values.get("tpm_quote_mode_profile") or {}).get("tcti_variables")) or {}
    restart_on = truthy(values.get("tpm_tcti_env_restart_services"))
    plan = {"reload": [], "restart": [], "why": {}}
    for unit in valid_units(values.get("tpm_tcti_env_services")):
        seen = consumers.get(unit)
        if seen is None:
            continue
        reasons = []
        if seen.get("need_daemon_reload"):
            plan["reload"].append(unit)
            reasons.append("systemd has not loaded its changed drop-ins (NeedDaemonReload=yes)")
        running = (services.get(unit) or {}).get("state") == "running" and int(seen.get("main_pid") or 0) > 0
        if running and restart_on and wanted_vars:
            environ = seen.get("environ")
            stale = [
                f"{name}={_shown_value(environ.get(name))} (the quote mode's: {json.dumps(value)})"
                for name, value in sorted(wanted_vars.items())
                if environ is not None and environ.get(name) != value
            ]
            if environ is None:
                reasons.append(f"the TCTI it runs with could not be read ({seen.get('error', 'unknown error')})")
            elif stale:
                reasons.append("it runs with " + ", ".join(stale))
            if environ is None or stale:
                plan["restart"].append(unit)
        if reasons:
            plan["why"][unit] = "; ".join(reasons)
    return plan
