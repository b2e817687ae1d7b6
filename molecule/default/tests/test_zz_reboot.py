"""A reboot of the three consumer VMs, together, last in the verifier (on demand: make test-reboot-lab): each
keeps its quote mode, and its consumer service comes up after the TPM and reaches it."""

import os
import re
import time

import pytest
import testinfra
from conftest import TCTI, consumer_reaches_the_tpm
from tpmfleet_molecule import INVENTORY, needs_inventory, run_module


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
    works = consumer_reaches_the_tpm(h)
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
