"""Verify the default scenario: kernel TPM drivers and device nodes on lab VMs."""

import os
import subprocess

import pytest

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
DRIVER = {"tis": "tpm_tis", "crb": "tpm_crb"}


def _interface(host):
    return host.ansible.get_variables()["lab_tpm_interface"]


def test_tpm_device_nodes_are_character_devices(host):
    for path in ("/dev/tpm0", "/dev/tpmrm0"):
        node = host.file(path)
        assert node.exists, f"{path} is missing"
        assert host.run_test(f"test -c {path}").rc == 0, f"{path} is not a character device"
        assert node.mode & 0o007 == 0, f"{path} is world-accessible: {oct(node.mode)}"


def test_tpm_is_served_by_the_driver_of_its_interface(host):
    driver = host.check_output("readlink -f /sys/class/tpm/tpm0/device/driver")
    assert os.path.basename(driver) == DRIVER[_interface(host)]


def test_builtin_drivers_get_no_modules_load_file(host):
    # The lab kernel has tpm_tis and tpm_crb built in: the role must treat
    # them as loaded and leave /etc/modules-load.d alone.
    builtin = host.file(f"/lib/modules/{host.check_output('uname -r')}/modules.builtin").content_string
    for name in ("tpm_tis", "tpm_crb"):
        assert f"/{name}.ko" in builtin
        assert not host.file(f"/etc/modules-load.d/{name}.conf").exists


def _playbook(*args, limit):
    return subprocess.run(
        [
            os.path.join(os.path.dirname(os.sys.executable), "ansible-playbook"),
            "-i",
            INVENTORY,
            "--limit",
            limit,
            os.path.join(PROJECT, "site.yml"),
            *args,
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": os.path.join(PROJECT, "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        },
    )


@pytest.mark.skipif(not INVENTORY, reason="needs molecule's inventory (run through molecule verify)")
def test_check_diff_on_a_converged_host_reports_no_change(host):
    name = host.backend.get_hostname()
    run = _playbook("--check", "--diff", limit=name)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = [line for line in run.stdout.splitlines() if line.startswith(name) and "ok=" in line]
    assert recap and "changed=0" in recap[-1], run.stdout[-3000:]


@pytest.mark.skipif(not INVENTORY, reason="needs molecule's inventory (run through molecule verify)")
def test_a_host_without_tpm_device_fails_with_a_clear_message(host):
    """Unbind the TPM from its driver (the node disappears), run site.yml, rebind.

    tpm2-abrmd is stopped first: while a process holds /dev/tpm0 the kernel
    keeps the old chip's number and a rebound TPM would come back as tpm1.
    """
    name = host.backend.get_hostname()
    dev = host.check_output("basename $(readlink -f /sys/class/tpm/tpm0/device)")
    driver_dir = host.check_output("readlink -f /sys/class/tpm/tpm0/device/driver")
    abrmd_was_active = host.run("systemctl is-active --quiet tpm2-abrmd").rc == 0
    host.run_test("systemctl stop tpm2-abrmd")
    host.run_test(f"echo {dev} > {driver_dir}/unbind")
    try:
        assert not host.file("/dev/tpm0").exists
        run = _playbook(limit=name)
        assert run.returncode != 0
        assert "No TPM character device (/dev/tpm0) exists on " + name in run.stdout
        assert "tpm_kernel_drivers" in run.stdout
    finally:
        host.run(f"echo {dev} > {driver_dir}/bind")
        host.run("udevadm settle")
        if abrmd_was_active:
            host.run("systemctl start tpm2-abrmd")
    assert host.run_test("test -c /dev/tpm0").rc == 0, "/dev/tpm0 did not come back after the driver was rebound"
