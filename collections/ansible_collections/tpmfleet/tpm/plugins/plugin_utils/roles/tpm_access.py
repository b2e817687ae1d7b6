# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_access's controller knowledge: its settings (IDs, names, paths, the consumers), and what it changes on a
host, planned on the controller from the host's users and groups.

Its plan, ``plan(groups, users, values, host)``, takes the host's ``getent group`` and
``getent passwd`` (the ``ansible.builtin.getent`` facts: name -> fields) and
the role's inputs (variable name -> value, already checked by
``input_errors``) and returns

- ``errors``: why the inputs conflict with the host (a GID or UID held by
  another group or user, an ID change without its opt-in, consumers that do
  not exist, a docker group nobody creates), each naming the variable and the fix;
- ``groups``: per managed group (the tss group; the docker group when its GID
  is pinned or it is managed) ``{name, gid, old_gid, create, change}``;
- ``user``: the tss user ``{name, create, uid, old_uid, shell, home, todo}``;
- ``consumers``: per existing consumer ``{name, add}``, the groups it lacks;
- ``existing_groups``: the host's group names.

The role's tasks run only for what the plan says differs: settings_check publishes it as the fact
``tpmfleet_access_plan``.
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    ACCOUNT_NAME_RULE,
    ID_MAX,
    ID_MIN,
    RESERVED_ACCOUNTS,
    account_error,
    account_name_ok,
    as_int,
    few,
    is_list,
    is_null,
    path_problem,
    shown,
    too_long,
    truthy,
)

INPUTS = (
    "tpm_quote_mode_tss_user",
    "tpm_quote_mode_tss_group",
    "tpm_access_tss_gid",
    "tpm_access_tss_uid",
    "tpm_access_tss_home",
    "tpm_access_docker_group",
    "tpm_access_docker_gid",
    "tpm_access_docker_group_manage",
    "tpm_access_consumer_users",
    "tpm_access_allow_gid_change",
    "tpm_access_allow_uid_change",
    "tpm_access_regroup_paths",
    "tpm_access_regroup_max_report",
)
# The settings of this role that other roles' checks must agree with (the groups it makes).
GROUP_INPUTS = ("tpm_access_docker_group", "tpm_access_docker_gid", "tpm_access_docker_group_manage")
# The fact its plan is published as (tasks/apply.yml reads it through vars/main.yml).
PLAN_FACT = "tpmfleet_access_plan"


def input_errors(v):
    """tpm_access_*: IDs, names, paths, the consumer items; tss and docker apart."""
    errors = []
    for var in ("tpm_access_tss_gid", "tpm_access_tss_uid", "tpm_access_docker_gid"):
        value = v.get(var)
        number = as_int(value)
        if not is_null(value) and (number is None or not ID_MIN <= number <= ID_MAX):
            errors.append(
                f"{var} must be null (keep what the host has) or a number from {ID_MIN} to {ID_MAX} "
                f"(got {shown(value)})."
            )
    tss_gid, docker_gid = as_int(v.get("tpm_access_tss_gid")), as_int(v.get("tpm_access_docker_gid"))
    if tss_gid is not None and tss_gid == docker_gid:
        errors.append(
            f"tpm_access_tss_gid and tpm_access_docker_gid are both {tss_gid}: give the two groups different GIDs."
        )
    docker_group = v.get("tpm_access_docker_group")
    error = account_error("tpm_access_docker_group", docker_group, "group", "docker", reserved=True)
    if error:
        errors.append(error)
    elif docker_group == v.get("tpm_quote_mode_tss_group"):
        errors.append(
            "tpm_access_docker_group must differ from the tss group tpm_quote_mode_tss_group "
            f"(both are {docker_group}): members of the docker group control the container engine, "
            "members of the tss group only the TPM."
        )
    home = v.get("tpm_access_tss_home")
    _norm, problem = path_problem(home)
    if not problem and ":" in home:
        problem = "':' (it goes into /etc/passwd)"
    if problem:
        errors.append(
            "tpm_access_tss_home must be an absolute path such as /var/lib/tpm, without ':', '..' or control "
            f"characters, that is neither a whole system tree nor in a place other programs read (got {shown(home)}: "
            f"{problem})."
        )
    errors += _consumer_errors(v.get("tpm_access_consumer_users"))
    paths = v.get("tpm_access_regroup_paths")
    if not is_list(paths):
        errors.append(
            "tpm_access_regroup_paths must be a YAML list of absolute paths such as [/var/lib/tpm] "
            f"(got {shown(paths)})."
        )
    elif too_long("tpm_access_regroup_paths", paths):
        errors.append(too_long("tpm_access_regroup_paths", paths))
    else:
        bad = [f"{shown(p)} ({why})" for p in paths for why in [path_problem(p, write=False)[1]] if why]
        if bad:
            errors.append(
                "tpm_access_regroup_paths must be absolute paths of the directories that hold the tss group's files, "
                "such as /var/lib/tpm or /var/lib/keylime: not a whole system tree (/, /etc, /usr, /var/lib ...), "
                "nothing under /proc, /sys or /dev (udev owns the device nodes) or in a place other programs read, "
                f"no '..' or control characters; fix: {few(bad)}."
            )
    max_report = v.get("tpm_access_regroup_max_report")
    number = as_int(max_report)
    if number is None or number < 0:
        errors.append(f"tpm_access_regroup_max_report must be a number of paths, 0 or more (got {shown(max_report)}).")
    return errors


def _consumer_ok(item):
    if isinstance(item, str):
        return account_name_ok(item)
    if isinstance(item, dict):
        return (
            set(item) <= {"name", "docker"}
            and account_name_ok(item.get("name"))
            and isinstance(item.get("docker", False), bool)
        )
    return False


def _consumer_name(item):
    """The user name of a consumer item (a name, or {name, docker})."""
    return item.get("name") if isinstance(item, dict) else item


def _consumer_errors(consumers):
    if not is_list(consumers):
        return [
            "tpm_access_consumer_users must be a YAML list of user names or {name: <user>, docker: true|false} "
            f"items (got {shown(consumers)})."
        ]
    error = too_long("tpm_access_consumer_users", consumers)
    if error:
        return [error]
    bad = [shown(c) for c in consumers if not _consumer_ok(c)]
    if bad:
        return [
            "tpm_access_consumer_users items must be user names or {name: <user>, docker: true|false} "
            f"({ACCOUNT_NAME_RULE}); these are not: {few(bad)}."
        ]
    shared = list(dict.fromkeys(n for n in map(_consumer_name, consumers) if n in RESERVED_ACCOUNTS))
    if shared:
        return [f"tpm_access_consumer_users must not list {', '.join(shared)}: {_CONSUMER_WHY} {_CONSUMER_FIX}"]
    return []


# Why a consumer account may not be root or shared, and what to do instead (also the plan's message).
_CONSUMER_WHY = (
    "root needs no group to open the TPM and its group list is not tpm_access's to change, and nobody/nogroup "
    "(UID or GID 65534, the kernel's overflow ID) is shared by every daemon that drops privileges to it and by "
    "every ID a user namespace does not map, so adding it to the tss group would give all of them the TPM."
)


_CONSUMER_FIX = (
    "Run each consumer as a dedicated user (useradd --system keylime) and list that user; give a container the "
    "tss GID with group_add (see the tpm_access README)."
)


def ensured_groups(values):
    """The groups tpm_access creates when missing: the tss group, the docker group when it is managed (what other
    roles' checks count as present)."""
    groups = {values.get("tpm_quote_mode_tss_group")}
    if not is_null(values.get("tpm_access_docker_gid")) or truthy(values.get("tpm_access_docker_group_manage")):
        groups.add(values.get("tpm_access_docker_group"))
    return groups


def reads(_v):
    return {"accounts": True}


def host_errors(values, host):
    """The settings against the host's users and groups; the plan is published for tasks/apply.yml."""
    users, groups = host.accounts()
    planned = plan(groups, users, values, host=host.name)
    host.publish(PLAN_FACT, planned)
    return planned["errors"]


# --- the plan ----------------------------------------------------------------------


# The kernel's overflow UID and GID (/proc/sys/kernel/overflowuid, overflowgid): nobody and nogroup, and what
# every ID a user namespace does not map appears as.
OVERFLOW_ID = 65534


NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")


DEFAULT_SHELL = "/usr/sbin/nologin"


def _int_or_none(value):
    if value is None or value == "":
        return None
    return int(value)


def _parse_groups(getent_group):
    """name -> {gid, members} and gid -> the first group with it, from ``getent group`` facts."""
    groups, gid_owner = {}, {}
    for name, fields in (getent_group or {}).items():
        gid = int(fields[1])
        members = [m for m in (fields[2] if len(fields) > 2 and fields[2] else "").split(",") if m]
        groups[name] = {"gid": gid, "members": members}
        gid_owner.setdefault(gid, name)
    return groups, gid_owner


def _parse_users(getent_passwd):
    """name -> {uid, gid, home, shell} and uid -> the first user with it, from ``getent passwd`` facts."""
    users, uid_owner = {}, {}
    for name, fields in (getent_passwd or {}).items():
        uid = int(fields[1])
        users[name] = {"uid": uid, "gid": int(fields[2]), "home": fields[4], "shell": fields[5]}
        uid_owner.setdefault(uid, name)
    return users, uid_owner


def _shared_account(user, name):
    """Why a consumer account is root or shared (UID 0; UID or primary GID the overflow ID), or None."""
    if user["uid"] == 0:
        return f"{name} has UID 0 (root)"
    if user["uid"] == OVERFLOW_ID:
        return f"{name} has UID {OVERFLOW_ID} (the overflow ID)"
    if user["gid"] == OVERFLOW_ID:
        return f"{name} has primary GID {OVERFLOW_ID} (the overflow ID)"
    return None


def plan(getent_group, getent_passwd, values, host):
    groups, gid_owner = _parse_groups(getent_group)
    users, uid_owner = _parse_users(getent_passwd)
    tss_user = values["tpm_quote_mode_tss_user"]
    tss_group = values["tpm_quote_mode_tss_group"]
    docker_group = values["tpm_access_docker_group"]
    errors = []

    # The groups this role manages.
    wanted = [{"name": tss_group, "gid": values.get("tpm_access_tss_gid"), "var": "tpm_access_tss_gid"}]
    if _int_or_none(values.get("tpm_access_docker_gid")) is not None or truthy(
        values.get("tpm_access_docker_group_manage")
    ):
        docker_gid = values.get("tpm_access_docker_gid")
        wanted.append({"name": docker_group, "gid": docker_gid, "var": "tpm_access_docker_gid"})
    plan_groups = []
    for w in wanted:
        gid = _int_or_none(w["gid"])
        current = groups[w["name"]]["gid"] if w["name"] in groups else None
        holder = gid_owner.get(gid) if gid is not None else None
        if holder is not None and holder != w["name"]:
            errors.append(
                f"{w['var']}: GID {gid} is already used by group {holder} on {host}. Pick a GID that is free on every "
                f"host of the fleet (check with: getent group {gid}), or give group {holder} another GID first."
            )
        elif (
            current is not None
            and gid is not None
            and current != gid
            and not truthy(values.get("tpm_access_allow_gid_change"))
        ):
            errors.append(
                f"{w['var']}: group {w['name']} has GID {current} on {host}, not {gid}. To change it, set "
                f"tpm_access_allow_gid_change: true (files with GID {current} under tpm_access_regroup_paths are then "
                f"re-owned; running processes keep the old GID until restarted); to keep it, set {w['var']} to "
                f"{current} or null."
            )
        plan_groups.append(
            {
                "name": w["name"],
                "gid": gid,
                "old_gid": current,
                "create": current is None,
                "change": current is not None and gid is not None and current != gid,
            }
        )

    # The tss user.
    tss = users.get(tss_user)
    uid = _int_or_none(values.get("tpm_access_tss_uid"))
    holder = uid_owner.get(uid) if uid is not None else None
    if holder is not None and holder != tss_user:
        errors.append(
            f"tpm_access_tss_uid: UID {uid} is already used by user {holder} on {host}. Pick a UID that is free on "
            f"every host of the fleet (check with: getent passwd {uid}), or give user {holder} another UID first."
        )
    elif tss and uid is not None and tss["uid"] != uid and not truthy(values.get("tpm_access_allow_uid_change")):
        errors.append(
            f"tpm_access_tss_uid: user {tss_user} has UID {tss['uid']} on {host}, not {uid}. To change it, stop the "
            f"processes that run as {tss_user} (tpm2-abrmd) and set tpm_access_allow_uid_change: true (usermod "
            f"re-owns the files in its home only); to keep it, set tpm_access_tss_uid to {tss['uid']} or null."
        )
    if tss and tss["uid"] == 0:
        errors.append(
            f"tpm_quote_mode_tss_user: user {tss_user} has UID 0 on {host}: tpm_access would take its login shell. "
            "Set tpm_quote_mode_tss_user to the TPM software stack's own system user (tss)."
        )
    if tss_group in groups and groups[tss_group]["gid"] == 0:
        errors.append(
            f"tpm_quote_mode_tss_group: group {tss_group} has GID 0 on {host}: its members would get root's files. "
            "Set tpm_quote_mode_tss_group to the TPM software stack's own group (tss)."
        )
    tss_group_gid = groups[tss_group]["gid"] if tss_group in groups else None
    plan_user = {
        "name": tss_user,
        "create": not tss,
        "uid": uid,
        "old_uid": tss["uid"] if tss else None,
        "shell": tss["shell"] if tss and tss["shell"] in NOLOGIN_SHELLS else DEFAULT_SHELL,
        "home": tss["home"] if tss else values.get("tpm_access_tss_home"),
        "todo": (
            not tss
            or (uid is not None and tss["uid"] != uid)
            or tss["shell"] not in NOLOGIN_SHELLS
            or tss["gid"] != tss_group_gid
        ),
    }

    # The consumers.
    missing, need_docker, plan_consumers, shared = [], [], [], []
    wanted_names = [w["name"] for w in wanted]
    consumers = values.get("tpm_access_consumer_users")
    for c in consumers if isinstance(consumers, (list, tuple)) else []:
        name = c if isinstance(c, str) else c["name"]
        want = [tss_group] + ([docker_group] if isinstance(c, dict) and c.get("docker", False) else [])
        if name not in users:
            missing.append(name)
        elif _shared_account(users[name], name):
            shared.append(_shared_account(users[name], name))
        else:
            add = [
                g
                for g in want
                if g not in groups or (name not in groups[g]["members"] and users[name]["gid"] != groups[g]["gid"])
            ]
            plan_consumers.append({"name": name, "add": add})
        if docker_group in want and docker_group not in groups and docker_group not in wanted_names:
            need_docker.append(name)
    if missing:
        errors.append(
            f"tpm_access_consumer_users: user(s) {few(missing)} do not exist on {host}. Create them first (this "
            "role only adds existing users to groups) or remove them from tpm_access_consumer_users."
        )
    if shared:
        errors.append(
            f"tpm_access_consumer_users: {few(shared)} on {host}: root needs no group to open the TPM, and an "
            f"account with the overflow ID {OVERFLOW_ID} is shared by every daemon that drops privileges to it and "
            "by every ID a user namespace does not map; adding it to the tss group would give all of them the TPM. "
            + _CONSUMER_FIX
        )
    if need_docker:
        errors.append(
            f"tpm_access_consumer_users: {few(need_docker)} should join group {docker_group}, which does not "
            f"exist on {host}. Set tpm_access_docker_group_manage: true (or tpm_access_docker_gid) to create it, or "
            "install the container engine first."
        )
    return {
        "errors": errors,
        "groups": plan_groups,
        "user": plan_user,
        "consumers": plan_consumers,
        "existing_groups": list(groups),
        # Whether anything differs from the host: the role's change steps run only then.
        "todo": bool(
            any(g["create"] or g["change"] for g in plan_groups)
            or plan_user["todo"]
            or any(c["add"] for c in plan_consumers)
        ),
    }


# --- what a run applies (the registry's ``changes``) ------------------------------------------

# Its plan rests on the users and groups; its apply changes them and, through udev, the TPM nodes' owners (and
# restarts systemd-udevd when the tss IDs change).
PLANS_FROM = ("accounts",)
CHANGES = ("accounts", "nodes", "units")


def changes(_values, host):
    """What tasks/apply.yml would change: the plan host_errors published (``todo`` and its parts); None without
    it."""
    planned = host.facts.get(PLAN_FACT)
    if not isinstance(planned, dict) or "todo" not in planned:
        return None
    out = [f"create group {g['name']}" for g in planned["groups"] if g["create"]]
    out += [f"change the GID of group {g['name']} to {g['gid']}" for g in planned["groups"] if g["change"]]
    if planned["user"]["todo"]:
        out.append(f"{'create' if planned['user']['create'] else 'update'} user {planned['user']['name']}")
    out += [f"add user {c['name']} to {', '.join(c['add'])}" for c in planned["consumers"] if c["add"]]
    if planned["todo"] and not out:
        out.append("apply the plan's changes")
    return out
