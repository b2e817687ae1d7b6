"""site.yml and the quote mode switch on Debian 13 (the default scenario runs them on Debian 12): after the access
checks (test_access.py, first), the scenario's VM is converged by site.yml in kernel_rm mode, run again with no
change, checked with --check --diff, switched to direct with quote_mode.yml and back. After each step the host is
checked as the mode wants it, and a tss member reaches the TPM over the mode's TCTI."""

import time

import pytest
from tpmfleet_molecule import PROJECT, SITE, needs_inventory, recap, run_playbook

QUOTE_MODE = f"{PROJECT}/playbooks/quote_mode.yml"
TCTI = {"direct": "device:/dev/tpm0", "kernel_rm": "device:/dev/tpmrm0"}


def _run(entry, name, *args, mitogen=True):
    # Repeated runs on one TCG VM: the project's Mitogen strategy keeps them affordable (the first converge runs
    # with Ansible's own strategy, as users do).
    run = run_playbook(entry, *args, limit=name, mitogen=mitogen, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return recap(run, name)


def _in_mode(host, mode):
    """The host as the quote mode wants it: the TCTI file, tpm2-abrmd, the nodes; and a tss member (tpmagent,
    added to tss by the scenario's converge) reaches the TPM over the mode's TCTI."""
    env = host.file("/etc/tpm2/tcti.env").content_string
    assert f"TPM2TOOLS_TCTI={TCTI[mode]}" in env and f"TSS2_TCTI={TCTI[mode]}" in env, env
    abrmd = host.run("systemctl is-enabled tpm2-abrmd.service").stdout.strip()
    assert abrmd == ("masked" if mode == "direct" else "disabled") or (mode != "direct" and abrmd == "not-found")
    assert host.run("systemctl is-active tpm2-abrmd.service").stdout.strip() != "active"
    nodes = host.check_output("stat -c '%n %U %G %a' /dev/tpm0 /dev/tpmrm0").splitlines()
    # The raw device to the tss group only in direct mode (plugin_utils/quote_mode.py, tpm_udev_mode 0660).
    assert nodes == [f"/dev/tpm0 tss {'tss' if mode == 'direct' else 'root'} 660", "/dev/tpmrm0 tss tss 660"], nodes
    works = host.run(f"runuser -u tpmagent -- env TPM2TOOLS_TCTI={TCTI[mode]} tpm2_getrandom 8 --hex")
    assert works.rc == 0, works.stderr


@pytest.fixture(scope="module")
def converged(host):
    name = host.backend.get_hostname()
    assert host.system_info.distribution == "debian" and host.system_info.codename == "trixie"
    start = time.monotonic()
    first = _run(SITE, name, "-e", "tpm_quote_mode=kernel_rm", mitogen=False)
    assert first["failed"] == 0 and first["unreachable"] == 0
    return name, round(time.monotonic() - start)


@needs_inventory
def test_site_converges_and_a_second_run_and_check_diff_change_nothing(host, converged):
    name, _ = converged
    _in_mode(host, "kernel_rm")
    assert _run(SITE, name, "-e", "tpm_quote_mode=kernel_rm")["changed"] == 0
    assert _run(SITE, name, "-e", "tpm_quote_mode=kernel_rm", "--check", "--diff")["changed"] == 0


@needs_inventory
def test_quote_mode_switches_to_direct_and_back(host, converged):
    name, _ = converged
    for mode in ("direct", "kernel_rm"):
        assert _run(QUOTE_MODE, name, "-e", f"tpm_quote_mode={mode}")["changed"] > 0, mode
        _in_mode(host, mode)
    # Back in kernel_rm: nothing left to change.
    assert _run(SITE, name, "-e", "tpm_quote_mode=kernel_rm", "--check", "--diff")["changed"] == 0
