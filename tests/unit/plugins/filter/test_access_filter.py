"""The access_plan filter: a thin wrapper over plugin_utils/access.py, documented for ansible-doc."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.filter.access import FilterModule

FILTERS = FilterModule().filters()
HERE = Path(inspect.getfile(FilterModule)).parent
INPUTS = {
    "tpm_quote_mode_tss_user": "tss",
    "tpm_quote_mode_tss_group": "tss",
    "tpm_access_tss_gid": None,
    "tpm_access_tss_uid": None,
    "tpm_access_tss_home": "/var/lib/tpm",
    "tpm_access_docker_group": "docker",
    "tpm_access_docker_gid": None,
    "tpm_access_docker_group_manage": False,
    "tpm_access_consumer_users": ["nosuchuser"],
    "tpm_access_allow_gid_change": False,
    "tpm_access_allow_uid_change": False,
}


def test_the_filter_is_documented():
    assert set(FILTERS) == {"access_plan"}
    doc = yaml.safe_load((HERE / "access_plan.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == "access_plan"
    params = list(inspect.signature(FILTERS["access_plan"]).parameters)
    assert ["_input", *params[1:]] == list(doc["DOCUMENTATION"]["options"])
    assert set(doc["RETURN"]["_value"]["contains"]) == {"errors", "groups", "user", "consumers", "existing_groups"}


def test_the_plan_names_the_host():
    plan = FILTERS["access_plan"]({"tss": ["x", "106", ""]}, {}, INPUTS, host="attest-01")
    assert plan["errors"] == [
        "tpm_access_consumer_users: user(s) nosuchuser do not exist on attest-01. Create them first (this role only "
        "adds existing users to groups) or remove them from tpm_access_consumer_users."
    ]
    assert plan["user"]["create"] is True


@pytest.mark.parametrize(
    ("groups", "users", "inputs"),
    [
        ({"tss": ["x", "not-a-gid", ""]}, {}, INPUTS),
        ({}, {}, {"tpm_quote_mode_tss_group": "tss"}),
    ],
)
def test_unusable_data_is_a_filter_error(groups, users, inputs):
    with pytest.raises(AnsibleFilterError, match=r"tpmfleet\.tpm\.access_plan: cannot plan from these inputs"):
        FILTERS["access_plan"](groups, users, inputs)
