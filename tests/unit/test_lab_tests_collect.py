"""Every lab test module imports and is collected by pytest, in seconds and without a lab.

The lab tests (molecule scenarios' verifiers, tests/lab, tests/awx) run only on VMs, late in make test or on
demand: an import error there (a renamed helper of tpmfleet_molecule) would otherwise surface only after the
scenario's 20 minutes of converge, as one "Verifier tests failed"."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

# The lab tests' tools (pytest-testinfra, molecule) are on the main controller only: the second controller
# (requirements-controller2.txt) skips this file, the main one runs it in make unit.
pytest.importorskip("testinfra", reason="the lab tests' tools are on the main controller only")

# Each directory pytest collects from, as molecule's verifier or a make target runs it.
_DIRS = sorted(
    {p.parent for p in (REPO / "molecule").glob("*/tests/test_*.py")}
    | {p.parent for p in (REPO / "tests" / "lab").glob("test_*.py")}
    | {p.parent for p in (REPO / "tests" / "awx").glob("test_*.py")}
)


def test_every_lab_test_directory_is_covered():
    names = {str(d.relative_to(REPO)) for d in _DIRS}
    assert {"molecule/default/tests", "molecule/access/tests", "tests/lab", "tests/awx"} <= names, names


@pytest.mark.parametrize("directory", _DIRS, ids=lambda d: str(d.relative_to(REPO)))
def test_the_lab_tests_import_and_collect(directory):
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(directory)],
        cwd=directory.parent, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "error" not in out.lower().splitlines()[-1], out[-4000:]
    assert "tests collected" in out or "test collected" in out, out[-4000:]
