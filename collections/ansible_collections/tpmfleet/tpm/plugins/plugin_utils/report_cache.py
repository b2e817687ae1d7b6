# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's data source: live reads or the fact cache, and each host's data age.

The report playbook stores what it read of each host as one cacheable fact,
``tpmfleet_report_record`` (see ``RECORD_FACT``), so that any run with a fact cache
configured leaves it there::

    {"read_at": "2026-12-06T02:00:00Z", "collection": "tpmfleet.tpm 0.2.0", "source": "live",
     "requested_mode": "direct", "profile": {...} or None, "mode_error": None or "why",
     "settings": {...}, "facts": <tpm_facts result>, "quote": <tpm_quote result> or None,
     "attest": <tpm_attest_evidence result> (skipped when no attestation check was chosen),
     "consumers": [<tpm_quote result per consumer user>] (the consumer_quote check)}

A record without ``attest`` (written before it was kept) leaves every attestation check
``not_run``: a host is never ready for attestation on evidence nobody read.

A run with ``tpm_report_source: cache`` builds the report from these records without
contacting any host. Green means proven now: a host without a record, or whose record is
older than ``tpm_report_max_age``, is never healthy.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import input_rules

RECORD_FACT = "tpmfleet_report_record"
SOURCES = ("live", "cache")
DEFAULT_MAX_AGE = 86400
# The cache plugins that keep nothing between runs.
NO_CACHE = ("memory", "")
NO_CACHE_MSG = (
    'tpm_report_source is "cache" but no fact cache is configured (cache plugin {plugin}): the report has no '
    "data to read. Configure one, e.g. ANSIBLE_CACHE_PLUGIN=jsonfile ANSIBLE_CACHE_PLUGIN_CONNECTION=<dir> "
    "ANSIBLE_CACHE_PLUGIN_TIMEOUT=0 (or fact_caching, fact_caching_connection and fact_caching_timeout in "
    "ansible.cfg; AWX: enable the job template's fact storage), run the report live once with it, then run it "
    "with -e tpm_report_source=cache."
)
MISSING_CAUSE = "no cached data: run the report live or site once with a fact cache"
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def check_settings(source, max_age, cache_plugin=None):
    """(source, max_age) checked; raises ValueError with one message naming the variable and the fix."""
    if source not in SOURCES:
        raise ValueError(f'tpm_report_source must be "live" or "cache", got {json.dumps(_plain(source))}')
    if isinstance(max_age, str) and re.fullmatch(r"[0-9]{1,12}", max_age):
        max_age = int(max_age)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
        raise ValueError(
            f"tpm_report_max_age must be a whole number of seconds above 0 (e.g. 86400), got "
            f"{json.dumps(_plain(max_age))}"
        )
    # cache_plugin None: not checked (the playbook passes the configured one)
    if source == "cache" and cache_plugin is not None and cache_plugin in NO_CACHE:
        raise ValueError(NO_CACHE_MSG.format(plugin=json.dumps(_plain(cache_plugin or ""))))
    return source, max_age


MAX_TIMEOUT = 3600


def check_timeout(value):
    """``tpm_report_timeout`` checked: None (each module's own bound) or whole seconds from 1 to MAX_TIMEOUT;
    raises ValueError with one message naming the variable and the fix."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT:
        raise ValueError(
            f"tpm_report_timeout must be a whole number of seconds from 1 to {MAX_TIMEOUT} (e.g. 60 on a loaded "
            f"fleet), got {input_rules.shown(value)}"
        )
    return value


def collection_version():
    """``tpmfleet.tpm <version>`` of the collection this file belongs to (installed or a checkout)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as fh:
            return f"tpmfleet.tpm {json.load(fh)['collection_info']['version']}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as fh:
            for line in fh:
                match = re.fullmatch(r"version:\s*['\"]?([0-9A-Za-z.+-]+)['\"]?\s*", line.rstrip("\n"))
                if match:
                    return f"tpmfleet.tpm {match.group(1)}"
    except OSError:
        pass
    return "tpmfleet.tpm (unknown version)"


def parse_time(value):
    """A UTC ``YYYY-MM-DDTHH:MM:SSZ`` as an aware datetime, or None."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        return None
    try:
        return datetime.datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def data_state(read_at, now, max_age):
    """The host's ``data`` entry: read_at, age_seconds and stale (None when the time is unknown)."""
    when = parse_time(read_at)
    if when is None:
        return {"read_at": None, "age_seconds": None, "stale": None}
    age = max(0, int((now - when).total_seconds()))
    return {"read_at": read_at, "age_seconds": age, "stale": age > max_age}


def age_text(seconds):
    """How old data is, in words: "N seconds/minutes/hours/days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size or (unit == "hour" and seconds >= size):
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def from_record(name, record, groups):
    """The report's input record (plugin_utils/report.py) for one host from its cached record (None: none)."""
    if not isinstance(record, dict):
        return {"name": name, "groups": groups, "requested_mode": None, "profile": None, "mode_error": None,
                "settings": {}, "facts": None, "quote": None, "attest": None, "consumers": None,
                "cached": False}  # fmt: skip
    error = record.get("mode_error")
    return {
        "name": name,
        "groups": groups,
        "requested_mode": record.get("requested_mode"),
        "profile": None if error else record.get("profile"),
        "mode_error": error,
        "settings": record.get("settings") or {},
        "facts": record.get("facts"),
        "quote": record.get("quote"),
        "attest": record.get("attest"),
        "consumers": record.get("consumers"),
        "cached": True,
        "read_at": record.get("read_at"),
    }


def _plain(value):
    """A value JSON can show (anything else as its text)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
