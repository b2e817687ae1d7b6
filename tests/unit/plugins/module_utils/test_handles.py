"""The TCG persistent handle ranges: where tpmfleet may persist an AK, and what it says otherwise."""

from __future__ import annotations

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils.handles import (
    SUGGESTED_AK_HANDLE,
    ak_handle_error,
    free_ak_handle,
    handle_range,
    parse_handle,
)


@pytest.mark.parametrize("value", ["0x81020001", "0x81020000", "0x817fffff", "0x817FFFFF", 0x81020001, "2164391937"])
def test_the_owner_range_is_allowed(value):
    assert ak_handle_error(value) == ""


@pytest.mark.parametrize(
    ("value", "name", "hint"),
    [
        ("0x81000001", "owner_srk", "systemd's SRK is 0x81000001"),
        ("0x8100ffff", "owner_srk", "storage root keys"),
        ("0x81010000", "endorsement", "RSA EK 0x81010001"),
        ("0x81010001", "endorsement", "RSA EK 0x81010001"),
        ("0x81010002", "endorsement", "ECC EK 0x81010002"),
        ("0x8101ffff", "endorsement", "endorsement keys"),
        ("0x81800000", "platform", "platform-hierarchy"),
        ("0x81ffffff", "platform", "platform-hierarchy"),
    ],
)
def test_reserved_ranges_are_refused_with_the_range_to_use(value, name, hint):
    error = ak_handle_error(value)
    assert f"in the reserved {name} range" in error and hint in error
    assert "tpmfleet never persists a key there" in error
    assert error.endswith(f"Use the owner range 0x81020000-0x817fffff, e.g. {SUGGESTED_AK_HANDLE}")
    assert "evict" not in error


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0x80000001", "is not a persistent handle (0x81000000-0x81ffffff)"),
        ("0x82000000", "is not a persistent handle"),
        ("0", "is not a persistent handle"),
        ("0x81020001\n", "is not a TPM handle"),  # full match: no trailing newline
        (" 0x81020001", "is not a TPM handle"),
        ("0x", "is not a TPM handle"),
        ("0x1_0", "is not a TPM handle"),
        ("0x810200011", "is not a TPM handle"),
        ("ek", "is not a TPM handle"),
        (True, "is not a TPM handle"),
        (None, "is not a TPM handle"),
    ],
)
def test_what_is_not_a_persistent_handle(value, fragment):
    assert fragment in ak_handle_error(value)


def test_parse_and_ranges():
    assert parse_handle("0x81020001") == parse_handle("2164391937") == 0x81020001
    assert handle_range(0x81010001)["name"] == "endorsement"
    assert handle_range(0x81020001)["ak_allowed"] is True
    assert handle_range(0x80000001) is None


def test_free_ak_handle_skips_taken_handles():
    assert free_ak_handle([]) == SUGGESTED_AK_HANDLE
    assert free_ak_handle([0x81010001, 0x81020001, 0x81020002]) == "0x81020003"
