"""What each role's apply would change (its ``changes`` in plugins/plugin_utils/roles/), decided from the preflight's
one read of the host, and which roles a run applies (the registry's ``entries``).

A role may be skipped only when its plan proves that its apply would change nothing: every kind of drift its apply
fixes makes the plan non-empty, a part of the host's state that was not read makes it None (the role runs), and a
role runs whenever a role before it that runs may change what its plan read."""

from __future__ import annotations

import copy
import hashlib

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.quote_mode import profile
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import (
    tpm_abrmd,
    tpm_access,
    tpm_consumers,
    tpm_containers,
    tpm_kernel,
    tpm_udev,
    tpm_verify,
)

RULES = "/etc/udev/rules.d/70-tpmfleet-tpm.rules"
RULES_TEXT = '# Ansible managed\n# tpmfleet: TPM device nodes for quote mode "kernel_rm"\nKERNEL=="tpm[0-9]*" ...\n'
DROPIN = "/etc/systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"
POLICY = "/etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
DISTRO_POLICY = "/etc/dbus-1/system.d/tpm2-abrmd.conf"
DIVERSIONS = "/var/lib/dpkg/diversions"


class Host:
    """The settings_check action's view of the host (its ``_Host``): the facts as the preflight read them, and the
    udev rules as the template renders them."""

    def __init__(self, facts, rendered=RULES_TEXT):
        self.name, self.facts, self._rendered = "h1", facts, rendered

    def render(self, role, template, variables=None):
        assert (role, template, variables) == ("tpm_udev", "tpm.rules.j2", None)
        return self._rendered


def node(path, owner, group, mode="0660"):
    return {"path": path, "pw_name": owner, "gr_name": group, "mode": mode, "exists": True}


def converged(mode="kernel_rm"):
    """The facts of a host the roles converged in ``mode`` (Debian, both drivers loadable and loaded)."""
    udev = profile(mode)["udev"]
    return {
        "distribution": "Debian",
        "services": {"tpm2-abrmd.service": {"name": "tpm2-abrmd.service", "state": "stopped", "status": "disabled"}}
        | (
            {"tpm2-abrmd.service": {"name": "tpm2-abrmd.service", "state": "stopped", "status": "masked"}}
            if mode == "direct"
            else {}
        ),
        "tpmfleet_host_state": {
            "kernel": {
                "modules_read": True,
                "builtin": [],
                "loadable": ["tpm_tis", "tpm_crb"],
                "loaded": ["tpm_tis", "tpm_crb", "tpm"],
                "asked": ["tpm_tis", "tpm_crb"],
            },
            "globs": {
                "/dev/tpm[0-9]*": [node("/dev/tpm0", udev[0]["owner"], udev[0]["group"])],
                "/dev/tpmrm[0-9]*": [node("/dev/tpmrm0", udev[1]["owner"], udev[1]["group"])],
            },
            "paths": {
                "/etc/modules-load.d/tpm_tis.conf": {"exists": True, "isreg": True, "has_marker": True},
                "/etc/modules-load.d/tpm_crb.conf": {"exists": True, "isreg": True, "has_marker": True},
                RULES: {
                    "exists": True,
                    "isreg": True,
                    "islnk": False,
                    "pw_name": "root",
                    "gr_name": "root",
                    "mode": "0644",
                    "checksum": hashlib.sha1(RULES_TEXT.encode()).hexdigest(),  # noqa: S324 (stat's checksum)
                },
                DROPIN: {"exists": False},
                POLICY: {"exists": False},
                DIVERSIONS: {"exists": True, "isreg": True, "has_marker": False},
            },
        },
    }


KERNEL = {
    "tpm_kernel_drivers": ["tpm_tis", "tpm_crb"],
    "tpm_kernel_persistent": True,
    "tpm_kernel_require_device": True,
}


def udev_values(mode="kernel_rm"):
    return {"tpm_udev_rules_path": RULES, "tpm_udev_mode": "0660", "tpm_quote_mode_profile": profile(mode)}


def abrmd_values(mode="kernel_rm", holders=()):
    return {
        "tpm_quote_mode_profile": profile(mode),
        "tpm_abrmd_stop_holder_units": list(holders),
        "__tpm_abrmd_service": "tpm2-abrmd.service",
        "__tpm_abrmd_dropin": DROPIN,
        "__tpm_abrmd_dbus_policy": POLICY,
        "__tpm_abrmd_distro_dbus_policy": DISTRO_POLICY,
        "__tpm_abrmd_off_statuses": ["disabled", "masked", "static", "indirect"],
    }


def drifted(change, mode="kernel_rm"):
    facts = copy.deepcopy(converged(mode))
    change(facts)
    return facts


# --- a converged host: every planned role has nothing to do ------------------------------


@pytest.mark.parametrize("mode", ["direct", "kernel_rm"])
def test_a_converged_host_gives_every_planned_role_nothing_to_do(mode):
    facts = converged(mode)
    assert tpm_kernel.changes(KERNEL, Host(facts)) == []
    assert tpm_udev.changes(udev_values(mode), Host(facts)) == []
    assert tpm_abrmd.changes(abrmd_values(mode), Host(facts)) == []
    assert tpm_containers.changes({"tpm_containers_projects": []}, Host(facts)) == []


# --- tpm_kernel -----------------------------------------------------------------------


def test_tpm_kernel_plans_every_driver_to_load_and_every_modules_load_file_to_write():
    def unloaded(f):
        f["tpmfleet_host_state"]["kernel"]["loaded"] = ["tpm", "tpm_tis"]

    def unnamed(f):
        f["tpmfleet_host_state"]["paths"]["/etc/modules-load.d/tpm_tis.conf"]["has_marker"] = False

    assert tpm_kernel.changes(KERNEL, Host(drifted(unloaded))) == ["load the driver tpm_crb"]
    assert tpm_kernel.changes(KERNEL, Host(drifted(unnamed))) == ["name tpm_tis in /etc/modules-load.d/tpm_tis.conf"]
    # Without tpm_kernel_persistent the modules-load.d files are not the role's business.
    assert tpm_kernel.changes({**KERNEL, "tpm_kernel_persistent": False}, Host(drifted(unnamed))) == []


def test_tpm_kernel_plans_nothing_for_a_built_in_driver_and_runs_without_a_tpm_character_device():
    def builtin(f):
        f["tpmfleet_host_state"]["kernel"].update(builtin=["tpm_crb"], loaded=["tpm_tis"])

    def no_node(f):
        f["tpmfleet_host_state"]["globs"]["/dev/tpm[0-9]*"] = []

    assert tpm_kernel.changes(KERNEL, Host(drifted(builtin))) == []
    # Its apply fails with the firmware message: the role runs to say it.
    assert tpm_kernel.changes(KERNEL, Host(drifted(no_node))) == ["find a TPM character device (there is none)"]
    assert tpm_kernel.changes({**KERNEL, "tpm_kernel_require_device": False}, Host(drifted(no_node))) == []


def test_tpm_kernel_cannot_tell_without_the_kernel_the_nodes_or_the_files_read():
    for change in (
        lambda f: f["tpmfleet_host_state"].pop("kernel"),
        lambda f: f["tpmfleet_host_state"].pop("globs"),
        lambda f: f["tpmfleet_host_state"]["globs"].pop("/dev/tpmrm[0-9]*"),
        lambda f: f["tpmfleet_host_state"]["paths"].pop("/etc/modules-load.d/tpm_crb.conf"),
    ):
        assert tpm_kernel.changes(KERNEL, Host(drifted(change))) is None
    assert tpm_kernel.changes(KERNEL, Host({})) is None


# --- tpm_access -----------------------------------------------------------------------


def test_tpm_access_has_nothing_to_do_only_when_its_published_plan_has_nothing_to_do():
    from test_access import GROUPS, INPUTS, USERS

    planned = tpm_access.plan(GROUPS, USERS, INPUTS, host="h1")
    assert not planned["todo"]
    assert tpm_access.changes(INPUTS, Host({tpm_access.PLAN_FACT: planned})) == []
    drifts = {
        "no tss group": ({k: v for k, v in GROUPS.items() if k != "tss"}, USERS, INPUTS, "create group tss"),
        "tss GID": (
            GROUPS,
            USERS,
            {**INPUTS, "tpm_access_tss_gid": 107, "tpm_access_allow_gid_change": True},
            "change the GID of group tss to 107",
        ),
        "no tss user": (GROUPS, {k: v for k, v in USERS.items() if k != "tss"}, INPUTS, "create user tss"),
        "tss shell": (GROUPS, {**USERS, "tss": [*USERS["tss"][:5], "/bin/bash"]}, INPUTS, "update user tss"),
        "consumer": (GROUPS, USERS, {**INPUTS, "tpm_access_consumer_users": ["alice"]}, "add user alice to tss"),
    }
    for name, (groups, users, inputs, want) in drifts.items():
        planned = tpm_access.plan(groups, users, inputs, host="h1")
        assert planned["todo"] and not planned["errors"], name
        assert want in tpm_access.changes(inputs, Host({tpm_access.PLAN_FACT: planned})), name
    assert tpm_access.changes(INPUTS, Host({})) is None


# --- tpm_udev -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "want"),
    [
        (lambda p: p.update(exists=False, isreg=False), f"write {RULES}"),
        (lambda p: p.update(checksum="0" * 40), f"write {RULES} (its content differs)"),
        (lambda p: p.update(isreg=False, islnk=True), f"write {RULES} (it is a symbolic link)"),
        (lambda p: p.update(mode="0664"), f"set {RULES} to root:root 0644"),
        (lambda p: p.update(gr_name="adm"), f"set {RULES} to root:root 0644"),
    ],
)
def test_tpm_udev_plans_its_rules_file(change, want):
    facts = drifted(lambda f: change(f["tpmfleet_host_state"]["paths"][RULES]))
    assert tpm_udev.changes(udev_values(), Host(facts)) == [want]


def test_tpm_udev_compares_the_rules_with_the_template_as_rendered():
    other = RULES_TEXT.replace("kernel_rm", "direct")
    assert tpm_udev.changes(udev_values(), Host(converged(), rendered=other)) == [
        f"write {RULES} (its content differs)"
    ]
    # A template its task would render otherwise (a custom ansible_managed): the role runs.
    assert tpm_udev.changes(udev_values(), Host(converged(), rendered=None)) is None


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [(0, "pw_name", "root"), (0, "gr_name", "tss"), (1, "gr_name", "root"), (1, "mode", "0666"), (0, "mode", "0600")],
)
def test_tpm_udev_plans_every_node_whose_owner_group_or_mode_differs(index, field, value):
    glob = ("/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*")[index]
    facts = drifted(lambda f: f["tpmfleet_host_state"]["globs"][glob][0].update({field: value}))
    (change,) = tpm_udev.changes(udev_values(), Host(facts))
    assert change.startswith(("set /dev/tpm0 to tss:root 0660", "set /dev/tpmrm0 to tss:tss 0660")), change


def test_tpm_udev_plans_the_nodes_of_a_mode_switch_and_a_new_node():
    facts = converged("kernel_rm")
    assert tpm_udev.changes(udev_values("direct"), Host(facts, rendered=RULES_TEXT)) == [
        "set /dev/tpm0 to tss:tss 0660 (udev)"
    ]
    facts = drifted(
        lambda f: f["tpmfleet_host_state"]["globs"]["/dev/tpm[0-9]*"].append(node("/dev/tpm1", "root", "root"))
    )
    assert tpm_udev.changes(udev_values(), Host(facts)) == ["set /dev/tpm1 to tss:root 0660 (udev)"]


def test_tpm_udev_cannot_tell_without_its_file_or_the_nodes_read():
    facts = drifted(lambda f: f["tpmfleet_host_state"]["paths"].pop(RULES))
    assert tpm_udev.changes(udev_values(), Host(facts)) is None
    facts = drifted(lambda f: f["tpmfleet_host_state"]["globs"].pop("/dev/tpmrm[0-9]*"))
    assert tpm_udev.changes(udev_values(), Host(facts)) is None
    facts = drifted(lambda f: f["tpmfleet_host_state"]["paths"][RULES].pop("checksum"))
    assert tpm_udev.changes(udev_values(), Host(facts)) is None


# --- tpm_abrmd ------------------------------------------------------------------------


def unit(state, status):
    return {"name": "tpm2-abrmd.service", "state": state, "status": status}


@pytest.mark.parametrize(
    ("mode", "change", "want"),
    [
        (
            "kernel_rm",
            lambda f: f["services"].update({"tpm2-abrmd.service": unit("running", "enabled")}),
            ["stop and disable tpm2-abrmd.service"],
        ),
        (
            "kernel_rm",
            lambda f: f["services"].update({"tpm2-abrmd.service": unit("stopped", "enabled")}),
            ["stop and disable tpm2-abrmd.service"],
        ),
        (
            "kernel_rm",
            lambda f: f["services"].update({"tpm2-abrmd.service": unit("stopped", "masked")}),
            ["unmask tpm2-abrmd.service"],
        ),
        (
            "direct",
            lambda f: f["services"].update({"tpm2-abrmd.service": unit("stopped", "disabled")}),
            ["mask tpm2-abrmd.service"],
        ),
        ("direct", lambda f: f["services"].clear(), ["mask tpm2-abrmd.service"]),
        ("kernel_rm", lambda f: f["tpmfleet_host_state"]["paths"][DROPIN].update(exists=True), [f"remove {DROPIN}"]),
        ("kernel_rm", lambda f: f["tpmfleet_host_state"]["paths"][POLICY].update(exists=True), [f"remove {POLICY}"]),
        (
            "kernel_rm",
            lambda f: f["tpmfleet_host_state"]["paths"][DIVERSIONS].update(has_marker=True),
            [f"put the distribution's {DISTRO_POLICY} back (remove its dpkg diversion)"],
        ),
    ],
)
def test_tpm_abrmd_plans_every_drift_of_a_mode_without_the_broker(mode, change, want):
    assert tpm_abrmd.changes(abrmd_values(mode), Host(drifted(change, mode))) == want


def test_tpm_abrmd_plans_the_holder_units_to_stop_in_direct_mode_only():
    holder = {"name": "old-agent.service", "state": "running", "status": "enabled"}
    facts = drifted(lambda f: f["services"].update({"old-agent.service": holder}), "direct")
    values = abrmd_values("direct", holders=["old-agent.service", "absent.service"])
    assert tpm_abrmd.changes(values, Host(facts)) == ["stop and disable old-agent.service"]
    holder.update(state="stopped", status="static")
    facts = drifted(lambda f: f["services"].update({"old-agent.service": holder}), "direct")
    assert tpm_abrmd.changes(values, Host(facts)) == ["stop and disable old-agent.service"]
    holder.update(status="disabled")
    facts = drifted(lambda f: f["services"].update({"old-agent.service": holder}), "direct")
    assert tpm_abrmd.changes(values, Host(facts)) == []
    # kernel_rm has no exclusive device: the holder units are left alone.
    holder.update(state="running", status="enabled")
    facts = drifted(lambda f: f["services"].update({"old-agent.service": holder}))
    assert tpm_abrmd.changes(abrmd_values(holders=["old-agent.service"]), Host(facts)) == []


def test_tpm_abrmd_cannot_tell_in_abrmd_mode_or_without_a_part_read():
    assert tpm_abrmd.changes(abrmd_values("abrmd"), Host(converged())) is None
    for change in (
        lambda f: f.pop("distribution"),
        lambda f: f.pop("services"),
        lambda f: f["tpmfleet_host_state"]["paths"].pop(POLICY),
        lambda f: f["tpmfleet_host_state"]["paths"].pop(DIVERSIONS),
        lambda f: f["tpmfleet_host_state"]["paths"][DIVERSIONS].update(exists=False, isreg=False),
        lambda f: f["tpmfleet_host_state"]["paths"][DIVERSIONS].pop("has_marker"),
    ):
        assert tpm_abrmd.changes(abrmd_values(), Host(drifted(change))) is None
    # Where the distribution has no policy beside tpmfleet's (Fedora, RHEL), dpkg's list is not needed.
    facts = drifted(lambda f: f["tpmfleet_host_state"]["paths"].pop(DIVERSIONS))
    assert tpm_abrmd.changes({**abrmd_values(), "__tpm_abrmd_distro_dbus_policy": ""}, Host(facts)) == []


# --- tpm_containers -------------------------------------------------------------------


def test_tpm_containers_has_nothing_to_do_without_projects_and_cannot_tell_with_them():
    assert tpm_containers.changes({"tpm_containers_projects": []}, Host({})) == []
    assert tpm_containers.changes({"tpm_containers_projects": [{"name": "agent"}]}, Host({})) is None


# --- which roles a run applies --------------------------------------------------------


def none_to_do():
    return {
        role: ([] if hasattr(registry.spec(role), "changes") else None) for role in (*registry.ROLES, *registry.AROUND)
    }


def test_a_role_is_skipped_only_when_its_plan_is_empty_and_tpm_kernel_then_publishes_its_facts():
    entries = registry.entries(none_to_do())
    assert entries == {
        "tpm_kernel": "published",
        "tpm_access": None,
        "tpm_udev": None,
        "tpm_abrmd": None,
        "tpm_tcti_env": None,
        # No plan: always applied (its access check and quotes are the run's proof).
        "tpm_containers": None,
        "tpm_verify": "apply",
        # No switch record: site.yml's start step is skipped.
        "tpm_consumers": None,
    }
    assert list(entries) == [*registry.ROLES, *registry.AROUND]


def test_a_role_that_cannot_tell_runs():
    assert registry.entries({**none_to_do(), "tpm_udev": None})["tpm_udev"] == "apply"


@pytest.mark.parametrize(
    ("changing", "stale"),
    [
        # A driver loaded now may bring nodes udev must set.
        ("tpm_kernel", {"tpm_udev"}),
        # New tss IDs: the nodes' owners (udev) and the units (systemd-udevd restarted).
        ("tpm_access", {"tpm_udev", "tpm_abrmd", "tpm_tcti_env"}),
        ("tpm_udev", set()),
        # tpm2-abrmd started or stopped: the consumers' units, which tpm_tcti_env plans from.
        ("tpm_abrmd", {"tpm_tcti_env"}),
        # A consumer restarted by tpm_tcti_env changes nothing a later planned role read.
        ("tpm_tcti_env", set()),
    ],
)
def test_a_role_runs_when_a_role_before_it_that_runs_may_change_what_its_plan_read(changing, stale):
    plans = {**none_to_do(), changing: ["something"]}
    entries = registry.entries(plans)
    ran = {r for r, e in entries.items() if e == "apply"} - {"tpm_verify"}
    assert ran == {changing} | stale
    # tpm_containers without projects plans from nothing on the host: never stale.
    assert entries["tpm_containers"] is None


def test_every_planned_role_names_only_known_parts():
    for role in (*registry.ROLES, *registry.AROUND):
        module = registry.spec(role)
        for name in ("PLANS_FROM", "CHANGES"):
            assert set(getattr(module, name, ())) <= set(registry.PARTS), (role, name)
        if hasattr(module, "changes"):
            assert hasattr(module, "PLANS_FROM"), role


RECORD = "/var/lib/tpmfleet/quote-mode-switch.json"


@pytest.mark.parametrize(
    ("seen", "want"),
    [
        ({"exists": False}, []),
        ({"exists": True, "isreg": True}, [f"start the consumers listed in {RECORD} and remove it"]),
        # Not read (the preflight did not run, or read another path): the start step runs and looks itself.
        (None, None),
        ({}, None),
        ({"exists": "yes"}, None),
    ],
)
def test_tpm_consumers_starts_only_what_an_interrupted_switch_left(seen, want):
    paths = {} if seen is None else {RECORD: seen}
    facts = {"tpmfleet_host_state": {"paths": paths}}
    assert tpm_consumers.changes({"__tpm_consumers_record": RECORD}, Host(facts)) == want
    assert tpm_consumers.changes({"__tpm_consumers_record": None}, Host(facts)) is None


def test_tpm_consumers_start_runs_after_a_role_that_changed_units_only_when_a_record_exists():
    # Its answer rests on its own record alone: never stale, whatever ran before it.
    plans = {**none_to_do(), "tpm_abrmd": ["stop tpm2-abrmd.service"]}
    assert registry.entries(plans)["tpm_consumers"] is None
    plans["tpm_consumers"] = ["start the consumers"]
    assert registry.entries(plans)["tpm_consumers"] == "apply"


# --- tpm_verify: always applied; its plan names the tools to install -------------------------------------

VERIFY = {"tpm_verify_install_packages": True, "__tpm_verify_packages": ["tpm2-tools", "python3-tpm2-pytss"]}


@pytest.mark.parametrize(
    ("values", "installed", "want"),
    [
        (VERIFY, ["tpm2-tools", "python3-tpm2-pytss"], []),
        (VERIFY, ["tpm2-tools"], ["install python3-tpm2-pytss"]),
        (VERIFY, [], ["install tpm2-tools", "install python3-tpm2-pytss"]),
        # Not read (the package database could not be asked, or no preflight read): the package manager is asked.
        (VERIFY, None, None),
        (VERIFY, "missing", None),
        # Nothing to install when the role installs nothing.
        ({**VERIFY, "tpm_verify_install_packages": "no"}, None, []),
        ({**VERIFY, "__tpm_verify_packages": []}, None, []),
    ],
)
def test_tpm_verify_plans_only_the_tools_the_read_did_not_find_installed(values, installed, want):
    state = {} if installed == "missing" else {"installed_packages": installed}
    assert tpm_verify.changes(values, Host({"tpmfleet_host_state": state})) == want
    # The preflight reads the packages only when the role installs them.
    read = values["__tpm_verify_packages"] if values["tpm_verify_install_packages"] is True else []
    assert tpm_verify.reads(values)["packages"] == read


def test_tpm_verify_runs_whatever_its_plan_says():
    assert registry.entries({**none_to_do(), "tpm_verify": []})["tpm_verify"] == "apply"
    assert registry.entries({**none_to_do(), "tpm_verify": ["install tpm2-tools"]})["tpm_verify"] == "apply"
