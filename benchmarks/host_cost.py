#!/usr/bin/env python3
"""Per-host cost of a fleet run: remote module executions, wall time as a ratio to ping, controller CPU.

Usage (from the repo root), against hosts that may be changed (the lab VMs):

    .venv/bin/python benchmarks/host_cost.py -i inventory/bench [--limit bench1] [--switch-to direct]
        [--strategy default|free|mitogen|both|all] [--steps noop,check] [--no-docs]

For each strategy it runs, in this order, with the tpmfleet.lab.remote_calls callback counting the remote module
executions per host:

  ping      ansible -m ping (the wall-time unit of the run)
  first     tpmfleet.tpm.site (a first converge when the hosts are fresh; recorded as what it was)
  noop      tpmfleet.tpm.site again (nothing to change)
  switch    tpmfleet.tpm.quote_mode to --switch-to (then back to the hosts' own mode, recorded as switch_back)
  check     tpmfleet.tpm.site --check --diff on the converged hosts

(--steps picks some of them; ping always runs.) Besides the module executions the callback counts the tasks each
host went through (evaluated, skipped ones included): each costs controller CPU even when nothing runs remotely.

Controller CPU is user+sys of the whole ansible/ansible-playbook process tree (resource.getrusage of the
reaped children). Writes benchmarks/results/host_cost-<UTC date>.json and, unless --no-docs, the figures section of
docs/performance.md. Never run from the tests: it changes the hosts it is given.
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
import time
from pathlib import Path

from doc_section import replace_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAYBOOKS = REPO / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "playbooks"
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- host_cost:begin -->", "<!-- host_cost:end -->"
STRATEGIES = {
    "default": {},
    # The lab's opt-in Mitogen strategy; it needs host key checking off against the lab inventory.
    "mitogen": {"ANSIBLE_STRATEGY": "tpmfleet.lab.mitogen_linear", "ANSIBLE_HOST_KEY_CHECKING": "False"},
    # Ansible's free strategy: a host goes on to its next task without waiting for the others.
    "free": {"ANSIBLE_STRATEGY": "ansible.builtin.free"},
}
STEPS = ("first", "noop", "switch", "check")
TARGETS = {"noop_executions": 12, "noop_ping_ratio": 12, "switch_executions": 20, "noop_cpu_per_host_s": 2.0}


def run(cmd, env):
    """Run ``cmd``; (returncode, wall seconds, controller CPU seconds of its process tree, output tail)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, wall, cpu, (proc.stdout + proc.stderr)[-4000:]


def step(name, cmd, env, work):
    calls = work / f"{name}.json"
    env = dict(env, TPMFLEET_REMOTE_CALLS_FILE=str(calls))
    rc, wall, cpu, tail = run(cmd, env)
    hosts = json.loads(calls.read_text())["hosts"] if calls.exists() else {}
    executions = {h: v["executions"] for h, v in hosts.items()}
    n = max(len(hosts), 1)
    result = {
        "command": " ".join(map(str, cmd)),
        "rc": rc,
        "wall_s": round(wall, 2),
        "controller_cpu_s": round(cpu, 2),
        "controller_cpu_per_host_s": round(cpu / n, 2),
        "hosts": len(hosts),
        "executions_per_host": executions,
        "executions_max": max(executions.values(), default=None),
        "module_tasks_per_host": {h: v["tasks"] for h, v in hosts.items()},
        "evaluated_per_host": {h: v.get("evaluated") for h, v in hosts.items()},
        "skipped_per_host": {h: v.get("skipped") for h, v in hosts.items()},
        "changed_per_host": {h: v.get("changed") for h, v in hosts.items()},
        "by_task": {h: v["by_task"] for h, v in hosts.items()},
    }
    if rc != 0:
        result["output_tail"] = tail
    print(f"  {name:12} rc {rc}  {wall:7.1f} s  cpu {cpu:6.1f} s  executions/host {executions}", flush=True)
    return result


def measure(args, strategy, work):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CALLBACKS_ENABLED="tpmfleet.lab.remote_calls",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",  # the ad-hoc ping loads it too
        **STRATEGIES[strategy],
    )
    common = ["-i", args.inventory, *(["--limit", args.limit] if args.limit else [])]
    playbook = [str(BIN / "ansible-playbook"), *common]
    steps = {}
    print(f"strategy {strategy}:", flush=True)
    steps["ping"] = step("ping", [str(BIN / "ansible"), args.pattern, *common, "-m", "ansible.builtin.ping"], env, work)
    site = [*playbook, str(PLAYBOOKS / "site.yml")]
    if "first" in args.steps:
        steps["first"] = step("first", site, env, work)
    if "noop" in args.steps:
        steps["noop"] = step("noop", site, env, work)
    if "switch" in args.steps:
        switch = [*playbook, str(PLAYBOOKS / "quote_mode.yml")]
        steps["switch"] = step("switch", [*switch, "-e", f"tpm_quote_mode={args.switch_to}"], env, work)
        steps["switch_back"] = step("switch_back", switch, env, work)
    if "check" in args.steps:
        steps["check"] = step("check", [*site, "--check", "--diff"], env, work)
    ping = steps["ping"]["wall_s"] or None
    for name, s in steps.items():
        s["ping_ratio"] = round(s["wall_s"] / ping, 1) if ping and name != "ping" else None
    return steps


def verdict(steps):
    noop, switch = steps.get("noop"), steps.get("switch")
    checks = {}
    if noop:
        checks["noop_executions"] = (noop["executions_max"], TARGETS["noop_executions"])
        checks["noop_ping_ratio"] = (noop["ping_ratio"], TARGETS["noop_ping_ratio"])
    if switch:
        checks["switch_executions"] = (switch["executions_max"], TARGETS["switch_executions"])
    if noop:
        checks["noop_cpu_per_host_s"] = (noop["controller_cpu_per_host_s"], TARGETS["noop_cpu_per_host_s"])
    return checks


def markdown(report):
    lines = [
        BEGIN,
        f"Latest run: {report['date']} UTC, inventory `{report['inventory']}`, {report['hosts']} host(s), "
        f"forks {report['forks']}, switch to `{report['switch_to']}` "
        f"(`benchmarks/results/{report['file']}`).",
        "",
        "| strategy | step | rc | wall s | x ping | executions/host (max) | tasks evaluated/host (max) "
        "| changed/host (max) | controller CPU s/host |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for strategy, steps in report["strategies"].items():
        for name, s in steps.items():
            evaluated = max((n for n in s.get("evaluated_per_host", {}).values() if n is not None), default="")
            changed = max((n for n in s.get("changed_per_host", {}).values() if n is not None), default="")
            lines.append(
                f"| {strategy} | {name} | {s['rc']} | {s['wall_s']} | {s['ping_ratio'] or ''} | "
                f"{s['executions_max'] if s['executions_max'] is not None else ''} | {evaluated} | {changed} | "
                f"{s['controller_cpu_per_host_s']} |"
            )
    lines += ["", "| strategy | target | measured | limit | met |", "|---|---|---|---|---|"]
    for strategy, checks in report["verdict"].items():
        for key, (got, limit) in checks.items():
            met = "yes" if got is not None and got <= limit else "no" if got is not None else "not measured"
            lines.append(f"| {strategy} | {key} | {got if got is not None else ''} | {limit} | {met} |")
    lines.append(END)
    return "\n".join(lines)


def forks():
    for line in (REPO / "ansible.cfg").read_text().splitlines():
        key, _sep, value = line.partition("=")
        if key.strip() == "forks":
            return int(value.strip())
    return 5


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("--limit")
    parser.add_argument("--pattern", default="tpm_hosts", help="host pattern of the ping (default: tpm_hosts)")
    parser.add_argument("--switch-to", default="direct", help="the quote mode of the switch step")
    parser.add_argument(
        "--strategy", choices=[*STRATEGIES, "both", "all"], default="both", help="both: default and mitogen"
    )
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    args = parser.parse_args()
    args.steps = [name.strip() for name in args.steps.split(",") if name.strip()]
    unknown = sorted(set(args.steps) - set(STEPS))
    if unknown:
        parser.error(f"--steps: unknown step(s) {', '.join(unknown)}; choose among {', '.join(STEPS)}")
    strategies = {"both": ["default", "mitogen"], "all": list(STRATEGIES)}.get(args.strategy, [args.strategy])
    now = datetime.datetime.now(datetime.UTC)
    report = {
        "date": now.strftime("%Y-%m-%d %H:%M"),
        "inventory": args.inventory,
        "limit": args.limit,
        "switch_to": args.switch_to,
        "forks": forks(),
        "steps": args.steps,
        "strategies": {},
        "verdict": {},
    }
    with tempfile.TemporaryDirectory(prefix="tpmfleet-host-cost-") as tmp:
        for strategy in strategies:
            work = Path(tmp) / strategy
            work.mkdir()
            report["strategies"][strategy] = measure(args, strategy, work)
            report["verdict"][strategy] = verdict(report["strategies"][strategy])
    report["hosts"] = max(s["ping"]["hosts"] for s in report["strategies"].values())
    RESULTS.mkdir(parents=True, exist_ok=True)
    report["file"] = f"host_cost-{now.strftime('%Y%m%dT%H%M')}.json"
    (RESULTS / report["file"]).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote benchmarks/results/{report['file']}")
    if not args.no_docs:
        replace_section(DOC, BEGIN, END, markdown(report))
        print("updated docs/performance.md")
    failed = [f"{s}/{n}" for s, steps in report["strategies"].items() for n, r in steps.items() if r["rc"] != 0]
    if failed:
        print(f"runs that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
