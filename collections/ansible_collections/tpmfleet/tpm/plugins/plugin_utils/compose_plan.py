# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of tpm_containers: per project the compose document (and its YAML text), the env files,
the data directories and the services' identities (``compose_plan``), checked against the host's
groups and Docker and against the vendored compose-spec JSON schema (``compose_schema_errors``).
"""

from __future__ import annotations

import functools
import json
import os
import re

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_inputs import (
    DATA_KINDS,
    USER_RE,
    _plain,
    _settings,
    compose_input_errors,
    project_dir,
)
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_policy import canonical_capabilities, shown
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import QUOTE_MODES

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(HERE, "compose_spec", "compose-spec.json")
COMPOSE_FILE = "compose.yaml"
# Written by tpm_containers into a project directory it created: the directories below it are the
# project's own (their owners and modes are kept as planned). A directory without it is left as it is.
PROJECT_MARKER = ".tpmfleet-project"
COMPOSE_MIN_VERSION = (2, 18, 0)  # what community.docker.docker_compose_v2 needs


# --- the compose file --------------------------------------------------------------------


def _escape_dollars(value):
    """Compose interpolates ``$VAR`` in the file; tpmfleet writes values literally ($ -> $$)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value


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
    uid, gid = (int(n) for n in USER_RE.fullmatch(service["user"]).groups())
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
