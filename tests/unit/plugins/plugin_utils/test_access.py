"""The tpm_access plan: what changes on a host, from its getent data, and the refusals naming the fix."""

from __future__ import annotations

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles.tpm_access import _parse_groups as parse_groups
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles.tpm_access import _parse_users as parse_users
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles.tpm_access import plan

# What ansible.builtin.getent returns as facts: name -> the other fields, as strings.
GROUPS = {
    "root": ["x", "0", ""],
    "users": ["x", "100", "alice"],
    "tss": ["x", "106", "keylime"],
    "alice": ["x", "1000", ""],
    "keylime": ["x", "990", ""],
    "ci": ["x", "1001", ""],
}
USERS = {
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
    "tss": ["x", "106", "106", "TPM software stack", "/var/lib/tpm", "/bin/false"],
    "alice": ["x", "1000", "1000", "", "/home/alice", "/bin/bash"],
    "keylime": ["x", "990", "990", "", "/var/lib/keylime", "/usr/sbin/nologin"],
    "ci": ["x", "1001", "1001", "", "/home/ci", "/bin/sh"],
}
INPUTS = {
    "tpm_quote_mode_tss_user": "tss",
    "tpm_quote_mode_tss_group": "tss",
    "tpm_access_tss_gid": None,
    "tpm_access_tss_uid": None,
    "tpm_access_tss_home": "/var/lib/tpm",
    "tpm_access_docker_group": "docker",
    "tpm_access_docker_gid": None,
    "tpm_access_docker_group_manage": False,
    "tpm_access_consumer_users": [],
    "tpm_access_allow_gid_change": False,
    "tpm_access_allow_uid_change": False,
    "tpm_access_regroup_paths": ["/var/lib/tpm"],
    "tpm_access_regroup_max_report": 20,
}


def run(groups=None, users=None, **inputs):
    return plan(GROUPS if groups is None else groups, USERS if users is None else users, {**INPUTS, **inputs}, "h1")


def without(table, *names):
    return {k: v for k, v in table.items() if k not in names}


def test_parsing_getent():
    groups, gid_owner = parse_groups({**GROUPS, "tss2": ["x", "106", ""]})
    assert groups["tss"] == {"gid": 106, "members": ["keylime"]}
    assert groups["root"] == {"gid": 0, "members": []}
    assert gid_owner[106] == "tss", "the first group with a GID owns it"
    users, uid_owner = parse_users(USERS)
    assert users["tss"] == {"uid": 106, "gid": 106, "home": "/var/lib/tpm", "shell": "/bin/false"}
    assert uid_owner[990] == "keylime"


def test_a_converged_host_needs_nothing():
    p = run(tpm_access_consumer_users=["keylime"])
    assert p == {
        "errors": [],
        "groups": [{"name": "tss", "gid": None, "old_gid": 106, "create": False, "change": False}],
        "user": {
            "name": "tss",
            "create": False,
            "uid": None,
            "old_uid": 106,
            "shell": "/bin/false",
            "home": "/var/lib/tpm",
            "todo": False,
        },
        "consumers": [{"name": "keylime", "add": []}],
        "existing_groups": list(GROUPS),
        "todo": False,
    }


def test_a_bare_host_gets_the_group_and_the_user_created():
    p = run(
        groups=without(GROUPS, "tss"), users=without(USERS, "tss"), tpm_access_tss_gid=950, tpm_access_tss_uid="960"
    )
    assert p["errors"] == []
    assert p["groups"] == [{"name": "tss", "gid": 950, "old_gid": None, "create": True, "change": False}]
    assert p["user"] == {
        "name": "tss",
        "create": True,
        "uid": 960,
        "old_uid": None,
        "shell": "/usr/sbin/nologin",
        "home": "/var/lib/tpm",
        "todo": True,
    }


def test_a_pinned_gid_change_with_the_opt_in_is_planned():
    p = run(tpm_access_tss_gid="950", tpm_access_allow_gid_change="yes")
    assert p["errors"] == []
    assert p["groups"] == [{"name": "tss", "gid": 950, "old_gid": 106, "create": False, "change": True}]
    # The tss user's primary group follows the group's GID; nothing else to do for it.
    assert p["user"]["todo"] is False
    assert p["todo"] is True, "the group change alone makes the plan something to do"


def test_a_gid_change_without_the_opt_in_is_refused_with_both_fixes():
    p = run(tpm_access_tss_gid=950)
    assert p["errors"] == [
        "tpm_access_tss_gid: group tss has GID 106 on h1, not 950. To change it, set tpm_access_allow_gid_change: true "
        "(files with GID 106 under tpm_access_regroup_paths are then re-owned; running processes keep the old GID "
        "until restarted); to keep it, set tpm_access_tss_gid to 106 or null."
    ]


def test_a_gid_held_by_another_group_is_refused_naming_it():
    p = run(tpm_access_tss_gid=100, tpm_access_allow_gid_change=True)
    assert p["errors"] == [
        "tpm_access_tss_gid: GID 100 is already used by group users on h1. Pick a GID that is free on every host of "
        "the fleet (check with: getent group 100), or give group users another GID first."
    ]


def test_the_docker_group_is_managed_when_pinned_or_asked():
    assert [g["name"] for g in run()["groups"]] == ["tss"]
    p = run(tpm_access_docker_gid=951)
    assert p["groups"][1] == {"name": "docker", "gid": 951, "old_gid": None, "create": True, "change": False}
    p = run(tpm_access_docker_group_manage="true")
    assert p["groups"][1] == {"name": "docker", "gid": None, "old_gid": None, "create": True, "change": False}
    p = run(tpm_access_docker_gid=1001, tpm_access_allow_gid_change=True)
    assert p["errors"] == [
        "tpm_access_docker_gid: GID 1001 is already used by group ci on h1. Pick a GID that is free on every host of "
        "the fleet (check with: getent group 1001), or give group ci another GID first."
    ]


def test_a_uid_held_by_another_user_is_refused_naming_it():
    p = run(tpm_access_tss_uid=990)
    assert p["errors"] == [
        "tpm_access_tss_uid: UID 990 is already used by user keylime on h1. Pick a UID that is free on every host of "
        "the fleet (check with: getent passwd 990), or give user keylime another UID first."
    ]


def test_a_uid_change_needs_its_opt_in():
    p = run(tpm_access_tss_uid=960)
    assert p["errors"] == [
        "tpm_access_tss_uid: user tss has UID 106 on h1, not 960. To change it, stop the processes that run as tss "
        "(tpm2-abrmd) and set tpm_access_allow_uid_change: true (usermod re-owns the files in its home only); to keep "
        "it, set tpm_access_tss_uid to 106 or null."
    ]
    p = run(tpm_access_tss_uid=960, tpm_access_allow_uid_change=True)
    assert p["errors"] == [] and p["user"]["todo"] and (p["user"]["uid"], p["user"]["old_uid"]) == (960, 106)


@pytest.mark.parametrize(
    ("entry", "shell", "todo"),
    [
        (["x", "106", "106", "", "/var/lib/tpm", "/usr/sbin/nologin"], "/usr/sbin/nologin", False),
        (["x", "106", "106", "", "/var/lib/tpm", "/sbin/nologin"], "/sbin/nologin", False),
        (["x", "106", "106", "", "/var/lib/tpm", "/usr/bin/false"], "/usr/bin/false", False),
        (["x", "106", "106", "", "/var/lib/tpm", "/bin/bash"], "/usr/sbin/nologin", True),
        (["x", "106", "100", "", "/var/lib/tpm", "/bin/false"], "/bin/false", True),  # another primary group
    ],
)
def test_the_tss_user_keeps_a_nologin_shell_and_its_home(entry, shell, todo):
    p = run(users={**USERS, "tss": entry}, tpm_access_tss_home="/srv/elsewhere")
    assert (p["user"]["shell"], p["user"]["home"], p["user"]["todo"]) == (shell, "/var/lib/tpm", todo)
    assert p["todo"] is todo, "the user alone decides whether there is anything to do"


def test_consumers_get_only_the_groups_they_lack():
    consumers = ["keylime", {"name": "alice", "docker": True}, {"name": "ci", "docker": False}]
    p = run(groups={**GROUPS, "docker": ["x", "999", "alice"]}, tpm_access_consumer_users=consumers)
    assert p["errors"] == []
    assert p["consumers"] == [
        {"name": "keylime", "add": []},  # a listed member
        {"name": "alice", "add": ["tss"]},  # already in docker
        {"name": "ci", "add": ["tss"]},
    ]
    assert p["todo"] is True, "a missing membership alone makes the plan something to do"
    # A primary group counts as membership.
    p = run(users={**USERS, "ci": ["x", "1001", "106", "", "/home/ci", "/bin/sh"]}, tpm_access_consumer_users=["ci"])
    assert p["consumers"] == [{"name": "ci", "add": []}]
    assert p["todo"] is False


def test_consumers_of_groups_this_run_creates_are_planned():
    p = run(
        groups=without(GROUPS, "tss"),
        tpm_access_docker_gid=951,
        tpm_access_consumer_users=[{"name": "ci", "docker": True}],
    )
    assert p["errors"] == []
    assert p["consumers"] == [{"name": "ci", "add": ["tss", "docker"]}]
    assert "tss" not in p["existing_groups"]


def test_missing_consumers_are_refused_naming_them():
    p = run(tpm_access_consumer_users=["keylime", "nosuchuser", {"name": "ghost", "docker": False}])
    assert p["errors"] == [
        "tpm_access_consumer_users: user(s) nosuchuser, ghost do not exist on h1. Create them first (this role only "
        "adds existing users to groups) or remove them from tpm_access_consumer_users."
    ]
    assert p["consumers"] == [{"name": "keylime", "add": []}]


def test_a_docker_group_nobody_creates_is_refused():
    p = run(tpm_access_consumer_users=[{"name": "ci", "docker": True}, {"name": "alice", "docker": True}])
    assert p["errors"] == [
        "tpm_access_consumer_users: ci, alice should join group docker, which does not exist on h1. Set "
        "tpm_access_docker_group_manage: true (or tpm_access_docker_gid) to create it, or install the container "
        "engine first."
    ]


def test_every_conflict_is_reported_at_once():
    p = run(tpm_access_tss_gid=100, tpm_access_tss_uid=990, tpm_access_consumer_users=["ghost"])
    assert [e.split(":")[0] for e in p["errors"]] == [
        "tpm_access_tss_gid",
        "tpm_access_tss_uid",
        "tpm_access_consumer_users",
    ]


def test_root_is_never_made_the_tss_user_or_group():
    p = run(users={**USERS, "toor": ["x", "0", "0", "", "/root", "/bin/sh"]}, tpm_quote_mode_tss_user="toor")
    assert p["errors"] == [
        "tpm_quote_mode_tss_user: user toor has UID 0 on h1: tpm_access would take its login shell. Set "
        "tpm_quote_mode_tss_user to the TPM software stack's own system user (tss)."
    ]
    p = run(groups={**GROUPS, "wheel0": ["x", "0", ""]}, tpm_quote_mode_tss_group="wheel0")
    assert [e.split(":")[0] for e in p["errors"]] == ["tpm_quote_mode_tss_group"]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        # Debian's nobody: UID 65534, primary group nogroup (GID 65534).
        (["x", "65534", "65534", "nobody", "/nonexistent", "/usr/sbin/nologin"], "has UID 65534 (the overflow ID)"),
        # Another name for the overflow UID, or an account whose primary group is the overflow GID.
        (["x", "65534", "100", "", "/", "/usr/sbin/nologin"], "has UID 65534 (the overflow ID)"),
        (["x", "1005", "65534", "", "/", "/usr/sbin/nologin"], "has primary GID 65534 (the overflow ID)"),
        # A second name for root.
        (["x", "0", "0", "", "/root", "/bin/sh"], "has UID 0 (root)"),
    ],
)
def test_a_consumer_with_root_or_the_overflow_id_is_refused_with_the_reason(entry, why):
    users = {**USERS, "shared": entry}
    p = run(users=users, tpm_access_consumer_users=["keylime", "shared"])
    (error,) = p["errors"]
    assert error.startswith(f"tpm_access_consumer_users: shared {why} on h1: root needs no group to open the TPM")
    assert "every ID a user namespace does not map" in error and "group_add" in error
    # Nothing is planned for it: a refused plan changes nothing anyway, and it is never a member to add.
    assert [c["name"] for c in p["consumers"]] == ["keylime"]


def test_many_missing_consumers_are_named_a_few_then_counted():
    p = run(tpm_access_consumer_users=[f"ghost{i}" for i in range(20)])
    (error,) = p["errors"]
    assert error.startswith(
        "tpm_access_consumer_users: user(s) ghost0, ghost1, ghost2, ghost3, ghost4 and 15 more do not exist on h1."
    )
