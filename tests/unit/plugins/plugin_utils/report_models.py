"""Fleet models for the report page's tests and benchmark: hostile strings, new statuses, problem groups, scale.

Built from ``fleet_fixtures`` records and ``report.build`` (its statuses, problem groups, limit files and
fleet findings are the real ones); only what the model never produces is added here: hostile problem
texts (report.py writes titles and fixes itself) and a status the page has never seen.
"""

from __future__ import annotations

import copy

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
# Appended to every string of a hostile host's attestation section.
ATTEST_HOSTILE = "<i onmouseover=\"window.__xss='attest'\">A\r\x00\u202e" + LONG
# Requested modes an operator can type: "" must not look like "all", " direct" not like "direct".
ODD_MODES = ("", " direct", "m" * 3000, "<b>abrmd</b>", None)


def hostile_model(n=150):
    """``n`` synthetic hosts plus one host per HOSTILE_NAMES, with hostile modes, groups, vendor strings, messages
    and problem texts (the titles and fixes are replaced in the model: report.py writes those itself), and an
    attestation section on every host (hostile texts on the hostile hosts)."""
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
    groups = {g["id"]: g for g in model["problem_groups"]}
    hostile = set()
    for h in model["hosts"]:
        if h["name"] in HOSTILE_NAMES:
            k = HOSTILE_NAMES.index(h["name"])
            for p in h["problems"]:
                p["title"] = f"<b onclick=\"window.__xss='title'\">T{k}\r" + p["title"]
                p["fix"] = p["fix"] + f" </script>\x00F{k} " + LONG
                if p["group"] not in hostile and set(groups[p["group"]]["hosts"]) <= set(HOSTILE_NAMES):
                    # a group of hostile hosts only: the same texts, and a command the page must not run
                    hostile.add(p["group"])
                    g = groups[p["group"]]
                    g.update(title=p["title"], fix=p["fix"], command=(g["command"] or "") + f" </script>\r\x00C{k}")
    # the attestation section of a run with tpm_attest_checks, hostile texts on the hostile hosts
    return with_attestation(model, lambda h: ATTEST_HOSTILE if h["name"] in HOSTILE_NAMES else "")


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
        obs = (h["observed_mode"] or "unknown") if h["tpm"] is not None else "not_read"
        s["observed_modes"][obs] = s["observed_modes"].get(obs, 0) + 1
    return model


def contract_model(n=150):
    """The built model of ``n`` synthetic hosts (every status, problem groups with commands and limit files)
    plus a status the page has never seen ("quarantined"): the page shows any status the model adds."""
    model = report.build(synthetic_fleet(n), generated_at="2026-01-01T00:00:00Z")
    for k, h in enumerate(model["hosts"]):
        if h["status"] == "healthy" and k % 31 == 0:
            h["status"] = "quarantined"
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


def attestation_section(k, text=""):
    """An attestation section as report_attest makes it (every check, each status), its strings suffixed with
    ``text``: an EK certificate's subject and issuer, the event log's replay and a mismatch, the IMA state."""
    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import attest

    cert = {
        "index": "0x01c00002",
        "algorithm": "rsa2048",
        "subject": "CN=ek" + text,
        "issuer": "CN=ca" + text,
        "not_before": "2026-01-01T00:00:00+00:00",
        "not_after": "2036-01-01T00:00:00+00:00",
        "serial": "1f",
        "problems": [] if k % 2 else [{"reason": "unchained", "cause": "not chained" + text, "fix": "add" + text}],
    }
    ek = (attest.outcome("ek_chain", "pass", "chained", "", "", certificates=[cert], chained=[cert["index"]]) if k % 2
          else attest.outcome("ek_chain", "fail", "unchained", "no chain" + text, "add the CA" + text,
                              certificates=[cert], chained=[]))  # fmt: skip
    mismatch = {"pcr": "sha256:0", "replayed": "00" * 32, "quoted": "ab" * 32 + text}
    eventlog = (attest.outcome("eventlog", "pass", "replays", "", "", compared=["sha256:0", "sha256:7"], events=15,
                               not_quoted=[], quote_selection="sha256:0-7", log_sha256="cd" * 32) if k % 3
                else attest.outcome("eventlog", "fail", "mismatch", "differs" + text, "compare" + text,
                                    mismatches=[mismatch], compared=["sha256:0"], events=15, not_quoted=["sha256:8"],
                                    quote_selection="sha256:0-7" + text))  # fmt: skip
    ima = attest.outcome("ima", "pass", "no_policy", "IMA has no policy loaded" + text, "", entries=1,
                         policy_loaded=False, note="only the boot aggregate" + text, banks=["sha256"])  # fmt: skip
    if k % 5 == 0:
        ima = attest.outcome("ima", "not_run", "no_quote", "no test quote" + text, "run with tpm_report_quote" + text)
    consumers = [
        {
            "user": "tpmagent" + text,
            "tcti": "device:/dev/tpm0",
            "status": "pass",
            "reason": "quoted",
            "cause": "",
            "fix": "",
            "quotes": 2,
        }
    ]
    if k % 4 == 0:
        consumers.append(
            {
                "user": "agent2" + text,
                "tcti": "device:/dev/tpm0",
                "status": "fail",
                "reason": "busy",
                "cause": "as agent2: busy" + text,
                "fix": "stop tpm2-abrmd" + text,
                "quotes": 0,
            }
        )
    consumer = attest.outcome("consumer_quote", "fail" if k % 4 == 0 else "pass", "busy" if k % 4 == 0 else "quoted",
                              consumers[-1]["cause"], consumers[-1]["fix"], consumers=consumers)  # fmt: skip
    outcomes = [ek, eventlog, ima, consumer]
    return {"checks_enabled": [o["check"] for o in outcomes], "outcomes": outcomes,
            "ready": all(o["status"] == "pass" for o in outcomes), "read_at": "2026-01-01T00:00:00Z",
            "stale": False}  # fmt: skip


def with_attestation(model, text=lambda _h: ""):
    """``model`` with an attestation section on every host (its strings suffixed with ``text(host)``) and the fleet
    summary, as a report run with tpm_attest_checks has them."""
    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report_attest

    for k, h in enumerate(model["hosts"]):
        h["attestation"] = attestation_section(k, text(h))
    model["attestation"] = report_attest.fleet_summary(
        model["hosts"], ["ek_chain", "eventlog", "ima", "consumer_quote"]
    )
    return model
