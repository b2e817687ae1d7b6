# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tpm_access changes on a host, planned on the controller from the host's users and groups.

``plan(groups, users, values, host)`` takes the host's ``getent group`` and
``getent passwd`` (the ``ansible.builtin.getent`` facts: name -> fields) and
the role's inputs (variable name -> value, already checked by
``validate.access_errors``) and returns

- ``errors``: why the inputs conflict with the host (a GID or UID held by
  another group or user, an ID change without its opt-in, consumers that do
  not exist, a docker group nobody creates), each naming the variable and the fix;
- ``groups``: per managed group (the tss group; the docker group when its GID
  is pinned or it is managed) ``{name, gid, old_gid, create, change}``;
- ``user``: the tss user ``{name, create, uid, old_uid, shell, home, todo}``;
- ``consumers``: per existing consumer ``{name, add}``, the groups it lacks;
- ``existing_groups``: the host's group names.

The role's tasks run only for what the plan says differs. Used through the
``tpmfleet.tpm.access_plan`` filter (``plugins/filter/access.py``).
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import few, truthy
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.validate import CONSUMER_FIX

# The kernel's overflow UID and GID (/proc/sys/kernel/overflowuid, overflowgid): nobody and nogroup, and what
# every ID a user namespace does not map appears as.
OVERFLOW_ID = 65534
NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")
DEFAULT_SHELL = "/usr/sbin/nologin"


def _int_or_none(value):
    if value is None or value == "":
        return None
    return int(value)


def parse_groups(getent_group):
    """name -> {gid, members} and gid -> the first group with it, from ``getent group`` facts."""
    groups, gid_owner = {}, {}
    for name, fields in (getent_group or {}).items():
        gid = int(fields[1])
        members = [m for m in (fields[2] if len(fields) > 2 and fields[2] else "").split(",") if m]
        groups[name] = {"gid": gid, "members": members}
        gid_owner.setdefault(gid, name)
    return groups, gid_owner


def parse_users(getent_passwd):
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
    groups, gid_owner = parse_groups(getent_group)
    users, uid_owner = parse_users(getent_passwd)
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
            + CONSUMER_FIX
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
