# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: last_run
type: aggregate
short_description: Record a run's outcome in /var/lib/tpmfleet/last-run.json (ansible-pull)
description:
  - At the end of a run, writes when it started and finished, the commit of the checkout it ran from, the quote mode
    it applied and its ok/changed/failed/unreachable/skipped counts (summed over the run's hosts) to a JSON file,
    atomically (a temporary file in the same directory renamed over it), mode C(0644).
  - Meant for ansible-pull, where the controller is the host itself; the tpmfleet pull service enables it. The
    tpmfleet.tpm.tpm_facts module reads the file back and the fleet report shows it in the host detail.
  - The pull service loads a copy installed beside its wrapper (C(ANSIBLE_CALLBACK_PLUGINS)), so that
    ansible-pull's checkout step, which runs before the clone and its collections exist, finds it too. The file
    depends on nothing but ansible-core for that reason.
  - Nothing secret is recorded (no repository URL, which may carry a token, no variables).
  - In check mode nothing is written (a check run changes nothing on the host, this file included).
version_added: "0.3.0"
author: tpmfleet contributors (@tpmfleet)
requirements:
  - Enabled in C(callbacks_enabled) (C(ANSIBLE_CALLBACKS_ENABLED=tpmfleet.tpm.last_run)).
options:
  path:
    description: The file to write.
    type: path
    default: /var/lib/tpmfleet/last-run.json
    env:
      - name: TPMFLEET_LAST_RUN_PATH
    ini:
      - section: tpmfleet_last_run
        key: path
  run_id:
    description: An identifier of the run, recorded as is (the pull service's wrapper sets it to tell its own run).
    type: str
    env:
      - name: TPMFLEET_LAST_RUN_ID
"""

import contextlib
import datetime
import json
import os
import subprocess
import tempfile

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_core_version

COUNTS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")


def _now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def checkout_commit(directory):
    """The commit checked out in ``directory`` (git rev-parse HEAD), or None when it is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", directory, "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else None


def write_record(path, record):
    """Write ``record`` as JSON to ``path`` atomically, mode 0644 (the directory is made 0755 when missing)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".last-run.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o644)
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build_record(stats_by_host, started_at, finished_at, commit, quote_mode, run_id, playbooks):
    """The record of a run from its per-host counts (``{host: {"ok": n, ...}}``)."""
    totals = {name: sum(int(counts.get(name, 0)) for counts in stats_by_host.values()) for name in COUNTS}
    failed = totals["failures"] + totals["unreachable"]
    return {
        "version": 1,
        "started_at": started_at,
        "finished_at": finished_at,
        "result": "failed" if failed or not stats_by_host else "ok",
        "ok": totals["ok"],
        "changed": totals["changed"],
        "failed": totals["failures"],
        "unreachable": totals["unreachable"],
        "skipped": totals["skipped"],
        "rescued": totals["rescued"],
        "hosts": sorted(stats_by_host),
        "commit": commit,
        "quote_mode": quote_mode,
        "playbooks": list(playbooks),
        "ansible_core": ansible_core_version,
        "run_id": run_id,
        "source": "callback",
    }


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tpmfleet.tpm.last_run"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started_at = _now()
        self._quote_mode = None

    def v2_runner_on_ok(self, result):
        # The tpm_quote_mode role publishes the mode it applies as the fact tpm_quote_mode_profile.
        facts = (getattr(result, "result", None) or {}).get("ansible_facts") or {}
        profile = facts.get("tpm_quote_mode_profile") if isinstance(facts, dict) else None
        if isinstance(profile, dict) and isinstance(profile.get("mode"), str):
            self._quote_mode = profile["mode"]

    def v2_playbook_on_stats(self, stats):
        if context.CLIARGS.get("check"):
            return
        counts = {host: stats.summarize(host) for host in stats.processed}
        record = build_record(
            counts,
            self._started_at,
            _now(),
            checkout_commit(os.getcwd()),
            self._quote_mode,
            self.get_option("run_id"),
            [str(p) for p in context.CLIARGS.get("args") or ()],
        )
        path = self.get_option("path")
        try:
            write_record(path, record)
        except OSError as exc:
            self._display.warning(f"tpmfleet.tpm.last_run: could not write {json.dumps(path)}: {exc}")
