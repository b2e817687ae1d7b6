#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one VM of the emulated TPM lab (QEMU plus swtpm)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_vm
short_description: Boot, stop or remove one VM of the emulated TPM lab
description:
  - Runs one Debian VM under QEMU with its own swtpm-backed TPM 2.0 (TIS or CRB
    interface) and forwards its SSH port to 127.0.0.1.
  - Idempotent. A VM whose QEMU process is alive is left alone; stale pid
    files and sockets from a crashed run are cleaned up before a new boot.
  - A VM whose overlay disk was made from another base image than O(base_disk)
    (another Debian suite, or a rebuilt image) is neither booted nor reported
    as started; the module fails and keeps its disk and TPM state.
  - The guest reads the root SSH key from the kernel command line
    (C(tpmlab.ssh_key=), base64), so every VM shares one cached image yet has
    its own key; see C(roles/lab).
  - Runs on the controller (localhost); it is lab tooling, not a fleet module.
version_added: "0.1.0"
options:
  name:
    description: VM name; also its hostname and the name of its state directory.
    type: str
    required: true
  state:
    description:
      - C(started) boots the VM unless it runs; C(stopped) stops QEMU and swtpm
        and keeps disk and TPM state; C(absent) also deletes the VM's directory
        (its overlay disk, TPM state and SSH key). The base image is never touched.
    type: str
    choices: [started, stopped, absent]
    default: started
  state_dir:
    description: Directory that holds one sub-directory per VM.
    type: path
    required: true
  base_disk:
    description: Raw base image; each VM gets a qcow2 overlay on top of it. Required for C(started).
    type: path
  kernel:
    description: Kernel image booted directly. Required for C(started).
    type: path
  initrd:
    description: Initial ramdisk. Required for C(started).
    type: path
  ssh_port:
    description: Port on 127.0.0.1 forwarded to the guest's port 22. Required for C(started).
    type: int
  ssh_public_key:
    description: OpenSSH public key put into the guest's C(/root/.ssh/authorized_keys). Required for C(started).
    type: str
  tpm_interface:
    description:
      - TPM interface QEMU gives the guest (C(tpm-tis) or C(tpm-crb)); C(none)
        boots a VM without a TPM (and without swtpm), like a fleet host that has none.
    type: str
    choices: [tis, crb, none]
    default: tis
  ek_ca_dir:
    description:
      - Directory of the swtpm local CA (C(swtpm_localca)) that signs the VM's EK certificate when its TPM state is
        first made (C(swtpm_setup --create-ek-cert)); the CA's key and certificates are made there on first use and
        kept, and C(ek-ca-bundle.pem) (root and issuing certificate) is written beside them for a verifier.
      - Omitted, the EK has no certificate. Has no effect on a VM whose TPM state exists already.
    type: path
  memory_mb:
    description: Guest memory in MiB.
    type: int
    default: 1024
  cpus:
    description: Number of virtual CPUs.
    type: int
    default: 2
  accel:
    description:
      - C(kvm), C(tcg), or C(auto), which boots the kernel once under KVM with a
        time limit and uses KVM only when that probe reaches the kernel's panic
        on purpose (the result is cached per kernel in O(state_dir)).
    type: str
    choices: [auto, kvm, tcg]
    default: auto
author: tpmfleet contributors
"""

EXAMPLES = r"""
- name: Ensure lab VM tpmlab1 runs
  lab_vm:
    name: tpmlab1
    state_dir: /srv/tpmfleet/.lab/lab
    base_disk: /srv/tpmfleet/.lab/images/0123abcd/disk.raw
    kernel: /srv/tpmfleet/.lab/images/0123abcd/vmlinuz
    initrd: /srv/tpmfleet/.lab/images/0123abcd/initrd.img
    ssh_port: 2221
    ssh_public_key: "{{ lookup('ansible.builtin.file', '/srv/tpmfleet/.lab/lab/tpmlab1.key.pub') }}"
    tpm_interface: crb

- name: Ensure lab VM tpmlab1 is gone, with its disk and TPM state
  lab_vm:
    name: tpmlab1
    state_dir: /srv/tpmfleet/.lab/lab
    state: absent
"""

RETURN = r"""
name:
  description: VM name.
  returned: always
  type: str
pid:
  description: PID of the QEMU process, or null when it does not run.
  returned: always
  type: int
accel:
  description: Accelerator the VM runs with.
  returned: when state is started
  type: str
  sample: tcg
ssh_port:
  description: Port on 127.0.0.1 forwarded to the guest's SSH server.
  returned: when state is started
  type: int
console_log:
  description: File that receives the guest's serial console.
  returned: always
  type: str
vm_dir:
  description: The VM's state directory.
  returned: always
  type: str
ek_ca_bundle:
  description: The EK CA bundle (root and issuing certificate) when O(ek_ca_dir) is set.
  returned: when ek_ca_dir is set and the CA exists
  type: str
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import time

from ansible.module_utils.basic import AnsibleModule

QEMU = "qemu-system-x86_64"
PROBE_SECONDS = 45


class LabVM:
    """Paths and processes of one lab VM."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.p = module.params
        self.name = self.p["name"]
        self.dir = os.path.join(self.p["state_dir"], self.name)
        self.disk = os.path.join(self.dir, "disk.qcow2")
        self.tpm_state = os.path.join(self.dir, "tpm")
        self.tpm_sock = os.path.join(self.dir, "swtpm.sock")
        self.swtpm_pid = os.path.join(self.dir, "swtpm.pid")
        self.qemu_pid = os.path.join(self.dir, "qemu.pid")
        self.console_log = os.path.join(self.dir, "console.log")
        self.swtpm_log = os.path.join(self.dir, "swtpm.log")

    # --- processes ---------------------------------------------------------
    def _alive(self, pidfile: str) -> int | None:
        """PID from pidfile when that process runs and belongs to this VM."""
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            return None
        # Guard against PID reuse: our processes name this VM's directory.
        return pid if self.dir.encode() in cmdline else None

    def _kill(self, pidfile: str) -> bool:
        pid = self._alive(pidfile)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self._alive(pidfile) == pid:
            time.sleep(0.2)
        if self._alive(pidfile) == pid:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        return True

    def _remove_runtime_files(self) -> None:
        for path in (self.tpm_sock, self.swtpm_pid, self.qemu_pid):
            if os.path.lexists(path):
                os.unlink(path)

    def stop(self) -> bool:
        changed = self._kill(self.qemu_pid)
        # swtpm ends when QEMU disconnects; make sure of it either way.
        changed = self._kill(self.swtpm_pid) or changed
        if os.path.isdir(self.dir):
            self._remove_runtime_files()
        return changed

    # --- start -------------------------------------------------------------
    def _fail(self, msg: str, **kwargs) -> None:
        self.module.fail_json(msg=msg, name=self.name, vm_dir=self.dir, **kwargs)

    def _run(self, argv: list[str], what: str) -> str:
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            self._fail(f"{what} failed for lab VM {self.name} (rc={rc}): {err.strip() or out.strip()}", cmd=argv)
        return out

    def _port_free(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def resolve_accel(self) -> str:
        accel = self.p["accel"]
        if accel != "auto":
            return accel
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "tcg"
        st = os.stat(self.p["kernel"])
        key = hashlib.sha256(f"{self.p['kernel']}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
        cache = os.path.join(self.p["state_dir"], f"accel-probe-{key}.json")
        try:
            with open(cache) as f:
                return json.load(f)["accel"]
        except (OSError, ValueError, KeyError):
            pass
        # Boot the kernel under KVM with no root device: a working KVM reaches
        # the kernel's own "Kernel panic" within seconds; a broken one fails or hangs.
        argv = [
            "timeout",
            str(PROBE_SECONDS),
            QEMU,
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            self.p["kernel"],
            "-append",
            "console=ttyS0 panic=-1 root=/dev/null",
        ]
        rc, out, _err = self.module.run_command(argv)
        result = "kvm" if "Kernel panic" in out else "tcg"
        if self.module.check_mode:
            return result
        os.makedirs(self.p["state_dir"], mode=0o700, exist_ok=True)
        with open(cache, "w") as f:
            json.dump({"accel": result, "probe_rc": rc}, f)
        return result

    def _ek_ca_config(self, ca_dir: str) -> str:
        """swtpm_setup's configuration for the local CA in ``ca_dir`` (written once, kept)."""
        state = os.path.join(ca_dir, "ca")
        os.makedirs(state, mode=0o700, exist_ok=True)
        files = {
            "swtpm-localca.conf": f"statedir = {state}\nsigningkey = {state}/signkey.pem\n"
            f"issuercert = {state}/issuercert.pem\ncertserial = {state}/certserial\n",
            "swtpm-localca.options": "--platform-manufacturer tpmfleet\n--platform-version 2.1\n--platform-model lab\n",
            "swtpm_setup.conf": f"create_certs_tool = {shutil.which('swtpm_localca') or 'swtpm_localca'}\n"
            f"create_certs_tool_config = {ca_dir}/swtpm-localca.conf\n"
            f"create_certs_tool_options = {ca_dir}/swtpm-localca.options\n",
        }
        for name, text in files.items():
            path = os.path.join(ca_dir, name)
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                    f.write(text)
        return os.path.join(ca_dir, "swtpm_setup.conf")

    @staticmethod
    def _read(path: str) -> str:
        with open(path) as f:
            return f.read()

    def ek_ca_bundle(self) -> str | None:
        """Write ``ek-ca-bundle.pem`` (root, then issuing certificate) of the local CA; its path, or None."""
        ca_dir = self.p.get("ek_ca_dir")
        if not ca_dir:
            return None
        state = os.path.join(ca_dir, "ca")
        parts = [os.path.join(state, "swtpm-localca-rootca-cert.pem"), os.path.join(state, "issuercert.pem")]
        if not all(os.path.isfile(x) for x in parts):
            return None
        bundle = os.path.join(ca_dir, "ek-ca-bundle.pem")
        text = "".join(self._read(x) for x in parts)
        if not os.path.isfile(bundle) or self._read(bundle) != text:
            with open(os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as f:
                f.write(text)
        return bundle

    def _start_swtpm(self) -> None:
        if not os.path.isdir(self.tpm_state):
            os.makedirs(self.tpm_state, mode=0o700)
            argv = ["swtpm_setup", "--tpm2", "--tpmstate", self.tpm_state, "--createek", "--not-overwrite"]
            if self.p.get("ek_ca_dir"):
                argv += ["--create-ek-cert", "--config", self._ek_ca_config(self.p["ek_ca_dir"])]
            self._run(argv, "Initialising the swtpm state (swtpm_setup)")
        self._run(
            [
                "swtpm",
                "socket",
                "--tpm2",
                "--tpmstate",
                f"dir={self.tpm_state}",
                "--ctrl",
                f"type=unixio,path={self.tpm_sock}",
                "--terminate",
                "--pid",
                f"file={self.swtpm_pid}",
                "--log",
                f"file={self.swtpm_log},level=1",
                "--daemon",
            ],
            "Starting swtpm",
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(self.tpm_sock) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _check_base_disk(self) -> None:
        """Refuse to boot or report an existing overlay that sits on another base image.

        The overlay (disk, packages, keys) belongs to the image it was made from;
        the kernel and initrd come from the image asked for now. Another suite or a
        rebuilt image would boot one system's kernel on another's root filesystem,
        and the inventory would claim a suite the VM does not run. Nothing is
        deleted here: the user decides (state=absent recreates the VM).
        """
        if not os.path.exists(self.disk):
            return
        rc, out, err = self.module.run_command(["qemu-img", "info", "-U", "--output=json", self.disk])
        if rc != 0:
            self._fail(f"Reading the overlay disk {self.disk} of lab VM {self.name} failed (rc={rc}): {err.strip()}")
        try:
            info = json.loads(out)
        except ValueError:
            self._fail(f"qemu-img info gave no JSON for {self.disk}: {out[:200]}")
        backing = info.get("full-backing-filename") or info.get("backing-filename") or ""
        if os.path.realpath(backing) != os.path.realpath(self.p["base_disk"]):
            self._fail(
                f"Lab VM {self.name} was made from the image {backing}, but this run asks for "
                f"{self.p['base_disk']} (another Debian suite, or the image's inputs changed). Its disk "
                "and TPM state are kept and it is left as it is. To recreate it from the new image, remove "
                "it first (lab_state=absent, or lab_vm state=absent for this VM); to keep it, run with "
                "the settings it was made with.",
                base_disk_in_use=backing,
                pid=self._alive(self.qemu_pid),
            )

    def start(self) -> tuple[bool, str]:
        for opt in ("base_disk", "kernel", "initrd", "ssh_port", "ssh_public_key"):
            if self.p[opt] in (None, ""):
                self._fail(f"lab_vm: option {opt} is required when state=started")
        for opt in ("base_disk", "kernel", "initrd"):
            if not os.path.isfile(self.p[opt]):
                self._fail(f"lab_vm: {opt} {self.p[opt]} does not exist; build the lab image first (roles/lab)")
        self._check_base_disk()
        accel = self.resolve_accel()
        if self._alive(self.qemu_pid):
            return False, accel
        if self.module.check_mode:
            return True, accel
        # A previous run died: drop its leftovers before booting again.
        self._kill(self.swtpm_pid)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self._remove_runtime_files()
        port = self.p["ssh_port"]
        if not self._port_free(port):
            self._fail(
                f"Port 127.0.0.1:{port} for lab VM {self.name} is in use by another process; "
                "stop it or choose other ports with lab_ssh_port_base / lab_vms[].ssh_port"
            )
        if not os.path.exists(self.disk):
            self._run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", self.p["base_disk"], self.disk],
                "Creating the overlay disk",
            )
        has_tpm = self.p["tpm_interface"] != "none"
        if has_tpm:
            self._start_swtpm()
        key_b64 = base64.b64encode(self.p["ssh_public_key"].strip().encode()).decode()
        append = f"root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname={self.name} tpmlab.ssh_key={key_b64}"
        cpu = "host" if accel == "kvm" else "max"
        argv = [
            QEMU,
            "-name",
            f"{self.name},process=tpmlab-{self.name}",
            "-machine",
            "q35",
            "-accel",
            accel,
            "-cpu",
            cpu,
            "-smp",
            str(self.p["cpus"]),
            "-m",
            str(self.p["memory_mb"]),
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            f"file:{self.console_log}",
            "-daemonize",
            "-pidfile",
            self.qemu_pid,
            "-kernel",
            self.p["kernel"],
            "-initrd",
            self.p["initrd"],
            "-append",
            append,
            "-drive",
            f"file={self.disk},if=virtio,format=qcow2,cache=unsafe",
            "-netdev",
            f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-object",
            "rng-random,filename=/dev/urandom,id=rng0",
            "-device",
            "virtio-rng-pci,rng=rng0",
        ]
        if has_tpm:
            argv += [
                "-chardev",
                f"socket,id=chrtpm,path={self.tpm_sock}",
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                f"tpm-{self.p['tpm_interface']},tpmdev=tpm0",
            ]
        rc, _out, err = self.module.run_command(argv)
        if rc != 0:
            self._kill(self.swtpm_pid)
            self._fail(f"QEMU did not start lab VM {self.name} (rc={rc}): {err.strip()}", cmd=argv)
        return True, accel

    def remove(self) -> bool:
        changed = self.stop()
        if os.path.isdir(self.dir):
            if not self.module.check_mode:
                shutil.rmtree(self.dir)
            changed = True
        return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "absent"]),
            state_dir=dict(type="path", required=True),
            base_disk=dict(type="path"),
            kernel=dict(type="path"),
            initrd=dict(type="path"),
            ssh_port=dict(type="int"),
            ssh_public_key=dict(type="str", no_log=False),
            tpm_interface=dict(type="str", default="tis", choices=["tis", "crb", "none"]),
            ek_ca_dir=dict(type="path"),
            memory_mb=dict(type="int", default=1024),
            cpus=dict(type="int", default=2),
            accel=dict(type="str", default="auto", choices=["auto", "kvm", "tcg"]),
        ),
        supports_check_mode=True,
    )
    vm = LabVM(module)
    result = {"name": vm.name, "vm_dir": vm.dir, "console_log": vm.console_log}
    state = module.params["state"]
    if state == "started":
        changed, accel = vm.start()
        result.update(accel=accel, ssh_port=module.params["ssh_port"])
        bundle = vm.ek_ca_bundle()
        if bundle:
            result["ek_ca_bundle"] = bundle
    elif module.check_mode:
        changed = vm._alive(vm.qemu_pid) is not None or (state == "absent" and os.path.isdir(vm.dir))
    elif state == "stopped":
        changed = vm.stop()
    else:
        changed = vm.remove()
    result["pid"] = vm._alive(vm.qemu_pid)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
