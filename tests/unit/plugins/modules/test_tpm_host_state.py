"""tpm_host_state: run for real through ansible on the controller, against files of a temp dir, and
compared with what ansible.builtin.stat and ansible.builtin.getent return for the same host."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import host_state

SHOW = """Id=keylime_agent.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=tpm2-abrmd.service
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked

Id=nosuch.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=

Id=oneshot.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=static
"""
UNITS = ["keylime_agent.service", "tpm2-abrmd.service", "nosuch.service", "oneshot.service"]


class FakeModule:
    """Only what unit_states asks of an AnsibleModule: where systemctl is."""

    def __init__(self, systemctl):
        self.systemctl = systemctl

    def get_bin_path(self, name):
        return self.systemctl if name == "systemctl" else None


@pytest.fixture
def tree(scratch):
    (scratch / "etc" / "tpm2").mkdir(parents=True)
    env = scratch / "etc" / "tpm2" / "tcti.env"
    env.write_text("# tpmfleet: TCTI for quote mode direct\nTCTI=device:/dev/tpm0\n")
    env.chmod(0o640)
    foreign = scratch / "etc" / "foreign.env"
    foreign.write_text("TCTI=device:/dev/tpmrm0  # tpmfleet: TCTI for quote mode kernel_rm (not at a line's start)\n")
    os.symlink(env, scratch / "etc" / "link.env")
    for name in ("a.conf", "b.conf", "c.txt"):
        (scratch / "etc" / name).write_text(name)
    return scratch


def test_paths_globs_and_markers_match_the_stat_module(tree, ansible_run):
    env = tree / "etc" / "tpm2" / "tcti.env"
    missing = tree / "etc" / "new" / "sub" / "tcti.env"
    args = {
        "paths": [str(env), str(tree / "etc" / "tpm2"), str(tree / "etc" / "link.env"), str(missing)],
        "markers": {str(env): "# tpmfleet: ", str(tree / "etc" / "foreign.env"): "# tpmfleet: TCTI"},
        "globs": [str(tree / "etc" / "*.conf"), str(tree / "nothing" / "*")],
    }
    r, _wall = ansible_run("tpm_host_state", args, check=True)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False
    state = r["ansible_facts"]["tpmfleet_host_state"]
    paths = state["paths"]
    got = paths[str(env)]
    assert got["exists"] and got["isreg"] and got["type"] == "file" and got["has_marker"] is True
    assert got["checksum"] == hashlib.sha1(env.read_bytes()).hexdigest()  # noqa: S324
    assert paths[str(tree / "etc" / "foreign.env")]["has_marker"] is False  # not at the start of a line
    assert paths[str(tree / "etc" / "tpm2")]["isdir"] and "checksum" not in paths[str(tree / "etc" / "tpm2")]
    link = paths[str(tree / "etc" / "link.env")]
    assert link["islnk"] and not link["isreg"] and link["lnk_target"] == str(env)
    gone = paths[str(missing)]
    assert gone["exists"] is False and gone["parent"]["path"] == str(tree / "etc") and gone["parent"]["isdir"]
    assert [f["path"] for f in state["globs"][str(tree / "etc" / "*.conf")]] == [
        str(tree / "etc" / "a.conf"),
        str(tree / "etc" / "b.conf"),
    ]
    assert state["globs"][str(tree / "nothing" / "*")] == []

    # The keys the roles read from ansible.builtin.stat have the same values here.
    for path in (env, tree / "etc" / "tpm2", tree / "etc" / "link.env", missing):
        s, _wall = ansible_run("ansible.builtin.stat", {"path": str(path), "follow": False})
        want = s["stat"]
        mine = paths[str(path)]
        for key in ("exists", "isreg", "isdir", "islnk", "mode", "uid", "gid", "pw_name", "gr_name", "checksum"):
            assert mine.get(key) == want.get(key), (path, key)


def test_without_facts_the_state_is_returned_under_state(tree, ansible_run):
    r, _wall = ansible_run("tpm_host_state", {"as_facts": False, "accounts": False, "paths": [str(tree)]})
    assert "ansible_facts" not in r or not r["ansible_facts"]
    assert r["state"]["tpmfleet_host_state"]["paths"][str(tree)]["isdir"] is True


def test_accounts_match_the_getent_module(ansible_run):
    r, _wall = ansible_run("tpm_host_state", {})
    facts = r["ansible_facts"]
    for database in ("passwd", "group"):
        g, _wall = ansible_run("ansible.builtin.getent", {"database": database})
        assert facts[f"getent_{database}"] == g["ansible_facts"][f"getent_{database}"], database
    assert facts["getent_passwd"]["root"][:2] == ["x", "0"]


def test_accounts_can_be_left_out_and_kernel_and_holders_read(ansible_run):
    r, _wall = ansible_run("tpm_host_state", {"accounts": False, "kernel": True, "holders": ["/dev/tpm0"]})
    facts = r["ansible_facts"]
    assert "getent_passwd" not in facts and "getent_group" not in facts
    state = facts["tpmfleet_host_state"]
    assert state["kernel"]["release"] == os.uname().release
    assert isinstance(state["kernel"]["loaded"], list)
    assert list(state["holders"]) == ["/dev/tpm0"]  # every node asked for, held or not, present or not
    if not os.path.exists("/dev/tpm0"):
        assert state["holders"]["/dev/tpm0"] == []
    assert state["holders_complete"] is True  # root reads every /proc/PID/fd


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs on this machine")
def test_without_systemd_no_unit_is_listed_and_the_reason_is_given(ansible_run):
    r, _wall = ansible_run("tpm_host_state", {"units": ["keylime_agent.service"]})
    assert not r.get("failed"), r.get("msg")
    assert r["ansible_facts"]["services"] == {}
    state = r["ansible_facts"]["tpmfleet_host_state"]
    assert state["systemd"] is False
    assert any("systemd is not running" in e for e in state["errors"])


@pytest.mark.skipif(not os.path.isdir("/run/systemd/system"), reason="systemd does not run on this machine")
def test_with_systemd_the_units_are_those_service_facts_lists(ansible_run):
    units = ["systemd-journald.service", "tpmfleet-no-such-unit.service"]
    r, _wall = ansible_run("tpm_host_state", {"units": units, "accounts": False})
    services = r["ansible_facts"]["services"]
    assert "tpmfleet-no-such-unit.service" not in services
    sf, _wall = ansible_run("ansible.builtin.service_facts", {})
    assert services["systemd-journald.service"] == sf["ansible_facts"]["services"]["systemd-journald.service"]


def test_unit_states_parses_one_show_for_every_unit(tmp_path):
    calls = []

    def runner(args):
        calls.append(args)
        return 0, SHOW, ""

    services, error = host_state.unit_states(
        FakeModule("/usr/bin/systemctl"), [*UNITS, UNITS[0]], runner=runner, systemd_dir=str(tmp_path)
    )
    assert error is None
    assert len(calls) == 1 and calls[0][:3] == ["/usr/bin/systemctl", "show", "-p"]
    assert calls[0][4:] == ["--", *UNITS]  # each unit once, in order
    assert services == {
        "keylime_agent.service": {
            "name": "keylime_agent.service",
            "state": "running",
            "status": "enabled",
            "source": "systemd",
        },
        "tpm2-abrmd.service": {
            "name": "tpm2-abrmd.service",
            "state": "stopped",
            "status": "masked",
            "source": "systemd",
        },
        "oneshot.service": {"name": "oneshot.service", "state": "stopped", "status": "failed", "source": "systemd"},
    }


def test_unit_states_without_systemctl_or_when_it_fails(tmp_path):
    services, error = host_state.unit_states(FakeModule(None), UNITS, systemd_dir=str(tmp_path))
    assert services is None and "systemctl was not found" in error
    services, error = host_state.unit_states(
        FakeModule("/usr/bin/systemctl"), UNITS, runner=lambda _a: (1, "", "Failed to connect to bus"),
        systemd_dir=str(tmp_path),
    )  # fmt: skip
    assert services is None and "rc 1" in error and "Failed to connect to bus" in error
    services, error = host_state.unit_states(FakeModule(None), UNITS, systemd_dir=str(tmp_path / "absent"))
    assert services is None and "systemd is not running" in error
    assert host_state.unit_states(FakeModule(None), []) == ({}, None)


def test_unit_states_with_the_real_systemctl_when_systemd_does_not_run(tmp_path):
    """systemctl may be installed without systemd running (a container): the error is given, not raised."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or os.path.isdir("/run/systemd/system"):
        pytest.skip("needs systemctl installed and systemd not running")
    import subprocess

    def runner(args):
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    services, error = host_state.unit_states(
        FakeModule(systemctl), ["tpm2-abrmd.service"], runner=runner, systemd_dir=str(tmp_path)
    )
    assert services is None and error.startswith("systemctl show tpm2-abrmd.service failed")


def test_kernel_modules_reads_modules_builtin_modules_dep_and_initstate(tmp_path):
    (tmp_path / "lib" / "9.9.9").mkdir(parents=True)
    (tmp_path / "lib" / "9.9.9" / "modules.builtin").write_text(
        "kernel/drivers/char/tpm/tpm_crb.ko\nkernel/drivers/char/tpm/tpm-tis-core.ko\nkernel/fs/ext4/ext4.ko\n\n"
    )
    (tmp_path / "lib" / "9.9.9" / "modules.dep").write_text(
        "kernel/drivers/char/tpm/tpm_tis_spi.ko.xz: kernel/drivers/char/tpm/tpm_tis_core.ko.xz\n"
        "kernel/drivers/char/tpm/xen-tpmfront.ko.zst:\n"
        "kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz\n"
        "kernel/net/core/failover.ko.xz:\n"
    )
    for name, initstate in (("tpm_tis", "live\n"), ("going_away", "going\n"), ("builtin_param", None)):
        (tmp_path / "sys" / name).mkdir(parents=True)
        if initstate:
            (tmp_path / "sys" / name / "initstate").write_text(initstate)
    dirs = {"modules_dir": str(tmp_path / "lib"), "sys_module": str(tmp_path / "sys")}
    got = host_state.kernel_modules("9.9.9", wanted=["virtio-net", "no_such_tpm_module"], **dirs)
    assert got == {
        "release": "9.9.9",
        "builtin": ["ext4", "tpm_crb", "tpm_tis_core"],
        "loaded": ["tpm_tis"],
        # The TPM drivers and the modules asked about that exist; not every module of the kernel.
        "loadable": ["tpm_tis_spi", "virtio_net", "xen_tpmfront"],
        "tpm_drivers": ["tpm_crb", "tpm_tis_core", "tpm_tis_spi", "xen_tpmfront"],
        "asked": ["no_such_tpm_module", "virtio_net"],
        "modules_read": True,
        "errors": [],
    }
    (tmp_path / "lib" / "9.9.9" / "modules.dep").unlink()
    got = host_state.kernel_modules("9.9.9", **dirs)
    assert got["builtin"] == ["ext4", "tpm_crb", "tpm_tis_core"] and got["modules_read"] is False
    assert "modules.dep" in got["errors"][0]
    got = host_state.kernel_modules("0.0.0", **dirs)
    assert got["builtin"] == [] and "modules.builtin" in got["errors"][0] and not got["modules_read"]


def test_a_long_unit_list_is_read_in_batches(tmp_path):
    units = [f"u{i}.service" for i in range(150)]
    calls = []

    def runner(args):
        calls.append(args)
        asked = args[args.index("--") + 1 :]
        out = "\n\n".join(f"Id={u}\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled"
                          for u in asked)  # fmt: skip
        return 0, out + "\n", ""

    services, error = host_state.unit_states(
        FakeModule("/usr/bin/systemctl"), units, runner=runner, systemd_dir=str(tmp_path)
    )
    assert error is None and list(services) == units
    assert [len(c[c.index("--") + 1 :]) for c in calls] == [64, 64, 22]
    # A failing batch is named by a few of its units, not by all of them.
    services, error = host_state.unit_states(
        FakeModule("/usr/bin/systemctl"), units, runner=lambda _a: (1, "", "Connection timed out"),
        systemd_dir=str(tmp_path),
    )  # fmt: skip
    assert services is None
    assert error == (
        "systemctl show u0.service, u1.service, u2.service, u3.service, u4.service and 59 more failed (rc 1): "
        "Connection timed out"
    )


def test_nearest_parent_of_a_missing_path(tmp_path):
    assert host_state.nearest_parent(str(tmp_path / "a" / "b" / "c")) == str(tmp_path)
    assert host_state.nearest_parent("/") is None or host_state.nearest_parent("/") == "/"


# --- installed packages ------------------------------------------------------------------------------------


def test_installed_packages_are_those_the_package_module_finds_installed(ansible_run):
    """The real dpkg-query of this controller, through the module: an installed package is listed, a missing one
    and a name that is no package name (an option, a shell word) are not; the package module agrees."""
    asked = ["coreutils", "tpmfleet-no-such-package", "--admindir=/tmp", "a;b", "dpkg"]
    r, _wall = ansible_run("tpm_host_state", {"accounts": False, "packages": asked})
    state = r["ansible_facts"]["tpmfleet_host_state"]
    assert state["installed_packages"] == ["coreutils", "dpkg"], state["errors"]
    check, _wall = ansible_run("ansible.builtin.package", {"name": ["coreutils", "dpkg"]}, check=True)
    assert check.get("changed") is False, check
    missing, _wall = ansible_run("ansible.builtin.package", {"name": "tpmfleet-no-such-package"}, check=True)
    assert missing.get("failed") or missing.get("changed"), missing


class PackageModule:
    """What installed_packages asks of an AnsibleModule: where dpkg-query and rpm are."""

    def __init__(self, *tools):
        self.tools = tools

    def get_bin_path(self, name):
        return f"/usr/bin/{name}" if name in self.tools else None


@pytest.mark.parametrize(
    ("tools", "reply", "want"),
    [
        # dpkg: "ii" only (installed); rc 1 when a name is unknown, the known ones still listed.
        (("dpkg-query",), (1, "tpm2-tools\tii \npython3-tpm2-pytss\trc \n", "no packages found matching x"),
         (["tpm2-tools"], None)),
        (("dpkg-query",), (2, "", "dpkg-query: error: database locked"), (None, "dpkg-query failed (rc 2)")),
        (("dpkg-query",), (124, "", "timed out"), (None, "dpkg-query failed (rc 124)")),
        # rpm: the installed names, one per line; rc the number not installed.
        (("rpm",), (1, "tpm2-tools\npackage python3-tpm2-pytss is not installed\n", ""), (["tpm2-tools"], None)),
        (("rpm",), (1, "", "error: rpmdb: open failed"), (None, "rpm -q failed (rc 1)")),
        ((), None, (None, "neither dpkg-query nor rpm was found")),
    ],
)  # fmt: skip
def test_installed_packages_reads_dpkg_else_rpm_and_says_when_it_cannot(tools, reply, want):
    calls = []

    def runner(args, **kwargs):
        calls.append((args, kwargs))
        return reply

    installed, error = host_state.installed_packages(
        PackageModule(*tools), ["tpm2-tools", "python3-tpm2-pytss", "-x", "tpm2-tools"], runner=runner
    )
    assert installed == want[0]
    assert (error is None) if want[1] is None else error.startswith(want[1]), error
    for args, kwargs in calls:
        # Each name once, never one that could be read as an option; no shell, no expansion of ${...}.
        assert args[-2:] == ["tpm2-tools", "python3-tpm2-pytss"] and kwargs == {"expand_user_and_vars": False}
    assert host_state.installed_packages(PackageModule("dpkg-query"), [], runner=runner) == ([], None)
