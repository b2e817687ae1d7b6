# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs of tpm_containers: every problem with ``tpm_containers_projects`` and the role's settings
that can be found without the host (``compose_input_errors``), one sentence per problem naming the
variable path and the fix, values shown as JSON. The least-privilege rules (capabilities, image
references, isolation options, the base directory) are in ``compose_policy.py``.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import (
    REFUSED_OPTIONS,
    allowed_capabilities_error,
    as_bool,
    base_dir_error,
    capability,
    capability_errors,
    image_reference_error,
    network_mode_error,
    refused_option_error,
    shown,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import clean_dir as _clean_dir
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import normpath as _normpath
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import under as _under

PROJECT_KEYS = ("name", "dir", "services")
SERVICE_KEYS = (
    "name",
    "image",
    "user",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "healthcheck",
    "limits",
    "restart",
    "read_only",
    "tmpfs",
    "data",
    "tpm",
    "tss_group",
    "docker_socket",
    "cap_add",
    "logging",
    "network_mode",
)
DATA_KINDS = ("persistence", "logs", "config")
LIMIT_KEYS = ("memory", "cpus", "pids")
LOGGING_KEYS = ("max_size", "max_file")
RESTART_RE = re.compile(r"(no|always|unless-stopped|on-failure(:[0-9]+)?)")
PROJECT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
SERVICE_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_RE = re.compile(r"([0-9]+):([0-9]+)")
SIZE_RE = re.compile(r"[0-9]+[kmg]?")
MEMORY_RE = re.compile(r"[0-9]+(b|k|m|g)?")
ABS_PATH_RE = re.compile(r"/[^\s:\x00-\x1f\x7f]*")
DOCKER_SOCKET_RE = re.compile(r"docker\.sock")
# Host paths a volume may mount only when tpm_containers_allow_host_paths lists them: the path
# itself, anything under the trees, and any directory that holds one of them (/run holds
# /run/docker.sock). The Docker socket is refused through volumes in any case (docker_socket).
SENSITIVE_HOST_PATHS = ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/run/docker.sock",
                        "/run/docker.sock")  # fmt: skip
SENSITIVE_TREES = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root")


# --- helpers -----------------------------------------------------------------------------


def _plain(value):
    """Plain Python types (Ansible hands filters tagged str/dict/list subclasses)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _kind(value):
    """What a wrong value is, without printing it (it may hold secrets such as environment values)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return shown(value)
    return f"a {type(value).__name__}"


def _is_bool(value):
    return isinstance(value, bool)


def _is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _where(pi, project, si=None, service=None, key=None):
    """The variable path of a project, a service or one of its keys, with the names it has, e.g.
    tpm_containers_projects[0].services[1].cap_add (project attest, service agent)."""
    path = f"tpm_containers_projects[{pi}]" + (f".services[{si}]" if si is not None else "")
    path += f".{key}" if key else ""
    names = []
    name = project.get("name") if isinstance(project, dict) else None
    if isinstance(name, str) and name:
        names.append(f"project {name}")
    sname = service.get("name") if si is not None and isinstance(service, dict) else None
    if isinstance(sname, str) and sname:
        names.append(f"service {sname}")
    return path + (f" ({', '.join(names)})" if names else "")


# --- host paths ------------------------------------------------------------------------


def project_dir(project, base_dir):
    """(the project's normalised directory, or None; why it is refused, or '')."""
    name = project.get("name")
    base = _clean_dir(base_dir) or DEFAULT_SETTINGS["base_dir"]
    value = project.get("dir")
    if value is None:
        return (f"{base}/{name}", "") if isinstance(name, str) and PROJECT_NAME_RE.fullmatch(name) else (None, "")
    clean = _clean_dir(value)
    if clean is None or clean == base or not _under(clean, base):
        got = shown(value) + (f", which is {clean}" if clean not in (None, value) else "")
        example = f"{base}/{name}" if isinstance(name, str) and PROJECT_NAME_RE.fullmatch(name) else f"{base}/NAME"
        return None, (
            f"dir must be a directory below tpm_containers_base_dir ({base}), such as {example}, written without "
            f"'..' (got {got}); or leave dir unset. tpmfleet creates the project's directories and changes no "
            "directory outside the base directory."
        )
    return clean, ""


def volume_source(volume, pdir):
    """The normalised host path a volume mounts, or None (a named or anonymous volume, tmpfs).

    Short syntax ``SOURCE:TARGET[:MODE]`` and long syntax ``{type, source, target}``: a source that
    starts with '/', '.' or '~' is a host path ('.' relative to the project directory, '~' the home of
    root, who runs compose); any other source names a volume."""
    if isinstance(volume, str):
        parts = volume.split(":")
        source = parts[0] if len(parts) > 1 else None
    elif isinstance(volume, dict):
        source = volume.get("source")
        if volume.get("type") == "bind" and isinstance(source, str) and not source.startswith(("/", "~")):
            # Long syntax: compose resolves a relative bind source against the project directory.
            source = "./" + source
    else:
        source = None
    if not isinstance(source, str) or not source.startswith(("/", ".", "~")):
        return None
    if source.startswith("~"):
        source = "/root" + source[1:]
    elif source.startswith("."):
        source = posixpath.join(pdir or "/", source)
    return _normpath(source)


def host_path_problem(path):
    """Why mounting host path ``path`` (normalised) into a container is dangerous ('' when it is not)."""
    if path in SENSITIVE_HOST_PATHS:
        return f"{path} is a sensitive host path"
    for tree in SENSITIVE_TREES:
        if _under(path, tree):
            return f"{path} is in {tree}"
    held = [p for p in SENSITIVE_HOST_PATHS if p != "/" and _under(p, path)]
    if held:
        return f"{path} holds {', '.join(held)}"
    return ""


# --- inputs ------------------------------------------------------------------------------


def _service_errors(at, service, settings, pdir=None):
    """Problems with one service; ``at(key)``: the variable path of the service or of one of its keys."""
    where = at()
    allow_docker_socket = settings["allow_docker_socket"] is True
    allow_host_paths = settings["allow_host_paths"] if isinstance(settings["allow_host_paths"], list) else []
    errors = []
    if not isinstance(service, dict):
        return [f"{where} must be a mapping with at least name, image and user (got {_kind(service)})."]
    unknown = sorted(set(map(str, service)) - set(SERVICE_KEYS))
    for key in [k for k in unknown if k in REFUSED_OPTIONS]:
        errors.append(refused_option_error(at(key), key))
        unknown.remove(key)
    if unknown:
        errors.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(SERVICE_KEYS)}.")
    name = service.get("name")
    if not (isinstance(name, str) and SERVICE_NAME_RE.fullmatch(name)):
        errors.append(f"{where}: name must be a service name of letters, digits, '.', '_' and '-' (got {shown(name)}).")
    error = image_reference_error(at("image"), service.get("image"))
    if error:
        errors.append(error)
    user = service.get("user")
    match = USER_RE.fullmatch(user) if isinstance(user, str) else None
    if not match:
        errors.append(
            f"{where}: user must be the numeric 'UID:GID' the container runs as, e.g. user: \"2000:2000\" "
            f"(names may resolve differently inside the image; got {shown(user)})."
        )
    elif int(match.group(1)) == 0:
        errors.append(
            f"{where}: user {shown(user)} runs the container as root; give it a non-root UID (the TPM is reached "
            "through the tss GID, not through root)."
        )
    for key in ("command", "entrypoint"):
        value = service.get(key)
        if value is not None and not (isinstance(value, str) and value) and not _is_str_list(value):
            errors.append(f"{where}: {key} must be a string or a list of strings (got {shown(value)}).")
    env = service.get("environment", {})
    if not isinstance(env, dict):
        errors.append(f"{where}: environment must be a mapping of NAME: value (got {type(env).__name__}).")
    else:
        bad = [k for k in env if not (isinstance(k, str) and ENV_NAME_RE.fullmatch(k))]
        if bad:
            errors.append(
                f"{where}: environment names must match [A-Za-z_][A-Za-z0-9_]* (bad: {', '.join(map(str, bad))})."
            )
        bad = [k for k, v in env.items() if v is None or isinstance(v, (dict, list))]
        if bad:
            errors.append(f"{where}: environment values must be strings or numbers (bad: {', '.join(map(str, bad))}).")
    for key in ("ports", "volumes", "tmpfs", "cap_add"):
        value = service.get(key)
        if value is not None and not isinstance(value, list):
            errors.append(f"{where}: {key} must be a list (got {shown(value)}).")
    volumes = service.get("volumes") if isinstance(service.get("volumes"), list) else []
    for volume in volumes:
        text = json.dumps(volume) if not isinstance(volume, str) else volume
        if DOCKER_SOCKET_RE.search(text):
            errors.append(
                f"{where}: the Docker socket is not mounted through volumes; set docker_socket: true on the "
                "service (with tpm_containers_allow_docker_socket: true), which also adds the docker GID."
            )
            continue
        source = volume_source(volume, pdir)
        problem = host_path_problem(source) if source else ""
        if problem and source not in allow_host_paths:
            errors.append(
                f"{where}: volume {shown(volume)} mounts the host's {source}: {problem}, and a container that "
                "mounts it can read or change the host itself. Mount a directory of the service's own instead "
                "(data: persistence, logs, config), or, if the service really needs it, list the path in "
                f"tpm_containers_allow_host_paths (e.g. [{source}])."
            )
    tmpfs = service.get("tmpfs")
    if isinstance(tmpfs, list) and not all(isinstance(t, str) and t.startswith("/") for t in tmpfs):
        errors.append(
            f"{where}: tmpfs must list absolute paths in the container, e.g. [/tmp, /run] (got {shown(tmpfs)})."
        )
    caps = service.get("cap_add")
    if isinstance(caps, list):
        allowed = settings["allow_capabilities"] if isinstance(settings["allow_capabilities"], list) else []
        errors.extend(capability_errors(at("cap_add"), caps, {capability(c) for c in allowed}))
    for key in ("read_only", "tpm", "tss_group", "docker_socket"):
        if key in service and not _is_bool(service[key]):
            errors.append(f"{where}: {key} must be true or false (got {shown(service[key])}).")
    if service.get("docker_socket") is True and not allow_docker_socket:
        errors.append(
            f"{where}: docker_socket: true gives the container full control of the Docker engine (root on the "
            "host). Opt in with tpm_containers_allow_docker_socket: true, or better give the service a socket "
            "proxy that allows only the API calls it needs."
        )
    healthcheck = service.get("healthcheck")
    if healthcheck is not None and not isinstance(healthcheck, dict):
        errors.append(f"{where}: healthcheck must be a mapping (test, interval, timeout, retries, start_period).")
    restart = service.get("restart")
    if restart is not None and not (isinstance(restart, str) and RESTART_RE.fullmatch(restart)):
        errors.append(f"{where}: restart must be no, always, unless-stopped or on-failure[:N] (got {shown(restart)}).")
    if service.get("network_mode") is not None:
        allow_host_network = as_bool(settings["allow_host_network"]) is True
        error = network_mode_error(at("network_mode"), service["network_mode"], allow_host_network)
        if error:
            errors.append(error)
    errors.extend(_limits_errors(f"{where}: limits", service.get("limits")))
    errors.extend(_logging_errors(f"{where}: logging", service.get("logging")))
    data = service.get("data")
    if data is not None:
        if not isinstance(data, dict):
            errors.append(
                f"{where}: data must map {', '.join(DATA_KINDS)} to paths in the container (got {shown(data)})."
            )
        else:
            unknown = sorted(set(map(str, data)) - set(DATA_KINDS))
            if unknown:
                errors.append(f"{where}: data kinds must be {', '.join(DATA_KINDS)} (got {', '.join(unknown)}).")
            bad = [v for v in data.values() if not (isinstance(v, str) and ABS_PATH_RE.fullmatch(v) and v != "/")]
            if bad:
                errors.append(
                    f"{where}: data paths must be absolute paths in the container, e.g. /var/lib/agent "
                    f"(bad: {shown(bad)})."
                )
    return errors


def _limits_errors(where, limits):
    if limits is None:
        return []
    if not isinstance(limits, dict):
        return [f"{where} must be a mapping of memory, cpus and pids (got {shown(limits)})."]
    errors = []
    unknown = sorted(set(map(str, limits)) - set(LIMIT_KEYS))
    if unknown:
        errors.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(LIMIT_KEYS)}.")
    memory, cpus, pids = limits.get("memory"), limits.get("cpus"), limits.get("pids")
    if memory is not None and not MEMORY_RE.fullmatch(str(memory).lower()):
        errors.append(f"{where}.memory must be a size such as 256m or 1g (got {shown(memory)}).")
    if cpus is not None and (_is_bool(cpus) or not isinstance(cpus, (int, float, str)) or not _positive_float(cpus)):
        errors.append(f"{where}.cpus must be a positive number such as 0.5 (got {shown(cpus)}).")
    if pids is not None and (_is_bool(pids) or not str(pids).isdigit() or int(str(pids)) < 1):
        errors.append(f"{where}.pids must be a whole number of processes, 1 or more (got {shown(pids)}).")
    return errors


def _positive_float(value):
    try:
        return float(value) > 0
    except ValueError:
        return False


def _logging_errors(where, logging):
    if logging is None:
        return []
    if not isinstance(logging, dict):
        return [f"{where} must be a mapping of max_size and max_file (got {shown(logging)})."]
    errors = []
    unknown = sorted(set(map(str, logging)) - set(LOGGING_KEYS))
    if unknown:
        errors.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(LOGGING_KEYS)}.")
    size, count = logging.get("max_size"), logging.get("max_file")
    if size is not None and not SIZE_RE.fullmatch(str(size).lower()):
        errors.append(f"{where}.max_size must be a size such as 10m (got {shown(size)}).")
    if count is not None and (_is_bool(count) or not str(count).isdigit() or int(str(count)) < 1):
        errors.append(f"{where}.max_file must be a whole number of files, 1 or more (got {shown(count)}).")
    return errors


DEFAULT_SETTINGS = {
    "base_dir": "/srv/tpmfleet",
    "docker_socket": "/var/run/docker.sock",
    "docker_group": "docker",
    "tss_group": "tss",
    "tss_gid": None,
    "docker_gid": None,
    "restart": "unless-stopped",
    "limits": {"memory": "256m", "cpus": 1.0, "pids": 256},
    "logging": {"max_size": "10m", "max_file": 3},
    "tmpfs": ["/tmp", "/run"],  # noqa: S108 -- paths inside the container, tmpfs mounts
    "data_modes": {"persistence": "0700", "logs": "0700", "config": "0700"},
    "allow_docker_socket": False,
    "allow_host_paths": [],
    "allow_capabilities": [],
    "allow_host_network": False,
    "manage": "auto",
}
MODE_RE = re.compile(r"0?[0-7]{3}")


def _settings(settings):
    return {**DEFAULT_SETTINGS, **_plain(settings or {})}


def _settings_errors(settings):
    errors = []
    if not isinstance(settings["allow_docker_socket"], bool):
        errors.append(
            f"tpm_containers_allow_docker_socket must be true or false (got {shown(settings['allow_docker_socket'])})."
        )
    errors.extend(_limits_errors("tpm_containers_limits", settings["limits"]))
    errors.extend(_logging_errors("tpm_containers_logging", settings["logging"]))
    error = base_dir_error(settings["base_dir"])
    if error:
        errors.append(error)
    error = allowed_capabilities_error(settings["allow_capabilities"])
    if error:
        errors.append(error)
    if as_bool(settings["allow_host_network"]) is None:
        errors.append(
            f"tpm_containers_allow_host_network must be true or false (got {shown(settings['allow_host_network'])})."
        )
    allowed = settings["allow_host_paths"]
    if not (isinstance(allowed, list) and all(_clean_dir(p) == p for p in allowed)):
        errors.append(
            "tpm_containers_allow_host_paths must list normalised absolute host paths that services may mount, "
            f"e.g. [/etc/keylime] (got {shown(allowed)})."
        )
    restart = settings["restart"]
    if not (isinstance(restart, str) and RESTART_RE.fullmatch(restart)):
        errors.append(
            f"tpm_containers_restart must be no, always, unless-stopped or on-failure[:N] (got {shown(restart)})."
        )
    tmpfs = settings["tmpfs"]
    if not (isinstance(tmpfs, list) and all(isinstance(t, str) and t.startswith("/") for t in tmpfs)):
        errors.append(
            f"tpm_containers_tmpfs must list absolute paths in the container, e.g. [/tmp, /run] (got {shown(tmpfs)})."
        )
    modes = settings["data_modes"]
    if not (isinstance(modes, dict) and set(modes) == set(DATA_KINDS)):
        errors.append(
            f"tpm_containers_data_modes must give a mode for each of {', '.join(DATA_KINDS)} (got {shown(modes)})."
        )
    else:
        bad = {k: v for k, v in modes.items() if not (isinstance(v, str) and MODE_RE.fullmatch(v)) or int(v, 8) & 0o007}
        if bad:
            errors.append(
                'tpm_containers_data_modes must be quoted octal modes that give other users nothing, e.g. "0700" '
                f"(bad: {shown(bad)})."
            )
    socket = settings["docker_socket"]
    if not (isinstance(socket, str) and ABS_PATH_RE.fullmatch(socket)):
        errors.append(f"tpm_containers_docker_socket must be an absolute path (got {shown(socket)}).")
    group = settings["docker_group"]
    if not (isinstance(group, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", group)):
        errors.append(f"tpm_containers_docker_group must be a group name such as docker (got {shown(group)}).")
    if str(settings["manage"]).lower() not in ("auto", "true", "false", "yes", "no"):
        errors.append(f"tpm_containers_docker must be auto, true or false (got {shown(settings['manage'])}).")
    return errors


def compose_input_errors(projects, settings=None):
    """Every problem with the projects and settings that can be found without the host, as sentences."""
    projects = _plain(projects)
    settings = _settings(settings)
    errors = _settings_errors(settings)
    base_dir = settings["base_dir"]
    if not isinstance(projects, list):
        return [
            *errors,
            f"tpm_containers_projects must be a list of projects {{name, services}} (got {_kind(projects)}).",
        ]
    seen_projects = {}
    seen_dirs = {}
    for pi, project in enumerate(projects):
        where = _where(pi, project)
        if not isinstance(project, dict):
            errors.append(f"{where} must be a mapping with name and services (got {_kind(project)}).")
            continue
        unknown = sorted(set(project) - set(PROJECT_KEYS))
        if unknown:
            errors.append(f"{where}: unknown keys {', '.join(unknown)}; allowed: {', '.join(PROJECT_KEYS)}.")
        name = project.get("name")
        if not (isinstance(name, str) and PROJECT_NAME_RE.fullmatch(name)):
            errors.append(
                f"{where}: name must be a compose project name (lower-case letters, digits, '_', '-'; "
                f"got {shown(name)})."
            )
        elif name in seen_projects:
            errors.append(
                f"{where}: project name {shown(name)} is used twice "
                f"(also by tpm_containers_projects[{seen_projects[name]}])."
            )
        else:
            seen_projects[name] = pi
        pdir, error = project_dir(project, base_dir)
        if error:
            errors.append(f"{where}: {error}")
        elif pdir is not None:
            # Two spellings of one directory, or one project inside another's directory.
            for other, oi in seen_dirs.items():
                if other == pdir:
                    errors.append(
                        f"{where}: directory {pdir} is also the directory of tpm_containers_projects[{oi}] "
                        "(after normalisation); give each project a directory of its own."
                    )
                elif _under(pdir, other) or _under(other, pdir):
                    inner, outer = (pdir, other) if _under(pdir, other) else (other, pdir)
                    errors.append(
                        f"{where}: directory {pdir} and the directory of tpm_containers_projects[{oi}] ({other}) "
                        f"nest ({inner} is inside {outer}); give each project a directory of its own."
                    )
            seen_dirs.setdefault(pdir, pi)
        services = project.get("services")
        if not (isinstance(services, list) and services):
            errors.append(f"{where}: services must be a non-empty list of services (got {_kind(services)}).")
            continue
        seen = {}
        for si, service in enumerate(services):
            swhere = _where(pi, project, si, service)
            errors.extend(_service_errors(functools.partial(_where, pi, project, si, service), service, settings, pdir))
            sname = service.get("name") if isinstance(service, dict) else None
            if isinstance(sname, str) and sname:
                if sname in seen:
                    errors.append(
                        f"{swhere}: service name {shown(sname)} is used twice in project {shown(name)} "
                        f"(also by services[{seen[sname]}]); compose would keep only one of them."
                    )
                else:
                    seen[sname] = si
    return errors
