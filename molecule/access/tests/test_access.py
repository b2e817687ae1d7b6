"""Verify the access scenario: pinned tss/docker IDs, consumer memberships, re-owned files, and the refusals."""

import os

import pytest
from tpmfleet_molecule import needs_inventory, recap, run_playbook

CONVERGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "converge.yml")


@pytest.fixture(scope="module")
def pinned(host):
    return host.ansible.get_variables()


def _group(host, name):
    """(gid, members) of a group on the host."""
    fields = host.check_output(f"getent group {name}").split(":")
    return int(fields[2]), [m for m in fields[3].split(",") if m]


def _gid(host, path):
    return int(host.check_output(f"stat -c %g {path}"))


def _old_gid(host):
    # prepare.yml recorded the distribution's GID of the tss group before converge changed it.
    return int(host.file("/srv/tpmdata.oldgid").content_string.strip())


def test_groups_have_the_pinned_gids(host, pinned):
    assert _group(host, "tss")[0] == pinned["tpm_access_tss_gid"]
    assert _group(host, "docker")[0] == pinned["tpm_access_docker_gid"]


def test_tss_user_is_a_system_user_without_login(host, pinned):
    user = host.user("tss")
    assert user.uid == pinned["tpm_access_tss_uid"]
    assert user.gid == pinned["tpm_access_tss_gid"], "the primary group follows the GID change"
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    assert user.home == "/var/lib/tpm"
    assert user.uid < 1000


def test_consumers_are_members_and_keep_their_own_groups(host):
    assert "tss" in host.user("tpmagent").groups
    assert "docker" not in host.user("tpmagent").groups
    assert {"tss", "docker", "tpmctr"} <= set(host.user("tpmctr").groups)
    assert host.user("tpmagent").group == "tpmagent"
    assert host.user("tpmctr").group == "tpmctr"


def test_files_with_the_old_gid_were_reowned(host, pinned):
    new, old = pinned["tpm_access_tss_gid"], _old_gid(host)
    assert old != new
    for path in (
        "/srv/tpmdata",
        "/srv/tpmdata/state.json",
        "/srv/tpmdata/keys",
        "/srv/tpmdata/keys/ak.ctx",
        "/var/lib/tpm",
    ):
        assert _gid(host, path) == new, path
    assert _gid(host, "/srv/tpmdata/keys/root-owned.txt") == 0, "a file of another group must keep it"
    leftover = host.check_output(f"find {' '.join(pinned['tpm_access_regroup_paths'])} -xdev -gid {old} -print")
    assert leftover == "", f"files still carry the old GID {old}: {leftover}"


def test_symlinks_were_not_followed(host, pinned):
    assert int(host.check_output("stat -c %g /srv/tpmdata/link-out")) == pinned["tpm_access_tss_gid"]
    assert int(host.check_output("stat -L -c %g /srv/tpmdata/link-out")) == _old_gid(host), (
        "the link's target outside the regroup paths must keep its GID"
    )


def test_tpm_device_nodes_carry_the_new_gid(host, pinned):
    # udev re-resolved its rules (GROUP="tss") after the GID change.
    assert _gid(host, "/dev/tpmrm0") == pinned["tpm_access_tss_gid"]


def _playbook(limit, *args):
    return run_playbook(CONVERGE, *args, limit=limit)


def _snapshot(host):
    return host.check_output(
        "getent group; getent passwd; find /srv/tpmdata /var/lib/tpm -printf '%u:%g:%m %p\\n' | sort"
    )


def _refused(host, *extra):
    """Run converge with extra args; it must fail and leave the users, groups and files as they were."""
    name = host.backend.get_hostname()
    before = _snapshot(host)
    run = _playbook(name, *extra)
    assert run.returncode != 0, run.stdout[-3000:]
    assert _snapshot(host) == before, "a refused run changed the host"
    assert recap(run, name)["changed"] == 0
    return " ".join(run.stdout.split())  # the message, unwrapped


@needs_inventory
def test_a_gid_used_by_another_group_is_refused_naming_it(host):
    gid, _ = _group(host, "users")
    out = _refused(host, "-e", f"tpm_access_tss_gid={gid}")
    assert f"tpm_access_tss_gid: GID {gid} is already used by group users" in out, out[-3000:]


@needs_inventory
def test_a_gid_change_without_opt_in_is_refused(host, pinned):
    current = pinned["tpm_access_tss_gid"]
    out = _refused(host, "-e", "tpm_access_tss_gid=960", "-e", "tpm_access_allow_gid_change=false")
    assert f"group tss has GID {current}" in out, out[-3000:]
    assert "set tpm_access_allow_gid_change: true" in out


@needs_inventory
def test_a_uid_used_by_another_user_is_refused_naming_it(host):
    uid = host.user("tpmagent").uid
    out = _refused(host, "-e", f"tpm_access_tss_uid={uid}")
    assert f"tpm_access_tss_uid: UID {uid} is already used by user tpmagent" in out, out[-3000:]


@needs_inventory
def test_a_consumer_user_that_does_not_exist_is_refused_naming_it(host):
    out = _refused(host, "-e", '{"tpm_access_consumer_users": ["tpmagent", "nosuchuser"]}')
    assert "user(s) nosuchuser do not exist" in out, out[-3000:]


@needs_inventory
def test_check_diff_on_a_converged_host_reports_no_change(host):
    name = host.backend.get_hostname()
    run = _playbook(name, "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert recap(run, name)["changed"] == 0, run.stdout[-3000:]
