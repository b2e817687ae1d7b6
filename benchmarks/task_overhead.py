#!/usr/bin/env python3
"""Controller CPU of one task for one host, with nothing run on the host: the floor of a fleet run's cost.

Usage (from the repo root; needs no lab, changes nothing):

    .venv/bin/python benchmarks/task_overhead.py [--tasks 100] [--hosts 1,4,16] [--no-docs]

Ansible runs every task for every host in a worker process of its own, and templates the task's conditions
there, whether the task then runs a module on the host, only on the controller (set_fact, assert) or is
skipped. This measures that cost with hosts of ``ansible_connection=local`` that run no module: for each host
count, a play of --tasks skipped tasks (``when: false``), one of --tasks controller-only tasks (``set_fact``) and
an empty play (the start-up cost); controller CPU is user+sys of the reaped ``ansible-playbook`` process tree.
The per-task-per-host figure is the slope over the host counts and the task count. Multiplied by the tasks a
host goes through in a run (the remote_calls callback's ``evaluated``), it is the part of the controller CPU per
host that no reduction of remote calls can remove.

Writes benchmarks/results/task_overhead-<UTC date>.json and, unless --no-docs, its section of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from doc_section import replace_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- task_overhead:begin -->", "<!-- task_overhead:end -->"


def play(kind, tasks):
    if kind == "empty":
        body = []
    elif kind == "skipped":
        body = [{"name": f"Skipped {i}", "ansible.builtin.set_fact": {f"x{i}": 1}, "when": "never_true | bool"}
                for i in range(tasks)]  # fmt: skip
    else:
        body = [{"name": f"Controller only {i}", "ansible.builtin.set_fact": {f"x{i}": 1}} for i in range(tasks)]
    return [{"name": kind, "hosts": "all", "gather_facts": False, "vars": {"never_true": False}, "tasks": body}]


def cpu_of(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def measure(tasks, host_counts, forks):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="tpmfleet-task-overhead-") as tmp:
        tmp = Path(tmp)
        for kind in ("empty", "skipped", "controller"):
            (tmp / f"{kind}.json").write_text(json.dumps(play(kind, tasks)))
        for hosts in host_counts:
            inventory = tmp / f"hosts{hosts}.json"
            inventory.write_text(json.dumps({"all": {
                "hosts": {f"h{i}": None for i in range(hosts)},
                "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))  # fmt: skip
            for kind in ("empty", "skipped", "controller"):
                cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks), str(tmp / f"{kind}.json")]
                runs[f"{kind}/{hosts}"] = round(cpu_of(cmd, env), 3)
                print(f"  {kind:10} {hosts:3} host(s)  cpu {runs[f'{kind}/{hosts}']:7.2f} s", flush=True)
    per = {}
    for kind in ("skipped", "controller"):
        # CPU of the tasks alone (the empty play's start-up taken off) against the host count.
        points = [(h, runs[f"{kind}/{h}"] - runs[f"empty/{h}"]) for h in host_counts]
        per[kind] = round(slope(points) / tasks * 1000, 2)
    return runs, per


def markdown(report):
    h = report["host_counts"]
    return "\n".join([
        BEGIN,
        f"Latest run: {report['date']} UTC, {report['tasks']} tasks over {', '.join(map(str, h))} local host(s), "
        f"forks {report['forks']}, {report['cpus']} CPU(s) (`benchmarks/results/{report['file']}`).",
        "",
        "| task kind | controller CPU per task per host |",
        "|---|---|",
        f"| skipped (`when` false) | {report['ms_per_task_host']['skipped']} ms |",
        f"| controller-only (`set_fact`) | {report['ms_per_task_host']['controller']} ms |",
        END,
    ])  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--hosts", default="1,4,16", help="comma-separated host counts (at least two)")
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = parser.parse_args()
    host_counts = sorted({int(n) for n in args.hosts.split(",") if n.strip()})
    if len(host_counts) < 2 or host_counts[0] < 1 or args.tasks < 1:
        parser.error("--hosts needs at least two positive host counts and --tasks a positive number")
    now = datetime.datetime.now(datetime.UTC)
    runs, per = measure(args.tasks, host_counts, args.forks)
    report = {
        "date": now.strftime("%Y-%m-%d %H:%M"),
        "tasks": args.tasks,
        "host_counts": host_counts,
        "forks": args.forks,
        "cpus": os.cpu_count(),
        "cpu_s": runs,
        "ms_per_task_host": per,
        "file": f"task_overhead-{now.strftime('%Y%m%dT%H%M')}.json",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / report["file"]).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"skipped: {per['skipped']} ms, controller-only: {per['controller']} ms per task per host")
    print(f"wrote benchmarks/results/{report['file']}")
    if not args.no_docs:
        replace_section(DOC, BEGIN, END, markdown(report))
        print("updated docs/performance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
