"""The default scenario: bad inputs that need a real host fail clearly and change nothing,
and leaving abrmd mode takes away what abrmd mode added.

Runs in `molecule verify` before test_modes.py (file order); every test leaves the
hosts as the converge made them. Playbooks run with the project's Mitogen strategy,
as in test_modes.py.
"""

import json
import os
import re

import pytest
from tpmfleet_molecule import PROJECT, SITE, needs_inventory, run_module, run_playbook

# On demand (make test-lab-matrix): every check here exercises validation that the unit and role tests
# cover case by case; on the lab VMs they cost CI's budget.
pytestmark = pytest.mark.skipif(not os.environ.get("TPMFLEET_LAB_MATRIX"), reason="on demand: make test-lab-matrix")

QUOTE_MODE = os.path.join(PROJECT, "playbooks", "quote_mode.yml")
ABRMD_TCTI = "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system"
DROPIN = "/etc/systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"
POLICY = "/etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
DISTRO_POLICY = "/etc/dbus-1/system.d/tpm2-abrmd.conf"  # Debian's conffile, never edited by tpmfleet


def playbook(*args, limit, entry=SITE):
    return run_playbook(entry, *args, limit=limit, mitogen=True, timeout=1800)


def flat(text):
    """Output with every run of whitespace made one space (long messages may be wrapped)."""
    return " ".join(text.split())


# --- tpm_tcti_env_path: only a file in a directory of TPM configuration -------------------------

CONFINED = (
    "tpm_tcti_env_path must be a file in a directory that holds only TPM configuration, such as "
    '/etc/tpm2/tcti.env (got "{path}": {why}). Put it in /etc/tpm2, or list a directory of its own in '
    "tpm_tcti_env_dirs. Nothing was changed."
)


def shown_in(message, run):
    """Whether ``message`` is in the run's output, where a failed task's result is printed as JSON."""
    return json.dumps(message)[1:-1] in flat(run.stdout)


def watched(host):
    """What a run with a bad tpm_tcti_env_path must leave untouched: the file it names, /tmp,
    tpmfleet's own environment file and its directory, and the rest of the host's TPM setup."""
    paths = "/etc/passwd /etc/shadow /tmp /tmp/x.env /etc/tpm2 /etc/tpm2/tcti.env"
    files = "/etc/passwd /etc/shadow /etc/group /etc/tpm2/tcti.env /etc/udev/rules.d/70-tpmfleet-tpm.rules"
    return {
        "stat": host.check_output(f"stat -c '%n %U %G %a %s %Y' {paths} 2>&1; true"),
        "content": host.check_output(f"sha256sum {files} 2>&1; true"),
        "services": host.run("systemctl is-active tpm-consumer tpm2-abrmd; systemctl is-enabled tpm2-abrmd").stdout,
        "nodes": host.check_output("stat -c '%n %U %G %a' /dev/tpm0 /dev/tpmrm0"),
    }


@needs_inventory
@pytest.mark.parametrize(
    ("path", "why"),
    [
        # The lab found the run replacing /etc/passwd with the env file.
        ("/etc/passwd", "/etc/passwd is read by other programs"),
        # ... and /tmp set to root 0755 (from 1777) for /tmp/tcti.env.
        ("/tmp/x.env", "/tmp is writable by every user"),
        ("/etc/tpm2/../shadow", "a '..' component"),
    ],
)
def test_a_tcti_env_path_that_is_not_tpmfleets_file_is_refused_and_nothing_changes(direct_host, path, why):
    host = direct_host
    name = host.backend.get_hostname()
    before = watched(host)
    assert host.check_output("stat -c '%U %G %a' /tmp") == "root root 1777"
    run = playbook("-e", json.dumps({"tpm_tcti_env_path": path}), limit=name)
    assert run.returncode != 0
    assert shown_in(CONFINED.format(path=path, why=why), run), run.stdout[-4000:]
    assert watched(host) == before
    assert host.check_output("stat -c '%U %G %a' /tmp") == "root root 1777"
    assert not host.file("/tmp/x.env").exists


def parsed_dirs(host):
    """Every file of the directories apt and sudo parse, with owner, mode, size, time and content."""
    return host.check_output(
        "find /etc/apt /etc/sudoers /etc/sudoers.d -xdev -printf '%p %u %g %m %s %T@\\n' 2>&1 | sort; "
        "find /etc/apt /etc/sudoers.d -xdev -type f -exec sha256sum {} + 2>&1 | sort; true"
    )


@needs_inventory
@pytest.mark.parametrize(
    ("path", "place"),
    [("/etc/apt/apt.conf.d/99tpm", "/etc/apt"), ("/etc/sudoers.d/tpm", "/etc/sudoers.d")],
)
def test_an_env_file_where_apt_or_sudo_reads_every_file_is_refused_and_both_still_work(direct_host, path, place):
    """Issue 22's probe: "under /etc" was accepted, and afterwards every apt run (apt.conf.d) or every sudo
    (sudoers.d) failed on the environment file's syntax."""
    host = direct_host
    name = host.backend.get_hostname()
    if not host.exists("visudo"):  # the lab image has sudo; a host without it gets it, to check its files
        host.run_test("DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo")
    before = (watched(host), parsed_dirs(host))
    run = playbook("-e", json.dumps({"tpm_tcti_env_path": path}), limit=name)
    assert run.returncode != 0
    assert shown_in(CONFINED.format(path=path, why=f"{place} is read by other programs"), run), run.stdout[-4000:]
    assert "Check the settings of every role before anything changes" in run.stdout
    assert not host.file(path).exists
    assert (watched(host), parsed_dirs(host)) == before
    # Nothing was written where apt and sudo read: both parse their configuration cleanly.
    apt = host.run("apt-get check")
    assert apt.rc == 0 and "E:" not in apt.stdout + apt.stderr, apt.stdout + apt.stderr
    assert host.run("visudo -c").rc == 0
    # (The lab image's hostname is not in /etc/hosts: sudo warns that it cannot resolve it, which is not a
    # complaint about its configuration.)
    sudo = host.run("sudo -n true")
    assert sudo.rc == 0 and not re.search(r"syntax error|parse error|sudoers", sudo.stderr), sudo.stderr


# --- tpm_quote: never an EK's or the platform's handle, never an object tpmfleet did not make ---


def persistent(host):
    return host.check_output("tpm2_getcap -T device:/dev/tpmrm0 handles-persistent")


@needs_inventory
@pytest.mark.parametrize(
    ("handle", "expected"),
    [
        ("0x81010001", "0x81010001 is in the reserved endorsement range 0x81010000-0x8101ffff"),  # the lab's RSA EK
        ("0x81010002", "0x81010002 is in the reserved endorsement range 0x81010000-0x8101ffff"),
        ("0x81800000", "0x81800000 is in the reserved platform range 0x81800000-0x81ffffff"),
    ],
)
@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_tpm_quote_refuses_a_reserved_handle_before_touching_the_tpm(rm_host, handle, expected, method):
    host = rm_host
    name = host.backend.get_hostname()
    before = persistent(host)
    assert "0x81010001" in before  # the lab's EK, which the old error told users to evict
    args = f"tcti=device:/dev/tpmrm0 persistent_handle={handle} method={method} count=1"
    run = run_module(name, "tpmfleet.tpm.tpm_quote", args)
    assert run.returncode != 0
    out = flat(run.stdout)
    assert f"persistent_handle {expected}" in out and "e.g. 0x81020001" in out, run.stdout[-3000:]
    assert "tpm2_evictcontrol" not in out and "rc 0x1cd" not in out
    assert persistent(host) == before


@needs_inventory
@pytest.mark.parametrize("method", ["pytss", "cli"])
def test_tpm_quote_neither_uses_nor_replaces_another_programs_object(rm_host, method):
    host = rm_host
    name = host.backend.get_hostname()
    handle = "0x81020077"
    t = "-T device:/dev/tpmrm0"
    host.run_test(f"tpm2_createprimary {t} -C o -G rsa2048:aes128cfb -c /tmp/foreign.ctx")
    host.run_test(f"tpm2_evictcontrol {t} -C o -c /tmp/foreign.ctx {handle}")
    try:
        before = host.check_output(f"tpm2_readpublic {t} -c {handle} | grep ^name:")
        run = run_module(name, "tpmfleet.tpm.tpm_quote", f"tcti=device:/dev/tpmrm0 persistent_handle={handle} "
                         f"method={method} count=1")  # fmt: skip
        assert run.returncode != 0
        out = flat(run.stdout)
        assert f"persistent_handle {handle} already holds a storage key (rsa2048" in out, run.stdout[-3000:]
        assert "tpmfleet never uses, replaces or evicts an object it did not create" in out
        assert "tpm2_evictcontrol" not in out
        assert host.check_output(f"tpm2_readpublic {t} -c {handle} | grep ^name:") == before
    finally:
        host.run(f"tpm2_evictcontrol {t} -C o -c {handle}; rm -f /tmp/foreign.ctx")


# --- leaving abrmd mode --------------------------------------------------------------------------


def diverted(host):
    return "local diversion" in host.run(f"dpkg-divert --list {DISTRO_POLICY}").stdout


@needs_inventory
def test_leaving_abrmd_removes_what_abrmd_added_and_coming_back_restores_it(abrmd_host):
    host = abrmd_host
    name = host.backend.get_hostname()
    # Converged in abrmd mode: tpmfleet's own files; Debian's policy (it lets every user call the
    # broker) moved aside by dpkg, its content unchanged.
    assert host.file(DROPIN).exists and host.file(POLICY).exists
    assert diverted(host) and not host.file(DISTRO_POLICY).exists and host.file(DISTRO_POLICY + ".distrib").exists
    assert "tpm2-abrmd.conf" not in host.run("dpkg --verify tpm2-abrmd").stdout
    stranger = host.run(f"runuser -u nobody -- tpm2_getrandom -T {ABRMD_TCTI} 8 --hex")
    assert stranger.rc != 0, "a user outside the tss group reached tpm2-abrmd"
    try:
        left = playbook("-e", "tpm_quote_mode=kernel_rm", limit=name, entry=QUOTE_MODE)
        assert left.returncode == 0, left.stdout[-4000:]
        assert not host.file(DROPIN).exists and not host.file(POLICY).exists
        # Debian's policy is back where the package put it, unchanged, and no longer diverted.
        assert not diverted(host) and host.file(DISTRO_POLICY).exists
        assert not host.file(DISTRO_POLICY + ".distrib").exists
        assert "tpm2-abrmd.conf" not in host.run("dpkg --verify tpm2-abrmd").stdout
        assert host.run("systemctl is-active tpm2-abrmd").stdout.strip() != "active"
        # systemd no longer sees tpmfleet's drop-in.
        assert "tpmfleet.conf" not in host.run("systemctl show -p DropInPaths tpm2-abrmd.service").stdout
    finally:
        back = playbook("-e", "tpm_quote_mode=abrmd", limit=name, entry=QUOTE_MODE)
    assert back.returncode == 0, back.stdout[-4000:]
    assert host.file(DROPIN).exists and host.file(POLICY).exists and diverted(host)
    assert host.run("systemctl is-active tpm2-abrmd").stdout.strip() == "active"
    assert host.run(f"runuser -u tpmagent -- tpm2_getrandom -T {ABRMD_TCTI} 8 --hex").rc == 0
    assert host.run(f"runuser -u nobody -- tpm2_getrandom -T {ABRMD_TCTI} 8 --hex").rc != 0
