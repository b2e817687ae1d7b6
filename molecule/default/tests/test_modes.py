"""The default scenario's quote modes: each mode on a real lab VM, toggling, regressions."""

import json
import os
import time

import pytest
from conftest import TCTI, consumer_reaches_the_tpm, mode
from tpmfleet_molecule import PROJECT, SITE, needs_inventory, recap, run_module, run_playbook

QUOTE_MODE = os.path.join(PROJECT, "playbooks", "quote_mode.yml")


def as_agent(host, cmd):
    return host.run(f"runuser -u tpmagent -- {cmd}")


def holders(host, path="/dev/tpm0"):
    out = host.check_output(
        f'for f in /proc/[0-9]*/fd/*; do [ "$(readlink $f)" = {path} ] && echo ${{f#/proc/}}; done; true'
    )
    return [line.split("/")[0] for line in out.splitlines() if line]


def playbook(*args, limit, mitogen=True, entry=SITE):
    # The toggling runs many converges: Mitogen keeps them affordable under TCG.
    return run_playbook(entry, *args, limit=limit, mitogen=mitogen, timeout=1800)


def host_state(host):
    """What a failed run must leave untouched."""
    files = "/etc/udev/rules.d/70-tpmfleet-tpm.rules /etc/tpm2/tcti.env /etc/group /etc/passwd"
    return {
        "files": host.check_output(f"sha256sum {files} 2>/dev/null; true"),
        "abrmd": host.run("systemctl is-active tpm2-abrmd; systemctl is-enabled tpm2-abrmd").stdout,
        "nodes": host.check_output("stat -c '%n %U %G %a' /dev/tpm0 /dev/tpmrm0"),
    }


# --- each mode ---------------------------------------------------------------------------


def test_env_file_sets_every_tcti_variable_to_the_mode_tcti(host):
    env = host.file("/etc/tpm2/tcti.env").content_string
    for name in ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI"):
        assert f"{name}={TCTI[mode(host)]}\n" in env


def test_consumer_service_runs_with_the_mode_tcti(host):
    pid = host.check_output("systemctl show -p MainPID --value tpm-consumer.service")
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert f"TPM2TOOLS_TCTI={TCTI[mode(host)]}" in environ.splitlines()
    works = consumer_reaches_the_tpm(host)
    assert works.rc == 0, works.stderr


def test_nodes_are_never_world_accessible(host):
    for line in host.check_output("stat -c '%n %a' /dev/tpm0 /dev/tpmrm0").splitlines():
        assert line.endswith("660"), line


def test_direct_abrmd_is_stopped_masked_and_nothing_holds_tpm0(direct_host):
    host = direct_host
    assert host.run("systemctl is-enabled tpm2-abrmd").stdout.strip() == "masked"
    assert host.run("systemctl is-active tpm2-abrmd").stdout.strip() != "active"
    assert holders(host) == []
    assert host.check_output("stat -c '%U %G' /dev/tpm0") == "tss tss"


def test_direct_two_consecutive_quotes_as_the_tss_member(direct_host):
    """The failure tpmfleet exists for: works once, then the device is busy."""
    host = direct_host
    ctx = "/tmp/tpmfleet-test"
    t = "-T device:/dev/tpm0"
    pcrs = "-l sha256:0,1,2,3,4,5,6,7"
    host.run_test(f"install -d -o tpmagent -m 0700 {ctx}")
    flush = f"tpm2_flushcontext {t} -t"
    attrs = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign"
    # No resource manager on /dev/tpm0: every tool leaves what it loaded in
    # the TPM, so flush after each step, as an agent in direct mode must.
    steps = [
        f"tpm2_createprimary {t} -C o -G ecc256:aes128cfb -c {ctx}/p.ctx",
        flush,
        f'tpm2_create {t} -C {ctx}/p.ctx -G ecc256:ecdsa-sha256:null -a "{attrs}" -u {ctx}/ak.pub -r {ctx}/ak.priv',
        flush,
        f"tpm2_load {t} -C {ctx}/p.ctx -u {ctx}/ak.pub -r {ctx}/ak.priv -c {ctx}/ak.ctx",
        flush,
        f"tpm2_quote {t} -c {ctx}/ak.ctx {pcrs} -q 0011223344 -m {ctx}/q.msg -s {ctx}/q.sig",
        flush,
        f"tpm2_quote {t} -c {ctx}/ak.ctx {pcrs} -q 5566778899 -m {ctx}/q2.msg -s {ctx}/q2.sig",
        flush,
    ]
    try:
        for step in steps:
            result = as_agent(host, f"sh -c '{step}'")
            assert result.rc == 0, f"{step}: {result.stderr}"
        assert host.check_output(f"tpm2_getcap {t} handles-transient") == "", "transient objects were left loaded"
    finally:
        host.run(f"rm -rf {ctx}; tpm2_flushcontext {t} -t")


def test_kernel_rm_uses_tpmrm0_and_keeps_tpm0_from_consumers(rm_host):
    host = rm_host
    assert host.run("systemctl is-active tpm2-abrmd").stdout.strip() != "active"
    assert host.run("systemctl is-enabled tpm2-abrmd").stdout.strip() == "disabled"
    assert as_agent(host, "tpm2_getrandom -T device:/dev/tpmrm0 8 --hex").rc == 0
    denied = as_agent(host, "tpm2_getrandom -T device:/dev/tpm0 8 --hex")
    assert denied.rc != 0 and "Permission denied" in denied.stderr


def test_abrmd_serves_tss_members_only(abrmd_host):
    host = abrmd_host
    assert host.run("systemctl is-active tpm2-abrmd").stdout.strip() == "active"
    assert as_agent(host, f"tpm2_getrandom -T {TCTI['abrmd']} 8 --hex").rc == 0
    stranger = host.run(f"runuser -u nobody -- tpm2_getrandom -T {TCTI['abrmd']} 8 --hex")
    assert stranger.rc != 0, "a user outside the tss group reached tpm2-abrmd"


@needs_inventory
def test_abrmd_direct_access_is_busy_and_names_abrmd(abrmd_host):
    name = abrmd_host.backend.get_hostname()
    run = run_module(name, "tpmfleet.tpm.tpm_check", "tcti=device:/dev/tpm0", "--become", "--become-user", "tpmagent")
    assert run.returncode != 0
    # In abrmd mode /dev/tpm0 is reserved for the broker: a consumer is refused,
    # and told to use the broker, not to join root's group.
    assert "permission denied" in run.stdout.lower() and "usermod" not in run.stdout, run.stdout
    run = run_module(name, "tpmfleet.tpm.tpm_check", "tcti=device:/dev/tpm0")
    assert run.returncode != 0
    assert "busy" in run.stdout and "tpm2-abrmd" in run.stdout, run.stdout


# --- toggling and regressions (on the direct host, last) --------------------------------


@needs_inventory
def test_zz_toggle_direct_abrmd_kernel_rm_direct(direct_host):
    host = direct_host
    name = host.backend.get_hostname()
    seconds = {}
    for step in ("abrmd", "kernel_rm", "direct"):
        # The switch through the rolling entry point: consumers stopped, switched, verified, started.
        start = time.monotonic()
        first = playbook("-e", f"tpm_quote_mode={step}", limit=name, entry=QUOTE_MODE)
        seconds[f"switch to {step} (quote_mode.yml)"] = round(time.monotonic() - start, 1)
        assert first.returncode == 0, f"switch to {step}:\n{first.stdout[-4000:]}"
        assert recap(first, name)["changed"] > 0
        # A no-op site.yml after the switch into and out of abrmd mode; kernel_rm's no-op run is the
        # idempotence step's, on mode-rm (one playbook run less within make test's budget).
        if step != "kernel_rm":
            start = time.monotonic()
            again = playbook("-e", f"tpm_quote_mode={step}", limit=name)
            seconds[f"re-run in {step} (site.yml)"] = round(time.monotonic() - start, 1)
            assert recap(again, name)["changed"] == 0, f"not idempotent in {step}:\n{again.stdout[-4000:]}"
        assert f"TPM2TOOLS_TCTI={TCTI[step]}" in host.file("/etc/tpm2/tcti.env").content_string
        works = consumer_reaches_the_tpm(host)
        assert works.rc == 0, f"the consumer cannot use the TPM after the switch to {step}: {works.stderr}"
    # Measured wall times (Mitogen strategy, one lab VM) for the record: .lab/timings/ (not committed).
    out = os.path.join(PROJECT, ".lab", "timings")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "modes-toggle.json"), "w", encoding="utf-8") as fh:
        json.dump(seconds, fh, indent=2)


@needs_inventory
def test_zz_abrmd_started_by_hand_in_direct_mode_is_stopped_and_masked(direct_host):
    host = direct_host
    name = host.backend.get_hostname()
    host.run_test("systemctl unmask tpm2-abrmd && systemctl start tpm2-abrmd")
    assert holders(host), "tpm2-abrmd should hold /dev/tpm0 now"
    run = playbook(limit=name)
    assert run.returncode == 0, run.stdout[-4000:]
    assert host.run("systemctl is-enabled tpm2-abrmd").stdout.strip() == "masked"
    assert holders(host) == []
    assert "verify on the controller" in run.stdout


@needs_inventory
def test_zz_foreign_holder_fails_the_run_naming_it_and_changes_nothing(direct_host):
    host = direct_host
    name = host.backend.get_hostname()
    # --collect: a hog left failed by an earlier run is unloaded, not in the way of this one.
    host.run("systemctl stop tpm-hog.service; systemctl reset-failed tpm-hog.service")
    started = host.run(
        "systemd-run --collect --unit=tpm-hog.service --property=User=tss"
        " /bin/sh -c 'exec 3<>/dev/tpm0; exec sleep 600'"
    )
    assert started.rc == 0, started.stderr
    try:
        pid = host.check_output("systemctl show -p MainPID --value tpm-hog.service")
        assert holders(host) == [pid]
        before = host_state(host)
        run = playbook("-e", "tpm_quote_mode=direct", "-e", "tpm_udev_mode=0640", limit=name)
        assert run.returncode != 0
        assert f"pid {pid}" in run.stdout and "tpm-hog.service" in run.stdout and "Nothing was changed" in run.stdout
        assert host_state(host) == before
    finally:
        host.run("systemctl stop tpm-hog.service")


@needs_inventory
@pytest.mark.parametrize(
    "extra, expected",
    [
        # On a real host, one input checked before any role and one checked against the host; the
        # other inputs' checks are the same code (tests/unit/plugins/plugin_utils/test_validate.py,
        # tests/roles/test_tpm_preflight.py).
        ({"tpm_quote_mode": "fast"}, "tpm_quote_mode must be one of"),
        ({"tpm_tcti_env_services": ["no-such-agent.service"]}, "no-such-agent.service"),
    ],
)
def test_zz_bad_input_fails_clearly_and_changes_nothing(direct_host, extra, expected):
    host = direct_host
    name = host.backend.get_hostname()
    before = host_state(host)
    run = playbook("-e", json.dumps({**extra, "tpm_quote_mode": extra.get("tpm_quote_mode", "kernel_rm")}), limit=name)
    assert run.returncode != 0
    assert expected in run.stdout, run.stdout[-3000:]
    assert host_state(host) == before
