# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_preflight run by Ansible on the controller: a bad input stops the host in the preflight.

Every host of the inventory below is the controller itself (local connection)
with one bad input; one ansible-playbook run plays them all in parallel. The
play is the preflight followed by a sentinel task that writes a file: a host
that passed the preflight would change something. Each bad input must fail
its host in the preflight with ONE message that names the variable, and the
host must have changed nothing (no changed task, no sentinel, the controller's
users, groups and udev rules as they were). The message matrix itself is
unit-tested in tests/unit/plugins/plugin_utils/test_validate.py and test_access.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from roleplay import EVERY_ROLE

ROOT = Path(__file__).resolve().parent.parent.parent
MISSING_USER = "tpmfleet-no-such-user"

# The preflight's one task that checks every role's settings (the quote mode is checked before it, by its own role).

# host -> (its bad input, the task that must fail, a fragment of its one message)
BAD = {
    "udev-mode-newline": (
        {"tpm_udev_mode": "0660\n"},
        EVERY_ROLE,
        'tpm_udev_mode must be an octal mode that gives nothing to other users, such as "0660" or "0600" '
        '(got "0660\\n").',
    ),
    "udev-mode-unquoted": ({"tpm_udev_mode": 432}, EVERY_ROLE, "tpm_udev_mode must be"),
    "tss-user-root": (
        {"tpm_quote_mode_tss_user": "root"},
        "Check the tpm_quote_mode settings",
        "tpm_quote_mode_tss_user must not be root",
    ),
    "tss-group-newline": (
        {"tpm_quote_mode_tss_group": "tss\n"},
        "Check the tpm_quote_mode settings",
        'tpm_quote_mode_tss_group must be a group name such as tss (got "tss\\n")',
    ),
    "kernel-drivers-string": (
        {"tpm_kernel_drivers": "tpm_tis,tpm_crb"},
        EVERY_ROLE,
        "tpm_kernel_drivers must be a YAML list",
    ),
    "verify-user-missing": (
        {"tpm_verify_user": MISSING_USER},
        EVERY_ROLE,
        f"tpm_verify_user: user {MISSING_USER} does not exist on verify-user-missing.",
    ),
    "consumer-missing": (
        {"tpm_access_consumer_users": [MISSING_USER]},
        EVERY_ROLE,
        f"tpm_access_consumer_users: user(s) {MISSING_USER} do not exist on consumer-missing.",
    ),
    "dbus-user-missing": (
        {"tpm_quote_mode": "abrmd", "tpm_abrmd_dbus_allowed_users": ["root", MISSING_USER]},
        EVERY_ROLE,
        f"tpm_abrmd_dbus_allowed_users: user(s) {MISSING_USER} do not exist on dbus-user-missing;",
    ),
    "abrmd-option-tcti": (
        {"tpm_abrmd_options": ["--flush-all", "--tcti=device:/dev/tpmrm0"]},
        EVERY_ROLE,
        "tpm_abrmd_options must not set --tcti",
    ),
    # Issue 22's probe: "under /etc" is not confinement (every apt run and every sudo failed afterwards).
    "tcti-env-apt": (
        {"tpm_tcti_env_path": "/etc/apt/apt.conf.d/99tpm"},
        EVERY_ROLE,
        '(got "/etc/apt/apt.conf.d/99tpm": /etc/apt is read by other programs). Put it in /etc/tpm2, or list a '
        "directory of its own in tpm_tcti_env_dirs. Nothing was changed.",
    ),
    "tcti-env-sudoers": (
        {"tpm_tcti_env_path": "/etc/sudoers.d/tpm"},
        EVERY_ROLE,
        '(got "/etc/sudoers.d/tpm": /etc/sudoers.d is read by other programs)',
    ),
    "tcti-env-dirs-etc": (
        {"tpm_tcti_env_dirs": ["/etc"], "tpm_tcti_env_path": "/etc/tcti.env"},
        EVERY_ROLE,
        "tpm_tcti_env_dirs must list directories that hold only TPM configuration, such as /etc/tpm2: never /etc "
        "itself",
    ),
    "regroup-root": ({"tpm_access_regroup_paths": ["/"]}, EVERY_ROLE, 'fix: "/" (/ is a whole system tree).'),
    "tss-home-etc": ({"tpm_access_tss_home": "/etc"}, EVERY_ROLE, '(got "/etc": /etc is a whole system tree)'),
    # Shared accounts never join the tss group.
    "consumer-nobody": (
        {"tpm_access_consumer_users": ["nobody"]},
        EVERY_ROLE,
        "tpm_access_consumer_users must not list nobody: root needs no group to open the TPM",
    ),
    "consumer-root": ({"tpm_access_consumer_users": ["root"]}, EVERY_ROLE, "must not list root:"),
    # Refusals that name the variable, not systemd's error or a timeout.
    "service-300-characters": (
        {"tpm_tcti_env_services": ["a" * 292 + ".service"]},
        EVERY_ROLE,
        "(300 characters, systemd allows at most 255).",
    ),
    "services-10000": (
        {"tpm_tcti_env_services": [f"consumer{i}.service" for i in range(10000)]},
        EVERY_ROLE,
        "tpm_tcti_env_services lists 10000 items; at most 256 are supported",
    ),
    "holder-template": (
        {"tpm_abrmd_stop_holder_units": ["agent@.service"]},
        EVERY_ROLE,
        '"agent@.service" (a template: name its instance, such as agent@instance.service)',
    ),
    "quote-mode-empty": (
        {"tpm_quote_mode": ""},
        "Check the tpm_quote_mode settings",
        'tpm_quote_mode must be one of direct, kernel_rm, abrmd (got "").',
    ),
    "quote-mode-null": ({"tpm_quote_mode": None}, "Check the tpm_quote_mode settings", "(got null)."),
    "quote-mode-space": ({"tpm_quote_mode": " direct"}, "Check the tpm_quote_mode settings", '(got " direct").'),
    # The type layer: the role's argument spec is checked in the preflight too.
    "verify-count-type": (
        {"tpm_verify_quote_count": "two"},
        EVERY_ROLE,
        "argument 'tpm_verify_quote_count' is of type str and we were unable to convert to int",
    ),
}
GOOD = "all-valid"
# A role used without the preflight reads the host's accounts itself and checks them the same way.
STANDALONE = "verify-standalone"


def controller_state():
    """What a run that got past the preflight could change on the controller (not the rules other test files
    write for themselves meanwhile, 70-tpmfleet-test-*.rules)."""
    rules = [p for p in sorted(Path("/etc/udev/rules.d").glob("*")) if not p.name.startswith("70-tpmfleet-test-")]
    paths = [Path("/etc/passwd"), Path("/etc/group"), *rules]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preflight")
    hosts = {name: extra for name, (extra, _, _) in BAD.items()} | {GOOD: {}}
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "sentinel_dir": str(tmp / "sentinel"),
    }
    inventory = {
        "tpm_hosts": {"hosts": hosts, "vars": local},
        "standalone": {
            "hosts": {STANDALONE: {"tpm_verify_user": MISSING_USER, "tpm_verify_install_packages": False}},
            "vars": local,
        },
    }
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "sentinel").mkdir()
    play = [
        {
            "name": "Preflight, then a change",
            "hosts": "tpm_hosts",
            "gather_facts": False,
            "tasks": [
                {"name": "Validate everything", "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_preflight"}},
                {
                    "name": "Write the sentinel",
                    "ansible.builtin.copy": {
                        "content": "passed\n",
                        "dest": "{{ sentinel_dir }}/{{ inventory_hostname }}",
                        "mode": "0644",
                    },
                },
                {
                    # As the site and quote_mode playbooks include the roles after their preflight; no TPM
                    # here and nothing to install, so the role has nothing to do.
                    "name": "A role after the preflight",
                    "ansible.builtin.include_role": {
                        "name": "tpmfleet.tpm.tpm_verify",
                        # As playbooks/tasks/converge.yml chooses it.
                        "tasks_from": "{{ 'entry' if __tpm_preflight_plan is defined else 'main' }}",
                    },
                    "vars": {
                        "tpm_kernel_devices": [],
                        "tpm_verify_install_packages": False,
                    },
                },
            ],
        },
        {
            "name": "A role alone",
            "hosts": "standalone",
            "gather_facts": False,
            "roles": [{"role": "tpmfleet.tpm.tpm_verify"}],
        },
    ]
    (tmp / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_FORKS=str(len(hosts) + 1),
        ANSIBLE_STRATEGY="linear",
    )
    before = controller_state()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(tmp / "inventory.yml"),
            str(tmp / "play.yml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    after = controller_state()
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        raise AssertionError(f"unparseable output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return {"rc": proc.returncode, "out": out, "sentinels": tmp / "sentinel", "before": before, "after": after}


def results(out, host):
    """(task name, result) of every task that ran for ``host``."""
    return [(t["task"]["name"], t["hosts"][host]) for play in out["plays"] for t in play["tasks"] if host in t["hosts"]]


def account_reads(out, host):
    return [
        n
        for n, r in results(out, host)
        if n.endswith(("Read the host's groups", "Read the host's users")) and not r.get("skipped")
    ]


def host_reads(out, host):
    """The tasks of the roles that read the host (by their names: Read..., Find..., Look for...) and ran."""
    return [
        n
        for n, r in results(out, host)
        if " : " in n and n.split(" : ", 1)[1].startswith(("Read", "Find", "Look for")) and not r.get("skipped")
    ]


def test_valid_inputs_pass_the_preflight(preflight):
    stats = preflight["out"]["stats"][GOOD]
    assert stats["failures"] == 0, [(n, r.get("msg")) for n, r in results(preflight["out"], GOOD) if r.get("failed")]
    assert (preflight["sentinels"] / GOOD).read_text() == "passed\n"
    assert stats["changed"] == 1, "only the sentinel changes"
    # The host was read once, by the preflight (services, users and groups, paths, device nodes, drivers in
    # one call), and every role's checks reused what it read: no other read ran.
    assert host_reads(preflight["out"], GOOD) == [
        "tpmfleet.tpm.tpm_preflight : Read the host's state for every role's checks and plans"
    ]
    assert account_reads(preflight["out"], GOOD) == []
    # The roles' checks reused what it read: they ran nothing on the host and published only the plans of
    # tpm_access and of tpm_tcti_env's consumers.
    (check,) = [r for n, r in results(preflight["out"], GOOD) if n == EVERY_ROLE]
    plans = {"tpmfleet_access_plan", "tpmfleet_tcti_env_consumers"}
    assert check["remote_executions"] == 0 and set(check["ansible_facts"]) == plans, check


def test_a_role_after_the_preflight_of_its_play_does_not_validate_again(preflight):
    names = [n for n, r in results(preflight["out"], GOOD)]
    # Once, in the preflight's one check of every role; no role's own checks or argument spec run, not in the
    # preflight and not in the role's own run after it (its tasks/apply.yml), not even as a skipped task.
    assert names.count(EVERY_ROLE) == 1 and names.index(EVERY_ROLE) < names.index("Write the sentinel")
    validations = [n for n in names if n.startswith("tpmfleet.tpm.tpm_") and ("Validat" in n or "Check the" in n)]
    assert validations == [
        "tpmfleet.tpm.tpm_quote_mode : Validating arguments against arg spec 'main' - Validate the host's quote mode "
        "and publish what it implies",
        "tpmfleet.tpm.tpm_quote_mode : Check the tpm_quote_mode settings",
        "tpmfleet.tpm.tpm_preflight : Validating arguments against arg spec 'main' - Validate every role's inputs "
        "(and, in direct mode, who holds /dev/tpm0) before anything changes",
        EVERY_ROLE,
    ], validations


def test_the_quote_mode_is_validated_once_per_host(preflight):
    # tpm_quote_mode is the preflight's dependency and every role's: one instance, run once per host.
    names = [n for n, r in results(preflight["out"], GOOD)]
    assert names.count("tpmfleet.tpm.tpm_quote_mode : Check the tpm_quote_mode settings") == 1, names
    assert names.count("tpmfleet.tpm.tpm_quote_mode : Publish what the quote mode implies") == 1, names


def test_a_role_without_the_preflight_reads_the_accounts_and_stops_before_its_work(preflight):
    out = preflight["out"]
    failed = [(name, r) for name, r in results(out, STANDALONE) if r.get("failed")]
    assert [name for name, _ in failed] == ["tpmfleet.tpm.tpm_verify : Check the tpm_verify settings"]
    assert failed[0][1]["msg"].startswith(f"tpm_verify_user: user {MISSING_USER} does not exist on {STANDALONE}.")
    # The check read the users and groups itself, in its one call, and published them as the preflight does.
    assert {"getent_passwd", "getent_group"} <= set(failed[0][1]["ansible_facts"]), failed[0][1]
    assert account_reads(out, STANDALONE) == []
    assert out["stats"][STANDALONE]["changed"] == 0


@pytest.mark.parametrize("host", BAD)
def test_a_bad_input_fails_in_the_preflight_with_one_message_naming_it(preflight, host):
    extra, task, fragment = BAD[host]
    failed = [(name, r) for name, r in results(preflight["out"], host) if r.get("failed")]
    assert len(failed) == 1, failed
    name, result = failed[0]
    assert task in name, name
    message = result["msg"]
    assert fragment in message, message
    # One message of readable size, whatever the input (10,000 services once gave 160 kB).
    assert len(message) < 2000, len(message)
    variable = next(v for v in extra if v != "tpm_quote_mode") if len(extra) > 1 else next(iter(extra))
    assert message.startswith((variable, f"Validation of arguments failed:\nargument '{variable}'")), message


@pytest.mark.parametrize("host", BAD)
def test_a_host_stopped_by_the_preflight_changed_nothing(preflight, host):
    stats = preflight["out"]["stats"][host]
    assert stats["changed"] == 0
    assert not (preflight["sentinels"] / host).exists(), "the play went on after the preflight"


def test_the_controller_is_as_it_was(preflight):
    assert preflight["rc"] != 0
    assert preflight["after"] == preflight["before"]
