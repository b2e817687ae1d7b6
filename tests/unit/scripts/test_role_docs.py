"""Each role README's variable table is generated from its argument spec (scripts/role_docs.py), so they cannot
drift: make lint runs the check, and so does this test."""

from __future__ import annotations

import importlib.util
import shutil

import yaml
from conftest import COLLECTION, REPO

_SPEC = importlib.util.spec_from_file_location("role_docs", REPO / "scripts" / "role_docs.py")
role_docs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(role_docs)


def test_every_readme_table_is_the_one_its_argument_spec_gives():
    assert role_docs.main(["--check"]) == 0


def test_a_changed_spec_is_caught_and_regenerated(tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(COLLECTION / "roles" / "tpm_udev", roles / "tpm_udev")
    spec_file = roles / "tpm_udev" / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["argument_specs"]["main"]["options"]["tpm_udev_new_setting"] = {
        "type": "str", "default": "x|y", "description": "A setting | with a pipe."}  # fmt: skip
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert role_docs.main(["--check", "--roles", str(roles)]) == 1
    assert role_docs.main(["--roles", str(roles)]) == 0
    text = (roles / "tpm_udev" / "README.md").read_text()
    assert "| `tpm_udev_new_setting` | str | `x\\|y` | A setting \\| with a pipe. |" in text
    assert text.count(role_docs.BEGIN) == 1
    assert role_docs.main(["--check", "--roles", str(roles)]) == 0
