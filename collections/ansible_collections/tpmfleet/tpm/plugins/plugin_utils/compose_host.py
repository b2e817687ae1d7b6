# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tpm_containers may do on the host: which planned directories it creates or keeps as planned
(``compose_dirs``), and whether each TPM service's identity can open what the quote mode gives it
(``compose_access``).
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_inputs import DATA_KINDS, _plain
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.compose_plan import PROJECT_MARKER, _group_gids

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
