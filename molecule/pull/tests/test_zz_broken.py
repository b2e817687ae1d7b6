"""A broken pull leaves the service failed, says why, records the failure and leaves the host unchanged.

Runs last in the verifier (the VM is destroyed after it): each case breaks the pull, starts the service the
timer starts (systemctl start waits for a oneshot and fails with it), checks, then restores the settings.
"""

import json

import pytest

RECORD = "/var/lib/tpmfleet/last-run.json"
SETTINGS = "/etc/tpmfleet/pull-service.json"
LOCAL = "/etc/tpmfleet/pull.yml"
# What a converge manages on this host: a broken run must leave every one of these as it was.
STATE = (
    "{ find /etc/tpm2 /etc/udev/rules.d /etc/systemd/system /etc/modules-load.d /etc/modprobe.d"
    " -xdev -type f ! -path '/etc/systemd/system/tpmfleet-pull.*' -print0 2>/dev/null | sort -z | xargs -0 sha256sum;"
    " stat -c '%n %U:%G %a' /dev/tpm0 /dev/tpmrm0; getent group tss;"
    " systemctl is-enabled tpm2-abrmd.service; systemctl is-active tpm2-abrmd.service; } 2>&1"
)


def _host_state(host):
    return host.run(STATE).stdout


def _break_and_run(host, setup):
    before = _host_state(host)
    record_before = host.file(RECORD).content_string
    host.run_test(f"cp -p {SETTINGS} /root/pull-service.json.orig && cp -p {LOCAL} /root/pull.yml.orig")
    try:
        host.run_test(setup)
        run = host.run("systemctl start tpmfleet-pull.service")
        journal = host.check_output(
            "journalctl -u tpmfleet-pull.service -o cat --no-pager _SYSTEMD_INVOCATION_ID="
            "$(systemctl show -p InvocationID --value tpmfleet-pull.service)"
        )
        return run, journal, before, record_before
    finally:
        host.run_test(f"cp -p /root/pull-service.json.orig {SETTINGS} && cp -p /root/pull.yml.orig {LOCAL}")


@pytest.mark.parametrize(
    ("setup", "message", "source"),
    [
        pytest.param(
            'python3 -c \'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["inventory"]="";'
            ' json.dump(c, open(p, "w"))\' ' + SETTINGS,
            # The clone's ansible.cfg names the lab inventory, absent on a host: pull.yml's guard refuses.
            "No host of this pull is in the group tpm_hosts",
            "callback",
            id="no-inventory",
        ),
        pytest.param(
            "printf 'tpm_quote_mode: \" direct\"\\n' > " + LOCAL,
            "tpm_quote_mode",
            "callback",
            id="bad-input",
        ),
    ],
)
def test_a_broken_pull_fails_the_service_and_changes_nothing(host, setup, message, source):
    run, journal, before, record_before = _break_and_run(host, setup)
    assert run.rc != 0, journal[-3000:]
    assert host.check_output("systemctl is-failed tpmfleet-pull.service") == "failed"
    assert message in journal, journal[-4000:]
    record = json.loads(host.file(RECORD).content_string)
    assert record["result"] == "failed" and record["rc"] != 0 and record["source"] == source, record
    assert host.file(RECORD).content_string != record_before
    assert _host_state(host) == before
    host.run_test("systemctl reset-failed tpmfleet-pull.service")
