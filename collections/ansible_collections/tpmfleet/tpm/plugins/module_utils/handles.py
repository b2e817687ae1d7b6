# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TPM 2.0 persistent handle ranges (TCG "Registry of Reserved TPM 2.0 Handles and Localities").

One table for every plugin: ``tpm_quote`` refuses the reserved ranges before it
persists anything, ``tpm_facts`` labels the persistent handles a TPM holds.
"""

from __future__ import annotations

import re

PERSISTENT_FIRST = 0x81000000
PERSISTENT_LAST = 0x81FFFFFF

# (first, last, name, owner of the range, may tpmfleet persist an AK here)
RANGES = (
    (0x81000000, 0x8100FFFF, "owner_srk", "storage root keys (owner hierarchy; systemd's SRK is 0x81000001)", False),
    (
        0x81010000,
        0x8101FFFF,
        "endorsement",
        "endorsement keys (TCG EK range: RSA EK 0x81010001, ECC EK 0x81010002)",
        False,
    ),
    (0x81020000, 0x817FFFFF, "owner", "owner-hierarchy objects such as attestation keys", True),
    (0x81800000, 0x81FFFFFF, "platform", "platform-hierarchy objects (firmware, OEM)", False),
)

# Where tpmfleet suggests an AK goes: the owner range, clear of the SRK and EK ranges.
SUGGESTED_AK_HANDLE = "0x81020001"
AK_FIRST = 0x81020000
AK_LAST = 0x817FFFFF
AK_RANGE = f"0x{AK_FIRST:08x}-0x{AK_LAST:08x}"

_HANDLE_RE = re.compile(r"(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})")


def parse_handle(value):
    """The integer of a handle written as 0x81020001 or decimal; ValueError otherwise (full match)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _HANDLE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a TPM handle; write it in hex such as {SUGGESTED_AK_HANDLE}")
    return int(value, 16) if value.lower().startswith("0x") else int(value)


def handle_range(handle):
    """The range entry (dict) a persistent handle falls in, or None outside 0x81000000-0x81FFFFFF."""
    for first, last, name, what, ak_allowed in RANGES:
        if first <= handle <= last:
            return {"name": name, "first": f"0x{first:08x}", "last": f"0x{last:08x}", "what": what,
                    "ak_allowed": ak_allowed}  # fmt: skip
    return None


def ak_handle_error(value):
    """Why an AK may not be persisted at ``value`` ('' when it may)."""
    try:
        handle = parse_handle(value)
    except ValueError as exc:
        return str(exc)
    entry = handle_range(handle)
    if entry is None:
        return (
            f"0x{handle:08x} is not a persistent handle (0x{PERSISTENT_FIRST:08x}-0x{PERSISTENT_LAST:08x}); "
            f"use the owner range, e.g. {SUGGESTED_AK_HANDLE}"
        )
    if not entry["ak_allowed"]:
        return (
            f"0x{handle:08x} is in the reserved {entry['name']} range {entry['first']}-{entry['last']} "
            f"({entry['what']}): tpmfleet never persists a key there. Use the owner range "
            f"{AK_RANGE}, e.g. {SUGGESTED_AK_HANDLE}"
        )
    return ""


def free_ak_handle(taken):
    """The first handle of the owner range from SUGGESTED_AK_HANDLE on that is not in ``taken`` (hex)."""
    taken = set(taken)
    handle = int(SUGGESTED_AK_HANDLE, 16)
    while handle in taken and handle < AK_LAST:
        handle += 1
    return f"0x{handle:08x}"
