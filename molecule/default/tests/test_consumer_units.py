"""Consumer services on the quote mode's path: ordered after the TPM at boot, and in direct mode kept
clear of what a consumer leaves loaded in the TPM (no resource manager flushes it there)."""

import os
import re
import time

import pytest
import testinfra
from conftest import mode
from tpmfleet_molecule import INVENTORY, SITE, needs_inventory, recap, run_module, run_playbook

RAW = "-T device:/dev/tpm0"
# What the consumer drop-in orders the service after where systemd has no tpm2.target.
WAITS_FOR = {"direct": "dev-tpm0.device", "kernel_rm": "dev-tpmrm0.device", "abrmd": "tpm2-abrmd.service"}
TCTI = {
    "direct": "device:/dev/tpm0",
    "kernel_rm": "device:/dev/tpmrm0",
    "abrmd": "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system",
}
# swtpm holds 3 transient objects; a 4th load fails with TPM_RC_OBJECT_MEMORY (0x902).
SLOTS = 3


def waits_for(host):
    if mode(host) != "abrmd" and host.run("systemctl cat tpm2.target").rc == 0:
        return "tpm2.target"
    return WAITS_FOR[mode(host)]


def transient(host):
    return host.check_output(f"tpm2_getcap {RAW} handles-transient").split()


def leak(host, count):
    """What a direct-mode consumer without flushes leaves: each tpm2_createprimary stays loaded."""
    for i in range(count):
        run = host.run(f"runuser -u tpmagent -- tpm2_createprimary {RAW} -C o -c /tmp/tpmfleet-leak-{i}.ctx")
        assert run.rc == 0, run.stderr
    host.run("rm -f /tmp/tpmfleet-leak-*.ctx")


def consumer_state(host):
    return host.check_output("systemctl show -p ActiveState --value tpm-consumer.service")


def wait_inactive(host, timeout=60):
    end = time.monotonic() + timeout
    while consumer_state(host) not in ("inactive", "failed") and time.monotonic() < end:
        time.sleep(1)
    return consumer_state(host)


def test_consumer_is_ordered_after_what_it_opens(host):
    unit = waits_for(host)
    props = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show -p After -p Wants tpm-consumer.service").splitlines()
    )
    assert unit in props["Wants"].split() and unit in props["After"].split(), props
    # The unit exists and is up: the udev rules tag the nodes for systemd; a Wants= on a
    # device unit that never appears would hold the consumer back at boot.
    assert host.check_output(f"systemctl show -p ActiveState --value {unit}") == "active"


def test_direct_consumer_restart_flushes_what_it_left_loaded(direct_host):
    host = direct_host
    try:
        leak(host, SLOTS)
        assert len(transient(host)) == SLOTS
        # The harm: the TPM is full for the next consumer.
        full = host.run(f"runuser -u tpmagent -- tpm2_createprimary {RAW} -C o -c /tmp/tpmfleet-full.ctx")
        assert full.rc != 0 and "0x902" in full.stderr, full.stderr
        host.run_test("systemctl restart tpm-consumer.service")
        assert transient(host) == []
        assert consumer_state(host) == "active"

        # A crash: ExecStopPost= runs after the main process was killed.
        leak(host, SLOTS)
        host.run_test("systemctl kill -s KILL tpm-consumer.service")
        assert wait_inactive(host) in ("inactive", "failed")
        assert transient(host) == []
    finally:
        host.run(f"rm -f /tmp/tpmfleet-*.ctx; tpm2_flushcontext {RAW} -t")
        host.run("systemctl reset-failed tpm-consumer.service; systemctl start tpm-consumer.service")
    assert consumer_state(host) == "active"


@needs_inventory
def test_direct_site_passes_after_a_leak_and_flushes_it(direct_host):
    host = direct_host
    name = host.backend.host
    try:
        leak(host, SLOTS)
        run = run_playbook(SITE, limit=name, mitogen=True, timeout=1800)
        counts = recap(run, name)
        assert counts["failed"] == 0 and counts["unreachable"] == 0, run.stdout[-6000:]
        assert f"flushed {SLOTS} objects or sessions" in run.stdout, run.stdout[-6000:]
        assert counts["changed"] >= 1
        assert transient(host) == []
    finally:
        host.run(f"tpm2_flushcontext {RAW} -t")


def _persisted(h, quote_mode):
    """What a reboot must keep: the mode's tpm2-abrmd state, node owners and modes, the env file, and a
    consumer service that came up (its ExecStartPre reached the TPM) and reaches it."""
    env = h.file("/etc/tpm2/tcti.env").content_string
    assert f"TCTI={TCTI[quote_mode]}\n" in env
    enabled = h.run("systemctl is-enabled tpm2-abrmd").stdout.strip()
    active = h.run("systemctl is-active tpm2-abrmd").stdout.strip()
    if quote_mode == "direct":
        assert (enabled, active) == ("masked", "inactive")
    elif quote_mode == "abrmd":
        assert (enabled, active) == ("enabled", "active")
    else:
        assert active != "active"
    raw_group = "tss" if quote_mode == "direct" else "root"
    assert h.check_output("stat -c '%U %G %a' /dev/tpm0") == f"tss {raw_group} 660"
    assert h.check_output("stat -c '%U %G %a' /dev/tpmrm0") == "tss tss 660"
    deadline = time.monotonic() + 120
    while h.check_output("systemctl show -p ActiveState --value tpm-consumer.service") != "active":
        assert time.monotonic() < deadline, h.run("journalctl -b -u tpm-consumer.service --no-pager").stdout
        time.sleep(2)
    # Its ExecStartPre (tpm2_getrandom over the drop-in's TCTI) ran in this boot and succeeded.
    journal = h.check_output("journalctl -b -u tpm-consumer.service -o cat --no-pager")
    assert re.search(r"^[0-9a-f]{16}$", journal, re.MULTILINE), journal
    pid = h.check_output("systemctl show -p MainPID --value tpm-consumer.service")
    environ = h.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep TCTI= | tr '\\n' ' '")
    works = h.run(f"runuser -u tpmagent -- env {environ} tpm2_getrandom 8 --hex")
    assert works.rc == 0, works.stderr


@needs_inventory
@pytest.mark.skipif(not os.environ.get("TPMFLEET_REBOOT_LAB"), reason="on demand: make test-reboot-lab")
def test_zz_reboot_keeps_every_mode_and_the_consumer_comes_up_reaching_the_tpm(direct_host):
    """The consumer VMs rebooted together (once, from the direct-mode host's test)."""
    boot_ids = {}
    hosts = {}
    for name in ("mode-direct", "mode-rm", "mode-abrmd"):
        hosts[name] = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
        boot_ids[name] = hosts[name].file("/proc/sys/kernel/random/boot_id").content_string
    run = run_module("consumers", "ansible.builtin.reboot", "reboot_timeout=1200", timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for name, h in hosts.items():
        assert h.file("/proc/sys/kernel/random/boot_id").content_string != boot_ids[name], f"{name} did not reboot"
        _persisted(h, h.ansible.get_variables()["tpm_quote_mode"])
