# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's JSON (fleet.json) and JUnit XML (junit.xml) renderings of the fleet model.

Both survive any string: the JSON is ASCII (every other character escaped), and in
the XML every character XML 1.0 forbids (C0 controls but tab/LF/CR, lone surrogates,
U+FFFE/U+FFFF) is replaced visibly by its escape (ESC -> ``\\x1b``); tab, LF and CR
in attributes and CR in text are character references, so parsers keep them.
The JUnit file follows the common JUnit schema (testsuites > testsuite > testcase
with failure/skipped/system-out; tests/failures/errors/skipped counts).
"""

from __future__ import annotations

import json
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report_attest

# Characters XML 1.0 does not allow (Char production), as a class.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _visible(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_safe(value):
    """``value`` as a string XML 1.0 can carry: forbidden characters replaced by their visible escape."""
    text = "" if value is None else str(value)
    return _XML_BAD.sub(_visible, text)


def _t(value):
    return xml_safe(value).translate(_TEXT)


def _a(value):
    return xml_safe(value).translate(_ATTR)


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def _json_chunks(model):
    """fleet.json in pieces: the fleet-level keys indented, each host on one line (C encoder, fast)."""
    keys = [k for k in model if k != "hosts"]
    yield "{\n"
    for key in keys:
        body = json.dumps(model[key], indent=2, default=str).replace("\n", "\n  ")
        yield f"  {json.dumps(key)}: {body},\n"
    yield '  "hosts": ['
    # default=str: values from hostvars that JSON cannot carry (none expected) become text
    compact = json.JSONEncoder(separators=(",", ":"), default=str).encode
    for i, host in enumerate(model.get("hosts", ())):
        yield ("\n    " if i == 0 else ",\n    ") + compact(host)
    yield "\n  ]\n}\n"


def render_json(model):
    """fleet.json as one string (ASCII only)."""
    return "".join(_json_chunks(model))


def write_json(model, fh):
    """Stream fleet.json into the text file ``fh``."""
    for chunk in _json_chunks(model):
        fh.write(chunk)


# --------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------


def _junit_case(classname, name, status, message, failure_text, failure_type, counts):
    """One test case: a failure of ``failure_type`` for "fail"; an error for "not_run" (it could not run:
    never a pass); skipped for "skip"; else a pass, with ``message`` as its output when there is one."""
    counts["tests"] += 1
    head = f'    <testcase classname="{classname}" name="{_a(name)}"'
    if status == "fail":
        counts["failures"] += 1
        return (f'{head}>\n      <failure message="{_a(message[:1000])}" type="{_a(failure_type)}">'
                f"{_t(failure_text)}</failure>\n    </testcase>\n")  # fmt: skip
    if status == "not_run":
        counts["errors"] += 1
        return (f'{head}>\n      <error message="{_a(message[:1000])}" type="not_run">'
                f"{_t(message)}</error>\n    </testcase>\n")  # fmt: skip
    if status == "skip":
        counts["skipped"] += 1
        return f'{head}>\n      <skipped message="{_a("skip: " + message)}" />\n    </testcase>\n'
    if message:
        return f"{head}>\n      <system-out>{_t(message)}</system-out>\n    </testcase>\n"
    return f"{head} />\n"


def _junit_host_cases(host, counts):
    """One host's test cases: its checks (a failure lists each problem's cause and fix), then its attestation."""
    classname = _a(f"tpmfleet.{host['name']}")
    by_check = {}
    for p in host["problems"]:
        by_check.setdefault(p["check"], []).append(p)
    for check in host["checks"]:
        fixes = ""
        if check["status"] == "fail":
            fixes = "\n".join(f"- {p['title']}: {p['cause']}\n  fix: {p['fix']}" for p in by_check.get(check["id"], ()))
        yield _junit_case(classname, check["id"], check["status"], check["message"], fixes, check["severity"], counts)
    for name, status, message, failure_text in report_attest.junit_rows(host):
        yield _junit_case(classname, name, status, message, failure_text, "error", counts)


def _junit_cases(model, counts):
    for host in model["hosts"]:
        yield from _junit_host_cases(host, counts)
    for finding in model["fleet_findings"]:
        counts["tests"] += 1
        head = f'    <testcase classname="tpmfleet.fleet" name="{_a(finding["id"])}">\n'
        text = f"{finding['cause']}\nhosts: {', '.join(finding['hosts'])}\nfix: {finding['fix']}"
        if finding["severity"] in ("error", "warning"):
            counts["failures"] += 1
            yield (f'{head}      <failure message="{_a(finding["title"])}" type="{_a(finding["severity"])}">'
                   f"{_t(text)}</failure>\n    </testcase>\n")  # fmt: skip
        else:
            yield f"{head}      <system-out>{_t(finding['title'] + ': ' + text)}</system-out>\n    </testcase>\n"


def render_junit(model):
    """JUnit XML: one test case per host and check (classname = tpmfleet.<host>), plus the fleet findings.

    A check that could not run (not_run, its message starts with "not run:") is an error:
    it is not a pass, and a CI system that reads only failures must not turn it green. A
    check that does not apply (message "skip: ...") is a skipped case; a failed check is a
    failure of its severity.
    """
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases = "".join(_junit_cases(model, counts))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="tpmfleet">\n'
        f'  <testsuite name="tpmfleet fleet report" timestamp="{_a(model["generated_at"])}" '
        f'tests="{counts["tests"]}" failures="{counts["failures"]}" errors="{counts["errors"]}" '
        f'skipped="{counts["skipped"]}">\n'
        f"{cases}  </testsuite>\n</testsuites>\n"
    )
