"""The roles' checks against what the host read (each role's file in plugins/plugin_utils/roles/):
names that must exist, the environment file's path, the holders of the exclusive device, the kernel's drivers."""

from __future__ import annotations

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import tpm_abrmd, tpm_kernel, tpm_tcti_env, tpm_verify
from test_validate import GOOD

# --- names that must exist on the host ----------------------------------------

USERS = {"root": ["x", "0", "0", "root", "/root", "/bin/bash"], "keylime": ["x", "990", "990", "", "/", "/bin/false"]}
GROUPS = {"root": ["x", "0", ""], "keylime": ["x", "990", ""], "tss": ["x", "106", "keylime"]}


def verify(user, **extra):
    return {**GOOD["tpm_verify"], "tpm_verify_user": user, **extra}


def abrmd(users=("root",), groups=(), **extra):
    return {
        **GOOD["tpm_abrmd"],
        "tpm_abrmd_dbus_allowed_users": list(users),
        "tpm_abrmd_dbus_extra_groups": list(groups),
        **extra,
    }


@pytest.mark.parametrize(
    "values",
    [
        verify(""),
        verify("keylime"),
        # The tss user is ensured by tpm_access before tpm_verify runs.
        verify("tss"),
        verify("tpm2", tpm_quote_mode_tss_user="tpm2"),
    ],
)
def test_the_verify_user_exists_or_is_made(values):
    assert tpm_verify.account_errors(values, USERS, GROUPS, host="h1") == []


def test_a_verify_user_missing_on_the_host_is_named_with_the_fix():
    errors = tpm_verify.account_errors(verify("keylime-agent"), USERS, GROUPS, host="h1")
    assert errors == [
        "tpm_verify_user: user keylime-agent does not exist on h1. Set it to the user the TPM consumer runs as "
        '(it must exist before the run), or to "" to run the checks as the connection user.'
    ]


@pytest.mark.parametrize(
    "values",
    [
        abrmd(),
        abrmd(users=["root", "keylime", "tss"], groups=["keylime"]),
        # tpm_access creates the tss group, and the docker group when it is managed.
        abrmd(groups=["tss", "docker"], tpm_access_docker_group="docker", tpm_access_docker_gid=951),
        abrmd(groups=["podman"], tpm_access_docker_group="podman", tpm_access_docker_group_manage="yes"),
    ],
)
def test_the_dbus_names_exist_or_are_made(values):
    assert tpm_abrmd.account_errors(values, USERS, GROUPS, host="h1") == []


def test_dbus_names_missing_on_the_host_are_named_with_the_fix():
    values = abrmd(users=["root", "ghost", "spook"], groups=["docker"], tpm_access_docker_group="docker")
    errors = tpm_abrmd.account_errors(values, USERS, GROUPS, host="h1")
    assert len(errors) == 2
    assert errors[0].startswith("tpm_abrmd_dbus_allowed_users: user(s) ghost, spook do not exist on h1;")
    assert "remove them from tpm_abrmd_dbus_allowed_users" in errors[0]
    assert errors[1].startswith("tpm_abrmd_dbus_extra_groups: group(s) docker do not exist on h1;")


# --- tpm_tcti_env against the host ----------------------------------------

ENV = "/etc/tpm2/tcti.env"
ABSENT = {"exists": False}
TCTI_ENV = {**GOOD["tpm_tcti_env"], "__tpm_tcti_env_marker": "# tpmfleet: TCTI for quote mode "}


def tcti_host(extra=None, services=None, file_stat=ABSENT, dir_stat=ABSENT):
    return tpm_tcti_env.file_errors({**TCTI_ENV, **(extra or {})}, services or {}, ENV, file_stat, dir_stat,
                                         host="h1")  # fmt: skip


def test_a_fresh_path_and_known_services_pass():
    assert tcti_host({"tpm_tcti_env_services": ["a.service"]}, services={"a.service": {}}) == []
    assert tcti_host(file_stat={"exists": True, "isreg": True, "has_marker": True}, dir_stat={"exists": True,
                     "isdir": True}) == []  # fmt: skip


def test_unknown_services_are_named_once_unless_not_required():
    errors = tcti_host({"tpm_tcti_env_services": ["a.service", "b.service", "b.service"]}, {"a.service": {}})
    assert errors == [
        "tpm_tcti_env_services names services that do not exist on h1: b.service; install them first, fix the "
        "names, or set tpm_tcti_env_require_services=false."
    ]
    many = tcti_host({"tpm_tcti_env_services": [f"s{i}.service" for i in range(200)]})
    assert len(many) == 1 and "s3.service, s4.service and 195 more; install them first" in many[0]
    assert tcti_host({"tpm_tcti_env_services": ["b.service"], "tpm_tcti_env_require_services": "false"}) == []


@pytest.mark.parametrize(
    ("file_stat", "dir_stat", "fragment"),
    [
        ({"exists": True, "islnk": True}, ABSENT, f"tpm_tcti_env_path {ENV} exists on h1 and is a symbolic link;"),
        ({"exists": True, "isdir": True}, ABSENT, "and is a directory; tpmfleet does not replace it."),
        ({"exists": True}, ABSENT, "and is not a regular file;"),
        (
            {"exists": True, "isreg": True, "has_marker": False},
            ABSENT,
            'that tpmfleet did not write (it has no line starting "# tpmfleet: TCTI for quote mode"); tpmfleet never',
        ),
        (ABSENT, {"exists": True, "islnk": True}, "The directory of tpm_tcti_env_path, /etc/tpm2, is a symbolic link"),
        (ABSENT, {"exists": True, "isreg": True}, "/etc/tpm2, is not a directory on h1;"),
    ],
)
def test_a_path_that_is_not_tpmfleets_to_write_is_refused(file_stat, dir_stat, fragment):
    errors = tcti_host(file_stat=file_stat, dir_stat=dir_stat)
    assert len(errors) == 1 and fragment in errors[0], errors
    assert errors[0].endswith("Nothing was changed.")


# --- who holds the exclusive device ------------------------------------------

DIRECT = {"mode": "direct", "exclusive_device": "/dev/tpm0"}


def test_holders_of_the_exclusive_device_other_than_the_allowed_units_are_named():
    holders = {"/dev/tpm0": [
        {"pid": 10, "comm": "tpm2-abrmd", "cmdline": "/usr/sbin/tpm2-abrmd", "unit": "tpm2-abrmd.service"},
        {"pid": 11, "comm": "agent", "cmdline": "", "unit": "keylime_agent.service"},
        {"pid": 12, "comm": "cat", "cmdline": "cat /dev/tpm0", "unit": None},
    ]}  # fmt: skip
    allowed = ["tpm2-abrmd.service", "keylime_agent.service"]
    assert tpm_abrmd.holder_errors(DIRECT, {"/dev/tpm0": holders["/dev/tpm0"][:2]}, allowed) == []
    errors = tpm_abrmd.holder_errors(DIRECT, holders, ["tpm2-abrmd.service"])
    assert errors == [
        "Quote mode direct needs /dev/tpm0 to itself, but it is held by pid 11 (agent, unit keylime_agent.service), "
        "pid 12 (cat /dev/tpm0, unit none). Nothing was changed. Stop that program, or list its unit in "
        "tpm_abrmd_stop_holder_units so that the run stops it, or use quote mode kernel_rm."
    ]


def test_modes_without_an_exclusive_device_have_no_holder_check():
    kernel_rm = {"mode": "kernel_rm", "exclusive_device": None}
    assert tpm_abrmd.holder_errors(kernel_rm, {"/dev/tpm0": [{"pid": 1}]}, []) == []
    assert tpm_abrmd.holder_errors(DIRECT, {}, []) == []


# --- the kernel's drivers ----------------------------------------------------------

# What tpm_host_state reads on a Debian cloud kernel: tpm_tis and tpm_crb built in, the rest loadable.
KERNEL = {
    "release": "6.12.0-cloud-amd64",
    "modules_read": True,
    "builtin": ["tpm", "tpm_crb", "tpm_tis", "tpm_tis_core", "ext4"],
    "loadable": ["tpm_tis_spi", "tpm_vtpm_proxy", "xen_tpmfront"],
    "loaded": ["virtio_net"],
    "tpm_drivers": ["tpm", "tpm_crb", "tpm_tis", "tpm_tis_core", "tpm_tis_spi", "tpm_vtpm_proxy", "xen_tpmfront"],
    "asked": [],
}


def kernel(drivers, state=KERNEL):
    return tpm_kernel.driver_errors({"tpm_kernel_drivers": drivers}, state, host="h1")


@pytest.mark.parametrize(
    "drivers", [["tpm_tis"], ["tpm_tis", "tpm_crb"], ["tpm-tis"], ["tpm_vtpm_proxy"], ["xen-tpmfront"], ["virtio_net"]]
)
def test_built_in_loadable_and_loaded_drivers_are_present(drivers):
    assert kernel(drivers) == []


def test_a_driver_the_kernel_lacks_is_named_with_the_tpm_drivers_it_has():
    assert kernel(["tpm_tis", "no_such_tpm_module"]) == [
        "tpm_kernel_drivers names no_such_tpm_module, which the running kernel of h1 (6.12.0-cloud-amd64) has "
        "neither built in nor as a loadable module; its TPM drivers are tpm (built-in), tpm_crb (built-in), tpm_tis "
        "(built-in), tpm_tis_core (built-in), tpm_tis_spi, tpm_vtpm_proxy, xen_tpmfront. Set tpm_kernel_drivers to "
        "the ones that match the TPM (tpm_tis for TIS/FIFO TPMs, tpm_crb for CRB and firmware TPMs). Nothing was "
        "changed."
    ]


def test_a_kernel_without_tpm_support_says_so_and_many_missing_drivers_are_cut_short():
    state = {**KERNEL, "builtin": ["ext4"], "loadable": [], "tpm_drivers": []}
    (message,) = kernel([f"tpm_x{i}" for i in range(9)], state)
    assert message.startswith("tpm_kernel_drivers names tpm_x0, tpm_x1, tpm_x2, tpm_x3, tpm_x4 and 4 more, which")
    assert "it has no TPM driver at all (no CONFIG_TCG_TPM)" in message


def test_without_the_kernels_module_lists_nothing_is_refused():
    # No /lib/modules/<release> (a container, a stripped host): modprobe has the last word, as before.
    assert kernel(["no_such_tpm_module"], {**KERNEL, "modules_read": False}) == []
    assert kernel(["no_such_tpm_module"], None) == []
