"""lab_vm: the parts that need no VM boot (guards, clean-up, input errors).

Booting a VM is covered by molecule (every scenario's create step); these
tests run real processes and sockets, nothing is mocked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from conftest import ANSIBLE, REPO


@pytest.fixture
def vm_files(scratch):
    """A state dir and stand-in image files (lab_vm only checks they exist before a boot)."""
    for name in ("disk.raw", "vmlinuz", "initrd.img"):
        (scratch / name).write_bytes(b"")
    return {
        "name": "unit1",
        "state_dir": str(scratch / "state"),
        "base_disk": str(scratch / "disk.raw"),
        "kernel": str(scratch / "vmlinuz"),
        "initrd": str(scratch / "initrd.img"),
        "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtvuJYhAJ test",
        "accel": "tcg",
    }


def test_absent_vm_that_never_existed_is_unchanged(ansible_run, vm_files):
    result, _ = ansible_run(
        "tpmfleet.lab.lab_vm", {"name": "unit1", "state_dir": vm_files["state_dir"], "state": "absent"}
    )
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["pid"] is None


def test_start_without_image_names_the_missing_file(ansible_run, vm_files):
    args = dict(vm_files, ssh_port=2299, kernel=vm_files["kernel"] + ".missing")
    result, _ = ansible_run("tpmfleet.lab.lab_vm", args)
    assert result["failed"] is True
    assert "kernel" in result["msg"] and "does not exist" in result["msg"]
    assert "build the lab image" in result["msg"]


def test_start_refuses_a_port_that_is_taken(ansible_run, vm_files):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result, _ = ansible_run("tpmfleet.lab.lab_vm", dict(vm_files, ssh_port=port))
    assert result["failed"] is True
    assert f"127.0.0.1:{port}" in result["msg"] and "in use" in result["msg"]
    assert "lab_ssh_port_base" in result["msg"]


def test_stop_leaves_an_unrelated_process_with_a_reused_pid_alone(ansible_run, vm_files, scratch):
    """A stale pid file may name a PID that now belongs to someone else."""
    vm_dir = scratch / "state" / "unit1"
    vm_dir.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        (vm_dir / "qemu.pid").write_text(f"{other.pid}\n")
        result, _ = ansible_run(
            "tpmfleet.lab.lab_vm", {"name": "unit1", "state_dir": vm_files["state_dir"], "state": "stopped"}
        )
        assert result["changed"] is False
        assert other.poll() is None, "lab_vm killed a process that was not its VM"
        assert not (vm_dir / "qemu.pid").exists(), "the stale pid file was not cleaned up"
    finally:
        other.kill()
        other.wait()


def test_stop_and_absent_end_the_vm_processes_and_remove_its_state(ansible_run, vm_files, scratch):
    vm_dir = scratch / "state" / "unit1"
    vm_dir.mkdir(parents=True)
    # Stand-ins for QEMU and swtpm: their command lines name the VM directory,
    # which is how lab_vm recognises its own processes.
    procs = {
        name: subprocess.Popen(["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done', str(vm_dir)])
        for name in ("qemu", "swtpm")
    }
    try:
        for name, proc in procs.items():
            (vm_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        (vm_dir / "swtpm.sock").write_text("")
        (vm_dir / "disk.qcow2").write_text("overlay")
        result, _ = ansible_run(
            "tpmfleet.lab.lab_vm", {"name": "unit1", "state_dir": vm_files["state_dir"], "state": "stopped"}
        )
        assert result["changed"] is True
        for proc in procs.values():
            assert proc.wait(timeout=10) is not None
        assert not (vm_dir / "swtpm.sock").exists()
        assert (vm_dir / "disk.qcow2").exists(), "stopped must keep the disk"

        result, _ = ansible_run(
            "tpmfleet.lab.lab_vm", {"name": "unit1", "state_dir": vm_files["state_dir"], "state": "absent"}
        )
        assert result["changed"] is True
        assert not vm_dir.exists()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_check_mode_reports_but_does_not_remove(ansible_run, vm_files, scratch):
    vm_dir = scratch / "state" / "unit1"
    vm_dir.mkdir(parents=True)
    (vm_dir / "disk.qcow2").write_text("overlay")
    args = {"name": "unit1", "state_dir": vm_files["state_dir"], "state": "absent"}
    result, _ = ansible_run("tpmfleet.lab.lab_vm", args, check=True)
    assert result["changed"] is True
    assert (vm_dir / "disk.qcow2").exists()


def test_start_refuses_an_overlay_made_from_another_image(ansible_run, vm_files, scratch):
    """A VM made from one suite's image must not boot (or pass as started) on another's kernel."""
    vm_dir = scratch / "state" / "unit1"
    vm_dir.mkdir(parents=True)
    old_base = scratch / "bookworm.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(old_base), "1M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(old_base), str(vm_dir / "disk.qcow2")],
        check=True,
    )
    (vm_dir / "tpm").mkdir()
    result, _ = ansible_run("tpmfleet.lab.lab_vm", dict(vm_files, ssh_port=2299))
    assert result["failed"] is True
    assert str(old_base) in result["msg"] and vm_files["base_disk"] in result["msg"]
    assert "lab_state=absent" in result["msg"]
    assert result["base_disk_in_use"] == str(old_base)
    assert (vm_dir / "disk.qcow2").exists() and (vm_dir / "tpm").is_dir(), "nothing may be deleted"
    assert not (vm_dir / "qemu.pid").exists(), "the VM must not have been booted"


def _lab_playbook(scratch, *extra):
    """Run playbooks/lab.yml against a lab whose state lives in scratch (no image, no boot)."""
    cmd = [
        str(ANSIBLE.parent / "ansible-playbook"), "playbooks/lab.yml", "-i", "localhost,",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", f"lab_root={scratch / 'root'}", "-e", "lab_name=unit",
        "-e", f"lab_inventory_dir={scratch / 'inventory'}", *extra,
    ]  # fmt: skip
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("state", ["stopped", "absent"])
def test_teardown_with_default_settings_finds_every_vm_of_the_lab(scratch, state):
    """`make lab-down` after `-e lab_vm_count=3`: the default count is 2, yet VM 3 must go too.

    Stand-in state directories for unit1..unit3 as lab_vm leaves them (key, overlay,
    TPM state, pid files naming processes whose command line names the VM's directory),
    then the role runs with the default settings.
    """
    state_dir = scratch / "root" / "unit"
    inventory = scratch / "inventory" / "hosts.yml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text("all: {}\n")
    procs = []
    try:
        for n in (1, 2, 3):
            vm_dir = state_dir / f"unit{n}"
            (vm_dir / "tpm").mkdir(parents=True)
            (vm_dir / "disk.qcow2").write_text("overlay")
            (state_dir / f"unit{n}.key").write_text("private")
            (state_dir / f"unit{n}.key.pub").write_text("public")
            for name in ("qemu", "swtpm"):
                proc = subprocess.Popen(["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done', str(vm_dir)])
                procs.append(proc)
                (vm_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        # Not VMs: the accelerator probe's cache and a directory lab_vm did not make.
        (state_dir / "accel-probe-0123.json").write_text("{}")
        (state_dir / "notes").mkdir()

        out = _lab_playbook(scratch, "-e", f"lab_state={state}")

        for proc in procs:
            assert proc.wait(timeout=10) is not None, "a VM process of the lab is still running"
        assert "unit3" in out
        for n in (1, 2, 3):
            vm_dir = state_dir / f"unit{n}"
            assert not (vm_dir / "qemu.pid").exists()
            if state == "stopped":
                assert (vm_dir / "disk.qcow2").exists() and (state_dir / f"unit{n}.key").exists()
            else:
                assert not vm_dir.exists()
                assert not (state_dir / f"unit{n}.key").exists() and not (state_dir / f"unit{n}.key.pub").exists()
        assert inventory.exists() is (state == "stopped")
        assert (state_dir / "accel-probe-0123.json").exists() and (state_dir / "notes").is_dir()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
