# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_consumers' controller knowledge: whether an interrupted quote mode switch left its record (the consumers it
stopped). It has no settings of its own to check."""

from __future__ import annotations

READS_FROM = ("__tpm_consumers_record",)


def reads(v):
    """Whether an interrupted quote mode switch left its record (the consumers it stopped)."""
    record = v.get("__tpm_consumers_record")
    return {"paths": [record]} if isinstance(record, str) and record.startswith("/") else {}


# The plan (roles/__init__.py): site.yml's start step has something to do only when an interrupted switch left its
# record. Only tpm_consumers' own stop writes the record, so no other role's apply makes this answer stale; the
# start step starts units.
CHANGES_FROM = READS_FROM
PLANS_FROM = ()
CHANGES = ("units",)


def changes(values, host):
    """What site.yml's start step would do, from the preflight's read of the switch record: start the consumers it
    lists and remove it; nothing when the read shows no record; None when the record was not read."""
    record = values.get("__tpm_consumers_record")
    paths = (host.facts.get("tpmfleet_host_state") or {}).get("paths") or {}
    seen = paths.get(record) if isinstance(record, str) else None
    if not isinstance(seen, dict) or not isinstance(seen.get("exists"), bool):
        return None
    return [f"start the consumers listed in {record} and remove it"] if seen["exists"] else []
