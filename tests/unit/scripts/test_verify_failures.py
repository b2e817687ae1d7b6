"""scripts/verify_failures.py: a failed scenario's verifier tests named at the end of CI's log, from a JUnit
file that a real pytest run wrote."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPT = REPO / "scripts" / "verify_failures.py"

_TESTS = """
import pytest

def test_passes():
    assert True

def test_fails():
    assert 1 == 2, "the consumer\\nstayed stopped"

@pytest.fixture
def broken():
    raise RuntimeError("no inventory")

def test_errors(broken):
    pass

@pytest.mark.skip(reason="on demand")
def test_skipped():
    pass
"""


def _script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def _junit(tmp_path, source=_TESTS):
    (tmp_path / "test_lab.py").write_text(source)
    xml = tmp_path / "out" / "verify.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         f"--junit-xml={xml}", str(tmp_path / "test_lab.py")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    return xml


def test_failed_and_erroring_tests_are_named_with_their_message(tmp_path):
    r = _script("default", str(_junit(tmp_path)))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "molecule scenario 'default' failed; 2 failed verifier test(s):"
    assert "test_lab::test_fails" in r.stdout and "failure: AssertionError: the consumer" in r.stdout
    assert "test_lab::test_errors" in r.stdout and "error: " in r.stdout
    assert "test_passes" not in r.stdout and "test_skipped" not in r.stdout
    assert len(lines) == 5


def test_a_run_without_failed_tests_points_at_the_step_above(tmp_path):
    xml = _junit(tmp_path, "def test_ok():\n    pass\n")
    r = _script("access", str(xml))
    assert r.returncode == 0
    assert r.stdout.strip() == (
        "molecule scenario 'access' failed; its verifier report has no failed test: the failing step is above"
    )


def test_a_missing_report_is_said_and_is_not_success(tmp_path):
    r = _script("default", str(tmp_path / "none.xml"))
    assert r.returncode == 1
    assert "no verifier report (FileNotFoundError)" in r.stdout


def test_a_broken_report_is_said_and_is_not_success(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuites><testcase")
    r = _script("default", str(bad))
    assert r.returncode == 1
    assert "no verifier report (ParseError)" in r.stdout


def test_many_failures_are_cut_to_the_limit(tmp_path):
    source = "".join(f"def test_{i}():\n    assert False, 'drift {i}'\n" for i in range(5))
    r = _script("default", str(_junit(tmp_path, source)), "--max", "2")
    assert r.returncode == 0
    assert r.stdout.count("failure: ") == 2
    assert r.stdout.splitlines()[-1].startswith("  ... and 3 more in ")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=10_000))
def test_any_message_prints_as_one_bounded_line(message):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import verify_failures
    finally:
        sys.path.pop(0)
    line = verify_failures._one_line(message)
    assert "\n" not in line and "\r" not in line
    assert 0 < len(line) <= 240
    assert line.isprintable()
