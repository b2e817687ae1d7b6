"""The requires_ansible action's decision and message (tests/playbooks/test_unsupported_core.py runs it for real
with ansible-core releases that upstream no longer supports)."""

from __future__ import annotations

import pytest
from ansible_collections.tpmfleet.tpm.plugins.action import requires_ansible as action
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("running", "refused"),
    [("2.19.0", False), ("2.21.5", False), ("2.19.0rc1", True), ("2.18.19", True), ("2.17.14", True)],
)
def test_core_problem_refuses_only_what_the_specifier_excludes(running, refused):
    problem = action.core_problem(running, ">=2.19.0")
    assert (problem is not None) == refused
    if refused:
        assert f"runs ansible-core {running} " in problem and "./scripts/setup.sh" in problem
        assert "needs ansible-core >=2.19.0" in problem


def test_the_requirement_is_read_from_the_collections_runtime():
    assert action.requires_ansible() == ">=2.19.0"


def test_an_unreadable_requirement_is_refused(tmp_path):
    runtime = tmp_path / "runtime.yml"
    runtime.write_text("plugin_routing: {}\n")
    with pytest.raises(ValueError, match="no requires_ansible"):
        action.requires_ansible(str(runtime))
    assert "not a version specifier" in action.core_problem("2.19.0", "2.19 or newer")


@given(st.text(max_size=40), st.text(max_size=40))
def test_core_problem_survives_any_version_and_requirement(running, spec):
    problem = action.core_problem(running, spec)
    assert problem is None or isinstance(problem, str)
