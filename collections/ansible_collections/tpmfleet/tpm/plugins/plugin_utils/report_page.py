# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's HTML page (controller side) and the writing of the report's three files.

``render_html(model)`` turns the fleet model of ``report.build`` into one
self-contained page; its style and script are the files in ``report_assets/``
beside this module, inlined into the page when it is rendered (nothing is
fetched: the page's CSP allows only its own inline style and script).

The server renders the summary (cards, chart, modes), the fleet findings and
empty containers; the model itself is embedded as JSON (``<script
type="application/json">`` that no string can close) and the script builds the
problems view and one page of the host table at a time from it, so a fleet of
10,000 hosts costs the browser one page of rows, not 10,000. Every
host-provided string the server writes is escaped; the script writes strings
only as text (``textContent``), never as markup. ``write_report`` writes
index.html, fleet.json and junit.xml.
"""

from __future__ import annotations

import functools
import html
import json
import os

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.report import STATUS_LABELS, STATUSES, _str
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.report_render import render_json, render_junit

_ASSETS = os.path.join(os.path.dirname(__file__), "report_assets")

# Nothing is fetched: no other origin, only the page's own inline style and script.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

# Host table rows per page (the operator can choose 50 to 500); rows are built for one page only.
PAGE_SIZE = 100

# Colour of the statuses the page knows (their display order is the model's STATUSES); a status the model
# adds later is shown too, after these, with a colour of _SPARE_COLOURS.
STATUS_COLOURS = {
    "failing": "#c62828",
    "unreachable": "#6a1b9a",
    "unverified": "#00838f",
    "no_tpm": "#757575",
    "drifted": "#ef6c00",
    "healthy": "#2e7d32",
}
_SPARE_COLOURS = ("#5d4037", "#283593", "#9e9d24", "#ad1457")

# A value longer than this is cut with an ellipsis where the server shows it (chart labels, findings titles).
_CUT = 60


def _data_line(model):
    """Where the hosts' data came from: read live, or the fact cache with its stale and missing hosts."""
    data = model["summary"].get("data") or {}
    if model["options"].get("source") != "cache":
        return "hosts read live"
    return _e(
        f"from the fact cache (no host contacted): stale (older than {model['options'].get('max_age')} s) "
        f"{data.get('stale', 0)}, without cached data {data.get('not_cached', 0)}, oldest read "
        f"{_shown(data.get('oldest_read_at') or 'none')}"
    )


def _attestation_line(model):
    """The fleet's attestation readiness in one line ("N of M hosts ready for attestation; ..."), only when the
    report ran with tpm_attest_checks; written by the server, so the page shows it without its script."""
    summary = model.get("attestation")
    if not isinstance(summary, dict) or not summary.get("checks_enabled"):
        return ""
    checks = ", ".join(_str(c) for c in summary["checks_enabled"])
    return (
        f'<p id="attestation-summary" class="attest-summary"><strong>Attestation readiness</strong> '
        f"({_e(checks)}): {_e(summary.get('text'))}</p>"
    )


@functools.cache
def _asset(name):
    """The text of one of the page's files in report_assets/ (page.css, page.js)."""
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as fh:
        return fh.read()


def _e(value):
    return html.escape(_str(value), quote=True)


def _shown(value, valid=()):
    """A value as the page shows it: plain when tame, else JSON-quoted ("" and " direct" visible), cut."""
    text = _str(value)
    odd = not text or text != text.strip() or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)
    if value is None or (odd and text not in valid):
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _CUT else text[: _CUT - 1] + "\u2026"


def _script_json(value):
    """JSON safe inside <script type=application/json>: no '<', '>' or '&' survive unescaped."""
    text = json.dumps(value, separators=(",", ":"))
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                      ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, esc)
    return text


def statuses(model):
    """[(status, label, colour)] in display order: report.STATUSES, then any other the model uses."""
    seen = [*STATUSES, *model["summary"]["status"], *(h.get("status") for h in model["hosts"])]
    names = [st for st in dict.fromkeys(seen) if isinstance(st, str)]  # STATUSES first, in order
    spare = iter(_SPARE_COLOURS * (1 + len(names)))
    return [
        (st, _str(STATUS_LABELS.get(st)) or st.replace("_", " ").capitalize(), STATUS_COLOURS.get(st) or next(spare))
        for st in names
    ]


def _chart(model, status_list):
    """Inline SVG: one stacked bar per requested mode, a segment per status."""
    by_mode = model["summary"]["by_mode"]
    rows = [m for m in [*qm.modes(), "invalid"] if m in by_mode] + [m for m in by_mode if m not in qm.modes() and
                                                                    m != "invalid"]  # fmt: skip
    most = max((sum(v.values()) for v in by_mode.values()), default=0) or 1
    width, label_w, bar_h, gap = 560, 90, 22, 10
    legend_rows = (len(status_list) + 4) // 5
    height = max(1, len(rows)) * (bar_h + gap) + 22 * legend_rows + 8
    parts = [
        f'<svg id="mode-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Hosts by quote mode and status">'
    ]
    for i, mode in enumerate(rows):
        y = i * (bar_h + gap)
        label = _e(_shown(mode, valid=(*qm.modes(), "invalid")))
        parts.append(f'<text x="0" y="{y + 16}" class="chart-label">{label}</text>')
        x = label_w
        total = sum(by_mode[mode].values())
        for idx, (status, name, _colour) in enumerate(status_list):
            n = by_mode[mode].get(status, 0)
            if not n:
                continue
            w = (width - label_w - 50) * n / most
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" class="st-{idx}">'
                f"<title>{label}: {n} {_e(name)}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}" class="chart-count">{total}</text>')
    y0 = len(rows) * (bar_h + gap) + 6
    for idx, (_status, name, _colour) in enumerate(status_list):
        x, y = (idx % 5) * 110, y0 + (idx // 5) * 22
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" class="st-{idx}"/>')
        parts.append(f'<text x="{x + 16}" y="{y + 11}" class="chart-legend">{_e(_shown(name))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _status_css(status_list):
    """One class per status index (st-N): the badge, the card number and the chart segment take its colour."""
    return "".join(
        f".badge.st-{i}{{background:{c}}}.card.st-{i} .n{{color:{c}}}rect.st-{i}{{fill:{c}}}"
        for i, (_s, _l, c) in enumerate(status_list)
    )


def _findings(model):
    def finding(i, f):
        hosts = f.get("hosts") or []
        limit = f" &middot; limit file <code>{_e(f['limit_file'])}</code>" if f.get("limit_file") else ""
        more = (
            f'<details class="finding-hosts" data-finding="{i}"><summary>{len(hosts)} host'
            f'{"s" if len(hosts) != 1 else ""}{limit}</summary><div class="hostlist"></div></details>'
            if hosts
            else ""
        )
        return (
            f'<div class="finding sev-{_e(f["severity"])}"><strong class="clip">{_e(f["title"])}</strong>'
            f'<div class="cause clip">Cause: {_e(f["cause"])}</div><div class="fix clip">Fix: {_e(f["fix"])}</div>'
            f"{more}</div>"
        )

    indexed = list(enumerate(model["fleet_findings"]))
    serious = [(i, f) for i, f in indexed if f["severity"] != "info"]
    notes = [(i, f) for i, f in indexed if f["severity"] == "info"]
    out = "".join(finding(i, f) for i, f in serious) or "<p>No fleet-level problem.</p>"
    if notes:
        out += (
            f'<details id="fleet-notes"><summary>{len(notes)} note{"s" if len(notes) != 1 else ""} '
            f"(mixed quote modes within groups)</summary>{''.join(finding(i, f) for i, f in notes)}</details>"
        )
    return out


# (header, width): every column sorts; the keys are computed by page.js from the embedded model.
COLUMNS = (
    ("Status", "7.5em"),
    ("Host", "17%"),
    ("Mode", "7em"),
    ("Observed", "7em"),
    ("TPM", "10em"),
    ("DA lockout", "7.5em"),
    ("EK cert", "5.5em"),
    ("tss GID", "5.5em"),
    ("docker GID", "7em"),
    ("Problem", "auto"),
)


def render_html(model):
    """One self-contained page: summary, fleet findings, problems view, host table (built in the browser)."""
    s = model["summary"]
    status_list = statuses(model)
    cards = [f'<div class="card" id="count-hosts"><div class="n">{s["hosts"]}</div><div class="l">hosts</div></div>']
    for idx, (status, label, _c) in enumerate(status_list):
        cards.append(
            f'<div class="card st-{idx}" id="count-{_e(status)}"><div class="n">{s["status"].get(status, 0)}</div>'
            f'<div class="l">{_e(_shown(label))}</div></div>'
        )
    observed = s["observed_modes"]
    extra = ("unknown", "conflicting", "not_read")
    mode_rows = "".join(
        f'<tr><td>{_e(_shown(m, valid=(*qm.modes(), "invalid")))}</td><td class="num" id="mode-{_e(m)}">{n}</td>'
        f'<td class="num" id="observed-{_e(m)}">{observed.get(m, 0)}</td></tr>'
        if m in qm.modes()
        else f'<tr><td>{_e(_shown(m))}</td><td class="num" id="mode-{_e(m)}">{n}</td><td class="num"></td></tr>'
        for m, n in s["modes"].items()
    )
    # observed: what the host shows matches no mode (unknown), points at several (conflicting), or was not read
    mode_rows += "".join(
        f'<tr><td>{_e(_shown(m, valid=extra).replace("_", " "))}</td><td class="num"></td>'
        f'<td class="num" id="observed-{_e(m)}">{n}</td></tr>'
        for m, n in observed.items()
        if m not in qm.modes()
    )
    mode_total = (
        f'<tr><td>all hosts</td><td class="num" id="modes-requested-total">{sum(s["modes"].values())}</td>'
        f'<td class="num" id="modes-observed-total">{sum(observed.values())}</td></tr>'
    )
    config = {
        "statuses": [{"id": st, "label": label} for st, label, _c in status_list],
        "modes": list(qm.modes()),
        "page_size": PAGE_SIZE,
        "columns": [label for label, _w in COLUMNS],
        "attest_titles": dict(attest.CHECK_TITLES),
    }
    head = "".join(
        f'<th scope="col" aria-sort="none"><button type="button" class="sort" data-col="{i}">{_e(label)}</button></th>'
        for i, (label, _w) in enumerate(COLUMNS)
    )
    cols = "".join(f'<col style="width:{w}">' for _label, w in COLUMNS)
    problems = s["problems"]
    inventory = f"&middot; inventory {_e(_shown(model['inventory']))}" if model.get("inventory") else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>tpmfleet report: {s["hosts"]} hosts</title>
<style>{_asset("page.css")}{_status_css(status_list)}</style>
</head>
<body>
<h1>tpmfleet fleet report</h1>
<div class="meta">Generated {_e(_shown(model["generated_at"]))} by {_e(_shown(model["generator"]))},
schema {_e(_shown(model["schema_version"]))} {inventory}
&middot; test quote {"on" if model["options"]["quote_test"] else "off"}
&middot; {_data_line(model)}
&middot; {problems["error"]} errors, {problems["warning"]} warnings, {problems["info"]} notes</div>
<h2>Fleet summary</h2>
{_attestation_line(model)}
<div class="cards">{"".join(cards)}</div>
<div class="summary">
<div class="panel">{_chart(model, status_list)}</div>
<div class="panel"><table id="modes"><thead><tr><th>Mode</th><th>Requested</th><th>Observed</th></tr></thead>
<tbody>{mode_rows}</tbody><tfoot>{mode_total}</tfoot></table></div>
</div>
<h2>Fleet findings</h2>
<div id="findings">{_findings(model)}</div>
<h2 id="problems-title">Problems</h2>
<div id="problems" aria-labelledby="problems-title"><p>Loading&hellip;</p></div>
<h2 id="hosts-title">Hosts</h2>
<div class="controls">
<label>Filter <input id="filter" type="search" placeholder="host, mode, group, GID, problem..." autocomplete="off">
</label>
<label>Status <select id="status-filter"><option value="">all</option></select></label>
<label>Mode <select id="mode-filter"><option value="">all</option></select></label>
<span id="shown"><span id="shown-count">{s["hosts"]}</span> of {s["hosts"]} hosts match</span>
</div>
<table id="hosts" aria-labelledby="hosts-title"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>
<tbody></tbody></table>
<nav class="pager" aria-label="Host table pages">
<button type="button" id="page-first">&laquo; First</button>
<button type="button" id="page-prev">&lsaquo; Previous</button>
<span id="page-info" aria-live="polite"></span>
<button type="button" id="page-next">Next &rsaquo;</button>
<button type="button" id="page-last">Last &raquo;</button>
<label>Rows per page <select id="page-size"></select></label>
</nav>
<aside id="detail" hidden tabindex="-1" aria-label="Host detail"></aside>
<script type="application/json" id="page-config">{_script_json(config)}</script>
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
