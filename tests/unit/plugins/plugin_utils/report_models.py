"""Fleet models for the report page's tests and benchmark: hostile strings, new statuses, problem groups, scale.

Built from ``fleet_fixtures`` records and ``report.build``; what today's model cannot produce yet (the
contract's "unverified" status and ``problem_groups``) is added to the built model here, as the page must
render any model of the contract.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report
from fleet_fixtures import host_record, synthetic_fleet

LONG = "L" * 10_000
# Host names the HTML parser, the shell or a table would mangle (CR, NUL, markup, 10 kB, bidi, DEL, padding).
HOSTILE_NAMES = (
    "cr\rhost.example.net",
    "nul\x00host.example.net",
    "</script><script>window.__xss='script'</script>",
    "<img src=x onerror=\"window.__xss='name'\">evil.example.net",
    "long-" + LONG,
    "\u00fcn\u00efc\u00f8d\u00e9-\u202erlt\u2028ls.example.net",
    " padded.example.net ",
    "\x7fdel\x1b[31mred\u0085.example.net",
)
# Requested modes an operator can type: "" must not look like "all", " direct" not like "direct".
ODD_MODES = ("", " direct", "m" * 3000, "<b>abrmd</b>", None)


def hostile_model(n=150):
    """``n`` synthetic hosts plus one host per HOSTILE_NAMES, with hostile modes, groups, vendor strings, messages
    and problem texts (the titles and fixes are replaced in the model: report.py writes those itself)."""
    records = synthetic_fleet(n)
    for i, name in enumerate(HOSTILE_NAMES):
        rec = host_record(
            name,
            "direct" if i % 2 else "kernel_rm",
            groups=("tpm_hosts", "<script>window.__xss='group'</script>", f"g\r\x00{i}"),
            docker_gid=4000 + i,
            access_error=("busy", f"<svg onload=\"window.__xss='msg'\">busy\r\x00{i} " + LONG) if i % 3 == 0 else None,
        )
        if i < len(ODD_MODES):
            rec.update(requested_mode=ODD_MODES[i], profile=None, mode_error=None)
        props = rec["facts"]["ansible_facts"]["tpm"]["properties"]
        if props:
            props["vendor_strings"] = f"<i onmouseover=\"window.__xss='vendor'\">V{i}\x00" + LONG
        records.append(rec)
    model = report.build(records, generated_at="2026-01-01T00:00:00Z")
    for h in model["hosts"]:
        if h["name"] in HOSTILE_NAMES:
            k = HOSTILE_NAMES.index(h["name"])
            for p in h["problems"]:
                p["title"] = f"<b onclick=\"window.__xss='title'\">T{k}\r" + p["title"]
                p["fix"] = p["fix"] + f" </script>\x00F{k} " + LONG
    return model


def _retally(model):
    """summary.status / modes / observed_modes / by_mode recounted from the hosts (after a test changed them)."""
    s = model["summary"]
    statuses = list(dict.fromkeys([*s["status"], *(h["status"] for h in model["hosts"])]))
    s["hosts"] = len(model["hosts"])
    s["status"] = dict.fromkeys(statuses, 0)
    s["modes"] = dict.fromkeys(s["modes"], 0)
    s["observed_modes"] = dict.fromkeys(s["observed_modes"], 0)
    s["by_mode"] = {}
    for h in model["hosts"]:
        s["status"][h["status"]] += 1
        key = h["mode"] if h["mode"] in s["modes"] and h["mode"] != "invalid" else "invalid"
        s["modes"][key] = s["modes"].get(key, 0) + 1
        s["by_mode"].setdefault(key, dict.fromkeys(statuses, 0))[h["status"]] += 1
        if h["tpm"] is not None:
            obs = h["observed_mode"] or "unknown"
            s["observed_modes"][obs] = s["observed_modes"].get(obs, 0) + 1
    return model


def contract_model(n=150):
    """A model with the contract's NEW fields: "unverified" hosts, a status the page has never seen
    ("quarantined"), and ``problem_groups`` with commands and limit files."""
    model = report.build(synthetic_fleet(n), generated_at="2026-01-01T00:00:00Z")
    for k, h in enumerate(model["hosts"]):
        if h["status"] == "healthy" and k % 9 == 0:
            h["status"] = "unverified"
        elif h["status"] == "healthy" and k % 31 == 0:
            h["status"] = "quarantined"
    groups = {}
    for h in model["hosts"]:
        for p in h["problems"]:
            slug = re.sub(r"[^a-z0-9]+", "-", p["title"].lower()).strip("-")[:40]
            g = groups.setdefault(
                (p["check"], p["title"]),
                {
                    "id": f"{slug}-{len(groups):04x}",
                    "check": p["check"],
                    "severity": p["severity"],
                    "title": p["title"],
                    "cause": p["cause"],
                    "fix": p["fix"],
                    "hosts": [],
                },
            )
            p["group"] = g["id"]
            if h["name"] not in g["hosts"]:
                g["hosts"].append(h["name"])
    out = []
    for g in groups.values():
        g.update(
            count=len(g["hosts"]),
            limit_file=f"limits/{g['id']}.txt",
            command=f"ansible-playbook tpmfleet.tpm.site --limit @report/limits/{g['id']}.txt",
        )
        out.append(g)
    out.sort(key=lambda g: (report.SEVERITIES.index(g["severity"]), -g["count"], g["id"]))
    model["problem_groups"] = out
    return _retally(model)


def _problems_first(host):
    worst = min((report.SEVERITIES.index(p["severity"]) for p in host["problems"]), default=9)
    return (report.STATUSES.index(host["status"]), worst, host["name"])


def scaled_model(n, base=300):
    """A model of ``n`` hosts made from build(synthetic_fleet(base)) by copying hosts under new names (a second
    instead of building ``n`` hosts); its summary is recounted, its fleet findings are those of the base (their
    texts name the base's hosts, the copies' problems too)."""
    model = report.build(synthetic_fleet(base), generated_at="2026-01-01T00:00:00Z")
    base_hosts = model["hosts"]
    # shallow copies: only the name differs; the nested values are shared (JSON has no identity)
    hosts = [dict(base_hosts[i % len(base_hosts)]) for i in range(n)]
    for i, h in enumerate(hosts):
        h["name"] = f"host-{i:05d}.{h['name']}"
    model = copy.copy(model)
    model["hosts"] = sorted(hosts, key=_problems_first)
    return _retally(model)
