#!/usr/bin/env python3
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role README's variable table, generated from the role's meta/argument_specs.yml (its main entry point).

  scripts/role_docs.py           rewrite the tables that differ
  scripts/role_docs.py --check   exit 1, naming each README whose table differs (make lint runs this)

The table stands between the markers below, in the README's "## Variables" section (added at the end of a
README that has none). A role whose main entry point has no options has no table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parent.parent / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "roles"
BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml by scripts/role_docs.py -->"
END = "<!-- END variables -->"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(option):
    if "default" not in option:
        return "(required)" if option.get("required") else "(none)"
    value = option["default"]
    shown = value if isinstance(value, str) and value.strip() == value and value else json.dumps(value)
    return f"`{_cell(shown)}`"


def _type(option):
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements"):
        kind = f"list of {option['elements']}"
    return kind


def table(spec):
    """The Markdown table of a role's main options, in the spec's order."""
    options = ((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    if not options:
        return None
    rows = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, option in options.items():
        description = option.get("description") or ""
        if isinstance(description, list):
            description = " ".join(description)
        if option.get("choices"):
            description += " One of " + ", ".join(f"`{c}`" for c in option["choices"]) + "."
        rows.append(f"| `{name}` | {_type(option)} | {_default(option)} | {_cell(description)} |")
    return "\n".join(rows)


def rendered(readme_text, generated):
    """The README with its generated block replaced (or, at first, its hand-written table or a new section)."""
    block = f"{BEGIN}\n{generated}\n{END}"
    if BEGIN in readme_text and END in readme_text:
        head, rest = readme_text.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    lines = readme_text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("| variable |")), None)
    if start is not None:
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        return "\n".join([*lines[:start], block, *lines[end:]])
    return readme_text.rstrip("\n") + f"\n\n## Variables\n\n{block}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README's table differs")
    parser.add_argument("--roles", type=Path, default=ROLES, help="the collection's roles directory")
    args = parser.parse_args(argv)
    stale = []
    for spec_file in sorted(args.roles.glob("*/meta/argument_specs.yml")):
        readme = spec_file.parent.parent / "README.md"
        generated = table(yaml.safe_load(spec_file.read_text()) or {})
        if generated is None or not readme.is_file():
            continue
        text = readme.read_text()
        new = rendered(text, generated)
        if new != text:
            stale.append(readme)
            if not args.check:
                readme.write_text(new)
    for readme in stale:
        verb = "differs from" if args.check else "rewritten from"
        print(f"{readme}: its variable table {verb} meta/argument_specs.yml", file=sys.stderr)
    if args.check and stale:
        print("run scripts/role_docs.py to regenerate the tables", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
