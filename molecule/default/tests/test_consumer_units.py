"""Consumer services on the quote mode's path: ordered after the TPM at boot, and in direct mode kept
clear of what a consumer leaves loaded in the TPM (no resource manager flushes it there)."""

import time

from conftest import mode
from tpmfleet_molecule import SITE, needs_inventory, recap, run_playbook

RAW = "-T device:/dev/tpm0"
# What the consumer drop-in orders the service after (and tpm2.target too, outside abrmd mode, where systemd
# has it).
WAITS_FOR = {"direct": "dev-tpm0.device", "kernel_rm": "dev-tpmrm0.device", "abrmd": "tpm2-abrmd.service"}
# swtpm holds 3 transient objects; a 4th load fails with TPM_RC_OBJECT_MEMORY (0x902).
SLOTS = 3


def waits_for(host):
    return WAITS_FOR[mode(host)]


def transient(host):
    """The transient handles loaded in the TPM (tpm2_getcap prints them as "- 0x80000000" lines)."""
    return [word for word in host.check_output(f"tpm2_getcap {RAW} handles-transient").split() if word.startswith("0x")]


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
    assert unit in props["After"].split(), props
    # Wanted where it is the TPM itself; tpm2-abrmd is enabled by the mode, never started by a consumer.
    assert (unit in props["Wants"].split()) == (unit != "tpm2-abrmd.service"), props
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
        # tpm_check's warning (stderr, wrapped to the terminal's width).
        said = " ".join((run.stdout + run.stderr).split())
        assert f"flushed {SLOTS} objects or sessions" in said, said[-6000:]
        assert counts["changed"] >= 1
        assert transient(host) == []
    finally:
        host.run(f"tpm2_flushcontext {RAW} -t")
