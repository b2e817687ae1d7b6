"""Scale benchmark of the fleet report (not a timed test): a synthetic fleet of N hosts (1000 by default).

Measures on this machine:
- building the fleet model from per-host records (the fleet_report action's work before writing),
- rendering fleet.json into the page: read fleet.json, render index.html, write it (the budget is 5 s for 1000 hosts),
- in Debian's headless Chromium (system chromedriver, nothing downloaded): page load (navigation timing), and
  the time to filter and to sort the host table, each including the layout it forces.

Run from the repository root:
    .venv/bin/python benchmarks/report_bench.py [--hosts 1000] [--repeat 5]
Results go to benchmarks/results/report.json (git-ignored) and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "plugin_utils"))

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_page
from fleet_fixtures import synthetic_fleet
from headless_chromium import installed, start_browser

BUDGET_S = 5.0
# Runs in the page: time one filter change or header click, including the layout it forces.
FILTER_JS = """
const box = document.getElementById('filter');
box.value = arguments[0];
const t0 = performance.now();
box.dispatchEvent(new Event('input'));
document.body.offsetHeight;
const ms = performance.now() - t0;
return [ms, Number(document.getElementById('shown-count').textContent)];
"""
SORT_JS = """
const th = Array.from(document.querySelectorAll('#hosts thead th')).find(t => t.textContent === arguments[0]);
const t0 = performance.now();
th.click();
document.body.offsetHeight;
return performance.now() - t0;
"""


def timed(func, repeat):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return runs


def stats(values, scale=1.0, digits=3):
    values = sorted(v * scale for v in values)
    return {"median": round(statistics.median(values), digits), "max": round(values[-1], digits), "runs": len(values)}


def browser(index_html, repeat, names):
    with tempfile.TemporaryDirectory(prefix="tpmfleet-bench-") as profile:
        driver = start_browser(profile)
        try:
            loads = []
            for _ in range(repeat):
                driver.get(Path(index_html).as_uri())
                timing = driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    "return [n.domContentLoadedEventEnd, n.loadEventEnd];"
                )
                loads.append(timing)
            result = {
                "dom_content_loaded_ms": stats([t[0] for t in loads], digits=1),
                "load_event_end_ms": stats([t[1] for t in loads], digits=1),
            }
            queries = {
                "one host": names[len(names) // 2],
                "one mode": "kernel_rm",
                "a problem": "lockout",
                "no match": "zz-no-such-host",
                "cleared": "",
            }
            # first with the page's row limit (report_page.PAGE_SIZE rows laid out), then after "Show all"
            for key, setup in (("paged", None), ("all_rows", "document.getElementById('show-all').click();")):
                if setup:
                    driver.execute_script(setup)
                result[f"filter_ms_{key}"] = {}
                for label, query in queries.items():
                    runs, shown = [], None
                    for _ in range(repeat):
                        driver.execute_script(FILTER_JS, "zz-no-such-host" if query == "" else "")  # another state
                        ms, shown = driver.execute_script(FILTER_JS, query)
                        runs.append(ms)
                    result[f"filter_ms_{key}"][label] = dict(stats(runs, digits=2), query=query, rows_matching=shown)
                result[f"sort_ms_{key}"] = {}
                for column in ("Host", "Status", "Problems"):
                    runs = [driver.execute_script(SORT_JS, column) for _ in range(repeat)]
                    result[f"sort_ms_{key}"][column] = stats(runs, digits=2)
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            result["console_errors"] = len(severe)
            result["chromium"] = driver.capabilities.get("browserVersion")
        finally:
            driver.quit()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    records = synthetic_fleet(args.hosts)
    out = {
        "hosts": args.hosts,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "page_size": report_page.PAGE_SIZE,
    }
    with tempfile.TemporaryDirectory(prefix="tpmfleet-report-bench-") as tmp:
        model = {}

        def build():
            model["m"] = report.build(records)

        out["build_model_s"] = stats(timed(build, args.repeat))
        paths = report_page.write_report(model["m"], tmp)

        def render():
            with open(paths["fleet.json"], encoding="utf-8") as fh:
                data = json.load(fh)
            with open(paths["index.html"], "w", encoding="utf-8") as fh:
                fh.write(report_page.render_html(data))

        out["render_page_from_fleet_json_s"] = stats(timed(render, args.repeat))
        out["render_budget_s"] = BUDGET_S
        out["within_budget"] = out["render_page_from_fleet_json_s"]["max"] <= BUDGET_S
        out["sizes_bytes"] = {name: os.path.getsize(p) for name, p in paths.items()}
        if not args.no_browser and installed():
            out["browser"] = browser(paths["index.html"], args.repeat, [h["name"] for h in model["m"]["hosts"]])
        else:
            out["browser"] = None
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "report.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0 if out["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
