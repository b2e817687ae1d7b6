#!/usr/bin/env python3
"""Print a molecule scenario's failed verifier tests last, where a CI log's tail shows them.

Molecule prints the verifier's pytest output and then the destroy step's, so a failed
verify ends the log with "Verifier tests failed" and no test name. make molecule calls
this after a failed scenario with the JUnit file pytest wrote (molecule.yml's verifier
option ``junit-xml``): one line per failed or erroring test, with the first line of its
message, at most ``--max`` of them.

Usage: verify_failures.py SCENARIO JUNIT_XML [--max N]
Exit code: 0 when it printed something useful, 1 when the file is missing or unreadable.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET

_WIDTH = 240


def _one_line(text: str | None) -> str:
    """The first non-empty line of ``text``, printable and at most _WIDTH characters."""
    for line in (text or "").splitlines():
        line = "".join(c if c.isprintable() else "?" for c in line.strip())
        if line:
            return line if len(line) <= _WIDTH else line[: _WIDTH - 3] + "..."
    return "(no message)"


def failures(path: str) -> list[tuple[str, str]]:
    """(test id, first line of its message) of each failed or erroring test case in a JUnit file."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - pytest's own output
        for kind in ("failure", "error"):
            element = case.find(kind)
            if element is not None:
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                found.append((name, f"{kind}: {_one_line(element.get('message') or element.text)}"))
                break
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("junit_xml")
    parser.add_argument("--max", type=int, default=12)
    args = parser.parse_args(argv)
    head = f"molecule scenario {args.scenario!r} failed"
    try:
        found = failures(args.junit_xml)
    except (OSError, ET.ParseError) as e:
        print(f"{head}; no verifier report ({e.__class__.__name__}): it failed before or in verify, see above")
        return 1
    if not found:
        print(f"{head}; its verifier report has no failed test: the failing step is above")
        return 0
    print(f"{head}; {len(found)} failed verifier test(s):")
    for name, message in found[: args.max]:
        print(f"  {_one_line(name)}\n    {message}")
    if len(found) > args.max:
        print(f"  ... and {len(found) - args.max} more in {args.junit_xml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
