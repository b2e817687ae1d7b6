"""What each role reads on the host (plugins/plugin_utils/host_reads.py): one entry per role of the role list,
built from the role's own variables and defaults."""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import host_reads
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import ROLES

DIRECT = {"exclusive_device": "/dev/tpm0", "container": {"devices": ["/dev/tpm0"]}}
KERNEL_RM = {"exclusive_device": None, "container": {"devices": ["/dev/tpmrm0"]}}


def test_every_role_of_the_role_list_says_what_it_reads():
    assert set(host_reads.ROLE_READS) == set(ROLES)


def test_the_defaults_of_the_roles_give_the_reads_of_a_plain_host():
    got = host_reads.reads(ROLES, {"tpm_quote_mode_profile": KERNEL_RM})
    assert got == {
        "units": ["tpm2-abrmd.service"],
        "paths": ["/etc/tpm2/tcti.env", "/etc/tpm2"],
        "markers": {"/etc/tpm2/tcti.env": "# tpmfleet: TCTI for quote mode "},
        "globs": ["/dev/tpm[0-9]*", "/dev/tpmrm[0-9]*"],
        "kernel": True,
        "holders": [],
        "accounts": True,
    }


def test_the_host_values_decide_the_units_paths_and_holders():
    values = {
        "tpm_quote_mode_profile": DIRECT,
        "tpm_tcti_env_path": "/etc//tpm2/./other.env",
        "tpm_tcti_env_services": ["keylime_agent.service", "tpm2-abrmd.service"],
        "tpm_abrmd_stop_holder_units": ["old-agent.service"],
        "tpm_containers_projects": [{"name": "agent"}],
    }
    got = host_reads.reads(ROLES, values)
    assert got["units"] == ["tpm2-abrmd.service", "old-agent.service", "keylime_agent.service"]
    assert got["paths"] == [
        "/etc/tpm2/other.env",
        "/etc/tpm2",
        "/etc/systemd/system/keylime_agent.service.d",
        "/etc/systemd/system/tpm2-abrmd.service.d",
        "/dev/tpm0",
    ]
    assert got["holders"] == ["/dev/tpm0"]
    assert list(got["markers"]) == ["/etc/tpm2/other.env"]


def test_one_role_reads_only_its_part_and_bad_values_read_nothing():
    assert host_reads.reads(["tpm_udev"], {}) == {**host_reads.empty(), "globs": list(host_reads.TPM_NODE_GLOBS)}
    bad = host_reads.reads(["tpm_tcti_env"], {"tpm_tcti_env_path": "relative/x.env", "tpm_tcti_env_services": "a"})
    assert bad == host_reads.empty()
    assert host_reads.reads(["tpm_containers"], {"tpm_quote_mode_profile": DIRECT}) == host_reads.empty()
