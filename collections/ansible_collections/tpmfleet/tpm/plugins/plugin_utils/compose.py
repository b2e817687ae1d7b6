# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose projects for TPM-using containers, from the host's quote mode.

What a container gets from the quote mode (the device, or the D-Bus socket
and the tabrmd TCTI) comes from ``tpm_quote_mode_profile.container`` and the
TCTI variables from ``tpm_quote_mode_profile.tcti_variables``, both made by the
``tpmfleet.tpm.quote_mode`` filter: nothing here maps modes to settings. The GIDs
added to a container (``group_add``) are the host's numbers, read on the host,
never group names that may resolve differently inside the image.

Functions (the filters of the same names in ``plugins/filter/compose.py``):

- ``compose_input_errors(projects, ...)``: every problem with the
  ``tpm_containers_*`` inputs that can be found without the host.
- ``compose_plan(projects, profile, groups, docker, settings)``: per
  project the compose document (and its YAML text), the env files, the data
  directories and the services' identities, plus the errors found against the
  host (missing groups, Docker without compose v2) and the compose schema.
- ``compose_access(plan, nodes, groups, ...)``: whether each service's
  UID, GID and group_add can open what the mode gives it; names a missing GID.
- ``compose_schema_errors(document)``: the document checked against the
  vendored compose-spec JSON schema (``compose_spec/``).
- ``env_file(mapping)``: an env file (compose's dotenv syntax) whose
  values are read literally.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import (
    REFUSED_OPTIONS,
    allowed_capabilities_error,
    as_bool,
    base_dir_error,
    canonical_capabilities,
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
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import QUOTE_MODES

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(HERE, "compose_spec", "compose-spec.json")
COMPOSE_FILE = "compose.yaml"

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
RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)\Z")
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
SERVICE_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
USER_RE = re.compile(r"^([0-9]+):([0-9]+)\Z")
SIZE_RE = re.compile(r"^[0-9]+[kmg]?\Z")
MEMORY_RE = re.compile(r"^[0-9]+(b|k|m|g)?\Z")
ABS_PATH_RE = re.compile(r"^/[^\s:\x00-\x1f\x7f]*\Z")
DOCKER_SOCKET_RE = re.compile(r"docker\.sock")
# Host paths a volume may mount only when tpm_containers_allow_host_paths lists them: the path
# itself, anything under the trees, and any directory that holds one of them (/run holds
# /run/docker.sock). The Docker socket is refused through volumes in any case (docker_socket).
SENSITIVE_HOST_PATHS = ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/run/docker.sock",
                        "/run/docker.sock")  # fmt: skip
SENSITIVE_TREES = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root")
# Written by tpm_containers into a project directory it created: the directories below it are the
# project's own (their owners and modes are kept as planned). A directory without it is left as it is.
PROJECT_MARKER = ".tpmfleet-project"
COMPOSE_MIN_VERSION = (2, 18, 0)  # what community.docker.docker_compose_v2 needs


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


def _escape_dollars(value):
    """Compose interpolates ``$VAR`` in the file; tpmfleet writes values literally ($ -> $$)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value


def _kind(value):
    """What a wrong value is, without printing it (it may hold secrets such as environment values)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return shown(value)
    return f"a {type(value).__name__}"


def _is_bool(value):
    return isinstance(value, bool)


def _is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


@functools.lru_cache(maxsize=1)
def _schema():
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key (as compose files are usually written)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def compose_yaml(document):
    """The YAML text of a compose document, keys in the order tpmfleet builds them."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000, indent=2)


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
        return (f"{base}/{name}", "") if isinstance(name, str) and PROJECT_NAME_RE.match(name) else (None, "")
    clean = _clean_dir(value)
    if clean is None or clean == base or not _under(clean, base):
        got = shown(value) + (f", which is {clean}" if clean not in (None, value) else "")
        example = f"{base}/{name}" if isinstance(name, str) and PROJECT_NAME_RE.match(name) else f"{base}/NAME"
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
    if not (isinstance(name, str) and SERVICE_NAME_RE.match(name)):
        errors.append(f"{where}: name must be a service name of letters, digits, '.', '_' and '-' (got {shown(name)}).")
    error = image_reference_error(at("image"), service.get("image"))
    if error:
        errors.append(error)
    user = service.get("user")
    match = USER_RE.match(user) if isinstance(user, str) else None
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
        bad = [k for k in env if not (isinstance(k, str) and ENV_NAME_RE.match(k))]
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
    if restart is not None and not (isinstance(restart, str) and RESTART_RE.match(restart)):
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
            bad = [v for v in data.values() if not (isinstance(v, str) and ABS_PATH_RE.match(v) and v != "/")]
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
    if memory is not None and not MEMORY_RE.match(str(memory).lower()):
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
    if size is not None and not SIZE_RE.match(str(size).lower()):
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
MODE_RE = re.compile(r"^0?[0-7]{3}\Z")


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
    if not (isinstance(restart, str) and RESTART_RE.match(restart)):
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
        bad = {k: v for k, v in modes.items() if not (isinstance(v, str) and MODE_RE.match(v)) or int(v, 8) & 0o007}
        if bad:
            errors.append(
                'tpm_containers_data_modes must be quoted octal modes that give other users nothing, e.g. "0700" '
                f"(bad: {shown(bad)})."
            )
    socket = settings["docker_socket"]
    if not (isinstance(socket, str) and ABS_PATH_RE.match(socket)):
        errors.append(f"tpm_containers_docker_socket must be an absolute path (got {shown(socket)}).")
    group = settings["docker_group"]
    if not (isinstance(group, str) and re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z", group)):
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
        if not (isinstance(name, str) and PROJECT_NAME_RE.match(name)):
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


# --- env files ---------------------------------------------------------------------------


def _env_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def env_file(mapping, header=""):
    """An env file in compose's dotenv syntax; values are double-quoted and read literally.

    Inside double quotes compose expands backslash escapes and ``$`` variables, so
    ``\\``, ``"``, ``$`` and line breaks are escaped.
    """
    lines = [f"# {line}" if line else "#" for line in str(header).splitlines()]
    for name, value in _plain(mapping).items():
        text = _env_value(value)
        text = (
            text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n").replace("\r", "\\r")
        )
        lines.append(f'{name}="{text}"')
    return "\n".join(lines) + "\n"


# --- the plan ----------------------------------------------------------------------------


def _group_gids(groups):
    """name -> GID from ansible.builtin.getent's getent_group ({name: [password, gid, members]})."""
    out = {}
    for name, entry in (_plain(groups) or {}).items():
        try:
            out[name] = int(entry[1])
        except (TypeError, ValueError, IndexError):
            continue
    return out


def _version_tuple(text):
    numbers = re.findall(r"[0-9]+", str(text or ""))[:3]
    return tuple(int(n) for n in numbers) if numbers else ()


def compose_schema_errors(document):
    """The document checked against the vendored compose-spec JSON schema; [] when valid."""
    import jsonschema  # a controller-side dependency of the role (requirements.txt)

    validator = jsonschema.Draft7Validator(_schema())
    errors = []
    for error in sorted(validator.iter_errors(_plain(document)), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        errors.append(f"{path}: {error.message}")
    return errors


def _check_profile(profile):
    """The quote mode profile must come from the tpmfleet.tpm.quote_mode filter, for a known mode."""
    profile = _plain(profile)
    modes = list(QUOTE_MODES)
    mode = profile.get("mode") if isinstance(profile, dict) else None
    if mode not in modes:
        raise AnsibleFilterError(
            f"tpm_quote_mode must be one of {', '.join(modes)}; got {shown(mode)}. "
            "Set it per host (host_vars, or -e tpm_quote_mode=kernel_rm)."
        )
    container = profile.get("container")
    if not isinstance(container, dict) or not {"devices", "dbus_socket", "tcti"} <= set(container):
        raise AnsibleFilterError(
            "tpm_quote_mode_profile has no container settings: publish it with the tpm_quote_mode role "
            "(the tpmfleet.tpm.quote_mode filter) before tpm_containers."
        )
    return profile


def _service_document(service, ctx):
    """One service of the compose document, least privilege unless the service says otherwise."""
    profile, settings = ctx["profile"], ctx["settings"]
    container = profile["container"]
    uid, gid = (int(n) for n in USER_RE.match(service["user"]).groups())
    tpm = service.get("tpm", True)
    group_add = []
    if tpm and service.get("tss_group", True) and ctx["tss_gid"] is not None:
        group_add.append(ctx["tss_gid"])
    if service.get("docker_socket") and ctx["docker_gid"] is not None:
        group_add.append(ctx["docker_gid"])
    group_add = [g for g in dict.fromkeys(group_add) if g != gid]

    doc = {"image": service["image"]}
    for key in ("command", "entrypoint"):
        if service.get(key) is not None:
            doc[key] = service[key]
    doc["user"] = f"{uid}:{gid}"
    if group_add:
        doc["group_add"] = group_add
    if tpm and container["devices"]:
        doc["devices"] = [f"{d}:{d}:rw" for d in container["devices"]]
    if tpm:
        doc["environment"] = dict(profile["tcti_variables"])
    env_path = None
    if service.get("environment"):
        env_path = f"{ctx['dir']}/{service['name']}.env"
        doc["env_file"] = [env_path]
    volumes = []
    if tpm and container["dbus_socket"]:
        sock = container["dbus_socket"]
        volumes.append({"type": "bind", "source": sock, "target": sock, "read_only": True})
    if service.get("docker_socket"):
        sock = settings["docker_socket"]
        volumes.append({"type": "bind", "source": sock, "target": "/var/run/docker.sock", "read_only": True})
    dirs = []
    for kind in DATA_KINDS:
        target = (service.get("data") or {}).get(kind)
        if not target:
            continue
        source = f"{ctx['dir']}/data/{service['name']}/{kind}"
        dirs.append({"path": source, "owner": uid, "group": gid, "mode": settings["data_modes"][kind], "kind": kind})
        volumes.append({"type": "bind", "source": source, "target": target, "read_only": kind == "config"})
    volumes.extend(service.get("volumes") or [])
    if volumes:
        doc["volumes"] = volumes
    read_only = service.get("read_only", True)
    doc["read_only"] = read_only
    tmpfs = service.get("tmpfs", settings["tmpfs"]) if read_only else service.get("tmpfs")
    if tmpfs:
        doc["tmpfs"] = list(tmpfs)
    doc["privileged"] = False
    doc["cap_drop"] = ["ALL"]
    if service.get("cap_add"):
        doc["cap_add"] = canonical_capabilities(service["cap_add"])
    doc["security_opt"] = ["no-new-privileges:true"]
    if service.get("network_mode"):
        doc["network_mode"] = service["network_mode"]
    if service.get("ports"):
        doc["ports"] = list(service["ports"])
    if service.get("healthcheck"):
        doc["healthcheck"] = service["healthcheck"]
    doc["restart"] = service.get("restart", settings["restart"])
    limits = {**settings["limits"], **(service.get("limits") or {})}
    if limits.get("memory") is not None:
        doc["mem_limit"] = str(limits["memory"])
    if limits.get("cpus") is not None:
        doc["cpus"] = float(limits["cpus"])
    if limits.get("pids") is not None:
        doc["pids_limit"] = int(limits["pids"])
    logging = {**settings["logging"], **(service.get("logging") or {})}
    doc["logging"] = {
        "driver": "json-file",
        "options": {"max-size": str(logging["max_size"]), "max-file": str(logging["max_file"])},
    }
    doc["labels"] = {"org.tpmfleet.quote-mode": profile["mode"], "org.tpmfleet.tpm": str(bool(tpm)).lower()}

    identity = {
        "name": service["name"],
        "uid": uid,
        "gid": gid,
        "group_add": group_add,
        "tpm": bool(tpm),
        "tss_group": bool(service.get("tss_group", True)),
        "docker_socket": bool(service.get("docker_socket")),
        "devices": list(container["devices"]) if tpm else [],
        "dbus_socket": container["dbus_socket"] if tpm else None,
    }
    env = None
    if env_path:
        header = (
            f"Managed by tpmfleet (tpm_containers): environment of service {service['name']} of project "
            f"{ctx['project']}.\nValues may be secrets: mode 0600, root only. Read literally (no interpolation)."
        )
        env = {
            "project": ctx["project"],
            "path": env_path,
            "service": service["name"],
            "content": env_file(service["environment"], header),
        }
    return doc, identity, dirs, env


def _notes(project, identities):
    notes = []
    for service in project["services"]:
        name = service["name"]
        if service.get("docker_socket"):
            notes.append(
                f"Service {name} has the Docker socket (tpm_containers_allow_docker_socket): it controls the "
                "engine, which is root on this host; read-only does not limit the API. Prefer a socket proxy "
                "that allows only the calls it needs, and give the service the proxy's address instead."
            )
        if service.get("read_only") is False:
            notes.append(f"Service {name} has a writable root filesystem (read_only: false).")
        if service.get("cap_add"):
            notes.append(f"Service {name} adds capabilities: {', '.join(canonical_capabilities(service['cap_add']))}.")
    for identity in identities:
        if identity["tpm"] and not identity["tss_group"]:
            notes.append(f"Service {identity['name']} is not given the tss GID (tss_group: false).")
    return notes


def compose_plan(projects, profile, groups=None, docker=None, settings=None, strict=True):
    """What tpm_containers writes for each project, and what is wrong with it on this host.

    ``groups``: the host's getent_group; ``docker``: {present, compose, version} from
    the host; ``settings``: the role's defaults (base_dir, docker_socket, docker_group,
    tss_group, tss_gid, docker_gid, restart, limits, logging, tmpfs, data_modes,
    allow_docker_socket, manage). ``strict``: False in the preflight, where the tss and
    docker groups may still be created by tpm_access.
    """
    projects = _plain(projects)
    settings = _settings(settings)
    docker = _plain(docker or {})
    profile = _check_profile(profile)
    errors = compose_input_errors(projects, settings)
    if errors:
        return {"errors": errors, "projects": [], "env_files": [], "docker": docker}

    gids = _group_gids(groups)
    tss_gid = settings["tss_gid"] if settings["tss_gid"] not in (None, "") else gids.get(settings["tss_group"])
    docker_gid = (
        settings["docker_gid"] if settings["docker_gid"] not in (None, "") else gids.get(settings["docker_group"])
    )
    tss_gid = int(tss_gid) if tss_gid is not None else None
    docker_gid = int(docker_gid) if docker_gid is not None else None

    wants_tss = any(s.get("tpm", True) and s.get("tss_group", True) for p in projects for s in p["services"])
    wants_docker = any(s.get("docker_socket") for p in projects for s in p["services"])
    if strict and wants_tss and tss_gid is None:
        errors.append(
            f"tpm_containers: group {settings['tss_group']} (tpm_quote_mode_tss_group) does not exist on this host, "
            "so its GID cannot be given to the containers; run tpm_access first (it creates the group)."
        )
    if strict and wants_docker and docker_gid is None:
        errors.append(
            f"tpm_containers: a service asks for the Docker socket but group {settings['docker_group']} "
            "(tpm_containers_docker_group) does not exist on this host; install the Docker engine first."
        )
    manage = str(settings["manage"]).lower()
    if manage in ("true", "yes") and not docker.get("present"):
        errors.append(
            "tpm_containers_docker is true but Docker is not installed on this host; install it, or set "
            "tpm_containers_docker: auto (render and check the files only)."
        )
    uses_docker = manage in ("true", "yes") or (manage == "auto" and docker.get("present"))
    if uses_docker and docker.get("present"):
        version = _version_tuple(docker.get("version"))
        if not docker.get("compose") or version < COMPOSE_MIN_VERSION:
            found = f"version {docker.get('version')}" if docker.get("compose") else "none"
            errors.append(
                "tpm_containers: Docker is on this host but the compose v2 CLI plugin (docker compose, 2.18 or "
                f"later) is not (found: {found}); community.docker.docker_compose_v2 needs it. Install it (Debian: "
                "docker-compose 2.x, or docker-compose-plugin), or set tpm_containers_docker: false to only "
                "write the files."
            )

    planned, env_files = [], []
    for project in projects:
        pdir, _error = project_dir(project, settings["base_dir"])
        ctx = {
            "profile": profile,
            "settings": settings,
            "dir": pdir,
            "project": project["name"],
            "tss_gid": tss_gid,
            "docker_gid": docker_gid,
        }
        services, identities, dirs = {}, [], []
        for service in project["services"]:
            doc, identity, sdirs, env = _service_document(service, ctx)
            services[service["name"]] = doc
            identities.append(identity)
            dirs.extend(sdirs)
            if env:
                env_files.append(env)
        document = _escape_dollars({"name": project["name"], "services": services})
        for error in compose_schema_errors(document):
            errors.append(f"tpm_containers: project {project['name']}: the compose file would not be valid: {error}")
        parents = [{"path": pdir, "owner": 0, "group": 0, "mode": "0750", "kind": "project"}]
        if dirs:
            parents.append({"path": f"{pdir}/data", "owner": 0, "group": 0, "mode": "0750", "kind": "parent"})
            for sname in dict.fromkeys(d["path"].rsplit("/", 1)[0] for d in dirs):
                parents.append({"path": sname, "owner": 0, "group": 0, "mode": "0750", "kind": "parent"})
        planned.append(
            {
                "name": project["name"],
                "dir": pdir,
                "compose_path": f"{pdir}/{COMPOSE_FILE}",
                "document": document,
                "compose_yaml": compose_yaml(document),
                "notes": _notes(project, identities),
                "services": identities,
                "dirs": parents + dirs,
                "marker": f"{pdir}/{PROJECT_MARKER}",
                # What main.yml reads on the host before any directory is made (compose_dirs).
                "stat_paths": [d["path"] for d in parents + dirs] + [f"{pdir}/{PROJECT_MARKER}"],
                "env_files": [e["path"] for e in env_files if e["project"] == project["name"]],
            }
        )
    return {
        "errors": errors,
        "projects": planned,
        # The services' environment (values may be secrets): only for tasks with no_log.
        "env_files": env_files,
        "docker": {**docker, "use": bool(uses_docker and docker.get("present"))},
        "tss_gid": tss_gid,
        "docker_gid": docker_gid,
    }


# --- directories -------------------------------------------------------------------------


def _what(stat):
    return "a symbolic link" if stat.get("islnk") else "a file" if stat.get("isreg") else "not a directory"


def compose_dirs(plan, stats):
    """Which planned directories tpm_containers may create or keep as planned, from what is on the host.

    ``stats``: the stat module's results (``{item: path, stat: {...}}``, links not followed) for
    every path in each project's ``stat_paths``. A missing directory is created with the planned
    owner and mode. An existing one keeps its owner and mode unless tpmfleet created the project's
    directory (the marker file is in it): tpmfleet never changes a directory it did not create.
    Something other than a directory at a planned path (a file, a symbolic link) is an error.

    Returns ``{errors, manage: [planned dirs to create or keep as planned], markers: [{path, exists}],
    notes}``.
    """
    plan = _plain(plan)
    found = {}
    for result in _plain(stats) or []:
        if isinstance(result, dict) and "item" in result:
            found[result["item"]] = result.get("stat") or {}
    errors, manage, markers, notes = [], [], [], []
    for project in plan.get("projects", []):
        pdir, name = project["dir"], project["name"]
        top = found.get(pdir, {})
        marker = found.get(project["marker"], {})
        owned = not top.get("exists") or (marker.get("exists") and marker.get("isreg"))
        if top.get("exists") and marker.get("exists") and not marker.get("isreg"):
            errors.append(
                f"tpm_containers: project {name}: {project['marker']} is {_what(marker)}; tpmfleet writes that "
                "marker file itself. Remove it."
            )
        for planned in project["dirs"]:
            stat = found.get(planned["path"], {})
            if not stat.get("exists"):
                manage.append(planned)
            elif stat.get("islnk") or not stat.get("isdir"):
                errors.append(
                    f"tpm_containers: project {name}: {planned['path']} exists on this host and is {_what(stat)}; "
                    "tpmfleet makes the project's directories itself and never writes through a link or replaces "
                    "a file: remove it, or give the project another dir. Nothing was changed by tpm_containers."
                )
            elif owned:
                manage.append(planned)
            elif planned["kind"] in DATA_KINDS and (
                (stat.get("uid"), stat.get("gid")) != (planned["owner"], planned["group"])
                or int(str(stat.get("mode", "0")), 8) != int(planned["mode"], 8)
            ):
                notes.append(
                    f"project {name}: {planned['path']} was not created by tpmfleet (no {PROJECT_MARKER} in {pdir}) "
                    f"and is left as it is (owner {stat.get('uid')}:{stat.get('gid')}, mode {stat.get('mode')}); "
                    f"the service runs as {planned['owner']}:{planned['group']} and tpmfleet would make it mode "
                    f"{planned['mode']}: chown/chmod it yourself, or remove it so that tpmfleet creates it."
                )
        if owned:
            markers.append({"path": project["marker"], "dir": pdir, "exists": bool(top.get("exists"))})
    return {"errors": errors, "manage": manage, "markers": markers, "notes": notes}


# --- access ------------------------------------------------------------------------------


def _mode_bits(mode):
    if isinstance(mode, int):
        return mode
    return int(str(mode), 8)


def _node_from_profile(path, profile, users, gids):
    expected = profile.get("nodes", {}).get(path)
    if not expected:
        return None
    return {
        "uid": users.get(expected["owner"]),
        "gid": gids.get(expected["group"]),
        "owner": expected["owner"],
        "group": expected["group"],
        "mode": expected["mode"],
    }


def compose_access(plan, nodes, groups=None, profile=None, users=None, check_mode=False):
    """Problems with each TPM service's identity against what the quote mode gives it.

    ``nodes``: path -> {uid, gid, mode, owner, group} of the live device nodes (the
    stat module's fields). In check mode the nodes may not have been changed yet by
    tpm_udev: where a node's group differs from the profile's, the profile's is used.
    Returns a list of sentences; each names the service, the node and the missing GID.
    """
    plan, nodes = _plain(plan), _plain(nodes or {})
    gids = _group_gids(groups)
    names = {gid: name for name, gid in sorted(gids.items(), reverse=True)}
    accounts_read = users is not None  # if not, the D-Bus account check is skipped
    users = {name: int(entry[1]) for name, entry in (_plain(users) or {}).items() if len(entry) > 1}
    known_uids = set(users.values())
    profile = _plain(profile or {})
    problems = []
    for project in plan.get("projects", []):
        for service in project["services"]:
            if not service["tpm"]:
                continue
            uid, gid, extra = service["uid"], service["gid"], set(service["group_add"])
            who = (
                f"service {service['name']} of project {project['name']} (uid {uid}, gid {gid}, "
                f"group_add {sorted(extra) or 'none'})"
            )
            for path in service["devices"]:
                node = nodes.get(path)
                if check_mode and profile:
                    wanted = _node_from_profile(path, profile, users, gids)
                    if wanted and (node is None or node.get("group") != wanted["group"]):
                        node = wanted
                if node is None or node.get("gid") is None:
                    problems.append(f"{who}: {path} does not exist on this host; the container cannot open it.")
                    continue
                bits = _mode_bits(node["mode"])
                node_desc = (
                    f"{path} (owner {node.get('owner', node['uid'])} uid {node['uid']}, group "
                    f"{node.get('group', node['gid'])} GID {node['gid']}, mode {bits:04o})"
                )
                if (uid == node["uid"] and bits & 0o600 == 0o600) or bits & 0o006 == 0o006:
                    continue
                if (gid == node["gid"] or node["gid"] in extra) and bits & 0o060 == 0o060:
                    continue
                if bits & 0o060 == 0o060:
                    gname = names.get(node["gid"], node.get("group", "?"))
                    fix = (
                        "set tss_group: true (the default) so tpmfleet adds it"
                        if gname == profile.get("nodes", {}).get(path, {}).get("group", "tss")
                        else "give the node to the tss group (tpm_udev) or run the service in that group"
                    )
                    problems.append(
                        f"{who} cannot open {node_desc}: GID {node['gid']} (group {gname}) is missing from its "
                        f"group_add; {fix}."
                    )
                else:
                    problems.append(f"{who} cannot open {node_desc}: the node gives its group no read/write access.")
            if service["dbus_socket"]:
                # dbus-daemon looks a connecting UID up in the host's user database and
                # closes the connection of a UID it does not know, whatever the policy says.
                if accounts_read and uid != 0 and uid not in known_uids:
                    problems.append(
                        f"{who} cannot use tpm2-abrmd over {service['dbus_socket']}: the system D-Bus closes "
                        f"connections from UID {uid}, which has no account on the host; create one (a system "
                        f"account without login, e.g. useradd --system --no-create-home --uid {uid} "
                        "--shell /usr/sbin/nologin NAME) or run the service as a UID the host knows."
                    )
                tss_gid = gids.get(profile.get("nodes", {}).get("/dev/tpmrm0", {}).get("group", "tss"), gids.get("tss"))
                if tss_gid is not None and tss_gid != gid and tss_gid not in extra:
                    problems.append(
                        f"{who} cannot use tpm2-abrmd over {service['dbus_socket']}: its D-Bus policy admits root "
                        f"and group {names.get(tss_gid, 'tss')} only, and GID {tss_gid} is missing from its "
                        "group_add; set tss_group: true (the default)."
                    )
    return problems
