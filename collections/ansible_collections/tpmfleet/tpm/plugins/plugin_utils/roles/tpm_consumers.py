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
