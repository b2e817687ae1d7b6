"""The quote_mode filter: one profile per mode, refusals as filter errors; the shared TCTI grammar; the
collection's public filters are the documented ones."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tpmfleet.tpm.plugins.filter import compose as compose_filters
from ansible_collections.tpmfleet.tpm.plugins.filter.quote_mode import FilterModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti_grammar import tcti_error
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from conftest import COLLECTION

FILTERS = FilterModule().filters()


@pytest.mark.parametrize(
    ("mode", "tcti", "abrmd_running", "raw_group"),
    [
        ("direct", "device:/dev/tpm0", False, "tss"),
        ("kernel_rm", "device:/dev/tpmrm0", False, "root"),
        ("abrmd", "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system", True, "root"),
    ],
)
def test_each_mode_has_its_profile(mode, tcti, abrmd_running, raw_group):
    profile = FILTERS["quote_mode"](mode)
    assert profile["tcti"] == tcti
    assert set(profile["tcti_variables"].values()) == {tcti}
    assert profile["abrmd"]["running"] is abrmd_running
    assert profile["nodes"]["/dev/tpm0"]["group"] == raw_group
    assert tcti_error(tcti) == ""


@pytest.mark.parametrize(
    ("mode", "consumer"),
    [
        ("direct", {"device_unit": "dev-tpm0.device", "broker_unit": None, "flush_orphans": True}),
        ("kernel_rm", {"device_unit": "dev-tpmrm0.device", "broker_unit": None, "flush_orphans": False}),
        ("abrmd", {"device_unit": None, "broker_unit": "tpm2-abrmd.service", "flush_orphans": False}),
    ],
)
def test_consumers_wait_for_what_they_open_and_flush_only_without_a_resource_manager(mode, consumer):
    assert FILTERS["quote_mode"](mode)["consumer"] == consumer


def test_the_modes_are_listed_in_order():
    assert qm.modes() == ["direct", "kernel_rm", "abrmd"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "fast"}, "tpm_quote_mode must be one of direct, kernel_rm, abrmd"),
        ({"mode": "direct", "abrmd_tcti": "tabrmd"}, "tpm_quote_mode_abrmd_tcti must be a device TCTI"),
        ({"mode": "direct", "abrmd_tcti": "device:/dev/tpm0\n"}, "tpm_quote_mode_abrmd_tcti must be a device TCTI"),
    ],
)
def test_bad_inputs_are_filter_errors(kwargs, fragment):
    mode = kwargs.pop("mode")
    with pytest.raises(AnsibleFilterError, match=fragment):
        FILTERS["quote_mode"](mode, **kwargs)


@pytest.mark.parametrize(
    "tcti",
    [
        "device:/dev/tpm0\n",
        "device:/dev/tpm0 ",
        "device:/dev/tpm0;rm",
        "tabrmd:bus_type=system\n",
        "tabrmd:bus_type=sessions",
        "swtpm:port=99999",
        "device:relative/path",
        "",
    ],
)
def test_the_tcti_grammar_is_a_full_match(tcti):
    assert tcti_error(tcti) != ""


# The public filters: what the roles' tasks and users' templates use, each documented beside its plugin. The
# checks of the roles' settings are no filters: the settings_check action runs them.
PUBLIC_FILTERS = {"quote_mode", "compose_plan", "compose_access", "compose_dirs"}


def test_the_public_filters_are_those_documented():
    shipped = set(FILTERS) | set(compose_filters.FilterModule().filters())
    assert shipped == PUBLIC_FILTERS
    documented = {p.stem for p in (COLLECTION / "plugins" / "filter").glob("*.yml")}
    assert documented == PUBLIC_FILTERS
