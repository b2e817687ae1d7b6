"""Paths, systemd unit names and lists as every role's checks take them (plugins/plugin_utils/input_rules.py),
tried through the roles' checks: each directory another program parses is refused wherever a user sets a path."""

from __future__ import annotations

import re

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import input_rules
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry
from hypothesis import given, settings
from hypothesis import strategies as st
from test_validate import GOOD

# Every place the probe's issue names, and a few more: a file there is read by another program.
PARSED = [
    "/etc/apt", "/etc/apt/apt.conf.d", "/etc/apt/sources.list.d", "/etc/apt/preferences.d", "/etc/sudoers",
    "/etc/sudoers.d", "/etc/cron.d", "/etc/cron.daily", "/etc/cron.hourly", "/etc/cron.weekly", "/etc/cron.monthly",
    "/etc/crontab", "/etc/profile.d", "/etc/profile", "/etc/modprobe.d", "/etc/modules-load.d", "/etc/systemd",
    "/etc/systemd/system", "/etc/systemd/system/keylime_agent.service.d", "/etc/systemd/network", "/lib/systemd",
    "/lib/systemd/system", "/usr/lib/systemd", "/usr/lib/systemd/system", "/run/systemd", "/run/systemd/system",
    "/etc/pam.d", "/etc/security", "/etc/security/limits.d", "/etc/ld.so.conf.d", "/etc/ld.so.conf",
    "/etc/ld.so.preload", "/etc/sysctl.d", "/etc/sysctl.conf", "/etc/udev", "/etc/udev/rules.d", "/lib/udev",
    "/usr/lib/udev/rules.d", "/etc/environment", "/etc/environment.d", "/etc/default", "/etc/logrotate.d",
    "/etc/rsyslog.d", "/etc/network", "/etc/network/interfaces.d", "/etc/NetworkManager", "/etc/netplan",
    "/etc/dhcp", "/etc/init.d", "/etc/rc2.d", "/etc/dbus-1", "/etc/dbus-1/system.d", "/usr/share/dbus-1",
    "/etc/tmpfiles.d", "/etc/tpm2-tss", "/etc/ssh", "/etc/polkit-1",
]  # fmt: skip
SYSTEM_TREES = ["/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/var", "/var/lib", "/usr/lib", "/opt", "/home", "/root"]


def errors(role, **extra):
    return registry.input_errors({**GOOD[role], **extra}, role)


def one(role, var, **extra):
    found = errors(role, **extra)
    assert len(found) == 1 and found[0].startswith(var), found
    return found[0]


@pytest.mark.parametrize("place", PARSED)
def test_a_parsed_place_is_refused_for_every_path_a_user_sets(place):
    reason = f"{input_rules.parsed_place(place)} is read by other programs"
    # The environment file in it, with the default directories...
    message = one("tpm_tcti_env", "tpm_tcti_env_path", tpm_tcti_env_path=place + "/tpm.env")
    assert f'(got "{place}/tpm.env": {reason})' in message and "Put it in /etc/tpm2" in message
    # ... the place as a directory for TPM configuration, or below it ...
    for listed in (place, place + "/tpm"):
        message = one("tpm_tcti_env", "tpm_tcti_env_dirs", tpm_tcti_env_dirs=["/etc/tpm2", listed],
                      tpm_tcti_env_path="/etc/tpm2/tcti.env")  # fmt: skip
        assert f'fix: "{listed}" ({reason}).' in message, message
    # ... a tree to re-group and the tss user's home.
    message = one("tpm_access", "tpm_access_regroup_paths", tpm_access_regroup_paths=["/var/lib/tpm", place])
    assert f'fix: "{place}" ({reason}).' in message
    message = one("tpm_access", "tpm_access_tss_home", tpm_access_tss_home=place)
    assert f'(got "{place}": {reason}).' in message


@pytest.mark.parametrize("tree", SYSTEM_TREES)
def test_a_whole_system_tree_is_refused(tree):
    reason = f"{tree} is a whole system tree"
    assert f'fix: "{tree}" ({reason}).' in one("tpm_tcti_env", "tpm_tcti_env_dirs", tpm_tcti_env_dirs=[tree])
    assert f"({reason})" in one("tpm_access", "tpm_access_regroup_paths", tpm_access_regroup_paths=[tree])
    assert f": {reason})" in one("tpm_access", "tpm_access_tss_home", tpm_access_tss_home=tree)


@pytest.mark.parametrize(
    ("path", "norm"),
    [("/etc//tpm2/./tcti.env", "/etc/tpm2/tcti.env"), ("//etc/tpm2", "/etc/tpm2"), ("///x/", "/x"), ("/", "/")],
)
def test_paths_are_normalised_first(path, norm):
    assert input_rules.normalised(path) == (norm, None)


@pytest.mark.parametrize(
    ("path", "why"),
    [("/etc/tpm2/../apt/x", "a '..' component"), ("etc/tpm2", "not an absolute path"), (None, "not an absolute path"),
     ("/etc/tpm2\n", "control characters"), ("/etc/\x00", "control characters"), ("/etc/\x7f", "control characters")],
)  # fmt: skip
def test_paths_that_cannot_be_normalised_safely_are_refused(path, why):
    assert input_rules.normalised(path) == (None, why)


def test_a_shown_value_is_json_cut_short_and_never_raw():
    assert input_rules.shown(" direct") == '" direct"' and input_rules.shown(None) == "null"
    assert input_rules.shown("a\x7fb") == '"a\\u007fb"'
    long = input_rules.shown("x" * 300)
    assert long.endswith("... (300 characters)") and len(long) < 110


def test_few_names_a_few_then_the_count_of_the_rest():
    assert input_rules.few([]) == "" and input_rules.few(["a", "b"]) == "a, b"
    assert input_rules.few(map(str, range(7))) == "0, 1, 2, 3, 4 and 2 more"


# --- systemd's unit-name grammar -------------------------------------------------------------------------------


def systemd_accepts(name, suffixes=("service",)):
    """systemd's unit_name_is_valid (src/basic/unit-name.c) for plain and instance names, written independently:
    shorter than UNIT_NAME_MAX (256), a known type after the last '.', only VALID_CHARS and '@' before it, a
    non-empty prefix before the first '@', a non-empty instance after it."""
    if len(name) >= 256 or "." not in name:
        return False
    stem, suffix = name.rsplit(".", 1)
    if suffix not in suffixes or not stem:
        return False
    valid = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\@")
    if any(c not in valid for c in stem):
        return False
    at = stem.find("@")
    return at != 0 and (at < 0 or at < len(stem) - 1)


UNIT_ALPHABET = st.sampled_from([*"ab9:-_.\\@ x/\n\x00é", "\\x2d", ".service", ".scope", "@."])


@settings(max_examples=400, deadline=None)
@given(st.lists(UNIT_ALPHABET, max_size=12).map("".join) | st.text(max_size=20))
def test_an_accepted_unit_name_is_one_systemd_accepts(name):
    for suffixes in (("service",), ("service", "scope")):
        if input_rules.unit_problem(name, suffixes) is None:
            assert systemd_accepts(name, suffixes), name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_service_list_gets_one_message_naming_it_and_no_raw_control_character(name):
    found = errors("tpm_tcti_env", tpm_tcti_env_services=[name])
    assert len(found) <= 1
    if found:
        assert found[0].startswith("tpm_tcti_env_services") and not re.search(r"[\x00-\x1f\x7f]", found[0])
        assert len(found[0]) < 1000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["etc", "tpm2", "apt", "sudoers.d", "..", ".", "", "x", "default", "tmp"]),
                max_size=5).map(lambda parts: "/" + "/".join(parts)))  # fmt: skip
def test_an_accepted_env_file_is_in_etc_tpm2_and_in_no_parsed_place(path):
    found = errors("tpm_tcti_env", tpm_tcti_env_path=path)
    if not found:
        norm = input_rules.normalised(path)[0]
        assert norm.startswith("/etc/tpm2/") and input_rules.parsed_place(norm) is None
    else:
        assert len(found) == 1 and found[0].startswith("tpm_tcti_env_path") and found[0].endswith("was changed.")
