"""The settings_check action plugin: a role's checks in one task, and a host read only for what is missing.

The action runs in-process with a real Templar over the task's variables; what it would run on the host
(tpm_host_state) is replaced by a recorder returning a canned state, because the point here is which
reads it asks for and what it publishes. The role tests (tests/roles) run it through Ansible for real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.template import Templar, trust_as_template
from ansible_collections.tpmfleet.tpm.plugins.action.settings_check import ActionModule
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import AROUND, ROLES
from conftest import role_variables

USERS = {"root": ["x", "0", "0", "", "/root", "/bin/sh"], "keylime": ["x", "990", "990", "", "/", "/bin/false"]}
GROUPS = {"root": ["x", "0", ""], "tss": ["x", "106", ""]}
VERIFY = {"tpm_verify_user": "keylime", "tpm_verify_quote_count": 2, "tpm_verify_busy_retries": 5,
          "tpm_verify_timeout": 60, "tpm_quote_mode_tss_user": "tss"}  # fmt: skip


def run(role, variables, state=None, **args):
    """The action's result for ``role`` with the task variables ``variables``, and the reads it asked for."""
    return run_action({"role": role, **args}, variables, state)


def run_action(args, variables, state=None):
    task = Task()
    task.args = args
    loader = DataLoader()
    variables = {"inventory_hostname": "h1", **variables}
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="unused"))  # no connection: nothing runs remotely
    action = ActionModule(task, connection, PlayContext(), loader, Templar(loader=loader, variables=variables), None)
    reads = []

    def execute_module(module_name, module_args, task_vars):
        reads.append((module_name, module_args))
        return {"state": state or {}}

    action._execute_module = execute_module
    return action.run(task_vars=variables), reads


def test_settings_valid_without_the_host_need_no_read():
    result, reads = run("tpm_udev", {"tpm_udev_mode": "0660", "tpm_udev_rules_path": "/etc/udev/rules.d/70-t.rules"})
    assert not result.get("failed") and reads == [] and result["remote_executions"] == 0


def test_variables_are_templated_and_every_message_is_given_at_once():
    result, reads = run(
        "tpm_udev", {"tpm_udev_mode": trust_as_template("{{ '0666' }}"), "tpm_udev_rules_path": "/tmp/x.rules"}
    )
    assert result["failed"] and len(result["errors"]) == 2, result
    assert result["msg"] == " ".join(result["errors"])
    assert result["errors"][0].startswith("tpm_udev_mode") and '"0666"' in result["errors"][0]
    assert reads == [], "a bad input fails before anything is read on the host"


def test_the_accounts_the_preflight_read_are_used():
    facts = {"ansible_facts": {"getent_passwd": USERS, "getent_group": GROUPS}}
    result, reads = run("tpm_verify", {**VERIFY, **facts, "tpm_verify_user": "ghost"})
    assert reads == []
    assert result["failed"] and result["msg"].startswith("tpm_verify_user: user ghost does not exist on h1.")


def test_accounts_marked_stale_are_read_again():
    facts = {"ansible_facts": {"getent_passwd": {}, "getent_group": {}}, "tpmfleet_host_state_stale": ["accounts"]}
    state = {"getent_passwd": USERS, "getent_group": GROUPS, "tpmfleet_host_state": {}}
    result, reads = run("tpm_verify", {**VERIFY, **facts}, state)
    assert not result.get("failed"), result
    assert reads == [("tpmfleet.tpm.tpm_host_state", {"accounts": True, "as_facts": False})]


def test_accounts_missing_are_read_in_one_call_and_published():
    state = {"getent_passwd": USERS, "getent_group": GROUPS, "tpmfleet_host_state": {}}
    result, reads = run("tpm_verify", VERIFY, state)
    assert not result.get("failed"), result
    assert reads == [("tpmfleet.tpm.tpm_host_state", {"accounts": True, "as_facts": False})]
    assert result["remote_executions"] == 1
    assert result["ansible_facts"] == {"getent_passwd": USERS, "getent_group": GROUPS}


def test_tpm_access_publishes_its_plan():
    access = {
        "tpm_quote_mode_tss_user": "tss", "tpm_quote_mode_tss_group": "tss", "tpm_access_tss_gid": None,
        "tpm_access_tss_uid": None, "tpm_access_tss_home": "/var/lib/tpm", "tpm_access_docker_group": "docker",
        "tpm_access_docker_gid": None, "tpm_access_docker_group_manage": False, "tpm_access_consumer_users": [],
        "tpm_access_allow_gid_change": False, "tpm_access_allow_uid_change": False, "tpm_access_regroup_paths": [],
        "tpm_access_regroup_max_report": 20,
    }  # fmt: skip
    result, reads = run("tpm_access", {**access, "ansible_facts": {"getent_passwd": USERS, "getent_group": GROUPS}})
    assert not result.get("failed"), result
    assert reads == []
    plan = result["ansible_facts"]["tpmfleet_access_plan"]
    assert plan["todo"] is True and plan["user"]["create"] is True  # the tss user is missing


DIRECT = {"mode": "direct", "exclusive_device": "/dev/tpm0", "abrmd": {"running": False}}
ABRMD = {
    "tpm_abrmd_options": [], "tpm_abrmd_dbus_allowed_users": [], "tpm_abrmd_dbus_extra_groups": [],
    "tpm_abrmd_stop_holder_units": [], "tpm_quote_mode_tss_user": "tss", "tpm_quote_mode_tss_group": "tss",
    "tpm_quote_mode_profile": DIRECT,
}  # fmt: skip
HOLDER = {"pid": 7, "comm": "cat", "cmdline": "cat /dev/tpm0", "unit": "x.service"}


def test_holders_are_read_only_when_the_preflight_did_not():
    facts = {"ansible_facts": {"tpmfleet_host_state": {"holders": {"/dev/tpm0": [HOLDER]}}}}
    result, reads = run("tpm_abrmd", {**ABRMD, **facts})
    assert reads == [] and result["failed"] and "held by pid 7 (cat /dev/tpm0, unit x.service)" in result["msg"]
    # tpm_access's settings are unset here (the role is not in the play): none of its groups is ensured.
    state = {"tpmfleet_host_state": {"holders": {"/dev/tpm0": [HOLDER]}}}
    own = role_variables("tpm_abrmd")
    result, reads = run("tpm_abrmd", {**own, **ABRMD, "tpm_abrmd_stop_holder_units": ["x.service"]}, state)
    assert not result.get("failed"), result
    assert reads == [("tpmfleet.tpm.tpm_host_state", {"holders": ["/dev/tpm0"], "accounts": False, "as_facts": False})]
    # tpm_abrmd's own unit name, from its vars/main.yml as Ansible resolves it: tpm2-abrmd may hold the device.
    abrmd = {**HOLDER, "unit": "tpm2-abrmd.service"}
    result, _ = run("tpm_abrmd", {**own, **ABRMD}, {"tpmfleet_host_state": {"holders": {"/dev/tpm0": [abrmd]}}})
    assert not result.get("failed"), result


TCTI = {
    **role_variables("tpm_tcti_env"),
    "tpm_tcti_env_path": "/etc/tpm2/tcti.env",
    "tpm_tcti_env_services": ["a.service"],
    "tpm_tcti_env_require_services": True,
}
ABSENT = {"exists": False}


def test_tcti_env_reads_what_is_missing_and_merges_it_into_the_preflights_state():
    known = {"/etc/tpm2/tcti.env": ABSENT, "/etc/tpm2": {"exists": True, "isdir": True}}
    consumers = {"a.service": {"need_daemon_reload": True, "main_pid": 0, "environ": None}}
    preflight = {"paths": known, "globs": {}, "consumers": consumers}
    facts = {"ansible_facts": {"services": {"a.service": {}}, "tpmfleet_host_state": preflight}}
    # The consumer's drop-in directory and drop-in (tpm_tcti_env's plan compares the drop-in).
    dropins = ["/etc/systemd/system/a.service.d", "/etc/systemd/system/a.service.d/10-tpmfleet-tcti.conf"]
    state = {"tpmfleet_host_state": {"paths": dict.fromkeys(dropins, ABSENT)}}
    result, reads = run("tpm_tcti_env", {**TCTI, **facts}, state)
    assert not result.get("failed"), result
    options = {"paths": dropins, "markers": {}, "accounts": False, "as_facts": False}
    assert reads == [("tpmfleet.tpm.tpm_host_state", options)]
    merged = result["ansible_facts"]["tpmfleet_host_state"]
    assert merged["paths"] == {**known, **dict.fromkeys(dropins, ABSENT)} and merged["globs"] == {}
    # The consumers' plan, from the preflight's read of them (no read of its own).
    assert result["ansible_facts"]["tpmfleet_tcti_env_consumers"]["reload"] == ["a.service"]


def test_tcti_env_without_the_preflight_reads_services_and_paths_once():
    paths = {"/etc/tpm2/tcti.env": {"exists": True, "isreg": True, "has_marker": False}, "/etc/tpm2": ABSENT,
             "/etc/systemd/system/a.service.d": ABSENT}  # fmt: skip
    state = {"services": {}, "tpmfleet_host_state": {"paths": paths}}
    result, reads = run("tpm_tcti_env", TCTI, state)
    assert len(reads) == 1 and reads[0][1]["units"] == ["a.service", "tpm2.target"]
    assert reads[0][1]["consumers"] == ["a.service"] and "TPM2TOOLS_TCTI" in reads[0][1]["consumer_environ"]
    assert result["remote_executions"] == 1
    assert result["errors"][0].startswith("tpm_tcti_env_services names services that do not exist on h1: a.service")
    assert "that tpmfleet did not write" in result["errors"][1]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"role": "tpm_nope"}, "must be among tpm_quote_mode"),
        ({"role": "tpm_udev", "extra": 1}, "unsupported parameters extra"),
        ({"role": "tpm_udev", "roles": ["tpm_udev"]}, "either role"),
    ],
)
def test_bad_task_arguments_are_refused(args, fragment):
    with pytest.raises(AnsibleActionFail, match=fragment):
        run(args.pop("role"), {}, **args)


# --- the kernel's drivers -----------------------------------------------------------------------------------

KERNEL = {"tpm_kernel_drivers": ["tpm_tis", "no_such_tpm_module"], "tpm_kernel_device_timeout": 10,
          "tpm_kernel_persistent": False}  # fmt: skip


def test_the_drivers_are_checked_against_the_kernel_the_preflight_read():
    facts = {"ansible_facts": {"tpmfleet_host_state": PREFLIGHT_READ["tpmfleet_host_state"]}}
    result, reads = run("tpm_kernel", {**KERNEL, "tpm_kernel_drivers": ["tpm_tis"], **facts})
    assert not result.get("failed") and reads == [], result
    # A driver the preflight did not ask about is looked up: the one read asks for every driver.
    state = {
        "tpmfleet_host_state": {
            "kernel": {**PREFLIGHT_READ["tpmfleet_host_state"]["kernel"], "asked": ["no_such_tpm_module", "tpm_tis"]},
            "globs": {},
            "paths": {},
        }
    }
    result, reads = run("tpm_kernel", {**KERNEL, **facts}, state)
    assert [r[1]["kernel_modules"] for r in reads] == [["tpm_tis", "no_such_tpm_module"]]
    assert result["msg"].startswith("tpm_kernel_drivers names no_such_tpm_module, which the running kernel of h1 "
                                    "(6.12.0) has neither built in nor as a loadable module; its TPM drivers are "
                                    "tpm_crb (built-in), tpm_tis (built-in).")  # fmt: skip


def test_without_the_preflight_the_kernel_and_nodes_are_read_once_and_published_for_the_roles_plan():
    kernel = {**PREFLIGHT_READ["tpmfleet_host_state"]["kernel"], "asked": ["tpm_tis"]}
    globs = {"/dev/tpm[0-9]*": [], "/dev/tpmrm[0-9]*": []}
    state = {"tpmfleet_host_state": {"kernel": kernel, "globs": globs, "paths": {}}}
    result, reads = run("tpm_kernel", {**KERNEL, "tpm_kernel_drivers": ["tpm_tis"]}, state)
    assert not result.get("failed"), result
    assert reads == [("tpmfleet.tpm.tpm_host_state", {
        "kernel": True, "kernel_modules": ["tpm_tis"], "globs": list(globs), "paths": [], "markers": {},
        "checksum": False, "accounts": False, "as_facts": False})]  # fmt: skip
    published = result["ansible_facts"]["tpmfleet_host_state"]
    assert published["kernel"] == kernel and published["globs"] == globs and result["remote_executions"] == 1


# --- every role at once, as the preflight runs it ----------------------------

KERNEL_RM = {"mode": "kernel_rm", "exclusive_device": None, "abrmd": {"running": False},
             "container": {"devices": ["/dev/tpmrm0"]}}  # fmt: skip
MODULES_LOAD = {"/etc/modules-load.d/tpm_tis.conf": ABSENT, "/etc/modules-load.d/tpm_crb.conf": ABSENT}
PREFLIGHT_READ = {
    "getent_passwd": USERS,
    "getent_group": GROUPS,
    "services": {},
    "tpmfleet_host_state": {
        "paths": {"/etc/tpm2/tcti.env": ABSENT, "/etc/tpm2": ABSENT, **MODULES_LOAD},
        "globs": {"/dev/tpm[0-9]*": [], "/dev/tpmrm[0-9]*": []},
        "kernel": {"release": "6.12.0", "modules_read": True, "builtin": ["tpm_tis", "tpm_crb"], "loadable": [],
                   "loaded": [], "tpm_drivers": ["tpm_crb", "tpm_tis"], "asked": ["tpm_crb", "tpm_tis"]},
        "holders": {},
    },
}  # fmt: skip
# What the preflight's play has: every role's defaults and variables (its public include of them), the quote mode
# role's defaults and profile (its dependency), the facts read.
PREFLIGHT = {
    **role_variables(*ROLES, *AROUND),
    "tpm_quote_mode_tss_user": "tss",
    "tpm_quote_mode_tss_group": "tss",
    "tpm_quote_mode": "kernel_rm",
    "tpm_quote_mode_profile": KERNEL_RM,
    "ansible_facts": PREFLIGHT_READ,
}


def test_every_role_with_its_defaults_passes_without_a_read():
    result, reads = run_roles(PREFLIGHT)
    assert not result.get("failed"), result
    assert reads == [] and result["remote_executions"] == 0
    assert set(result["ansible_facts"]) == {"tpmfleet_access_plan", "tpmfleet_tcti_env_consumers"}
    assert result["ansible_facts"]["tpmfleet_tcti_env_consumers"] == {"reload": [], "restart": [], "why": {}}


def run_roles(variables, state=None):
    return run_action({"roles": list(ROLES)}, variables, state)


def test_a_setting_of_the_task_wins_over_the_role_default_and_defaults_template_with_it():
    result, _ = run_roles({**PREFLIGHT, "tpm_udev_mode": "0666", "tpm_access_docker_group": "dockremote"})
    assert result["failed"] and len(result["errors"]) == 1, result
    assert result["errors"][0].startswith("tpm_udev_mode must be an octal mode that gives nothing to other users")


def test_the_argument_spec_of_each_role_is_checked_as_ansible_checks_it():
    result, _ = run_roles({**PREFLIGHT, "tpm_verify_quote_count": "two", "tpm_kernel_persistent": "maybe"})
    assert result["failed"] and len(result["errors"]) == 2, result
    kernel, verify = result["errors"]
    assert kernel.startswith("Validation of arguments failed:\nargument 'tpm_kernel_persistent' is of type str")
    assert kernel.endswith("(role tpm_kernel).")
    assert verify.startswith("Validation of arguments failed:\nargument 'tpm_verify_quote_count' is of type str")


def test_every_problem_of_every_role_is_given_at_once():
    bad = {**PREFLIGHT, "tpm_kernel_drivers": "tpm_tis", "tpm_tcti_env_path": "/var/x", "tpm_verify_user": "a b"}
    result, _ = run_roles(bad)
    assert [e.split(" ")[0] for e in result["errors"]] == [
        "tpm_kernel_drivers", "tpm_tcti_env_path", "tpm_verify_user"]  # fmt: skip
