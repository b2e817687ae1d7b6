#!/usr/bin/env python3
"""Where a run's controller CPU goes: ansible-playbook under cProfile, its task workers included.

Usage (from the repo root, against a lab inventory; changes what the playbook changes):

    .venv/bin/python benchmarks/profile_run.py [--out DIR] [--top 25] -- -i inventory/bench site.yml

Ansible runs each task for each host in a forked worker process. Besides the main process, this profiles every
worker (its ``TaskExecutor.run``: templating the task, its loop and conditions, running the action, processing
its result) and writes one ``.prof`` file per process into --out (default: a new directory under .cache/profile).
Then it merges them and prints the functions with the most time of their own, the most cumulative time, the
total of each process kind, and the Jinja templates whose compiling cost the most (ansible-core compiles a
template each time it renders one). The clock is the process's CPU time (time.process_time): waiting on a host
costs nothing here. cProfile slows Python code down by a factor, so read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The main process's profiler: a forked worker inherits it enabled, and since Python 3.12 (cProfile on
# sys.monitoring) enabling a second one there fails ("Another profiling tool is already active").
_MAIN_PROFILER = []


def install_worker_profiler(out, compiled):
    """Profile each task worker's TaskExecutor.run (templating the task, its loop and conditions, running the
    action, processing its result). The workers are forked, so patching the class here reaches them. A
    profile is written before the worker sends its result: Ansible may end a worker once its result is in."""
    from ansible.executor.task_executor import TaskExecutor

    original = TaskExecutor.run

    def run(self):
        compiled.clear()  # this forked worker's own compiles, not the main process's so far
        for inherited in _MAIN_PROFILER:
            inherited.disable()
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        try:
            return original(self)
        finally:
            prof.disable()
            prof.dump_stats(str(out / f"worker-{os.getpid()}.prof"))
            write_template_counts(out, compiled)

    TaskExecutor.run = run


def install_template_counter():
    """Count, per process, each Jinja template and expression Ansible compiles and the CPU its compiling took.

    ansible-core 2.19 compiles a template each time it renders it (no cache), in the worker of every task and
    host: what a role writes as Jinja is paid for there, over and over."""
    from ansible._internal._templating._engine import TemplateEngine

    compiled = {}

    def counted(original):
        def compile_counted(self, template, options):
            start = time.process_time()
            try:
                return original(self, template, options)
            finally:
                entry = compiled.setdefault(str(template), [0, 0.0])
                entry[0] += 1
                entry[1] += time.process_time() - start

        return compile_counted

    TemplateEngine._compile_template = counted(TemplateEngine._compile_template)
    TemplateEngine._compile_expression = counted(TemplateEngine._compile_expression)
    return compiled


def write_template_counts(out, compiled):
    if compiled:
        (out / f"templates-{os.getpid()}.json").write_text(json.dumps(compiled))


def template_report(out, top):
    total = {}
    for path in out.glob("templates-*.json"):
        for text, (count, cpu) in json.loads(path.read_text()).items():
            entry = total.setdefault(text, [0, 0.0])
            entry[0] += count
            entry[1] += cpu
    if not total:
        return
    count = sum(c for c, _ in total.values())
    cpu = sum(t for _, t in total.values())
    print(f"\n== Jinja compiles: {count} of {len(total)} distinct templates, {cpu:.1f} s (under cProfile) ==")
    for text, (n, t) in sorted(total.items(), key=lambda kv: -kv[1][1])[:top]:
        flat = " ".join(text.split())
        print(f"{t * 1000:8.0f} ms {n:5d}x  {flat[:110]}")


def run_playbook(args, out, compiled):
    from ansible.cli.playbook import PlaybookCLI

    prof = cProfile.Profile(time.process_time)
    _MAIN_PROFILER.append(prof)
    prof.enable()
    rc = 0
    try:
        PlaybookCLI.cli_executor(["ansible-playbook", *args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        prof.disable()
        prof.dump_stats(str(out / "main.prof"))
        write_template_counts(out, compiled)
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
    compiled = install_template_counter()
    install_worker_profiler(out, compiled)
    rc = run_playbook(args, out, compiled)
    report(out, opts.top)
    template_report(out, opts.top)
    print(f"\nprofiles: {out}; ansible-playbook exited {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
