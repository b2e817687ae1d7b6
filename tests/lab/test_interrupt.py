# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A quote mode switch killed at any step boundary is finished by one run of site.yml (make test-interrupt).

On one lab VM with a consumer service (prepare_consumer.yml, consumer_vars.yml: the default
scenario's consumer setup): playbooks/quote_mode.yml is run uninterrupted once each way (kernel_rm ->
direct -> kernel_rm) with a test-only callback (callback_plugins/kill_at_task.py) that logs every task
start and every task that changed the host. Then, for each boundary N chosen, the switch is run again
and the callback SIGKILLs ansible-playbook's process group as task N starts (tasks 1..N-1 done, as a
``kill -9`` of the controller would leave it), then site.yml runs once with the target mode: the host
must be converged (device nodes, tpm2-abrmd, the TCTI env file, the consumer running with the mode's
TCTI), the switch record gone, and a further site.yml run must change nothing. Killed switches
alternate direction, so each recovery is the next switch's starting point.

TPMFLEET_INTERRUPT_INVENTORY: the lab inventory (one host). TPMFLEET_INTERRUPT_MODES: the two modes
switched between, such as ``direct,abrmd`` (default ``kernel_rm,direct``). TPMFLEET_INTERRUPT_START: the
mode the VM is converged to first (default kernel_rm when it is one of them, else the first).
TPMFLEET_INTERRUPT_AT: ``changed``
(default: the boundary after each task that changed the host in the uninterrupted switch; a boundary
between two tasks that changed nothing leaves the same host state as the one before it), ``all``
(every boundary), or per target mode ``direct:changed;kernel_rm:changed/3`` (every third) or numbers
such as ``direct:5,12;kernel_rm:7`` (in that order; then the uninterrupted reference switches are not
run).
Each run's time and the boundaries that ran are written to TPMFLEET_INTERRUPT_REPORT (default
.cache/interrupt-report.json).

The second test switches with site.yml alone (the mode changed in the inventory, no quote_mode.yml, so no
consumer is stopped or recorded) and kills it, each way, after the TCTI environment file was written, after
the consumers' drop-ins were written (before any handler), and as the restart handler starts (systemd
reloaded, the consumer not restarted): the next site.yml must restart the consumer with the new TCTI and leave
NeedDaemonReload=no, though it finds every file already right, and a further run changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
INVENTORY = os.environ.get("TPMFLEET_INTERRUPT_INVENTORY", "")
pytestmark = pytest.mark.skipif(not INVENTORY, reason="on demand: make test-interrupt")

RECORD = "/var/lib/tpmfleet/quote-mode-switch.json"
CONSUMER = "tpm-consumer.service"
# What each mode wants of the host (tpm_quote_mode's profiles; 0660 is tpm_udev_mode's default).
# tpm2-abrmd: stopped and masked in direct mode, stopped in kernel_rm mode, running and enabled in abrmd mode.
WANT = {
    "direct": {"/dev/tpm0": "tss:tss 660", "/dev/tpmrm0": "tss:tss 660", "tcti": "device:/dev/tpm0",
               "abrmd": "inactive, masked"},
    "kernel_rm": {"/dev/tpm0": "tss:root 660", "/dev/tpmrm0": "tss:tss 660", "tcti": "device:/dev/tpmrm0",
                  "abrmd": "inactive, not masked"},
    "abrmd": {"/dev/tpm0": "tss:root 660", "/dev/tpmrm0": "tss:tss 660",
              "tcti": "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system", "abrmd": "active, enabled"},
}  # fmt: skip
MODES = tuple(m.strip() for m in os.environ.get("TPMFLEET_INTERRUPT_MODES", "kernel_rm,direct").split(","))
assert len(MODES) == 2 and MODES[0] != MODES[1] and set(MODES) <= set(WANT), (
    f"TPMFLEET_INTERRUPT_MODES must name two of {', '.join(WANT)}, such as direct,abrmd (got {MODES})"
)
START = os.environ.get("TPMFLEET_INTERRUPT_START") or ("kernel_rm" if "kernel_rm" in MODES else MODES[0])
assert START in MODES, f"TPMFLEET_INTERRUPT_START {START!r} is not one of TPMFLEET_INTERRUPT_MODES {MODES}"
# Where a site-only switch is killed (the kill_at_task callback's TPMFLEET_KILL_AFTER_NAME / _AT_NAME): after
# the environment file, after the drop-ins (every file right, no handler run), as the restart handler starts.
SITE_KILLS = (
    ("after", "Ensure the TCTI environment file sets every TCTI variable for the quote mode"),
    ("after", "Ensure each consumer service loads the TCTI environment file"),
    ("at", "Restart the TPM consumer services"),
)
# One call over SSH reads everything the checks need.
PROBE = r"""
stat -c '%n %U:%G %a' /dev/tpm0 /dev/tpmrm0
echo "abrmd $(systemctl is-active tpm2-abrmd.service) $(systemctl is-enabled tpm2-abrmd.service 2>/dev/null)"
echo "consumer $(systemctl is-active tpm-consumer.service)"
pid=$(systemctl show -p MainPID --value tpm-consumer.service)
echo "consumer_tcti $(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | sed -n 's/^TPM2TOOLS_TCTI=//p')"
echo "env_tcti $(sed -n 's/^TPM2TOOLS_TCTI=//p' /etc/tpm2/tcti.env 2>/dev/null)"
echo "record $(test -e /var/lib/tpmfleet/quote-mode-switch.json && echo present || echo absent)"
echo "reload $(systemctl show -p NeedDaemonReload --value tpm-consumer.service)"
"""
REPORT = []


def _host():
    doc = yaml.safe_load(Path(INVENTORY).read_text()) if Path(INVENTORY).is_file() else None
    if doc is None:
        doc = yaml.safe_load(next(Path(INVENTORY).glob("*.yml")).read_text())

    def walk(group, inherited):
        merged = {**inherited, **(group.get("vars") or {})}
        for name, hv in (group.get("hosts") or {}).items():
            yield name, {**merged, **(hv or {})}
        for child in (group.get("children") or {}).values():
            yield from walk(child or {}, merged)

    hosts = dict(walk(doc["all"], {}))
    assert len(hosts) == 1, f"one lab VM expected in {INVENTORY}, found {sorted(hosts)}"
    return next(iter(hosts.items()))


NAME, HOSTVARS = _host() if INVENTORY else ("", {})


def _ssh(command):
    cmd = ["ssh", "-p", str(HOSTVARS["ansible_port"]), "-i", HOSTVARS["ansible_ssh_private_key_file"],
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", "BatchMode=yes", f"{HOSTVARS.get('ansible_user', 'root')}@{HOSTVARS['ansible_host']}",
           command]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout


def _observe():
    out = {}
    for line in _ssh(PROBE).splitlines():
        key, _, value = line.partition(" ")
        out[key] = value.strip()
    return out


def _playbook(playbook, mode, *, log=None, kill_at=0, kill_name=None, mitogen=True, timeout=3600):
    """ansible-playbook in a session of its own (so that the callback's SIGKILL takes its whole process
    group and nothing else); (rc, stdout, seconds)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="kill_at_task", TPMFLEET_KILL_AT_TASK=str(kill_at),
               TPMFLEET_TASK_LOG=str(log or ""))  # fmt: skip
    if kill_name:
        env["TPMFLEET_KILL_AFTER_NAME" if kill_name[0] == "after" else "TPMFLEET_KILL_AT_NAME"] = kill_name[1]
    env.pop("ANSIBLE_STRATEGY", None)
    if mitogen:
        env.update(ANSIBLE_STRATEGY="tpmfleet.lab.mitogen_linear", ANSIBLE_HOST_KEY_CHECKING="False",
                   ANSIBLE_TIMEOUT="60")  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", INVENTORY,
           "-e", f"@{HERE / 'consumer_vars.yml'}", "-e", f"tpm_quote_mode={mode}", str(ROOT / playbook)]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, time.monotonic() - start


def _recap(out):
    line = next((x for x in out.splitlines() if x.startswith(NAME + " ") and "ok=" in x), None)
    assert line, out[-4000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _converged(mode):
    seen = _observe()
    want = WANT[mode]
    nodes = ("/dev/tpm0", "/dev/tpmrm0")
    problems = [f"{p}: {seen.get(p)!r}, wanted {want[p]!r}" for p in nodes if seen.get(p) != want[p]]
    abrmd = seen.get("abrmd", "").split()
    if mode == "abrmd":
        ok = abrmd[:1] == ["active"] and "enabled" in abrmd
    else:
        ok = abrmd[:1] == ["inactive"] and ("masked" in abrmd) == (mode == "direct")
    if not ok:
        problems.append(f"tpm2-abrmd: {seen.get('abrmd')!r}, wanted {want['abrmd']}")
    if seen.get("env_tcti") != want["tcti"]:
        problems.append(f"tcti.env: {seen.get('env_tcti')!r}, wanted {want['tcti']!r}")
    if seen.get("consumer") != "active" or seen.get("consumer_tcti") != want["tcti"]:
        got = f"{seen.get('consumer')!r} with {seen.get('consumer_tcti')!r}"
        problems.append(f"consumer: {got}, wanted active with {want['tcti']!r}")
    if seen.get("record") != "absent":
        problems.append(f"switch record: {seen.get('record')}")
    if seen.get("reload") != "no":
        problems.append(f"consumer unit NeedDaemonReload={seen.get('reload')!r}")
    return problems


def _log(path):
    lines = [line.split("\t") for line in Path(path).read_text().splitlines()] if Path(path).exists() else []
    starts = {int(n): name for kind, n, name in lines if kind == "task"}
    changed = sorted({int(n) for kind, n, _name in lines if kind == "changed"})
    return starts, changed


def _other(mode):
    return MODES[1] if mode == MODES[0] else MODES[0]


def _points(reference, spec):
    """The boundaries to kill at, per target mode, from the uninterrupted switch's task log. ``spec``:
    ``changed``, ``all``, or per target mode ``MODE:WHICH`` joined by ``;``, WHICH being ``changed``, ``all``,
    ``changed/K`` (every Kth of the changed ones, the first and last always) or numbers joined by ``,``."""
    out = {}
    parts = dict(part.split(":", 1) for part in spec.split(";") if ":" in part)
    for mode, (starts, changed) in reference.items():
        which = spec if spec in ("all", "changed") else parts.get(mode, "")
        after_changed = sorted({n + 1 for n in changed if n + 1 in starts})
        if which == "all":
            out[mode] = sorted(n for n in starts if n > 1)
        elif which.startswith("changed"):
            step = int(which.partition("/")[2] or 1)
            out[mode] = sorted({*after_changed[::step], *after_changed[-1:]})
        else:
            out[mode] = [int(n) for n in which.split(",") if n]
    return out


def _save():
    path = Path(os.environ.get("TPMFLEET_INTERRUPT_REPORT", ROOT / ".cache" / "interrupt-report.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(REPORT, indent=1) + "\n")


@pytest.fixture(scope="module")
def prepared():
    rc, out, _secs = _playbook("tests/lab/prepare_consumer.yml", START)
    assert rc == 0, out[-4000:]


def _finish(target, entry):
    """site.yml once with the target mode after a killed run: the host converged, then a further run changes
    nothing; the problems found (also in ``entry``)."""
    rc, out, secs = _playbook("site.yml", target)
    entry.update(site_rc=rc, site_seconds=round(secs, 1))
    problems = [] if rc == 0 else [f"site.yml failed (rc {rc}): {out[-3000:]}"]
    if rc == 0:
        entry["site_recap"] = _recap(out)
        entry["site_changed"] = [line for line in out.splitlines() if line.startswith("changed:")]
        problems += _converged(target)
        rc2, out2, secs2 = _playbook("site.yml", target)
        entry.update(again_rc=rc2, again_seconds=round(secs2, 1))
        if rc2 != 0 or _recap(out2)["changed"] != 0:
            problems.append(f"the further site.yml run: rc {rc2}, changed {_recap(out2).get('changed')}: "
                            f"{[line for line in out2.splitlines() if line.startswith('changed:')]}")  # fmt: skip
    entry["problems"] = problems
    REPORT.append(entry)
    _save()
    if problems:
        # Bring the host back for the next boundary.
        _playbook("site.yml", target)
    return problems


def test_a_site_only_switch_killed_before_its_handlers_is_finished_by_the_next_site_run(prepared, tmp_path):
    mode = START
    rc, out, secs = _playbook("site.yml", mode)
    assert rc == 0, out[-4000:]
    REPORT.append({"run": f"site {mode} (start, site-only switches)", "seconds": round(secs, 1),
                   "recap": _recap(out)})  # fmt: skip
    assert _converged(mode) == []
    failures = []
    for where, name in SITE_KILLS:
        for _direction in (1, 2):
            target = _other(mode)
            log = tmp_path / f"site-{target}-{len(REPORT)}.log"
            rc, out, killed_secs = _playbook("site.yml", target, log=log, kill_name=(where, name))
            killed = [line.split("\t") for line in log.read_text().splitlines() if line.startswith("killed\t")]
            assert rc == -signal.SIGKILL and killed, f"site.yml to {target} was not killed {where} {name!r}: rc {rc}"
            seen = _observe()
            entry = {"run": f"site {mode} -> {target} killed {where} {name!r} (as {killed[0][2]!r} started)",
                     "killed_after_s": round(killed_secs, 1),
                     "left": {k: seen.get(k) for k in ("env_tcti", "consumer", "consumer_tcti", "reload")}}  # fmt: skip
            if _finish(target, entry):
                failures.append(entry)
            mode = target
    assert failures == [], json.dumps(failures, indent=1)


def test_a_switch_killed_at_any_step_is_finished_by_one_site_run(prepared, tmp_path):
    spec = os.environ.get("TPMFLEET_INTERRUPT_AT", "changed")
    mode = START
    rc, out, secs = _playbook("site.yml", mode)
    assert rc == 0, out[-4000:]
    REPORT.append({"run": f"site {mode} (start)", "seconds": round(secs, 1), "recap": _recap(out)})
    assert _converged(mode) == []
    # The uninterrupted switches, each way: the task list and the tasks that changed the host (not needed
    # when every boundary is given by number).
    reference = {m: ({}, []) for m in MODES}
    explicit = all(re.fullmatch(r"[0-9]+(,[0-9]+)*", part.partition(":")[2]) for part in spec.split(";"))
    for target in () if explicit else (_other(mode), mode):
        log = tmp_path / f"reference-{target}.log"
        rc, out, secs = _playbook("playbooks/quote_mode.yml", target, log=log)
        assert rc == 0, out[-4000:]
        assert _converged(target) == [], out[-3000:]
        reference[target] = _log(log)
        REPORT.append({"run": f"quote_mode {_other(target)} -> {target}", "seconds": round(secs, 1),
                       "recap": _recap(out), "tasks": len(reference[target][0]),
                       "changed_at": reference[target][1]})  # fmt: skip
        _save()
    points = _points(reference, spec)
    queues = {m: list(p) for m, p in points.items()}
    failures = []
    # Alternate: kill a switch to the other mode, finish it with site.yml, and go on from there.
    while any(queues.values()):
        target = _other(mode)
        if not queues[target]:
            # Nothing left that way: cross over uninterrupted.
            rc, out, _ = _playbook("playbooks/quote_mode.yml", target)
            assert rc == 0, out[-4000:]
            mode = target
            continue
        n = queues[target].pop(0)
        log = tmp_path / f"kill-{target}-{n}.log"
        rc, out, killed_secs = _playbook("playbooks/quote_mode.yml", target, log=log, kill_at=n)
        killed = any(line.startswith("killed\t") for line in log.read_text().splitlines())
        assert rc == -signal.SIGKILL and killed, f"the switch to {target} was not killed at task {n}: rc {rc}"
        task = _log(log)[0].get(n - 1, "?")
        entry = {"run": f"quote_mode {mode} -> {target} killed as task {n} started, after: {task}",
                 "killed_after_s": round(killed_secs, 1)}  # fmt: skip
        if _finish(target, entry):
            failures.append(entry)
        mode = target
    assert failures == [], json.dumps(failures, indent=1)
