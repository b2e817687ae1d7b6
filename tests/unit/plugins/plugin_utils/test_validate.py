"""The roles' input checks that the argument specs cannot express: one bad input, one message naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import input_rules
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry

ROLES = Path(__file__).resolve().parents[4] / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "roles"


def defaults(role):
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}


TSS = defaults("tpm_quote_mode")
GOOD = {
    "tpm_quote_mode": {k: v for k, v in TSS.items() if k != "tpm_quote_mode_mask_abrmd_in_kernel_rm"},
    "tpm_kernel": defaults("tpm_kernel"),
    "tpm_access": {**defaults("tpm_access"), **TSS},
    "tpm_udev": defaults("tpm_udev"),
    "tpm_abrmd": {**defaults("tpm_abrmd"), **TSS},
    "tpm_verify": {**defaults("tpm_verify"), **TSS},
    "tpm_tcti_env": defaults("tpm_tcti_env"),
    "tpm_containers": defaults("tpm_containers"),
}


@pytest.mark.parametrize("role", GOOD)
def test_the_defaults_are_valid(role):
    assert registry.input_errors(GOOD[role], role) == []


@pytest.mark.parametrize(
    ("role", "extra"),
    [
        ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "tss$", "tpm_quote_mode_abrmd_tcti": "device"}),
        ("tpm_quote_mode", {"tpm_quote_mode_tss_group": "TSS_2.x", "tpm_quote_mode_abrmd_tcti": "device:/dev/tpmrm0"}),
        (
            "tpm_kernel",
            {"tpm_kernel_drivers": ["tpm_tis", "tpm-crb", "tpm_ftpm_tee"], "tpm_kernel_device_timeout": "0"},
        ),
        ("tpm_access", {"tpm_access_tss_gid": 950, "tpm_access_docker_gid": "951", "tpm_access_tss_uid": 65533}),
        (
            "tpm_access",
            {"tpm_access_consumer_users": ["keylime", {"name": "ci-runner", "docker": True}, {"name": "b"}]},
        ),
        ("tpm_access", {"tpm_access_tss_gid": "", "tpm_access_regroup_paths": [], "tpm_access_regroup_max_report": 0}),
        ("tpm_access", {"tpm_access_regroup_paths": ["/srv/device", "/var/lib/keylime", "/opt/agent/state"]}),
        ("tpm_access", {"tpm_access_tss_home": "/nonexistent", "tpm_access_regroup_paths": ["/var//lib/tpm/."]}),
        ("tpm_access", {"tpm_access_consumer_users": [f"agent{i}" for i in range(256)]}),
        ("tpm_udev", {"tpm_udev_mode": "600", "tpm_udev_rules_path": "/etc/udev/rules.d/99-local.rules"}),
        ("tpm_udev", {"tpm_udev_mode": "0640", "tpm_udev_rules_path": "/etc/udev/rules.d/tpm.rules"}),
        ("tpm_abrmd", {"tpm_abrmd_options": ["--flush-all", "--max-connections=64", "--prng-seed-file=/dev/urandom"]}),
        ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["keylime_agent.service", "session-3.scope", "a@b.service"]}),
        ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["a@b@c.service", "x" * 247 + ".service", "a\\x2db.scope"]}),
        ("tpm_verify", {"tpm_verify_user": "keylime", "tpm_verify_quote_count": "20", "tpm_verify_busy_retries": 0}),
        ("tpm_verify", {"tpm_verify_timeout": "600"}),
        ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2/keylime/tcti.env", "tpm_tcti_env_services": ["a@b.service"]}),
        ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc//tpm2/./tcti.env"}),
        (
            "tpm_tcti_env",
            {"tpm_tcti_env_dirs": ["/etc/tpm2", "/etc/keylime/tpm"], "tpm_tcti_env_path": "/etc/keylime/tpm/t.env"},
        ),
        ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/usr/local/etc/tpm2/"], "tpm_tcti_env_path": "/usr/local/etc/tpm2/t"}),
        (
            "tpm_tcti_env",
            {"tpm_tcti_env_services": ["systemd-foo\\x2dbar.service", "a:b_c.d-e.service", "x" * 247 + ".service"]},
        ),
        ("tpm_tcti_env", {"tpm_tcti_env_services": [f"agent{i}.service" for i in range(256)]}),
        ("tpm_quote_mode", {"tpm_quote_mode": "direct"}),
        ("tpm_quote_mode", {"tpm_quote_mode": "abrmd"}),
        ("tpm_containers", {"tpm_containers_wait": "yes", "tpm_containers_backup": 0, "tpm_containers_pull": "never"}),
        ("tpm_containers", {"tpm_containers_wait_timeout": "30", "tpm_containers_access_check": "warn"}),
    ],
)
def test_good_inputs_pass(role, extra):
    assert registry.input_errors({**GOOD[role], **extra}, role) == []


# (role, the one bad input, a fragment of the one message). Each message names the variable.
BAD = [
    # --- tpm_quote_mode: names that go into udev rules and D-Bus policies, tpm2-abrmd's TCTI
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "tss\n"}, 'must be a user name such as tss (got "tss\\n")'),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": ""}, 'must be a user name such as tss (got "")'),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "t ss"}, "must be a user name"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": 'tss"/><allow'}, "must be a user name"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "-tss"}, "must be a user name"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "1000"}, "must be a user name"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "a" * 33}, "at most 32 characters"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": 106}, "must be a user name such as tss (got 106)"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": None}, "must be a user name such as tss (got null)"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_user": "root"}, "tpm_quote_mode_tss_user must not be root"),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_group": "tss\t"}, 'must be a group name such as tss (got "tss\\t")'),
    ("tpm_quote_mode", {"tpm_quote_mode_tss_group": "nogroup"}, "tpm_quote_mode_tss_group must not be nogroup"),
    ("tpm_quote_mode", {"tpm_quote_mode_abrmd_tcti": "device:/dev/sda"}, "must be a device TCTI of a TPM node"),
    ("tpm_quote_mode", {"tpm_quote_mode_abrmd_tcti": "device:/dev/tpm0\n"}, "must be a device TCTI"),
    ("tpm_quote_mode", {"tpm_quote_mode_abrmd_tcti": "tabrmd"}, "use one of the TCTIs device"),
    ("tpm_quote_mode", {"tpm_quote_mode_abrmd_tcti": ""}, "tcti is empty"),
    ("tpm_quote_mode", {"tpm_quote_mode_abrmd_tcti": ["device"]}, "not a string"),
    # The mode, as JSON: "" and " direct" are visible.
    ("tpm_quote_mode", {"tpm_quote_mode": ""}, 'tpm_quote_mode must be one of direct, kernel_rm, abrmd (got "")'),
    ("tpm_quote_mode", {"tpm_quote_mode": None}, "must be one of direct, kernel_rm, abrmd (got null)"),
    ("tpm_quote_mode", {"tpm_quote_mode": " direct"}, '(got " direct")'),
    ("tpm_quote_mode", {"tpm_quote_mode": "direct\n"}, '(got "direct\\n")'),
    ("tpm_quote_mode", {"tpm_quote_mode": "Direct"}, '(got "Direct")'),
    ("tpm_quote_mode", {"tpm_quote_mode": 1}, "(got 1)"),
    # --- tpm_kernel
    ("tpm_kernel", {"tpm_kernel_drivers": "tpm_tis,tpm_crb"}, 'not a string ("tpm_tis,tpm_crb")'),
    ("tpm_kernel", {"tpm_kernel_drivers": []}, "tpm_kernel_drivers must name at least one kernel driver"),
    ("tpm_kernel", {"tpm_kernel_drivers": {"tpm_tis": True}}, 'not a mapping ({"tpm_tis": true})'),
    ("tpm_kernel", {"tpm_kernel_drivers": None}, "must be a YAML list such as [tpm_tis, tpm_crb], not null"),
    ("tpm_kernel", {"tpm_kernel_drivers": ["tpm_tis\n"]}, 'these are not: "tpm_tis\\n"'),
    ("tpm_kernel", {"tpm_kernel_drivers": ["tpm_tis", "TPM CRB", 5]}, 'these are not: "TPM CRB", 5'),
    ("tpm_kernel", {"tpm_kernel_drivers": [""]}, 'these are not: ""'),
    ("tpm_kernel", {"tpm_kernel_drivers": ["tpm_tis"] * 257}, "tpm_kernel_drivers lists 257 items; at most 256"),
    (
        "tpm_kernel",
        {"tpm_kernel_drivers": [f"TPM {i}" for i in range(20)]},
        'these are not: "TPM 0", "TPM 1", "TPM 2", "TPM 3", "TPM 4" and 15 more.',
    ),
    ("tpm_kernel", {"tpm_kernel_device_timeout": -1}, "tpm_kernel_device_timeout must be a number of seconds from 0"),
    ("tpm_kernel", {"tpm_kernel_device_timeout": 601}, "from 0 to 600 (got 601)"),
    ("tpm_kernel", {"tpm_kernel_device_timeout": True}, "from 0 to 600 (got true)"),
    ("tpm_kernel", {"tpm_kernel_device_timeout": "10\n"}, 'from 0 to 600 (got "10\\n")'),
    # --- tpm_access: IDs
    ("tpm_access", {"tpm_access_tss_gid": 0}, "tpm_access_tss_gid must be null (keep what the host has) or a number"),
    ("tpm_access", {"tpm_access_tss_gid": 65534}, "from 1 to 65533 (got 65534)"),
    ("tpm_access", {"tpm_access_tss_uid": True}, "tpm_access_tss_uid must be null"),
    ("tpm_access", {"tpm_access_docker_gid": "951\n"}, "tpm_access_docker_gid must be null (keep what the host has)"),
    ("tpm_access", {"tpm_access_docker_gid": -5}, "(got -5)"),
    (
        "tpm_access",
        {"tpm_access_tss_gid": 950, "tpm_access_docker_gid": "950"},
        "tpm_access_tss_gid and tpm_access_docker_gid are both 950: give the two groups different GIDs",
    ),
    # --- tpm_access: names
    ("tpm_access", {"tpm_access_docker_group": "docker\n"}, "tpm_access_docker_group must be a group name"),
    ("tpm_access", {"tpm_access_docker_group": ""}, "tpm_access_docker_group must be a group name"),
    ("tpm_access", {"tpm_access_docker_group": "root"}, "tpm_access_docker_group must not be root"),
    ("tpm_access", {"tpm_access_docker_group": "tss"}, "must differ from the tss group tpm_quote_mode_tss_group"),
    ("tpm_access", {"tpm_access_consumer_users": "keylime"}, "tpm_access_consumer_users must be a YAML list"),
    ("tpm_access", {"tpm_access_consumer_users": ["keylime\n"]}, 'these are not: "keylime\\n"'),
    (
        "tpm_access",
        {"tpm_access_consumer_users": [{"name": "a", "docker": "yes"}]},
        'not: {"name": "a", "docker": "yes"}',
    ),
    ("tpm_access", {"tpm_access_consumer_users": [{"name": "a", "groups": ["x"]}]}, 'not: {"name": "a", "groups"'),
    ("tpm_access", {"tpm_access_consumer_users": [{"docker": True}]}, 'these are not: {"docker": true}'),
    ("tpm_access", {"tpm_access_consumer_users": [1000, ["a"]]}, 'these are not: 1000, ["a"]'),
    # --- tpm_access: root and shared accounts never join the tss group
    ("tpm_access", {"tpm_access_consumer_users": ["nobody"]}, "tpm_access_consumer_users must not list nobody:"),
    ("tpm_access", {"tpm_access_consumer_users": ["keylime", "root"]}, "must not list root: root needs no group"),
    ("tpm_access", {"tpm_access_consumer_users": [{"name": "nogroup", "docker": True}]}, "must not list nogroup"),
    ("tpm_access", {"tpm_access_consumer_users": ["nobody", "root"]}, "UID or GID 65534, the kernel's overflow ID"),
    ("tpm_access", {"tpm_access_consumer_users": ["keylime"] * 257}, "tpm_access_consumer_users lists 257 items"),
    # --- tpm_access: paths
    ("tpm_access", {"tpm_access_tss_home": "var/lib/tpm"}, "tpm_access_tss_home must be an absolute path"),
    ("tpm_access", {"tpm_access_tss_home": "/var/lib/tpm\n"}, '(got "/var/lib/tpm\\n": control characters)'),
    ("tpm_access", {"tpm_access_tss_home": "/"}, '(got "/": / is a whole system tree)'),
    ("tpm_access", {"tpm_access_tss_home": "/etc"}, "/etc is a whole system tree"),
    ("tpm_access", {"tpm_access_tss_home": "/etc/sudoers.d/tss"}, "/etc/sudoers.d is read by other programs"),
    ("tpm_access", {"tpm_access_tss_home": "/tmp/tss"}, "/tmp is writable by every user"),
    ("tpm_access", {"tpm_access_tss_home": "/var/lib/../../etc"}, "a '..' component"),
    ("tpm_access", {"tpm_access_tss_home": "/var/lib:tpm"}, "it goes into /etc/passwd"),
    ("tpm_access", {"tpm_access_tss_home": ""}, "tpm_access_tss_home must be an absolute path"),
    ("tpm_access", {"tpm_access_regroup_paths": "/var/lib/tpm"}, "tpm_access_regroup_paths must be a YAML list"),
    ("tpm_access", {"tpm_access_regroup_paths": ["/var/lib/tpm", "lib"]}, 'fix: "lib" (not an absolute path)'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/"]}, 'fix: "/" (/ is a whole system tree)'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/etc"]}, 'fix: "/etc" (/etc is a whole system tree)'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/usr", "/bin"]}, '"/usr" (/usr is a whole system tree), "/bin"'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/var/lib/"]}, 'fix: "/var/lib/" (/var/lib is a whole system'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/etc/apt"]}, "(/etc/apt is read by other programs)"),
    ("tpm_access", {"tpm_access_regroup_paths": ["/srv"] * 257}, "tpm_access_regroup_paths lists 257 items"),
    ("tpm_access", {"tpm_access_regroup_paths": ["/dev"]}, 'fix: "/dev"'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/sys/class/tpm"]}, 'fix: "/sys/class/tpm"'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/var/../proc/1"]}, "fix: \"/var/../proc/1\" (a '..' component)"),
    ("tpm_access", {"tpm_access_regroup_paths": ["//dev/"]}, 'fix: "//dev/" (/dev is a kernel file system)'),
    ("tpm_access", {"tpm_access_regroup_paths": ["/srv/x\n"]}, 'fix: "/srv/x\\n"'),
    ("tpm_access", {"tpm_access_regroup_max_report": -1}, "tpm_access_regroup_max_report must be a number of paths"),
    ("tpm_access", {"tpm_access_regroup_max_report": "many"}, '(got "many")'),
    # --- tpm_udev
    ("tpm_udev", {"tpm_udev_mode": "0660\n"}, 'gives nothing to other users, such as "0660" or "0600" (got "0660\\n")'),
    ("tpm_udev", {"tpm_udev_mode": "0666"}, "tpm_udev_mode must be an octal mode that gives nothing to other users"),
    ("tpm_udev", {"tpm_udev_mode": "0680"}, '(got "0680")'),
    ("tpm_udev", {"tpm_udev_mode": "u=rw,g=rw"}, "tpm_udev_mode must be an octal mode"),
    ("tpm_udev", {"tpm_udev_mode": ""}, '(got "")'),
    ("tpm_udev", {"tpm_udev_mode": 432}, "got the number 432: YAML reads an unquoted 0660 as 432"),
    ("tpm_udev", {"tpm_udev_mode": 660}, "got the number 660"),
    ("tpm_udev", {"tpm_udev_rules_path": "/etc/udev/rules.d/70-tpm.rules\n"}, "must be a .rules file in /etc/udev"),
    ("tpm_udev", {"tpm_udev_rules_path": "/etc/udev/rules.d/../70-tpm.rules"}, "tpm_udev_rules_path must be"),
    ("tpm_udev", {"tpm_udev_rules_path": "/lib/udev/rules.d/70-tpm.rules"}, "tpm_udev_rules_path must be"),
    ("tpm_udev", {"tpm_udev_rules_path": "/etc/udev/rules.d/70-tpm.conf"}, "tpm_udev_rules_path must be"),
    (
        "tpm_udev",
        {"tpm_udev_rules_path": "/etc/udev/rules.d/50-tpm.rules"},
        "tpm_udev_rules_path must sort after the distribution's 60-tpm-udev.rules",
    ),
    # --- tpm_abrmd
    ("tpm_abrmd", {"tpm_abrmd_options": "--flush-all"}, "tpm_abrmd_options must be a YAML list"),
    ("tpm_abrmd", {"tpm_abrmd_options": 5}, "not a number (5)"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--flush-all\n"]}, 'these are not: "--flush-all\\n"'),
    ("tpm_abrmd", {"tpm_abrmd_options": ["-f"]}, "tpm_abrmd_options must be long options"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--logger=syslog --allow-root"]}, "these are not"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--prng-seed-file=$HOME/x"]}, "these are not"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--max-connections=64;rm"]}, "these are not"),
    ("tpm_abrmd", {"tpm_abrmd_options": [""]}, 'these are not: ""'),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--tcti=device:/dev/tpm0"]}, "must not set --tcti (the TCTI comes from"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--session"]}, "must not set --session (consumers and the D-Bus policy"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--dbus-name=x.y"]}, "must not set --dbus-name"),
    (
        "tpm_abrmd",
        {"tpm_abrmd_dbus_allowed_users": ["root", "keylime\n"]},
        "tpm_abrmd_dbus_allowed_users must list user",
    ),
    ("tpm_abrmd", {"tpm_abrmd_dbus_allowed_users": "root"}, "tpm_abrmd_dbus_allowed_users must be a YAML list"),
    ("tpm_abrmd", {"tpm_abrmd_dbus_extra_groups": ["a<b"]}, "tpm_abrmd_dbus_extra_groups must list group names"),
    (
        "tpm_abrmd",
        {"tpm_abrmd_dbus_allowed_users": ["root", "nobody"]},
        "tpm_abrmd_dbus_allowed_users must not list nobody",
    ),
    ("tpm_abrmd", {"tpm_abrmd_dbus_extra_groups": ["nogroup"]}, "tpm_abrmd_dbus_extra_groups must not list nogroup"),
    ("tpm_abrmd", {"tpm_abrmd_dbus_extra_groups": ["g"] * 257}, "tpm_abrmd_dbus_extra_groups lists 257 items"),
    ("tpm_abrmd", {"tpm_abrmd_options": ["--flush-all"] * 300}, "tpm_abrmd_options lists 300 items; at most 256"),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["keylime_agent"]}, 'these are not: "keylime_agent"'),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["a.service\n"]}, "tpm_abrmd_stop_holder_units must list systemd"),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["my agent.service"]}, "tpm_abrmd_stop_holder_units must list"),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": "a.service"}, "tpm_abrmd_stop_holder_units must be a YAML list"),
    (
        "tpm_abrmd",
        {"tpm_abrmd_stop_holder_units": ["a" * 300 + ".service"]},
        "(308 characters, systemd allows at most 255)",
    ),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["agent@.service"]}, "(a template: name its instance"),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["a.socket"]}, '"a.socket" (does not end in .service or .scope)'),
    ("tpm_abrmd", {"tpm_abrmd_stop_holder_units": ["u.scope"] * 257}, "tpm_abrmd_stop_holder_units lists 257 items"),
    # --- tpm_verify
    ("tpm_verify", {"tpm_verify_user": "keylime\n"}, "tpm_verify_user must be the name of the consumer's user"),
    ("tpm_verify", {"tpm_verify_user": "key lime"}, '(got "key lime")'),
    ("tpm_verify", {"tpm_verify_user": None}, "(got null)"),
    ("tpm_verify", {"tpm_verify_quote_count": 0}, "tpm_verify_quote_count must be a number of quotes from 1 to 20"),
    ("tpm_verify", {"tpm_verify_quote_count": "21"}, '(got "21")'),
    ("tpm_verify", {"tpm_verify_quote_count": True}, "(got true)"),
    (
        "tpm_verify",
        {"tpm_verify_busy_retries": 61},
        "tpm_verify_busy_retries must be a number of attempts from 0 to 60",
    ),
    ("tpm_verify", {"tpm_verify_busy_retries": "5\n"}, "tpm_verify_busy_retries must be"),
    ("tpm_verify", {"tpm_verify_timeout": 4}, "tpm_verify_timeout must be a number of seconds from 5 to 600"),
    ("tpm_verify", {"tpm_verify_timeout": "60s"}, "tpm_verify_timeout must be"),
    # --- tpm_tcti_env: a file in a directory of TPM configuration only, systemd services
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2/tcti.env\n"}, '(got "/etc/tpm2/tcti.env\\n": control'),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/../root/tcti.env"}, "a '..' component"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2/"}, '(got "/etc/tpm2/": not a file name)'),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc"}, '(got "/etc": /etc is a whole system tree)'),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2"}, '/etc is not one of tpm_tcti_env_dirs ["/etc/tpm2"]'),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tcti.env"}, "/etc is not one of tpm_tcti_env_dirs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/var/tcti.env"}, "/var is not one of tpm_tcti_env_dirs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2.env"}, "/etc is not one of tpm_tcti_env_dirs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2/tcti env"}, "characters other than letters, digits"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": 5}, "(got 5: not an absolute path)"),
    # The probe's two paths: every apt run and every sudo failed afterwards.
    (
        "tpm_tcti_env",
        {"tpm_tcti_env_path": "/etc/apt/apt.conf.d/99tpm"},
        "tpm_tcti_env_path must be a file in a directory that holds only TPM configuration, such as "
        '/etc/tpm2/tcti.env (got "/etc/apt/apt.conf.d/99tpm": /etc/apt is read by other programs). Put it in '
        "/etc/tpm2, or list a directory of its own in tpm_tcti_env_dirs. Nothing was changed.",
    ),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/sudoers.d/tpm"}, "/etc/sudoers.d is read by other programs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/default/tpm2-tcti"}, "/etc/default is read by other programs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/etc/tpm2-tss/tcti.env"}, "/etc/tpm2-tss is read by other programs"),
    ("tpm_tcti_env", {"tpm_tcti_env_path": "/tmp/x.env"}, "/tmp is writable by every user"),
    (
        "tpm_tcti_env",
        {"tpm_tcti_env_dirs": ["/etc/keylime/tpm"], "tpm_tcti_env_path": "/etc/tpm2/tcti.env"},
        '/etc/tpm2 is not one of tpm_tcti_env_dirs ["/etc/keylime/tpm"]',
    ),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": "/etc/tpm2"}, "tpm_tcti_env_dirs must be a YAML list of directories"),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": []}, "(got [])"),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/etc/tpm2", "/etc"]}, 'fix: "/etc" (/etc is a whole system tree).'),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/etc/tpm2", "tpm"]}, 'fix: "tpm" (not an absolute path).'),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/etc/tpm2", "/etc/tp m"]}, '"/etc/tp m" (characters other than'),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/etc/tpm2", "/etc/tpm2/../apt"]}, "(a '..' component)"),
    ("tpm_tcti_env", {"tpm_tcti_env_dirs": ["/etc/tpm2"] * 257}, "tpm_tcti_env_dirs lists 257 items"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": "keylime_agent.service"}, "must be a YAML list of systemd units"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["keylime_agent"]}, '"keylime_agent" (does not end in .service)'),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["a.service\n"]}, '"a.service\\n" (characters systemd does not'),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["a b.service"]}, "must list systemd unit names ending in .service"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["@b.service"]}, "(nothing before '@')"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": [".service"]}, "(no name before the suffix)"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["a\\.service"]}, "(characters systemd does not allow"),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["agent@.service"]}, "(a template: name its instance, such as"),
    # The probe's 300-character name got systemd's own error; 10,000 services a 77 s timeout.
    (
        "tpm_tcti_env",
        {"tpm_tcti_env_services": ["a" * 292 + ".service"]},
        "(300 characters, systemd allows at most 255)",
    ),
    ("tpm_tcti_env", {"tpm_tcti_env_services": ["x" * 248 + ".service"]}, "(256 characters, systemd allows"),
    (
        "tpm_tcti_env",
        {"tpm_tcti_env_services": [f"c{i}.service" for i in range(10000)]},
        "tpm_tcti_env_services lists 10000 items; at most 256 are supported",
    ),
    ("tpm_tcti_env", {"tpm_tcti_env_services": [f"c {i}.service" for i in range(40)]}, "and 35 more."),
    # --- tpm_containers: what is not a project
    ("tpm_containers", {"tpm_containers_wait_timeout": 0}, "tpm_containers_wait_timeout must be a number of seconds"),
    ("tpm_containers", {"tpm_containers_wait_timeout": "30\n"}, "tpm_containers_wait_timeout must be"),
]


def _var(extra):
    return next(iter(extra))


@pytest.mark.parametrize(
    ("role", "extra", "fragment"), BAD, ids=[f"{r}-{_var(e)}-{i}" for i, (r, e, _) in enumerate(BAD)]
)
def test_one_bad_input_gives_one_message_naming_it(role, extra, fragment):
    errors = registry.input_errors({**GOOD[role], **extra}, role)
    assert len(errors) == 1, errors
    assert fragment in errors[0], errors[0]
    # The message names the variable (the first one of the pair for cross-field rules).
    assert _var(extra) in errors[0]
    # Control characters in the value are shown escaped, never raw.
    assert not re.search(r"[\x00-\x1f]", errors[0])


def test_several_bad_inputs_give_a_message_each():
    values = {**GOOD["tpm_access"], "tpm_access_tss_gid": 0, "tpm_access_tss_home": "x", "tpm_access_docker_group": ""}
    errors = registry.input_errors(values, "tpm_access")
    assert [e.split(" ")[0] for e in errors] == ["tpm_access_tss_gid", "tpm_access_docker_group", "tpm_access_tss_home"]


def test_an_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown role 'tpm_nope'"):
        registry.input_errors({}, "tpm_nope")
    with pytest.raises(ValueError, match="must be a dict"):
        registry.input_errors(["tpm_udev_mode"], "tpm_udev")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("tss", True),
        ("_tss", True),
        ("Keylime.Agent-2", True),
        ("host$", True),
        ("9user", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("", False),
        ("1000", False),
        (".tss", False),
        ("-tss", False),
        ("tss\n", False),
        ("t\x00ss", False),
        ("tss$$", False),
        ("t$s", False),
        ("tss ", False),
        ("tss/../x", False),
        ("tss:x", False),
        ("tšs", False),
        (None, False),
        (7, False),
    ],
)
def test_the_one_account_name_grammar_is_a_full_match(name, ok):
    assert input_rules.account_name_ok(name) is ok


# --- the variables each role's check resolves ------------------------------


def argument_spec_options(role):
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return {name for spec in specs.values() for name in spec.get("options", {})}


# What a role publishes for the others (tpm_quote_mode's profile of the host's mode).
PUBLISHED = {"tpm_quote_mode_profile"}


@pytest.mark.parametrize("role", registry.checked())
def test_each_checked_variable_is_a_setting_or_internal_value_of_a_role(role):
    inputs = set(registry.spec(role).INPUTS)
    known = set().union(*(argument_spec_options(r) | set(defaults(r)) for r in registry.checked())) | PUBLISHED
    internal = {n for n in inputs if n.startswith("__")}
    assert inputs - internal <= known
    own = {n for n in inputs if n.startswith(role + "_")}
    # The role's own settings that its checks read are in its argument spec.
    assert own <= argument_spec_options(role)
    for name in internal:
        assert name.startswith(f"__{role}_")
        assert name in yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text())


# --- tpm_verify_endorsement_auth: a secret, checked without ever being shown ----------------------------------

from hypothesis import given, settings
from hypothesis import strategies as st

_VERIFY_OK = {
    "tpm_verify_user": "",
    "tpm_verify_quote_count": 2,
    "tpm_verify_busy_retries": 3,
    "tpm_verify_timeout": 30,
}


@pytest.mark.parametrize("secret", ["", None, "s3cret", "x" * 64, "é" * 32])
def test_endorsement_auth_of_at_most_64_bytes_is_accepted(secret):
    assert registry.spec("tpm_verify").input_errors({**_VERIFY_OK, "tpm_verify_endorsement_auth": secret}) == []


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("x" * 65, "got 65 bytes"),
        ("é" * 33, "got 66 bytes"),
        ("pass\x00word", "got 9 bytes, with a NUL"),
        (1234, "must be a string"),
    ],
)
def test_endorsement_auth_that_the_tpm_cannot_take_is_refused_by_length_only(secret, expected):
    errors = registry.spec("tpm_verify").input_errors({**_VERIFY_OK, "tpm_verify_endorsement_auth": secret})
    assert len(errors) == 1 and errors[0].startswith("tpm_verify_endorsement_auth must ")
    assert expected in errors[0]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=65, max_size=300) | st.tuples(st.text(max_size=30), st.text(max_size=30)).map("\x00".join))
def test_a_refused_endorsement_auth_never_appears_in_the_message(secret):
    # more than 64 characters is more than 64 bytes; a NUL anywhere is refused whatever the length
    errors = registry.spec("tpm_verify").input_errors({**_VERIFY_OK, "tpm_verify_endorsement_auth": secret})
    assert len(errors) == 1
    assert secret not in errors[0] and input_rules.shown(secret) not in errors[0]


def test_what_the_checks_leave_to_the_argument_spec_is_in_it():
    """tpm_containers' flags, pull policy and access check are refused by the argument spec (Ansible's check and
    the preflight's run it before the role's checks), so the role's file does not check them again."""
    options = registry.argument_spec("tpm_containers")
    for flag in ("tpm_containers_allow_docker_socket", "tpm_containers_wait", "tpm_containers_remove_orphans",
                 "tpm_containers_backup"):  # fmt: skip
        assert options[flag]["type"] == "bool"
    assert options["tpm_containers_pull"]["choices"] == ["missing", "always", "never", "policy"]
    assert options["tpm_containers_access_check"]["choices"] == ["fail", "warn"]
