# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's fleet level: problem groups (one fix per problem for all its hosts), fleet findings
(GID skew, mixed modes) and the limit files their commands read (``--limit @<dir>/limits/<id>.txt``).

A limit file holds one host name per line, as ``ansible-playbook --limit @file`` reads it:
each stripped line is a host pattern. A name that such a line cannot carry as itself
(whitespace or control characters, a leading ``!``/``&``/``~``/``@``, glob characters
``*?[]``, ``all``, or the name of a group: any of these would select other hosts) is
never written; the group lists it in ``not_in_limit_file`` and it must be fixed on its own.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import shlex

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.report_drift import CMD, command

SEVERITIES = ("error", "warning", "info")
LIMITS = "limits"
_SAFE_NAME = re.compile(r"[^\s!&~@*?\[\]][^\s*?\[\]]*")


def limit_safe(name, group_names=frozenset()):
    """Whether ``name`` can stand on a line of a --limit @file and select exactly that host."""
    return (
        bool(_SAFE_NAME.fullmatch(name))
        and name.isprintable()
        and name not in ("all", "ungrouped")
        and name not in group_names
    )


def _slug(prefix, key):
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{prefix.replace('_', '-')}-{digest}"


def _limit_parts(gid, names, playbooks, kind, limits_dir, group_names):
    """(limit_file, command, names not in the limit file) for one group of hosts."""
    unsafe = [n for n in names if not limit_safe(n, group_names)]
    if len(unsafe) == len(names):
        return None, None, unsafe
    limit_file = f"{LIMITS}/{gid}.txt"
    path = os.path.join(limits_dir, limit_file) if limits_dir else limit_file
    return limit_file, command(kind, "--limit " + shlex.quote("@" + path), playbooks), unsafe


def _without_host(text, name):
    """``text`` with the host's own name (as a whole word) replaced by <host>, for grouping."""
    if not name or name not in text:
        return text
    return re.sub(r"(?<![\w.-])" + re.escape(name) + r"(?![\w.-])", "<host>", text)


def _group_names(hosts):
    return frozenset(g for h in hosts for g in h["groups"])


def problem_groups(hosts, playbooks, limits_dir):
    """Hosts grouped by problem (same check, severity, title, cause and fix once the host's name is out).

    Each group has one command for all its hosts; every problem gets its group's id
    in ``group``. The fix templates (``_fix``, ``_cmd``) are dropped from the problems.
    """
    grouped = {}
    for host in hosts:
        name = host["name"]
        for p in host["problems"]:
            fix = p.pop("_fix", p["fix"])
            kind = p.pop("_cmd", None)
            cause = _without_host(p["cause"], name)
            key = (p["check"], p["severity"], _without_host(p["title"], name), cause, fix, kind or "")
            entry = grouped.get(key)
            if entry is None:
                entry = grouped[key] = {"id": _slug(p["check"], key), "hosts": []}
            entry["hosts"].append(name)
            p["group"] = entry["id"]
    group_names = _group_names(hosts)
    out = []
    for (check, severity, title, cause, fix, kind), entry in grouped.items():
        names = entry["hosts"]
        limit_file, cmd, unsafe = _limit_parts(entry["id"], names, playbooks, kind or None, limits_dir, group_names)
        out.append(
            {
                "id": entry["id"],
                "check": check,
                "severity": severity,
                "title": title,
                "cause": cause,
                "fix": fix.replace(CMD, cmd or "the command on each host"),
                "command": cmd,
                "count": len(names),
                "hosts": names,
                "limit_file": limit_file,
                "not_in_limit_file": unsafe,
            }
        )
    out.sort(key=lambda g: (SEVERITIES.index(g["severity"]), -g["count"], g["id"]))
    return out


def _names(names, limit=6):
    """At most ``limit`` names, then how many more (the finding's ``hosts`` lists them all)."""
    names = sorted(names)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _with_limit(finding, kind, playbooks, limits_dir, group_names):
    gid = _slug(finding["id"], (finding["title"], *finding["hosts"]))
    limit_file, cmd, unsafe = _limit_parts(gid, finding["hosts"], playbooks, kind, limits_dir, group_names)
    finding["fix"] = finding["fix"].replace(CMD, cmd or "the command on each host")
    finding.update(limit_file=limit_file, command=cmd, not_in_limit_file=unsafe)
    return finding


def _id_finding(hosts, key, group_key, variable, label, playbooks, limits_dir, group_names):
    values = collections.defaultdict(list)
    for h in hosts:
        observed = h["observed"]
        if observed and observed.get(key) is not None:
            values[(h["settings"][group_key], observed[key])].append(h["name"])
    by_group = collections.defaultdict(dict)
    for (group, gid), names in values.items():
        by_group[group][gid] = sorted(names)
    findings = []
    for group, gids in sorted(by_group.items()):
        if len(gids) < 2:
            continue
        common = max(gids.items(), key=lambda kv: (len(kv[1]), -kv[0]))[0]
        spread = "; ".join(f"{gid} on {_names(names)}" for gid, names in sorted(gids.items()))
        affected = sorted(n for gid, names in gids.items() if gid != common for n in names)
        finding = {
            "id": f"{key}_differs",
            "severity": "warning",
            "title": f"The {label} group {group} has different GIDs across hosts",
            "cause": f"GID {spread}: files, volumes and container images carry numbers that mean another group "
            "on other hosts",
            "fix": f"Pin {variable}: {common} in group_vars (the most common GID) with "
            f"tpm_access_allow_gid_change: true, and run {CMD} (every host listed).",
            "hosts": affected,
        }
        findings.append(_with_limit(finding, "site_tpm_access", playbooks, limits_dir, group_names))
    return findings


def fleet_findings(hosts, ignore_groups, playbooks, limits_dir):
    """GID skew per group name (every host to fix listed) and groups that mix quote modes."""
    group_names = _group_names(hosts)
    args = (playbooks, limits_dir, group_names)
    findings = _id_finding(hosts, "tss_gid", "tss_group", "tpm_access_tss_gid", "tss", *args)
    findings += _id_finding(hosts, "docker_gid", "docker_group", "tpm_access_docker_gid", "docker", *args)
    ignored = {"all", "ungrouped", *ignore_groups}
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for h in hosts:
        if h["mode"] is None:
            continue
        for g in h["groups"]:
            if g not in ignored:
                groups[g][h["mode"]].append(h["name"])
    for group, modes in sorted(groups.items()):
        if len(modes) < 2:
            continue
        spread = "; ".join(f"{m}: {_names(n)}" for m, n in sorted(modes.items()))
        finding = {
            "id": "mixed_modes",
            "severity": "info",
            "title": f"Group {group} mixes quote modes",
            "cause": spread,
            "fix": f"If the hosts of {group} should share one mode, set tpm_quote_mode in the group's group_vars "
            f"and run {CMD}; otherwise add {group} to tpm_report_mixed_mode_ignore_groups.",
            "hosts": sorted(n for names in modes.values() for n in names),
        }
        findings.append(_with_limit(finding, "quote_mode", *args))
    return findings


def limit_files(model):
    """{relative path: content} of every limit file the model's commands read."""
    files = {}
    for item in (*model.get("problem_groups", ()), *model.get("fleet_findings", ())):
        if item.get("limit_file"):
            skip = set(item.get("not_in_limit_file") or ())
            files[item["limit_file"]] = "".join(f"{n}\n" for n in item["hosts"] if n not in skip)
    return files


def write_limit_files(model, dest):
    """Write the model's limit files under ``dest`` (the report directory); replaces old ones."""
    directory = os.path.join(dest, LIMITS)
    os.makedirs(directory, exist_ok=True)
    files = limit_files(model)
    wanted = {os.path.basename(p) for p in files}
    for old in os.listdir(directory):
        if old.endswith(".txt") and old not in wanted:
            os.unlink(os.path.join(directory, old))
    for rel, content in files.items():
        path = os.path.join(dest, rel)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(content)
        os.replace(tmp, path)
    return sorted(os.path.join(dest, rel) for rel in files)
