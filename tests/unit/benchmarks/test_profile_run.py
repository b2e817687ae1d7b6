# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""benchmarks/profile_run.py: a real ansible-playbook run on the controller, profiled with its task workers."""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_the_main_process_and_every_task_worker_are_profiled(tmp_path):
    play = [
        {
            "name": "Two tasks on two local hosts",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": "Set a fact", "ansible.builtin.set_fact": {"profiled": True}},
                {"name": "Check it", "ansible.builtin.assert": {"that": "profiled"}},
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    out = tmp_path / "prof"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    script = [sys.executable, str(ROOT / "benchmarks" / "profile_run.py"), "--out", str(out), "--top", "5", "--"]
    playbook = ["-i", "h1,h2,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    proc = subprocess.run(
        [*script, *playbook, str(tmp_path / "play.yml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workers = sorted(out.glob("worker-*.prof"))
    # One worker per task and host: 2 tasks x 2 hosts.
    assert len(workers) == 4, workers
    # The workers ran the actions: set_fact's and assert's run() are in their profiles.
    funcs = {f"{Path(file).name}:{name}" for s in map(pstats.Stats, map(str, workers)) for file, _, name in s.stats}
    assert {"set_fact.py:run", "assert.py:run"} <= funcs
    assert (out / "main.prof").is_file()
    assert "4 task workers" in proc.stdout
    assert "ansible-playbook exited 0" in proc.stdout
