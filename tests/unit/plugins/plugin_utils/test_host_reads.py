"""What each role reads on the host (its reads() in plugins/plugin_utils/roles/): one entry per role of the list,
built from the role's variables as Ansible resolved them (its defaults and vars/main.yml in the play)."""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import TPM_NODE_GLOBS
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import AROUND, ROLES
from conftest import role_variables

DIRECT = {"exclusive_device": "/dev/tpm0", "container": {"devices": ["/dev/tpm0"]}}
KERNEL_RM = {"exclusive_device": None, "container": {"devices": ["/dev/tpmrm0"]}}


def test_every_role_of_the_role_list_says_what_it_reads():
    assert all(hasattr(registry.spec(r), "reads") for r in (*ROLES, *AROUND))


def test_the_defaults_of_the_roles_give_the_reads_of_a_plain_host():
    got = registry.reads(ROLES, {**role_variables(*ROLES), "tpm_quote_mode_profile": KERNEL_RM})
    assert got == {
        "units": ["tpm2-abrmd.service"],
        "paths": [
            "/etc/modules-load.d/tpm_tis.conf",
            "/etc/modules-load.d/tpm_crb.conf",
            "/etc/udev/rules.d/70-tpmfleet-tpm.rules",
            "/etc/systemd/system/tpm2-abrmd.service.d/tpmfleet.conf",
            "/etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf",
            "/etc/tpm2/tcti.env",
            "/etc/tpm2",
        ],
        "markers": {
            "/etc/modules-load.d/tpm_tis.conf": r" *tpm_tis *(?:[#;].*)?$",
            "/etc/modules-load.d/tpm_crb.conf": r" *tpm_crb *(?:[#;].*)?$",
            "/etc/tpm2/tcti.env": "# tpmfleet: TCTI for quote mode ",
        },
        "globs": ["/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*"],
        "kernel": True,
        "kernel_modules": ["tpm_tis", "tpm_crb"],
        "holders": [],
        "consumers": [],
        "consumer_environ": [],
        # Whether tpm_verify's tools are installed: its package task asks the package manager only for a missing one.
        "packages": ["tpm2-tools", "python3-tpm2-pytss"],
        "accounts": True,
    }


def test_the_host_values_decide_the_units_paths_and_holders():
    values = {
        **role_variables(*ROLES),
        "tpm_quote_mode_profile": DIRECT,
        "tpm_tcti_env_path": "/etc//tpm2/./other.env",
        "tpm_tcti_env_services": ["keylime_agent.service", "tpm2-abrmd.service"],
        "tpm_abrmd_stop_holder_units": ["old-agent.service"],
        "tpm_containers_projects": [{"name": "agent"}],
        "tpm_kernel_persistent": False,
    }
    got = registry.reads(ROLES, values)
    # tpm2.target: whether the consumer drop-ins can order after it.
    assert got["units"] == ["tpm2-abrmd.service", "old-agent.service", "keylime_agent.service", "tpm2.target"]
    assert got["paths"][:3] == ["/etc/udev/rules.d/70-tpmfleet-tpm.rules",
                                "/etc/systemd/system/tpm2-abrmd.service.d/tpmfleet.conf",
                                "/etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"]  # fmt: skip
    assert got["paths"][3:] == [
        "/etc/tpm2/other.env",
        "/etc/tpm2",
        # Each consumer's drop-in directory and drop-in: tpm_tcti_env's plan compares the drop-in.
        "/etc/systemd/system/keylime_agent.service.d",
        "/etc/systemd/system/keylime_agent.service.d/10-tpmfleet-tcti.conf",
        "/etc/systemd/system/tpm2-abrmd.service.d",
        "/etc/systemd/system/tpm2-abrmd.service.d/10-tpmfleet-tcti.conf",
        "/dev/tpm0",
    ]
    assert got["holders"] == ["/dev/tpm0"]
    assert list(got["markers"]) == ["/etc/tpm2/other.env"]


def test_a_driver_is_in_its_modules_load_file_as_modprobe_reads_it(tmp_path):
    marker = registry.reads(["tpm_kernel"], {"tpm_kernel_drivers": ["tpm_tis"], "tpm_kernel_persistent": "yes"})[
        "markers"
    ]["/etc/modules-load.d/tpm_tis.conf"]
    import re

    for text, found in (("tpm_tis\n", True), ("  tpm_tis  # TPM\n", True), ("tpm_tis_core\n", False),
                        ("# tpm_tis\n", False), ("other\ntpm_tis", True)):  # fmt: skip
        assert (re.search("^(?:" + marker + ")", text, re.MULTILINE) is not None) is found, text


def test_the_distributions_diverted_d_bus_policy_is_looked_up_in_dpkgs_list_by_its_whole_line():
    """tpm_abrmd's plan must know whether the distribution's policy is diverted: dpkg's diversions file lists the
    diverted path on a line of its own (its .distrib name and the package on the next two)."""
    import re

    policy = "/etc/dbus-1/system.d/tpm2-abrmd.conf"
    reads = registry.reads(
        ["tpm_abrmd"], {"tpm_quote_mode_profile": KERNEL_RM, "__tpm_abrmd_distro_dbus_policy": policy}
    )
    marker = reads["markers"]["/var/lib/dpkg/diversions"]
    for text, found in (
        (f"{policy}\n{policy}.distrib\n:\n", True),
        (f"/etc/x\n/etc/x.d\n:\n{policy}\n{policy}.distrib\n:", True),
        (f"{policy}", True),
        (f"/usr/other\n{policy}.distrib\n:\n", False),
        (f"{policy} \n", False),
        (f"{policy}\r\n", False),
        ("", False),
    ):
        assert (re.search("^(?:" + marker + ")", text, re.MULTILINE) is not None) is found, text
    assert registry.reads(["tpm_abrmd"], {"tpm_quote_mode_profile": KERNEL_RM})["markers"] == {}


def test_one_role_reads_only_its_part_and_bad_values_read_nothing():
    assert registry.reads(["tpm_udev"], {}) == {**registry.empty_reads(), "globs": list(TPM_NODE_GLOBS)}
    assert registry.reads(["tpm_udev"], {"tpm_udev_rules_path": "/etc/udev/rules.d/../x.rules"})["paths"] == []
    bad = registry.reads(["tpm_tcti_env"], {"tpm_tcti_env_path": "relative/x.env", "tpm_tcti_env_services": "a"})
    assert bad == registry.empty_reads()
    assert registry.reads(["tpm_containers"], {"tpm_quote_mode_profile": DIRECT}) == registry.empty_reads()


def test_only_values_the_checks_could_accept_are_read():
    """The preflight reads before the checks: a name systemd refuses, a path with a NUL byte, or a list longer than
    the checks allow never reaches systemctl or the module; the checks refuse them, naming the variable."""
    values = {
        "tpm_tcti_env_services": ["a" * 292 + ".service", "agent@.service", "@x.service", "ok.service", "b c.service"],
        "tpm_tcti_env_path": "/etc/tpm2/x\x00.env",
        "tpm_abrmd_stop_holder_units": ["x.socket", "s.scope"],
        "tpm_quote_mode_profile": KERNEL_RM,
        "__tpm_abrmd_service": "tpm2-abrmd.service",
    }
    got = registry.reads(["tpm_tcti_env", "tpm_abrmd"], values)
    assert got["units"] == ["ok.service", "tpm2.target", "tpm2-abrmd.service", "s.scope"]
    assert all("\x00" not in p and "@" not in p for p in got["paths"]) and got["markers"] == {}
    many = registry.reads(["tpm_tcti_env"], {"tpm_tcti_env_services": [f"s{i}.service" for i in range(10000)]})
    assert len(many["units"]) == 256 + 1
    drivers = registry.reads(["tpm_kernel"], {"tpm_kernel_drivers": ["tpm_tis", "TPM CRB", "x" * 60, 5]})
    assert drivers["kernel_modules"] == ["tpm_tis"]
