"""The input check filters: thin wrappers over plugin_utils/validate.py, documented for ansible-doc."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.filter.validate import FilterModule
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import validate

FILTERS = FilterModule().filters()
HERE = Path(inspect.getfile(FilterModule)).parent


def test_the_filters_are_those_documented():
    assert set(FILTERS) == {"input_errors", "account_errors"}
    for name, func in FILTERS.items():
        doc = yaml.safe_load((HERE / f"{name}.yml").read_text())
        assert doc["DOCUMENTATION"]["name"] == name
        params = list(inspect.signature(func).parameters)
        assert ["_input", *params[1:]] == list(doc["DOCUMENTATION"]["options"])
        assert doc["RETURN"]["_value"]["type"] == "list"


def test_the_documented_roles_are_those_checked():
    doc = yaml.safe_load((HERE / "input_errors.yml").read_text())["DOCUMENTATION"]
    assert doc["options"]["role"]["choices"] == list(validate.CHECKS)


def test_input_errors_returns_the_messages():
    assert (
        FILTERS["input_errors"](
            {"tpm_udev_mode": "0660", "tpm_udev_rules_path": "/etc/udev/rules.d/70-t.rules"}, "tpm_udev"
        )
        == []
    )
    errors = FILTERS["input_errors"](
        {"tpm_udev_mode": "0660\n", "tpm_udev_rules_path": "/etc/udev/rules.d/70-t.rules"}, "tpm_udev"
    )
    assert errors == [
        "tpm_udev_mode must be an octal mode that gives nothing to other users, "
        'such as "0660" or "0600" (got "0660\\n").'
    ]


def test_account_errors_returns_the_messages():
    values = {"tpm_verify_user": "ghost", "tpm_quote_mode_tss_user": "tss"}
    errors = FILTERS["account_errors"](
        values, "tpm_verify", {"root": ["x", "0", "0", "", "/root", "/bin/sh"]}, {}, host="h1"
    )
    assert errors and errors[0].startswith("tpm_verify_user: user ghost does not exist on h1.")


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("input_errors", ({}, "tpm_nope"), "no input checks for role 'tpm_nope'"),
        ("input_errors", ("tpm_udev_mode=0660", "tpm_udev"), "must be a dict"),
        ("account_errors", ({}, "tpm_udev", {}, {}), "no account checks for role 'tpm_udev'"),
    ],
)
def test_misuse_is_a_filter_error(name, args, fragment):
    with pytest.raises(AnsibleFilterError, match=fragment):
        FILTERS[name](*args)
