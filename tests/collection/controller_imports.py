#!/usr/bin/env python3
"""The Python distributions the collection's controller side imports.

The controller side is every action, filter and lookup plugin, followed
through the collection's own plugin_utils and module_utils modules they
import (transitively). Every ``import`` counts, at module level or inside a
function, since either runs on the controller. Printed one per line: the
distribution (from this Python's installed packages) of each import that is
neither the standard library, ansible-core itself nor the collection.

    python tests/collection/controller_imports.py COLLECTION_DIR

tests/collection/check.sh compares the list with what ``ansible-builder
introspect`` finds in the installed collection (meta/execution-environment.yml)
and with what ansible-core already requires.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

PREFIX = "ansible_collections.tpmfleet.tpm.plugins."


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def controller_imports(collection: Path) -> set[str]:
    """Top-level names of the third-party modules the controller side imports."""
    plugins = collection / "plugins"
    todo = [p for kind in ("action", "filter", "lookup") for p in (plugins / kind).glob("*.py")]
    seen: set[Path] = set()
    third_party = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if name.startswith(PREFIX):
                parts = name[len(PREFIX) :].split(".")
                candidate = plugins.joinpath(*parts).with_suffix(".py")
                if candidate.is_file():
                    todo.append(candidate)
                continue
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("ansible", "ansible_collections", "__future__"):
                continue
            third_party.add(top)
    return third_party


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for top in sorted(controller_imports(Path(argv[0]))):
        if top not in distributions:
            missing.append(top)
            continue
        for dist in sorted(set(distributions[top])):
            print(dist.lower())
    if missing:
        print(f"controller_imports: not installed here: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
