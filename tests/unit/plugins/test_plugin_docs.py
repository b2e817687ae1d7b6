"""Every plugin of both collections (tpmfleet.tpm and the lab's tpmfleet.lab) has documentation that parses.

`make collection` runs ansible-doc over the shipped collection only; a YAML slip in a lab plugin's
DOCUMENTATION (a ": " inside a plain list item) would otherwise go unnoticed until someone asks ansible-doc.
"""

from __future__ import annotations

import ast

import pytest
import yaml
from conftest import COLLECTIONS

PLUGINS = sorted(
    path
    for path in (COLLECTIONS / "ansible_collections" / "tpmfleet").glob("*/plugins/*/*.py")
    if path.parent.name not in {"module_utils", "plugin_utils", "doc_fragments"} and path.name != "__init__.py"
)


def doc_strings(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in {"DOCUMENTATION", "EXAMPLES", "RETURN"} and isinstance(node.value, ast.Constant):
                found[name] = node.value.value
    return found


def test_both_collections_have_plugins():
    assert {p.parts[-4] for p in PLUGINS} == {"tpm", "lab"}


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parts[-4]}/{p.parent.name}/{p.name}")
def test_documentation_parses(path):
    docs = doc_strings(path)
    if path.parent.name == "filter" and "DOCUMENTATION" not in docs:
        pytest.skip("filter plugins document each filter in a .yml file beside them")
    if path.parent.name == "action":
        # An action plugin runs the module of its name, which carries the documentation.
        module = path.parent.parent / "modules" / path.name
        assert module.is_file(), f"action plugin {path.name} has no module of its name to document it"
        path, docs = module, doc_strings(module)
    assert "DOCUMENTATION" in docs, f"{path.name} has no DOCUMENTATION"
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    assert isinstance(documentation, dict), path.name
    assert documentation.get("short_description"), f"{path.name}: no short_description"
    for name in ("EXAMPLES", "RETURN"):
        if docs.get(name, "").strip():
            yaml.safe_load(docs[name])
