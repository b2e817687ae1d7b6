# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_tcti_env's consumers, decided from what the host shows: the host read (NeedDaemonReload, the TCTI a
running consumer's main process started with, from a real process's /proc/PID/environ) and the plan of which
consumers a run reloads and restarts, so that a run killed between writing the files and its handlers is
finished by the next one, which finds the files already right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import host_state
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import roles as registry
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.roles import tpm_tcti_env
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = list(quote_mode.TCTI_VARIABLES)
DIRECT = quote_mode.profile("direct")
KERNEL_RM = quote_mode.profile("kernel_rm")
ABRMD = quote_mode.profile("abrmd")
UNIT = "tpm-consumer.service"


def tcti_env(profile):
    return dict(profile["tcti_variables"])


@pytest.fixture
def consumer():
    """A real process started with kernel_rm's TCTI variables and a secret beside them."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_TOKEN": "s3cr3t", **tcti_env(KERNEL_RM)}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    # Python 3.13 starts it with vfork: Popen returns while the kernel is still setting up the new program, and
    # /proc/PID/environ reads empty for that moment (seen on the second controller). Wait until it is readable.
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{proc.pid}/environ").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def props(pid, reload="no"):
    return {UNIT: {"Id": UNIT, "LoadState": "loaded", "NeedDaemonReload": reload, "MainPID": str(pid)}}


def test_the_read_returns_only_the_asked_tcti_variables_of_the_running_process(consumer):
    got = host_state.consumer_states(props(consumer.pid), [UNIT, "unknown.service"], [*NAMES, "NOT_SET"])
    assert list(got) == [UNIT]  # a unit systemd does not know is not listed
    assert got[UNIT] == {
        "need_daemon_reload": False,
        "main_pid": consumer.pid,
        "environ": {**tcti_env(KERNEL_RM), "NOT_SET": None},
    }
    assert "s3cr3t" not in json.dumps(got)  # the rest of the environment never leaves the host


def test_a_stopped_unit_or_a_gone_process_has_no_environment_and_says_why(consumer):
    stopped = host_state.consumer_states(props(0, reload="yes"), [UNIT], NAMES)[UNIT]
    assert stopped == {"need_daemon_reload": True, "main_pid": 0, "environ": None}
    consumer.kill()
    consumer.wait()
    gone = host_state.consumer_states(props(consumer.pid), [UNIT], NAMES)[UNIT]
    assert gone["environ"] is None and gone["error"] == f"/proc/{consumer.pid}/environ: No such file or directory"


def test_unit_states_returns_the_properties_of_the_known_units_in_the_same_call(tmp_path):
    show = (
        f"Id={UNIT}\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n"
        "NeedDaemonReload=yes\nMainPID=4242\n\n"
        "Id=gone.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n"
        "NeedDaemonReload=no\nMainPID=0\n"
    )
    calls, raw = [], {}

    class Module:
        def get_bin_path(self, _name):
            return "/usr/bin/systemctl"

    _services, error = host_state.unit_states(
        Module(), [UNIT, "gone.service"], runner=lambda a: calls.append(a) or (0, show, ""),
        systemd_dir=str(tmp_path), props=raw,
    )  # fmt: skip
    assert error is None and len(calls) == 1 and "NeedDaemonReload" in calls[0][3] and "MainPID" in calls[0][3]
    assert list(raw) == [UNIT] and raw[UNIT]["NeedDaemonReload"] == "yes" and raw[UNIT]["MainPID"] == "4242"
    states = host_state.consumer_states(raw, [UNIT, "gone.service"], NAMES, proc=str(tmp_path))
    assert states[UNIT]["need_daemon_reload"] is True and states[UNIT]["environ"] is None
    assert "gone.service" not in states


def test_the_preflight_reads_the_consumers_with_the_tcti_variables_and_only_valid_names():
    got = registry.reads(["tpm_tcti_env"], {"tpm_tcti_env_services": [UNIT, "bad name.service"]})
    assert got["consumers"] == [UNIT] and got["consumer_environ"] == NAMES
    assert registry.reads(["tpm_tcti_env"], {"tpm_tcti_env_services": []})["consumer_environ"] == []


# --- the plan ---------------------------------------------------------------------------


def plan(profile, environ, *, running=True, reload=False, restart="true", services=(UNIT,), error=None):
    values = {"tpm_tcti_env_services": list(services), "tpm_quote_mode_profile": profile,
              "tpm_tcti_env_restart_services": restart}  # fmt: skip
    seen = {"need_daemon_reload": reload, "main_pid": 42 if running else 0, "environ": environ}
    if error:
        seen["error"] = error
    state = {UNIT: {"name": UNIT, "state": "running" if running else "stopped", "status": "enabled"}}
    return tpm_tcti_env.consumer_plan(values, state, {UNIT: seen})


def test_a_consumer_running_with_the_old_modes_tcti_is_restarted_whatever_the_files_say():
    got = plan(DIRECT, tcti_env(KERNEL_RM))
    assert got["restart"] == [UNIT] and got["reload"] == []
    assert got["why"][UNIT].startswith('it runs with TCTI="device:/dev/tpmrm0" (the quote mode\'s: "device:/dev/tpm0")')


def test_a_consumer_with_the_modes_tcti_and_loaded_drop_ins_is_left_alone():
    for profile in (DIRECT, KERNEL_RM, ABRMD):
        assert plan(profile, tcti_env(profile)) == {"reload": [], "restart": [], "why": {}}


def test_need_daemon_reload_is_reloaded_also_for_a_stopped_consumer():
    got = plan(ABRMD, None, running=False, reload=True)
    assert got == {"reload": [UNIT], "restart": [],
                   "why": {UNIT: "systemd has not loaded its changed drop-ins (NeedDaemonReload=yes)"}}  # fmt: skip


def test_a_consumer_without_the_variables_or_whose_tcti_cannot_be_read_is_restarted():
    got = plan(KERNEL_RM, dict.fromkeys(NAMES))
    assert got["restart"] == [UNIT] and "TCTI=unset" in got["why"][UNIT]
    got = plan(KERNEL_RM, None, error="/proc/42/environ: Permission denied")
    assert got["restart"] == [UNIT] and "Permission denied" in got["why"][UNIT]


def test_no_restart_when_restarts_are_off_or_the_consumer_is_stopped_or_unknown():
    assert plan(DIRECT, tcti_env(KERNEL_RM), restart="false")["restart"] == []
    assert plan(DIRECT, tcti_env(KERNEL_RM), running=False)["restart"] == []
    assert plan(DIRECT, tcti_env(KERNEL_RM), services=("other.service",))["restart"] == []


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), st.text(max_size=40)), st.sampled_from([DIRECT, KERNEL_RM, ABRMD]))
def test_any_environment_restarts_exactly_when_a_value_differs_and_is_shown_as_json(environ, profile):
    got = plan(profile, environ)
    differs = [n for n, v in profile["tcti_variables"].items() if environ.get(n) != v]
    assert got["restart"] == ([UNIT] if differs else [])
    for name in differs:
        shown = json.dumps(environ[name]) if name in environ else "unset"
        assert f"{name}={shown} (the quote mode's: {json.dumps(profile['tcti_variables'][name])})" in got["why"][UNIT]
