"""The fleet report from the fact cache: data age, stale and missing records are never healthy, settings checked."""

from __future__ import annotations

import datetime
import json

import jsonschema
import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_cache, report_page
from fleet_fixtures import host_record
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)


def _at(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cached(record, read_at):
    """A host's report input as the cache run makes it from its tpmfleet_report_record."""
    fact = {k: record[k] for k in ("requested_mode", "profile", "mode_error", "settings", "facts", "quote")}
    return report_cache.from_record(record["name"], dict(fact, read_at=read_at), record["groups"])


def build(records, **kw):
    model = report.build(records, now=NOW, source="cache", **kw)
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(model)
    return model


def test_a_fresh_cached_record_judges_the_host_as_a_live_read_does():
    record = host_record("h1", "direct")
    live = report.build([record], now=NOW)["hosts"][0]
    host = build([cached(record, _at(600))])["hosts"][0]
    assert live["status"] == host["status"] == "healthy"
    assert host["problems"] == live["problems"] and host["checks"] == live["checks"]
    assert (host["source"], host["read_at"], host["age_seconds"], host["stale"]) == ("cache", _at(600), 600, False)
    assert live["source"] == "live"


def test_stale_data_is_unverified_with_its_age_and_the_fix():
    model = build([cached(host_record("h1", "direct"), _at(3 * 86400 + 5))], max_age=86400)
    host = model["hosts"][0]
    assert host["status"] == "unverified" and host["stale"] is True and host["age_seconds"] == 3 * 86400 + 5
    (problem,) = host["problems"]
    assert problem["severity"] == "warning" and problem["check"] == "facts"
    assert problem["cause"] == "data is 3 days old (tpm_report_max_age is 24 hours)"
    assert problem["fix"].startswith("Run the report live for these hosts") and "report -l h1)" in problem["fix"]
    assert next(c for c in host["checks"] if c["id"] == "facts")["status"] == "not_run"
    assert model["summary"]["data"] == {"stale": 1, "not_cached": 0, "oldest_read_at": _at(3 * 86400 + 5)}
    # the same record within tpm_report_max_age is healthy again: the age alone decided
    assert (
        build([cached(host_record("h1", "direct"), _at(3 * 86400 + 5))], max_age=4 * 86400)["hosts"][0]["status"]
        == "healthy"
    )


def test_stale_data_keeps_a_worse_status():
    record = host_record("h1", "direct", unreachable=True)
    host = build([cached(record, _at(90000))])["hosts"][0]
    assert host["status"] == "unreachable" and host["stale"] is True
    assert {p["title"] for p in host["problems"]} == {"Host is unreachable", "Data is older than tpm_report_max_age"}


def test_a_host_without_cached_data_is_unverified_and_says_why():
    model = build([report_cache.from_record("new", None, ["tpm_hosts"])])
    host = model["hosts"][0]
    assert host["status"] == "unverified" and host["read_at"] is None and host["stale"] is None
    (problem,) = host["problems"]
    assert problem["title"] == "No cached data" and problem["cause"] == report_cache.MISSING_CAUSE
    assert all(c["status"] == "not_run" for c in host["checks"])
    assert model["summary"]["data"]["not_cached"] == 1
    page = report_page.render_html(model)
    assert "without cached data 1" in page


@settings(max_examples=200, deadline=None)
@given(read_at=st.one_of(st.none(), st.text(max_size=30), st.integers(), st.just(_at(10))))
def test_a_cached_record_is_healthy_only_with_a_valid_recent_read_time(read_at):
    host = build([cached(host_record("h1", "kernel_rm"), read_at)])["hosts"][0]
    valid = report_cache.parse_time(read_at) is not None
    assert (host["status"] == "healthy") == valid
    if not valid:
        assert host["read_at"] is None and any(p["title"] == "Data age is unknown" for p in host["problems"])


def test_a_read_time_in_the_future_counts_as_fresh_not_negative():
    host = build([cached(host_record("h1", "abrmd"), _at(-120))])["hosts"][0]
    assert host["age_seconds"] == 0 and host["status"] == "healthy"


@pytest.mark.parametrize(
    ("source", "max_age", "plugin", "message"),
    [
        ("Cache", 86400, "jsonfile", 'tpm_report_source must be "live" or "cache", got "Cache"'),
        (" live", 86400, None, 'got " live"'),
        ("live", 0, None, "tpm_report_max_age must be a whole number of seconds above 0 (e.g. 86400), got 0"),
        ("live", "1d", None, 'got "1d"'),
        ("live", True, None, "got true"),
        ("cache", 60, "memory", 'no fact cache is configured (cache plugin "memory")'),
    ],
)
def test_bad_settings_get_one_message_naming_the_variable(source, max_age, plugin, message):
    with pytest.raises(ValueError, match=None) as err:
        report_cache.check_settings(source, max_age, plugin)
    assert message in str(err.value)


def test_good_settings_and_the_no_cache_message_says_how_to_configure_one():
    assert report_cache.check_settings("cache", "3600", "jsonfile") == ("cache", 3600)
    assert report_cache.check_settings("live", 60, "memory") == ("live", 60)
    with pytest.raises(ValueError) as err:
        report_cache.check_settings("cache", 60, "memory")
    assert "ANSIBLE_CACHE_PLUGIN=jsonfile ANSIBLE_CACHE_PLUGIN_CONNECTION=<dir>" in str(err.value)


def test_age_text_and_collection_version():
    assert [report_cache.age_text(s) for s in (1, 59, 150, 3600, 7200, 86400, 200000)] == [
        "1 second", "59 seconds", "2 minutes", "1 hour", "2 hours", "24 hours", "2 days",
    ]  # fmt: skip
    assert report_cache.collection_version().startswith("tpmfleet.tpm 0.")


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (1, 1), ("60", 60), (3600, 3600)])
def test_a_report_timeout_is_whole_seconds_or_the_modules_own(value, expected):
    assert report_cache.check_timeout(value) == expected


@pytest.mark.parametrize("value", [0, -5, 3601, "60\n", " 60", "1e3", 2.5, True, [60], "99999"])
def test_a_bad_report_timeout_is_refused_naming_the_variable(value):
    with pytest.raises(ValueError, match=r"^tpm_report_timeout must be a whole number of seconds from 1 to 3600"):
        report_cache.check_timeout(value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=10_000), st.integers(), st.floats(), st.booleans(), st.none()))
def test_any_report_timeout_is_a_bounded_number_or_one_short_message(value):
    try:
        got = report_cache.check_timeout(value)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("tpm_report_timeout must be") and "\n" not in message and len(message) < 400
    else:
        assert got is None or (type(got) is int and 1 <= got <= 3600)
