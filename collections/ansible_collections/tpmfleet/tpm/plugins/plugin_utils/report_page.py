# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's HTML page (controller side) and the writing of the report's three files.

``render_html(model)`` turns the fleet model of ``report.build`` into one
self-contained page; its style and script are the files in ``report_assets/``
beside this module, inlined into the page when it is rendered (nothing is
fetched: the page's CSP allows only its own inline style and script). Every
host-provided string is escaped in the HTML (text and attributes) and the
embedded JSON cannot close its script element. ``write_report`` writes
index.html, fleet.json and junit.xml.
"""

from __future__ import annotations

import functools
import html
import json
import os

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.report import (
    SEVERITIES,
    STATUS_LABELS,
    STATUSES,
    _str,
    render_json,
    render_junit,
)

_ASSETS = os.path.join(os.path.dirname(__file__), "report_assets")


@functools.cache
def _asset(name):
    """The text of one of the page's files in report_assets/ (page.css, page.js)."""
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as fh:
        return fh.read()


def _e(value):
    return html.escape(_str(value), quote=True)


def _script_json(value):
    """JSON safe inside <script type=application/json>: no '<', '>' or '&' survive unescaped."""
    text = json.dumps(value, separators=(",", ":"))
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                      ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, esc)
    return text


STATUS_COLOURS = {
    "failing": "#c62828",
    "unreachable": "#6a1b9a",
    "unverified": "#f9a825",
    "no_tpm": "#757575",
    "drifted": "#ef6c00",
    "healthy": "#2e7d32",
}


def _chart(model):
    """Inline SVG: one stacked bar per requested mode, a segment per status."""
    by_mode = model["summary"]["by_mode"]
    rows = [m for m in [*qm.modes(), "invalid"] if m in by_mode]
    most = max((sum(v.values()) for v in by_mode.values()), default=0) or 1
    width, label_w, bar_h, gap = 520, 90, 22, 10
    height = max(1, len(rows)) * (bar_h + gap) + 30
    parts = [
        f'<svg id="mode-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Hosts by quote mode and status">'
    ]
    for i, mode in enumerate(rows):
        y = i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 16}" class="chart-label">{_e(mode)}</text>')
        x = label_w
        total = sum(by_mode[mode].values())
        for status in STATUSES:
            n = by_mode[mode].get(status, 0)
            if not n:
                continue
            w = (width - label_w - 50) * n / most
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{STATUS_COLOURS[status]}">'
                f"<title>{_e(mode)}: {n} {_e(STATUS_LABELS[status])}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" class="chart-count">{total}</text>')
    y = len(rows) * (bar_h + gap) + 10
    x = 0
    for status in STATUSES:
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{STATUS_COLOURS[status]}"/>')
        parts.append(f'<text x="{x + 16}" y="{y + 11}" class="chart-legend">{_e(STATUS_LABELS[status])}</text>')
        x += 100
    parts.append("</svg>")
    return "".join(parts)


def _row(host):
    tpm = host["tpm"] or {}
    lockout = tpm.get("lockout") or {}
    if not host["reachable"]:
        tpm_text, lock_text, ek_text = "unknown", "", ""
    elif not tpm.get("present"):
        tpm_text, lock_text, ek_text = "none", "", ""
    else:
        tpm_text = " ".join(filter(None, [_str(tpm.get("manufacturer")), _str(tpm.get("firmware_version"))]))
        tpm_text = tpm_text or "not opened"
        lock_text = (
            "LOCKOUT"
            if lockout.get("in_lockout")
            else (f"{lockout.get('counter')}/{lockout.get('max_tries')}" if lockout else "")
        )
        ek_text = (
            "yes"
            if any(c["present"] for c in tpm.get("ek_certificates") or [])
            else ("no" if tpm.get("opened") else "")
        )
    problems = host["problems"]
    worst = problems[0] if problems else None
    search = " ".join(
        [host["name"], host["status"], _str(host["mode"]), _str(host["observed_mode"]), tpm_text, *host["groups"]]
        + [f"{p['title']} {p['cause']}" for p in problems]
    ).lower()
    severity_rank = min((SEVERITIES.index(p["severity"]) for p in problems), default=len(SEVERITIES))
    cells = [
        f'<td data-v="{STATUSES.index(host["status"])}"><span class="badge s-{_e(host["status"])}">'
        f"{_e(STATUS_LABELS[host['status']])}</span></td>",
        f'<td data-v="{_e(host["name"].lower())}"><button type="button" class="host-link">{_e(host["name"])}'
        "</button></td>",
        f'<td data-v="{_e(host["mode"])}">{_e(host["mode"])}</td>',
        f'<td data-v="{_e(host["observed_mode"])}">{_e(host["observed_mode"] or "")}</td>',
        f'<td data-v="{_e(tpm_text.lower())}">{_e(tpm_text)}</td>',
        f'<td data-v="{_e(lock_text)}">{_e(lock_text)}</td>',
        f'<td data-v="{_e(ek_text)}">{_e(ek_text)}</td>',
        f'<td data-v="{_e((host["observed"] or {}).get("tss_gid"))}">{_e((host["observed"] or {}).get("tss_gid"))}'
        "</td>",
    ]
    if worst:
        more = f' <span class="more">+{len(problems) - 1} more</span>' if len(problems) > 1 else ""
        cells.append(
            f'<td data-v="{severity_rank}{len(problems):04d}" class="problem sev-{_e(worst["severity"])}">'
            f'<span class="ptitle">{_e(worst["title"])}</span>{more}<div class="cause">{_e(worst["cause"])}</div>'
            f'<div class="fix">Fix: {_e(worst["fix"])}</div></td>'
        )
    else:
        cells.append(f'<td data-v="{severity_rank}0000">none</td>')
    return (
        f'<tr data-host="{_e(host["name"])}" data-status="{_e(host["status"])}" data-mode="{_e(host["mode"])}" '
        f'data-search="{_e(search)}">' + "".join(cells) + "</tr>"
    )


# Nothing is fetched: no other origin, only the page's own inline style and script.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

# Rows laid out at once: more makes every filter and sort re-layout them all (see docs/report.md).
PAGE_SIZE = 200

# (header, sort type, width): fixed widths keep re-layout cheap when 1000 rows are sorted or filtered.
COLUMNS = (
    ("Status", "num", "7.5em"),
    ("Host", "text", "16%"),
    ("Mode", "text", "6.5em"),
    ("Observed", "text", "6.5em"),
    ("TPM", "text", "9em"),
    ("DA lockout", "text", "6.5em"),
    ("EK cert", "text", "5em"),
    ("tss GID", "num", "5em"),
    ("Problems", "num", "auto"),
)


def render_html(model):
    """One self-contained page: summary, fleet findings, sortable and filterable host table, detail view."""
    s = model["summary"]
    cards = [f'<div class="card" id="count-hosts"><div class="n">{s["hosts"]}</div><div class="l">hosts</div></div>']
    for status in ("healthy", "drifted", "unverified", "failing", "unreachable", "no_tpm"):
        cards.append(
            f'<div class="card s-{status}" id="count-{status}"><div class="n">{s["status"][status]}</div>'
            f'<div class="l">{_e(STATUS_LABELS[status])}</div></div>'
        )
    mode_rows = "".join(
        f'<tr><td>{_e(m)}</td><td class="num" id="mode-{_e(m)}">{n}</td>'
        f"<td>{s['observed_modes'].get(m, 0) if m in s['observed_modes'] else ''}</td></tr>"
        for m, n in s["modes"].items()
    )
    mode_rows += f"<tr><td>unknown</td><td></td><td>{s['observed_modes'].get('unknown', 0)}</td></tr>"

    def finding(f):
        return (
            f'<div class="finding sev-{_e(f["severity"])}"><strong>{_e(f["title"])}</strong>'
            f'<div class="cause">Cause: {_e(f["cause"])}</div><div class="fix">Fix: {_e(f["fix"])}</div></div>'
        )

    serious = [f for f in model["fleet_findings"] if f["severity"] != "info"]
    notes = [f for f in model["fleet_findings"] if f["severity"] == "info"]
    findings = "".join(finding(f) for f in serious) or "<p>No fleet-level problem.</p>"
    if notes:
        findings += (
            f'<details id="fleet-notes"><summary>{len(notes)} note{"s" if len(notes) != 1 else ""} '
            f"(mixed quote modes within groups)</summary>{''.join(finding(f) for f in notes)}</details>"
        )
    status_options = "".join(f'<option value="{st}">{_e(STATUS_LABELS[st])}</option>' for st in STATUSES)
    modes = sorted({h["mode"] for h in model["hosts"] if h["mode"] is not None})
    mode_options = "".join(f'<option value="{_e(m)}">{_e(m)}</option>' for m in modes)
    head = "".join(f'<th scope="col" data-type="{t}">{_e(label)}</th>' for label, t, _w in COLUMNS)
    cols = "".join(f'<col style="width:{w}">' for _label, _t, w in COLUMNS)
    body = "\n".join(_row(h) for h in model["hosts"])
    problems = s["problems"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>tpmfleet report: {s["hosts"]} hosts</title>
<style>{_asset("page.css")}</style>
</head>
<body>
<h1>tpmfleet fleet report</h1>
<div class="meta">Generated {_e(model["generated_at"])} by {_e(model["generator"])},
schema {_e(model["schema_version"])}
{("&middot; inventory " + _e(model["inventory"])) if model.get("inventory") else ""}
&middot; test quote {"on" if model["options"]["quote_test"] else "off"}
&middot; {problems["error"]} errors, {problems["warning"]} warnings, {problems["info"]} notes</div>
<h2>Fleet summary</h2>
<div class="cards">{"".join(cards)}</div>
<div class="summary">
<div class="panel">{_chart(model)}</div>
<div class="panel"><table id="modes"><thead><tr><th>Mode</th><th>Requested</th><th>Observed</th></tr></thead>
<tbody>{mode_rows}</tbody></table></div>
</div>
<h2>Fleet findings</h2>
<div id="findings">{findings}</div>
<h2>Hosts</h2>
<div class="controls">
<label>Filter <input id="filter" type="search" placeholder="host, mode, problem..." autocomplete="off"></label>
<label>Status <select id="status-filter"><option value="">all</option>{status_options}</select></label>
<label>Mode <select id="mode-filter"><option value="">all</option>{mode_options}</select></label>
<span><span id="shown-count">{s["hosts"]}</span> of {s["hosts"]} hosts match</span>
<button type="button" id="show-all" hidden></button>
</div>
<table id="hosts" data-page-size="{PAGE_SIZE}"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table>
<aside id="detail" hidden aria-live="polite"></aside>
<script type="application/json" id="fleet-data">{_script_json(model)}</script>
<script>{_asset("page.js")}</script>
</body>
</html>
"""


def write_report(model, dest):
    """Write index.html, fleet.json and junit.xml into ``dest``; returns their paths."""
    os.makedirs(dest, exist_ok=True)
    paths = {}
    for name, text in (
        ("index.html", render_html(model)),
        ("fleet.json", render_json(model)),
        ("junit.xml", render_junit(model)),
    ):
        path = os.path.join(dest, name)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        paths[name] = path
    return paths
