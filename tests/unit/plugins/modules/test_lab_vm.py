"""lab_vm: the parts that need no VM boot (guards, clean-up, input errors).

Booting a VM is covered by molecule (every scenario's create step); these
tests run real processes and sockets, nothing is mocked.
"""

from __future__ import annotations

import socket
import subprocess

import pytest


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
