"""Scale benchmark of the fleet report's model (not a timed test): what the fleet_report action does for N hosts.

Each size runs in its own child process (so that its peak RSS is its own) and measures:
- collect: the action's reading of every host's registered results from Ansible's real HostVars (collect())
  (an InventoryManager with N hosts, their results set as Ansible sets registered variables),
- build: report.build (checks, statuses, observed modes, problem groups, fleet findings),
- json: fleet.json streamed to a file; junit: junit.xml rendered and written; limits: the limit files,
- total: all of the above (the budget is 5 s and 1 GB peak RSS at 10,000 hosts), each as wall time and
  as this process's CPU time (the honest figure when lab VMs or other work share the cores),
- peak_rss_mb: the child's peak resident set size (ru_maxrss), input generation included.

Run from the repository root:
    .venv/bin/python benchmarks/report_model_bench.py [--hosts 1000 5000 10000] [--profile]
Results go to benchmarks/results/report_model.json (git-ignored) and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "plugin_utils"))

BUDGET_S = 5.0
BUDGET_RSS_MB = 1024


def _hostvars(records):
    """Ansible's HostVars over an inventory of the records' hosts, each with its registered results."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[])
    inventory.add_group("tpm_hosts")
    for r in records:
        inventory.add_host(r["name"], group="tpm_hosts")
    inventory.reconcile_inventory()
    variables = VariableManager(loader=loader, inventory=inventory)
    for r in records:
        registered = {
            "tpm_quote_mode": r["requested_mode"],
            "tpm_quote_mode_profile": r["profile"],
            "__tpm_report_settings": r["settings"],
            "__tpm_report_facts": r["facts"],
        }
        if r["mode_error"]:
            registered["__tpm_report_mode_error"] = r["mode_error"]
        variables.set_nonpersistent_facts(r["name"], registered)
    return HostVars(inventory=inventory, variable_manager=variables, loader=loader)


def one_size(n, profile):
    from ansible_collections.tpmfleet.tpm.plugins.action.fleet_report import collect
    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_fleet, report_render
    from fleet_fixtures import synthetic_fleet

    records = synthetic_fleet(n)
    hostvars = _hostvars(records)
    names = [r["name"] for r in records]
    del records
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    clock = []

    def tick():
        clock.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory() as dest:
        tick()
        collected = collect(hostvars, names)
        tick()
        model = report.build(collected, quote_test=False, ignore_groups=("tpm_hosts",))
        tick()
        with open(os.path.join(dest, "fleet.json"), "w", encoding="utf-8") as fh:
            report_render.write_json(model, fh)
        tick()
        with open(os.path.join(dest, "junit.xml"), "w", encoding="utf-8") as fh:
            fh.write(report_render.render_junit(model))
        tick()
        report_fleet.write_limit_files(model, dest)
        tick()
        size = os.path.getsize(os.path.join(dest, "fleet.json"))
    if profiler:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    phases = ("collect", "build", "json", "junit", "limits")
    wall = {p: clock[i + 1][0] - clock[i][0] for i, p in enumerate(phases)}
    cpu = {p: clock[i + 1][1] - clock[i][1] for i, p in enumerate(phases)}
    wall["total"], cpu["total"] = clock[-1][0] - clock[0][0], clock[-1][1] - clock[0][1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "hosts": n,
        "wall_s": {k: round(v, 3) for k, v in wall.items()},
        # CPU seconds of this process: the figure to trust when other work shares the 2 cores
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "peak_rss_mb": round(peak),
        "fleet_json_mb": round(size / 1e6, 1),
        "problem_groups": len(model["problem_groups"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the largest size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(args.child, args.profile)))
        return 0
    results = []
    for n in args.hosts:
        cmd = [sys.executable, __file__, "--child", str(n)] + (["--profile"] if args.profile else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        if args.profile:
            print(out[: out.rindex("\n{")])
        result = json.loads(out.strip().splitlines()[-1])
        result["within_budget"] = result["cpu_s"]["total"] <= BUDGET_S and result["peak_rss_mb"] <= BUDGET_RSS_MB
        results.append(result)
        print(json.dumps(result))
    os.makedirs(REPO / "benchmarks" / "results", exist_ok=True)
    with open(REPO / "benchmarks" / "results" / "report_model.json", "w", encoding="utf-8") as fh:
        json.dump({"machine": platform.platform(), "cpus": os.cpu_count(), "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
