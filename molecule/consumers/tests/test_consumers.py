"""The consumer matrix: every consumer service in every quote mode, on Debian 12 and 13.

The VMs are switched together with playbooks/quote_mode.yml (kernel_rm, then direct, then abrmd); in
each mode every consumer service is started as it would be in production (``systemctl start`` of a
oneshot service as tpmagent, its TCTI from tpmfleet's drop-in alone) and must succeed; a user outside
the tss group must be refused. The results land in .cache/consumer-matrix.{json,md} and on the
verifier's output."""

import json
import os

import pytest
import testinfra
from tpmfleet_molecule import INVENTORY, PROJECT, needs_inventory, recap, run_playbook

pytestmark = needs_inventory

QUOTE_MODE = os.path.join(PROJECT, "playbooks", "quote_mode.yml")
HOSTS = ("cons-12", "cons-13")
MODES = ("kernel_rm", "direct", "abrmd")
# In the order they run: the pkcs11 token is made once, before its first use.
CONSUMERS = ("tools", "openssl", "pkcs11-setup", "pkcs11", "pytss")
RESULTS = os.path.join(PROJECT, ".cache", "consumer-matrix.json")


@pytest.fixture(scope="module", autouse=True)
def _fresh_results():
    """This run's results only."""
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    if os.path.exists(RESULTS):
        os.remove(RESULTS)


def hosts():
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY) for name in HOSTS}


def suite(h):
    return h.check_output(". /etc/os-release; echo $VERSION_CODENAME")


def start(h, consumer):
    """systemctl start of the oneshot consumer service; (passed, what its journal says of this run)."""
    unit = f"tpm-consumer-{consumer}.service"
    run = h.run(f"systemctl start {unit}")
    invocation = h.check_output(f"systemctl show -p InvocationID --value {unit}")
    log = h.run(f"journalctl _SYSTEMD_INVOCATION_ID={invocation} -o cat --no-pager").stdout
    return run.rc == 0, log.strip()


def record(results):
    old = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            old = json.load(f)
    old.update(results)
    with open(RESULTS, "w") as f:
        json.dump(old, f, indent=1, sort_keys=True)


@pytest.mark.parametrize("quote_mode", MODES)
def test_every_consumer_works_in_the_mode_as_a_service(quote_mode):
    run = run_playbook(QUOTE_MODE, "-e", f"tpm_quote_mode={quote_mode}", limit="consumers", mitogen=True, timeout=2400)
    for name in HOSTS:
        counts = recap(run, name)
        assert counts["failed"] == 0 and counts["unreachable"] == 0, run.stdout[-6000:]
    results, failures = {}, []
    for name, h in hosts().items():
        release = suite(h)
        for consumer in CONSUMERS:
            passed, log = start(h, consumer)
            results[f"{release}/{quote_mode}/{consumer}"] = {"passed": passed, "log": log[-1500:]}
            if not passed:
                failures.append(f"{name} ({release}) {consumer}:\n{log[-1500:]}")
        # Consumers that leave objects loaded, started in a loop: in direct mode the drop-in's flushes
        # keep the TPM's few slots free.
        for _ in range(3):
            for consumer in ("pkcs11", "tools"):
                passed, log = start(h, consumer)
                if not passed:
                    failures.append(f"{name} ({release}) {consumer} again:\n{log[-1500:]}")
        results[f"{release}/{quote_mode}/loop"] = {"passed": not any(" again:" in f for f in failures)}
    record(results)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("quote_mode", ["abrmd"])
def test_a_user_outside_the_tss_group_is_refused(quote_mode):
    """Run after the matrix (abrmd mode last): the broker refuses a non-member over D-Bus."""
    for name, h in hosts().items():
        assert h.check_output("systemctl is-active tpm2-abrmd") == "active", name
        run = h.run(
            "systemd-run --wait --pipe --quiet --uid=tpmoutsider -p EnvironmentFile=/etc/tpm2/tcti.env "
            "/usr/local/libexec/tpmfleet-consumers/pytss"
        )
        assert run.rc != 0, f"{name}: a user outside tss reached the TPM over {quote_mode}: {run.stdout}"
        record({f"{suite(h)}/{quote_mode}/refused-outside-tss": {"passed": True, "log": run.stderr[-500:]}})


def test_zz_matrix_table():
    """The consumer x mode x suite table for docs/consumers.md, from this run's results."""
    with open(RESULTS) as f:
        results = json.load(f)
    suites = sorted({key.split("/")[0] for key in results})
    rows = [*CONSUMERS, "loop", "refused-outside-tss"]
    lines = ["| consumer | " + " | ".join(f"{m} ({s})" for s in suites for m in MODES) + " |"]
    lines.append("|---" * (1 + len(suites) * len(MODES)) + "|")
    for row in rows:
        cells = []
        for s in suites:
            for m in MODES:
                r = results.get(f"{s}/{m}/{row}")
                cells.append("—" if r is None else ("passed" if r["passed"] else "FAILED"))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    with open(RESULTS.replace(".json", ".md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table)
    assert all(r["passed"] for r in results.values())
