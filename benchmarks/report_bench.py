"""Scale benchmark of the fleet report page (not a timed test): synthetic fleets of 1,000, 5,000 and 10,000 hosts.

Measures on this machine, for each fleet size:
- building the fleet model from per-host records (report.build) and rendering the page (report_page.render_html),
  and the page's size;
- in Debian's headless Chromium (system chromedriver, nothing downloaded): when the page is ready (the
  "report-ready" mark: the embedded JSON parsed, the problems view and the first page of rows built) and
  painted (the "report-painted" mark, after the first frame), then the time of a filter change (text box,
  status and mode selects) and of a sort (a header click), each including the layout it forces.

Run from the repository root:
    .venv/bin/python benchmarks/report_bench.py [--hosts 1000 5000 10000] [--repeat 3] [--screenshot PNG]
Results go to benchmarks/results/report.json (git-ignored) and are printed, with a Markdown table.
``--screenshot`` saves the largest fleet's page (the summary, and the detail view of a failing host).
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

# Runs in the page: one filter change (text box or select), including the layout it forces.
FILTER_JS = """
const [id, value] = arguments;
const control = document.getElementById(id);
control.value = value;
const t0 = performance.now();
control.dispatchEvent(new Event(control.tagName === 'INPUT' ? 'input' : 'change'));
document.body.offsetHeight;
const ms = performance.now() - t0;
return [ms, Number(document.getElementById('shown-count').textContent)];
"""
SORT_JS = """
const b = Array.from(document.querySelectorAll('#hosts thead button.sort')).find(t => t.textContent === arguments[0]);
const t0 = performance.now();
b.click();
document.body.offsetHeight;
return performance.now() - t0;
"""
READY_JS = """
const done = arguments[arguments.length - 1];
(function wait() {
  const p = performance.getEntriesByName('report-painted')[0];
  if (!p) { setTimeout(wait, 20); return; }
  const n = performance.getEntriesByType('navigation')[0];
  done([performance.getEntriesByName('report-ready')[0].startTime, p.startTime, n.domContentLoadedEventEnd]);
})();
"""
FILTERS = (
    ("one host", "filter", None),
    ("a mode name", "filter", "kernel_rm"),
    ("a problem word", "filter", "lockout"),
    ("a docker GID", "filter", "999"),
    ("no match", "filter", "zz-no-such-host"),
    ("cleared", "filter", ""),
    ("status failing", "status-filter", "failing"),
    ("status all", "status-filter", ""),
    ("mode invalid", "mode-filter", "invalid"),
    ("mode all", "mode-filter", ""),
)
SORTS = ("Host", "Status", "Problem", "docker GID", "TPM")


def stats(values, digits=1):
    values = sorted(values)
    return {"median": round(statistics.median(values), digits), "max": round(values[-1], digits), "runs": len(values)}


def timed(func, repeat):
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return runs


def browser(driver, index_html, repeat, names, screenshot=None):
    loads = []
    for _ in range(repeat):
        driver.get(Path(index_html).as_uri())
        loads.append(driver.execute_async_script(READY_JS))
    result = {
        "ready_ms": stats([t[0] for t in loads]),
        "painted_ms": stats([t[1] for t in loads]),
        "dom_content_loaded_ms": stats([t[2] for t in loads]),
        "filter_ms": {},
        "sort_ms": {},
    }
    for label, control, value in FILTERS:
        query = names[len(names) // 2] if value is None else value
        runs, shown = [], None
        for _ in range(repeat):
            if control == "filter":  # from another state each time
                driver.execute_script(FILTER_JS, control, "zz-no-such-host" if query == "" else "")
            ms, shown = driver.execute_script(FILTER_JS, control, query)
            runs.append(ms)
        result["filter_ms"][label] = dict(stats(runs, 2), matching=shown)
    for column in SORTS:
        runs = [driver.execute_script(SORT_JS, column) for _ in range(max(2, repeat))]
        result["sort_ms"][column] = dict(stats(runs, 2), first=round(runs[0], 2))
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    result["console_errors"] = len(severe)
    if screenshot:  # the page as loaded (problems first), tall enough for the table, one host's detail open
        driver.get(Path(index_html).as_uri())
        driver.execute_async_script(READY_JS)
        size = driver.get_window_size()
        driver.set_window_size(1700, 2100)
        driver.execute_script(
            "const b = document.querySelector('#hosts tbody button.host-link');b.click(); window.scrollTo(0, 0);"
        )
        driver.save_screenshot(str(screenshot))
        driver.set_window_size(size["width"], size["height"])
    return result


def markdown(results):
    lines = [
        "| hosts | render_html | page size | ready | painted | filter (median / max of all changes) "
        "| sort (median / max of all columns) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        b = r["browser"] or {}
        f = [v["median"] for v in b.get("filter_ms", {}).values()]
        fm = [v["max"] for v in b.get("filter_ms", {}).values()]
        s = [v["median"] for v in b.get("sort_ms", {}).values()]
        sm = [v["max"] for v in b.get("sort_ms", {}).values()]
        lines.append(
            f"| {r['hosts']:,} | {r['render_html_s']['median']:.2f} s | {r['page_bytes'] / 1e6:.1f} MB "
            + (
                f"| {b['ready_ms']['median']:.0f} ms | {b['painted_ms']['median']:.0f} ms "
                f"| {statistics.median(f):.1f} / {max(fm):.1f} ms | {statistics.median(s):.1f} / {max(sm):.1f} ms |"
                if b
                else "| - | - | - | - |"
            )
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--screenshot", type=Path, help="PNG of the largest fleet's page")
    args = parser.parse_args()

    out = {
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "page_size": report_page.PAGE_SIZE,
        "results": [],
    }
    use_browser = not args.no_browser and installed()
    with tempfile.TemporaryDirectory(prefix="tpmfleet-report-bench-") as tmp:
        driver = start_browser(os.path.join(tmp, "profile"), console_log=True) if use_browser else None
        try:
            for n in sorted(args.hosts):
                t0 = time.perf_counter()
                model = report.build(synthetic_fleet(n))
                row = {"hosts": n, "build_model_s": round(time.perf_counter() - t0, 2)}
                page = {}

                def render(model=model, page=page):
                    page["html"] = report_page.render_html(model)

                row["render_html_s"] = stats(timed(render, args.repeat), 3)
                index = Path(tmp) / f"index-{n}.html"
                index.write_text(page["html"], encoding="utf-8")
                row["page_bytes"] = index.stat().st_size
                shot = args.screenshot if n == max(args.hosts) else None
                names = [h["name"] for h in model["hosts"]]
                row["browser"] = browser(driver, index, args.repeat, names, shot) if driver else None
                out["results"].append(row)
                print(json.dumps(row), flush=True)
            if driver:
                out["chromium"] = driver.capabilities.get("browserVersion")
        finally:
            if driver:
                driver.quit()
    out["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "report.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print(markdown(out["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
