"""Verify the pull scenario: the pull timer's runs converged a lab VM from the controller's repository.

converge installed tpmfleet-pull.service and .timer (playbooks/pull_timer.yml) and let the timer run
ansible-pull; idempotence let it run again. Each run's journal is in /var/log/tpmfleet-pull/.
"""

import json
import os
import re
import subprocess

from tpmfleet_molecule import run_module

RECORD = "/var/lib/tpmfleet/last-run.json"


def _runs(host):
    logs = sorted(host.check_output("ls /var/log/tpmfleet-pull").split())
    assert len(logs) >= 2, f"expected a converge and an idempotence pull, found {logs}"
    return [host.file(f"/var/log/tpmfleet-pull/{name}").content_string for name in logs]


def _recap(output):
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    ok, changed, unreachable, failed = map(int, match.groups())
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


def _served_main():
    # The commit the controller served (prepare's bare clone), not the checkout's HEAD of now.
    served = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pull-kit", "tpmfleet.git")
    main = subprocess.run(["git", "-C", served, "rev-parse", "main"], capture_output=True, text=True, check=True)
    return main.stdout.strip()


def test_the_timers_first_run_converged_the_host_and_the_second_changed_nothing(host):
    first, *_, last = _runs(host)
    assert _recap(first)["changed"] > 0 and _recap(first)["failed"] == 0
    second = _recap(last)
    assert (second["changed"], second["failed"], second["unreachable"]) == (0, 0, 0), last[-3000:]


def test_each_run_is_in_the_journal_with_the_wrappers_summary_and_no_warning(host):
    for log in _runs(host):
        assert "tpmfleet-pull: run " in log and "PLAY RECAP" in log and "rc=0, result=ok" in log, log[-3000:]
        # Ansible's warnings and Python's (such as a CryptographyDeprecationWarning at start).
        warnings = re.findall(r"^.*(?:\[WARNING\]|\[DEPRECATION WARNING\]|\w*Warning: ).*$", log, re.MULTILINE)
        assert warnings == [], "\n".join(warnings) + "\n" + log[-6000:]


def _pins():
    # The controller's toolchain pins, which prepare served to the VM and docs/ansible-pull.md's recipe installs.
    requirements = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "requirements.txt")
    with open(requirements, encoding="utf-8") as handle:
        return dict(re.findall(r"^(ansible-core|cryptography)==(\S+)$", handle.read(), re.MULTILINE))


def test_the_pull_toolchain_is_the_pinned_ansible_core_and_cryptography(host):
    pins = _pins()
    assert set(pins) == {"ansible-core", "cryptography"}, pins
    installed = host.check_output(
        "/opt/ansible-pull/bin/python -c 'import importlib.metadata as m;"
        ' print(m.version("ansible-core"), m.version("cryptography"))\''
    )
    assert installed.split() == [pins["ansible-core"], pins["cryptography"]]


def test_the_last_run_record_says_the_second_run_changed_nothing(host):
    record_file = host.file(RECORD)
    assert (record_file.user, record_file.group, record_file.mode) == ("root", "root", 0o644)
    record = json.loads(record_file.content_string)
    assert record["result"] == "ok" and record["rc"] == 0 and record["source"] == "callback", record
    assert (record["changed"], record["failed"], record["unreachable"]) == (0, 0, 0), record
    assert record["ok"] > 0 and record["quote_mode"] == "direct", record
    assert record["commit"] == _served_main(), record
    assert record["started_at"] <= record["finished_at"], record
    # Nothing secret: not the repository URL (it may carry a token), no variable.
    assert "10.0.2.2" not in record_file.content_string and "http" not in record_file.content_string


def test_the_timer_is_enabled_with_a_random_delay_and_the_service_succeeded(host):
    assert host.service("tpmfleet-pull.timer").is_enabled
    assert host.check_output("systemctl is-active tpmfleet-pull.timer") == "active"
    assert host.check_output("systemctl show -p RandomizedDelayUSec --value tpmfleet-pull.timer") == "10s"
    assert host.check_output("systemctl show -p Result --value tpmfleet-pull.service") == "success"
    settings = host.file("/etc/tpmfleet/pull-service.json")
    assert (settings.user, settings.mode) == ("root", 0o600)


def test_tpm_facts_returns_the_last_run(host):
    run = run_module("pull-1", "tpmfleet.tpm.tpm_facts", "", "-o")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    result = json.loads(run.stdout.split("=>", 1)[1])
    last_run = result["ansible_facts"]["tpm"]["last_run"]
    record = json.loads(host.file(RECORD).content_string)
    assert last_run["exists"] is True and last_run["path"] == RECORD
    assert {k: last_run[k] for k in ("result", "changed", "commit", "quote_mode", "rc")} == {
        k: record[k] for k in ("result", "changed", "commit", "quote_mode", "rc")
    }


def test_the_local_settings_file_chose_direct_mode(host):
    assert "device:/dev/tpm0" in host.file("/etc/tpm2/tcti.env").content_string
    assert host.run("systemctl is-enabled tpm2-abrmd.service").stdout.strip() == "masked"
    node = host.file("/dev/tpm0")
    assert (node.user, node.group, node.mode) == ("tss", "tss", 0o660)
