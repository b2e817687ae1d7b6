# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role tpm_tcti_env run by Ansible on the controller: where it writes, and what it never touches.

The environment file must be in a directory that holds only TPM configuration
(/etc/tpm2, or one listed in tpm_tcti_env_dirs), never in a place another
program parses (/etc/apt, /etc/sudoers.d ...). An existing file there is
replaced only when tpmfleet wrote it (its marker line), and a directory that
exists keeps its owner and mode. The good cases write below a directory of
the controller's /etc made for the test (and removed after it), listed in
tpm_tcti_env_dirs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from roleplay import changed, failed_tasks, preflight_plan, run_role, stand_in, state, tasks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes below /etc and compares owners")

ROLE = "tpmfleet.tpm.tpm_tcti_env"
NAMES = ("TCTI", "TSS2_TCTI", "TPM2TOOLS_TCTI", "TPM2_PKCS11_TCTI", "TPM2OPENSSL_TCTI")


@pytest.fixture(scope="module")
def etc_dir():
    """A directory of the test's own under /etc, made by 'someone else': owner nobody, mode 0750."""
    path = Path("/etc") / f"tpmfleet-test-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o750)
    os.chown(path, 65534, 65534)
    path.chmod(0o750)
    yield path
    shutil.rmtree(path)


def run(tmp_path, extra, **kwargs):
    return run_role(tmp_path, ROLE, {"tpm_quote_mode": "kernel_rm", "tpm_tcti_env_services": [], **extra}, **kwargs)


def env_pairs(path):
    lines = Path(path).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_file_is_written_into_an_existing_directory_that_keeps_its_owner_and_mode(tmp_path, etc_dir):
    target = etc_dir / "tcti.env"
    dir_before = state(etc_dir)[str(etc_dir)]
    listed = {"tpm_tcti_env_dirs": [str(etc_dir)]}
    rc, out = run(tmp_path, {"tpm_tcti_env_path": str(target), **listed})
    assert rc == 0, failed_tasks(out)
    assert env_pairs(target) == dict.fromkeys(NAMES, "device:/dev/tpmrm0")
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)
    # The directory was there: owner nobody and mode 0750, as it was.
    assert state(etc_dir)[str(etc_dir)] == dir_before
    assert (etc_dir.stat().st_uid, etc_dir.stat().st_mode & 0o777) == (65534, 0o750)
    # Again, and spelled differently (normalised to the same file): nothing changes.
    for spelling in (str(target), f"{etc_dir}//./tcti.env", f"/{etc_dir}/tcti.env"):
        rc, out = run(tmp_path, {"tpm_tcti_env_path": spelling, **listed})
        assert rc == 0 and changed(out) == 0, (spelling, failed_tasks(out))
    # A mode switch replaces tpmfleet's own file (marker line) and keeps a backup of it.
    rc, out = run(tmp_path, {"tpm_tcti_env_path": str(target), "tpm_quote_mode": "direct", **listed})
    assert rc == 0 and changed(out) == 1, failed_tasks(out)
    assert env_pairs(target)["TCTI"] == "device:/dev/tpm0"
    backups = list(etc_dir.glob("tcti.env.*~"))
    assert len(backups) == 1 and env_pairs(backups[0])["TCTI"] == "device:/dev/tpmrm0"
    assert state(etc_dir)[str(etc_dir)] == dir_before


def test_missing_directories_are_created_root_0755_and_check_mode_creates_nothing(tmp_path, etc_dir):
    target = etc_dir / "new" / "sub" / "tcti.env"
    listed = {"tpm_tcti_env_dirs": ["/etc/tpm2", str(etc_dir)]}
    rc, out = run(tmp_path, {"tpm_tcti_env_path": str(target), **listed}, check_mode=True)
    assert rc == 0 and changed(out) == 2, failed_tasks(out)  # the directory and the file, reported only
    assert not (etc_dir / "new").exists()
    rc, out = run(tmp_path, {"tpm_tcti_env_path": str(target), **listed})
    assert rc == 0, failed_tasks(out)
    for made in (etc_dir / "new", etc_dir / "new" / "sub"):
        st = made.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o755), made
    assert env_pairs(target)["TSS2_TCTI"] == "device:/dev/tpmrm0"


def test_an_existing_drop_in_directory_keeps_its_owner_and_mode(tmp_path, etc_dir):
    service = f"tpmfleet-test-{uuid.uuid4().hex[:8]}.service"
    dropins = Path("/etc/systemd/system") / f"{service}.d"
    dropins.mkdir(mode=0o700, parents=True)
    dropins.chmod(0o700)
    try:
        before = state(dropins)
        extra = {"tpm_tcti_env_path": str(etc_dir / "dropin.env"), "tpm_tcti_env_services": [service],
                 "tpm_tcti_env_require_services": False, "tpm_tcti_env_dirs": [str(etc_dir)]}  # fmt: skip
        rc, out = run(tmp_path, extra)
        assert rc == 0, failed_tasks(out)
        conf = (dropins / "10-tpmfleet-tcti.conf").read_text().splitlines()
        assert f"EnvironmentFile={etc_dir}/dropin.env" in conf
        assert state(dropins) == before
    finally:
        shutil.rmtree(dropins)


# --- the preflight's plan: nothing to change only for the files the role's template tasks wrote ------------


def tcti_env_plan(tmp_path, variables):
    """What the preflight's plan says tpm_tcti_env's apply would change, and what its entry runs."""
    return preflight_plan(tmp_path, variables, "tpm_tcti_env")


def test_the_plan_renders_the_files_as_the_template_tasks_write_them(tmp_path, etc_dir):
    """The plan compares the environment file and a consumer's drop-in with the role's templates rendered by
    Ansible as its template tasks render them: after the role wrote them it has nothing to do, and it sees
    another mode, an admin's edit and another mode of the file."""
    service = f"tpmfleet-test-{uuid.uuid4().hex[:8]}.service"
    dropins = Path("/etc/systemd/system") / f"{service}.d"
    env_file, dropin = etc_dir / "plan.env", dropins / "10-tpmfleet-tcti.conf"
    variables = {"tpm_quote_mode": "kernel_rm", "tpm_tcti_env_path": str(env_file),
                 "tpm_tcti_env_dirs": [str(etc_dir)], "tpm_tcti_env_services": [service],
                 "tpm_tcti_env_require_services": False}  # fmt: skip
    try:
        assert tcti_env_plan(tmp_path, variables) == ([f"create {dropins}", f"write {env_file}", f"write {dropin}"],
                                                      "apply")  # fmt: skip
        rc, out = run(tmp_path, variables)
        assert rc == 0 and env_file.is_file() and dropin.is_file(), failed_tasks(out)
        # (The role still runs on this controller: tpm_abrmd, before it, cannot plan without the host's
        # distribution, which this play does not gather, and may change the units.)
        assert tcti_env_plan(tmp_path, variables) == ([], "apply")
        direct = tcti_env_plan(tmp_path, {**variables, "tpm_quote_mode": "direct"})
        assert direct == ([f"write {env_file} (its content differs)", f"write {dropin} (its content differs)"], "apply")
        dropin.write_text(dropin.read_text() + "# a line of the admin's\n")
        assert tcti_env_plan(tmp_path, variables)[0] == [f"write {dropin} (its content differs)"]
        env_file.chmod(0o640)
        assert tcti_env_plan(tmp_path, variables)[0] == [f"set {env_file} to root:root 0644",
                                                         f"write {dropin} (its content differs)"]  # fmt: skip
    finally:
        shutil.rmtree(dropins, ignore_errors=True)


# --- the consumers' plan: reported, and exactly the stale consumers restarted ---------------------------

STALE = "tpmfleet-stale.service"
SWITCHED = "tpmfleet-switched.service"
PLAN = {"reload": [STALE], "restart": [STALE, SWITCHED],
        "why": {STALE: 'it runs with TCTI="device:/dev/tpmrm0"', SWITCHED: "stopped by the switch"}}  # fmt: skip
SYSTEMCTL = """echo "$*" >> "$SYSTEMCTL_LOG"
case "$1" in show) printf 'Id=%s\nLoadState=loaded\nActiveState=active\nSubState=running\n' "$3";; esac
"""


@pytest.mark.parametrize("check_mode", [True, False])
def test_the_consumers_plan_is_reported_and_only_its_stale_consumers_are_restarted(tmp_path, etc_dir, check_mode):
    """The plan (from the preflight's read, tpm_tcti_env.consumer_plan) as the role's tasks take it: each stale
    consumer is named with what was seen and reported as changed, in check mode as "Would restart" with nothing
    run; then the restart handler restarts exactly the plan's consumers, not one a quote mode switch stopped
    (tpm_consumers starts those). systemctl is a stand-in that logs its calls."""
    log = tmp_path / "systemctl.log"
    log.touch()
    env = {"PATH": stand_in(tmp_path, "systemctl", SYSTEMCTL), "SYSTEMCTL_LOG": str(log)}
    extra = {"tpm_tcti_env_path": str(etc_dir / "plan.env"), "tpm_tcti_env_dirs": [str(etc_dir)],
             "__tpm_tcti_env_plan": PLAN, "tpm_consumers_stopped": {"services": [SWITCHED]}}  # fmt: skip
    rc, out = run(tmp_path, extra, check_mode=check_mode, env=env)
    assert rc == 0, failed_tasks(out)
    ran = dict(tasks(out))
    restart = ran["tpmfleet.tpm.tpm_tcti_env : Ensure the running consumer services run with the quote mode's TCTI "
                   "(restart the stale ones)"]  # fmt: skip
    verb = "Would restart" if check_mode else "Restarting"
    assert restart["changed"] and restart["msg"] == f'{verb} "{STALE}": it runs with TCTI="device:/dev/tpmrm0"'
    reload = ran["tpmfleet.tpm.tpm_tcti_env : Ensure systemd has loaded the consumers' current drop-ins (reload where "
                  "NeedDaemonReload=yes)"]  # fmt: skip
    assert reload["changed"] and reload["msg"].startswith(("Would reload" if check_mode else "Reloading") + " systemd")
    calls = log.read_text().splitlines()
    assert not any(SWITCHED in c for c in calls), calls
    if check_mode:
        assert all(c.startswith("show") for c in calls), calls
    else:
        assert f"restart {STALE}" in calls and "daemon-reload" in calls, calls
    # Nothing stale (and the file written): nothing reported, no systemctl call.
    nothing = {**extra, "__tpm_tcti_env_plan": {"reload": [], "restart": [], "why": {}}}
    rc, out = run(tmp_path, nothing, env=env)
    log.write_text("")
    rc, out = run(tmp_path, nothing, env=env)
    assert rc == 0 and changed(out) == 0 and log.read_text() == "", failed_tasks(out)


# --- bad inputs: one message naming the variable; nothing on the host changes -----------------


def bad_cases(etc_dir):
    """host -> (its bad input, what its one message says, paths that must not change)."""
    confined = (
        "tpm_tcti_env_path must be a file in a directory that holds only TPM configuration, such as "
        "/etc/tpm2/tcti.env (got "
    )
    foreign = "that tpmfleet did not write"
    services = "tpm_tcti_env_services must list systemd unit names ending in .service such as keylime_agent.service"
    cases = {
        "passwd": ("/etc/passwd", confined + '"/etc/passwd": /etc/passwd is read by other programs)',
                   ["/etc/passwd", "/etc"]),
        # Issue 22's probe: these broke every apt run and every sudo.
        "apt": ("/etc/apt/apt.conf.d/99tpm", confined + '"/etc/apt/apt.conf.d/99tpm": /etc/apt is read by other '
                "programs). Put it in /etc/tpm2, or list a directory of its own in tpm_tcti_env_dirs.",
                ["/etc/apt/apt.conf.d", "/etc/apt/apt.conf.d/99tpm"]),
        "sudoers": ("/etc/sudoers.d/tpm", confined + '"/etc/sudoers.d/tpm": /etc/sudoers.d is read by other programs)',
                    ["/etc/sudoers.d", "/etc/sudoers.d/tpm"]),
        "unlisted": ("/etc/tpm2-local/tcti.env", confined + '"/etc/tpm2-local/tcti.env": /etc/tpm2-local is not one of '
                     "tpm_tcti_env_dirs", ["/etc/tpm2-local"]),
        "dotdot": ("/etc/tpm2/../passwd", confined + "\"/etc/tpm2/../passwd\": a '..' component)", ["/etc/passwd"]),
        "slashes": ("/etc//passwd", confined + '"/etc//passwd": /etc/passwd is read by other programs)',
                    ["/etc/passwd"]),
        "tmp": ("/tmp/tcti.env", confined + '"/tmp/tcti.env": /tmp is writable by every user)',
                ["/tmp", "/tmp/tcti.env"]),
        "tmp-x": ("/tmp/x.env", confined, ["/tmp", "/tmp/x.env"]),
        "newline": ("/etc/tpm2/tcti.env\n", confined + '"/etc/tpm2/tcti.env\\n": control characters)', []),
        "space": ("/etc/tpm2/tcti env", confined, []),
        "control": ("/etc/tpm2/tcti\x07.env", confined, []),
        "trailing-slash": ("/etc/tpm2/", confined + '"/etc/tpm2/": not a file name)', []),
        "etc": ("/etc", confined + '"/etc": /etc is a whole system tree)', ["/etc"]),
        "root": ("/", confined, ["/etc"]),
        "relative": ("etc/tpm2/tcti.env", confined + '"etc/tpm2/tcti.env": not an absolute path)', []),
        "escape": ("/etc/../tmp/tcti.env", confined, ["/tmp"]),
        "link": (f"{etc_dir}/link.env", f"tpm_tcti_env_path {etc_dir}/link.env exists on link and is a symbolic link;"
                 " tpmfleet does not replace it", ["/etc/passwd"]),
        "dir": (f"{etc_dir}/adir", "exists on dir and is a directory", []),
        "linked-dir": (f"{etc_dir}/linkdir/tcti.env", f"The directory of tpm_tcti_env_path, {etc_dir}/linkdir, is a"
                       " symbolic link on linked-dir", ["/tmp", "/tmp/tcti.env"]),
        "foreign": (f"{etc_dir}/foreign.env", f"tpm_tcti_env_path {etc_dir}/foreign.env is an existing file on foreign "
                    + foreign, []),
    }  # fmt: skip
    dirs = {"tpm_tcti_env_dirs": ["/etc/tpm2", str(etc_dir)]}
    out = {host: ({"tpm_tcti_env_path": path, **dirs}, expected, watched)
           for host, (path, expected, watched) in cases.items()}  # fmt: skip
    chars = "(characters systemd does not allow in a unit name)"
    for host, names, expected in (
        ("service-newline", ["consumer.service\n"], f"{services} (at most 255 characters"),
        ("service-newline-named", ["consumer.service\n"], f'these are not: "consumer.service\\n" {chars}'),
        ("service-path", ["../../../etc/x.service"], f'"../../../etc/x.service" {chars}'),
        ("service-string", "consumer.service", "tpm_tcti_env_services must be a YAML list of systemd units"),
        ("service-300", ["c" * 292 + ".service"], "(300 characters, systemd allows at most 255)"),
        ("service-template", ["consumer@.service"], '"consumer@.service" (a template: name its instance'),
    ):
        extra = {"tpm_tcti_env_path": f"{etc_dir}/svc.env", "tpm_tcti_env_services": names,
                 "tpm_tcti_env_require_services": False, **dirs}  # fmt: skip
        out[host] = (extra, expected, ["/etc/systemd/system"])
    return out


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, etc_dir):
    """Every bad input on its own host (each one the controller), in one run; the state before and after."""
    (etc_dir / "link.env").symlink_to("/etc/passwd")
    (etc_dir / "adir").mkdir(mode=0o700)
    (etc_dir / "linkdir").symlink_to("/tmp")
    (etc_dir / "foreign.env").write_text("# an admin's file, not tpmfleet's\nTCTI=device:/dev/tpm0\n")
    cases = bad_cases(etc_dir)
    watched = sorted({p for _, _, paths in cases.values() for p in paths})
    before = state(*watched, below=[etc_dir])
    hosts = {host: extra for host, (extra, _, _) in cases.items()}
    rc, out = run_role(tmp_path_factory.mktemp("bad"), ROLE, {"tpm_quote_mode": "kernel_rm"}, hosts=hosts)
    after = state(*watched, below=[etc_dir])
    yield rc, out, before, after
    for name in ("link.env", "linkdir", "foreign.env"):
        (etc_dir / name).unlink()
    (etc_dir / "adir").rmdir()


@pytest.mark.parametrize("host", bad_cases(Path("/etc/tpmfleet-test")))
def test_a_bad_input_fails_with_one_message(bad_run, etc_dir, host):
    rc, out, _before, _after = bad_run
    _extra, expected, _watched = bad_cases(etc_dir)[host]
    assert rc != 0
    failed = failed_tasks(out, host)
    assert len(failed) == 1, failed
    assert expected in failed[0][1], failed
    if not host.startswith("service"):
        assert failed[0][1].endswith("Nothing was changed."), failed
    assert changed(out, host) == 0


def test_the_bad_inputs_changed_nothing_on_the_host(bad_run):
    _rc, _out, before, after = bad_run
    assert after == before
    assert oct(Path("/tmp").stat().st_mode & 0o7777) == "0o1777"
    assert not Path("/tmp/tcti.env").exists() and not Path("/tmp/x.env").exists()


def test_a_directory_of_tpm_configuration_must_be_listed_to_be_used(tmp_path, etc_dir):
    target = etc_dir / "unlisted.env"
    rc, out = run(tmp_path, {"tpm_tcti_env_path": str(target)})
    assert rc != 0 and changed(out) == 0 and not target.exists()
    ((_name, msg),) = failed_tasks(out)
    assert f'(got "{target}": {etc_dir} is not one of tpm_tcti_env_dirs ["/etc/tpm2"])' in msg, msg
