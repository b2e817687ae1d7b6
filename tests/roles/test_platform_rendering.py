# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the roles write on every platform in the README, rendered by Ansible.

Fedora, RHEL and Ubuntu cannot be booted here (the lab is Debian under QEMU
TCG), so their distribution facts are set by a fixture module and the roles'
own vars selection (first_found) and templates run on the controller
(platforms.yml). Debian runs the same way, as a reference, and is also
converged for real in the molecule scenarios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

PLATFORMS = {
    "debian12": {"distribution": "Debian", "os_family": "Debian", "distribution_major_version": "12"},
    # systemd 257 has tpm2.target (the preflight reads it with the services).
    "debian13": {
        "distribution": "Debian",
        "os_family": "Debian",
        "distribution_major_version": "13",
        "services": {"tpm2.target": {"name": "tpm2.target", "state": "stopped", "status": "static"}},
    },
    "ubuntu2404": {"distribution": "Ubuntu", "os_family": "Debian", "distribution_major_version": "24"},
    "fedora41": {"distribution": "Fedora", "os_family": "RedHat", "distribution_major_version": "41"},
    "rhel9": {"distribution": "RedHat", "os_family": "RedHat", "distribution_major_version": "9"},
    # A family without a vars file: vars/main.yml alone.
    "arch": {"distribution": "Archlinux", "os_family": "Archlinux", "distribution_major_version": "rolling"},
}
MODES = ("direct", "kernel_rm", "abrmd")
TCTI = {
    "direct": "device:/dev/tpm0",
    "kernel_rm": "device:/dev/tpmrm0",
    "abrmd": "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system",
}
ABRMD_PACKAGES = {
    "Debian": ["tpm2-abrmd", "libtss2-tcti-tabrmd0"],
    "RedHat": ["tpm2-abrmd"],
    "Archlinux": ["tpm2-abrmd"],
}
BUS = "com.intel.tss2.Tabrmd"


def host(platform, mode):
    return f"{platform}-{mode}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Run platforms.yml once for every platform and mode; return the output dir."""
    tmp = tmp_path_factory.mktemp("render")
    hosts = {
        host(p, m): {"platform_facts": facts, "tpm_quote_mode": m} for p, facts in PLATFORMS.items() for m in MODES
    }
    inventory = tmp / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "platforms": {
                    "hosts": hosts,
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                }
            }
        )
    )
    out = tmp / "out"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LIBRARY=str(HERE / "library"),
        ANSIBLE_FORKS=str(len(hosts)),
        ANSIBLE_STRATEGY="linear",
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(HERE / "platforms.yml"),
            "-e",
            f"render_dir={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def files(rendered, platform, mode):
    return rendered / host(platform, mode)


def platform_json(rendered, platform, mode):
    return json.loads((files(rendered, platform, mode) / "platform.json").read_text())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_abrmd_packages_and_paths_follow_the_family(rendered, platform):
    family = PLATFORMS[platform]["os_family"]
    for mode in MODES:
        chosen = platform_json(rendered, platform, mode)
        assert chosen["abrmd_packages"] == ABRMD_PACKAGES[family]
        assert chosen["abrmd_service"] == "tpm2-abrmd.service"
        assert chosen["abrmd_binary"] == "/usr/sbin/tpm2-abrmd"
        # tpmfleet's own file, never the distribution's tpm2-abrmd.conf ...
        assert chosen["abrmd_dbus_policy"] == "/etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
        # ... which is diverted where it sits beside ours (Debian's conffile) and is read in undefined
        # order with it; Fedora and RHEL keep theirs in /usr/share, read before /etc.
        assert chosen["abrmd_distro_dbus_policy"] == (
            "/etc/dbus-1/system.d/tpm2-abrmd.conf" if family == "Debian" else ""
        )
        assert chosen["verify_packages"] == ["tpm2-tools", "python3-tpm2-pytss"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("mode", MODES)
def test_every_rendered_file_is_managed_and_not_world_writable(rendered, platform, mode):
    rendered_files = [p for p in files(rendered, platform, mode).rglob("*") if p.is_file() and p.suffix != ".json"]
    assert len(rendered_files) == 5
    for path in rendered_files:
        text = path.read_text()
        # ansible_managed | comment: the first lines, in the file's comment syntax.
        assert "Ansible managed" in "\n".join(text.splitlines()[:5]), path
        assert path.stat().st_mode & 0o002 == 0


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("mode", MODES)
def test_tcti_env_sets_every_variable_to_the_modes_tcti(rendered, platform, mode):
    env = files(rendered, platform, mode) / "etc/tpm2/tcti.env"
    pairs = dict(line.split("=", 1) for line in env.read_text().splitlines() if line and not line.startswith("#"))
    names = ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI")
    assert pairs == dict.fromkeys(names, TCTI[mode])
    dropin = files(rendered, platform, mode) / "etc/systemd/system/consumer.service.d/10-tpmfleet-tcti.conf"
    assert "EnvironmentFile=/etc/tpm2/tcti.env" in dropin.read_text().splitlines()


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("mode", MODES)
def test_consumer_dropin_orders_after_the_tpm_and_flushes_only_in_direct_mode(rendered, platform, mode):
    text = (files(rendered, platform, mode) / "etc/systemd/system/consumer.service.d/10-tpmfleet-tcti.conf").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    unit = lines[lines.index("[Unit]") + 1 : lines.index("[Service]")]
    service = lines[lines.index("[Service]") + 1 :]
    if mode == "abrmd":
        waits_for = "tpm2-abrmd.service"
    else:
        # The node the mode opens, with tpmfleet's owner and mode; tpm2.target too where systemd has it
        # (reached with /dev/tpmrm0 alone, so never instead of the node).
        waits_for = "dev-tpm0.device" if mode == "direct" else "dev-tpmrm0.device"
        if "services" in PLATFORMS[platform]:
            waits_for += " tpm2.target"
    # No Wants= on tpm2-abrmd: a consumer must never start it in another mode.
    assert unit == ([f"After={waits_for}"] if mode == "abrmd" else [f"Wants={waits_for}", f"After={waits_for}"])
    flush = [
        f"{step}=-/usr/bin/tpm2_flushcontext {what}"
        for step in ("ExecStartPre", "ExecStopPost")
        for what in ("--transient-object", "--loaded-session")
    ]
    assert service == ["EnvironmentFile=/etc/tpm2/tcti.env", *(flush if mode == "direct" else [])]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("mode", MODES)
def test_udev_rules_give_the_raw_device_to_tss_only_in_direct_mode(rendered, platform, mode):
    rules = files(rendered, platform, mode) / "etc/udev/rules.d/70-tpmfleet-tpm.rules"
    lines = [line for line in rules.read_text().splitlines() if line.startswith("KERNEL==")]
    assert len(lines) == 2
    raw = next(line for line in lines if line.startswith('KERNEL=="tpm[0-9]*"'))
    rm = next(line for line in lines if line.startswith('KERNEL=="tpmrm[0-9]*"'))
    assert f'GROUP="{"tss" if mode == "direct" else "root"}"' in raw
    assert 'GROUP="tss"' in rm
    for line in lines:
        assert 'OWNER="tss"' in line
        assert line.endswith('MODE="0660"')


@pytest.mark.parametrize("platform", PLATFORMS)
def test_abrmd_dropin_starts_the_platforms_binary_with_its_tcti(rendered, platform):
    dropin = files(rendered, platform, "abrmd") / "etc/systemd/system/tpm2-abrmd.service.d/tpmfleet.conf"
    lines = [line for line in dropin.read_text().splitlines() if line.startswith("ExecStart=")]
    # The first ExecStart= clears the packaged command line.
    assert lines == ["ExecStart=", "ExecStart=/usr/sbin/tpm2-abrmd --tcti=device:/dev/tpm0 --flush-all"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_dbus_policy_lets_only_root_and_tss_call_the_broker(rendered, platform):
    policy = files(rendered, platform, "abrmd") / "etc/dbus-1/system.d/tpmfleet-tpm2-abrmd.conf"
    # Well-formed XML, or this raises. The file was rendered by this test.
    tree = ET.parse(policy)  # noqa: S314
    contexts = {}
    for pol in tree.getroot().findall("policy"):
        key = next(f"{k}={v}" for k, v in pol.attrib.items())
        contexts[key] = [(rule.tag, dict(rule.attrib)) for rule in pol]
    assert contexts["context=default"] == [("deny", {"own": BUS}), ("deny", {"send_destination": BUS})]
    assert ("allow", {"own": BUS}) in contexts["user=tss"]
    assert ("allow", {"send_destination": BUS}) in contexts["group=tss"]
    assert ("allow", {"send_destination": BUS}) in contexts["user=root"]
    assert ("allow", {"own": BUS}) not in contexts["user=root"]
    # Nobody else is allowed anything.
    assert set(contexts) == {"context=default", "user=tss", "user=root", "group=tss"}
