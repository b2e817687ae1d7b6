#!/usr/bin/env python3
"""Where a run's controller CPU goes: ansible-playbook under cProfile, its task workers included.

Usage (from the repo root, against a lab inventory; changes what the playbook changes):

    .venv/bin/python benchmarks/profile_run.py [--out DIR] [--top 25] -- -i inventory/bench site.yml

Ansible runs each task for each host in a forked worker process. Besides the main process, this profiles every
worker (its ``TaskExecutor.run``: templating the task, running the action, processing its result) and writes
one ``.prof`` file per process into --out (default: a new directory under .cache/profile). Then it merges them
and prints the functions with the most time of their own, the most cumulative time, and the total of each
process kind. The clock is the process's CPU time (time.process_time): waiting on a host costs nothing here.
cProfile slows Python code down by a factor, so read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def install_worker_profiler(out):
    """Profile each task worker's TaskExecutor.run (templating the task, its loop and conditions, running the
    action, processing its result). The workers are forked, so patching the class here reaches them. A
    profile is written before the worker sends its result: Ansible may end a worker once its result is in."""
    from ansible.executor.task_executor import TaskExecutor

    original = TaskExecutor.run

    def run(self):
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        try:
            return original(self)
        finally:
            prof.disable()
            prof.dump_stats(str(out / f"worker-{os.getpid()}.prof"))

    TaskExecutor.run = run


def run_playbook(args, out):
    from ansible.cli.playbook import PlaybookCLI

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    rc = 0
    try:
        PlaybookCLI.cli_executor(["ansible-playbook", *args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        prof.disable()
        prof.dump_stats(str(out / "main.prof"))
    return rc


def total(stats):
    return sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.stats.values())


def report(out, top):
    workers = sorted(out.glob("worker-*.prof"))
    main = pstats.Stats(str(out / "main.prof"))
    print(f"\nmain process: {total(main):.1f} s profiled")
    if workers:
        merged = pstats.Stats(*map(str, workers))
        each = total(merged) / len(workers) * 1000
        print(f"{len(workers)} task workers: {total(merged):.1f} s profiled, {each:.0f} ms each")
        everything = pstats.Stats(str(out / "main.prof"), *map(str, workers))
    else:
        everything = main
    everything.files = []  # not one header line per worker's file
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        print(f"\n== all processes, by {title} ==")
        everything.sort_stats(key).print_stats(top)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, help="directory for the .prof files (new, under .cache/profile)")
    parser.add_argument("--top", type=int, default=25, help="functions listed per table")
    parser.add_argument("playbook_args", nargs=argparse.REMAINDER, help="-- then ansible-playbook's arguments")
    opts = parser.parse_args()
    args = opts.playbook_args[1:] if opts.playbook_args[:1] == ["--"] else opts.playbook_args
    if not args:
        parser.error("give ansible-playbook's arguments after --")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    out = (opts.out or REPO / ".cache" / "profile" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=False)
    install_worker_profiler(out)
    rc = run_playbook(args, out)
    report(out, opts.top)
    print(f"\nprofiles: {out}; ansible-playbook exited {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
