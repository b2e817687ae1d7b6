"""Verify the pull scenario: a lab VM converged itself with ansible-pull from the controller's repository."""

import os
import re
import subprocess


def _runs(host):
    logs = sorted(host.check_output("ls /var/log/tpmfleet-pull").split())
    assert len(logs) >= 2, f"expected a converge and an idempotence pull, found {logs}"
    return [host.file(f"/var/log/tpmfleet-pull/{name}").content_string for name in logs]


def _recap(output):
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    ok, changed, unreachable, failed = map(int, match.groups())
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


def test_the_first_pull_converged_the_host_and_the_second_changed_nothing(host):
    first, *_, last = _runs(host)
    assert _recap(first)["changed"] > 0 and _recap(first)["failed"] == 0
    second = _recap(last)
    assert (second["changed"], second["failed"], second["unreachable"]) == (0, 0, 0), last[-3000:]


def test_the_pull_ran_the_collections_roles_from_the_clone(host):
    first = _runs(host)[0]
    assert "tpmfleet.tpm.tpm_preflight" in first and "tpmfleet.tpm.tpm_verify" in first
    clone = host.check_output("git -C /var/lib/tpmfleet-pull/checkout rev-parse HEAD")
    # The commit the controller served (prepare's bare clone of main), not the checkout's main of now.
    served = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pull-kit", "tpmfleet.git")
    main = subprocess.run(["git", "-C", served, "rev-parse", "main"], capture_output=True, text=True, check=True)
    assert clone == main.stdout.strip()


def test_the_local_settings_file_chose_direct_mode(host):
    assert "device:/dev/tpm0" in host.file("/etc/tpm2/tcti.env").content_string
    assert host.run("systemctl is-enabled tpm2-abrmd.service").stdout.strip() == "masked"
    node = host.file("/dev/tpm0")
    assert (node.user, node.group, node.mode) == ("tss", "tss", 0o660)
