"""The report playbook (tpmfleet.tpm.report) end to end on this controller: read-only, every host reported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jsonschema
import pytest
import xmlschema
import yaml
from ansible_collections.tpmfleet.tpm.plugins.action.fleet_report import host_input, playbooks
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report
from conftest import ANSIBLE, REPO, free_port_pair
from report_runs import report_model, run_report, tpm_hosts

PLAYBOOK = str(ANSIBLE) + "-playbook"
# The published JUnit schema the report's junit.xml must be valid against (its source: SOURCE.md beside it).
JUNIT_SCHEMA = xmlschema.XMLSchema(
    REPO / "tests" / "unit" / "plugins" / "plugin_utils" / "junit-schema" / "junit-10.xsd"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run playbooks/report.yml over a local host without TPM, a host with an invalid mode, a host whose
    TPM read cannot start (a broken ansible_python_interpreter) and an unreachable host, in check mode;
    returns (process, report dir)."""
    tmp = tmp_path_factory.mktemp("report")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "children": {
                "tpm_hosts": {
                    "hosts": {
                        "tpmless": dict(local, tpm_quote_mode="direct", tpm_kernel_require_device=False),
                        "badmode": dict(local, tpm_quote_mode="fast"),
                        "brokenpy": dict(local, tpm_quote_mode="direct", ansible_python_interpreter="/usr/bin/false"),
                        "gone": {
                            "ansible_host": "127.0.0.1",
                            "ansible_port": free_port_pair(),
                            "ansible_user": "nobody",
                            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5",
                        },
                    }
                }
            }
        }
    }
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [PLAYBOOK, "-i", str(tmp / "hosts.yml"), "playbooks/report.yml", "--check",
         "-e", f"tpm_report_dir={tmp / 'out'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc, tmp / "out"


def test_playbook_succeeds_and_changes_nothing(run):
    proc, _out = run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    for host in ("tpmless", "badmode", "gone", "brokenpy"):
        line = next(x for x in recap.splitlines() if x.startswith(host))
        assert "changed=0" in line and "failed=0" in line, line
    # the failed read is not hidden: Ansible counts it as ignored, the report as failing
    assert "ignored=1" in next(x for x in recap.splitlines() if x.startswith("brokenpy"))
    assert "4 hosts: 0 healthy, 0 drifted, 0 unverified, 2 failing, 1 unreachable, 1 without TPM" in proc.stdout


def test_every_host_is_in_the_report(run):
    _proc, out = run
    model = json.loads((out / "fleet.json").read_text())
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(model)
    hosts = {h["name"]: h for h in model["hosts"]}
    assert hosts["gone"]["status"] == "unreachable" and hosts["gone"]["tpm"] is None
    assert hosts["tpmless"]["status"] == "no_tpm" and hosts["tpmless"]["mode"] == "direct"
    assert hosts["tpmless"]["tpm"]["present"] is False and hosts["tpmless"]["expected"]["tcti"] == "device:/dev/tpm0"
    assert hosts["badmode"]["status"] == "failing" and hosts["badmode"]["mode"] == "fast"
    assert "tpm_quote_mode must be one of" in hosts["badmode"]["problems"][0]["cause"]
    broken = hosts["brokenpy"]
    assert broken["status"] == "failing" and broken["tpm"] is None
    facts = next(p for p in broken["problems"] if p["check"] == "facts")
    assert facts["cause"].startswith("tpm_facts failed: rc 1; Module result deserialization failed"), facts
    assert model["summary"]["status"] == {
        "failing": 2, "unreachable": 1, "unverified": 0, "no_tpm": 1, "drifted": 0, "healthy": 0,
    }  # fmt: skip
    observed = model["summary"]["observed_modes"]
    assert observed["not_read"] == 2 and sum(observed.values()) == 4  # gone and brokenpy were not read
    # run from the checkout: the fixes name its playbook files; a limit file per problem group
    group = next(g for g in model["problem_groups"] if g["check"] == "facts")
    assert group["command"] == f"ansible-playbook playbooks/report.yml --limit @{out}/{group['limit_file']}"
    assert (out / group["limit_file"]).read_text() == "brokenpy\n"
    assert "hosts.yml" in model["inventory"]
    page = (out / "index.html").read_text()
    assert all(f'"name":"{h}"' in page for h in hosts)  # in the page's embedded model (rows are built from it)
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testcase ") == 4 * len(report.CHECKS) + len(model["fleet_findings"])
    JUNIT_SCHEMA.validate(str(out / "junit.xml"))


def test_host_input_reads_what_the_playbook_left():
    profile = qm.profile("abrmd")
    hv = {"group_names": ["tpm_hosts"], "tpm_quote_mode_profile": profile, "__tpm_report_facts": {"x": 1},
          "__tpm_report_settings": {"tss_group": "tss"}}  # fmt: skip
    record = host_input("h", hv)
    assert record["requested_mode"] == "abrmd" and record["profile"] == profile and record["quote"] is None
    record = host_input("h", dict(hv, tpm_quote_mode="x", __tpm_report_mode_error="bad"))
    assert record["profile"] is None and record["mode_error"] == "bad" and record["requested_mode"] == "x"


def test_fix_commands_name_the_checkout_or_the_collection(tmp_path):
    assert playbooks(str(REPO / "playbooks"), cwd=str(REPO)) == {
        "site": "site.yml", "quote_mode": "playbooks/quote_mode.yml", "report": "playbooks/report.yml",
    }  # fmt: skip
    assert playbooks(str(REPO), cwd=str(tmp_path))["site"] == os.path.join(os.path.relpath(REPO, tmp_path), "site.yml")
    collection_playbooks = REPO / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "playbooks"
    assert playbooks(str(collection_playbooks), cwd=str(tmp_path)) == report.PLAYBOOKS
    assert playbooks(None, cwd=str(tmp_path)) == report.PLAYBOOKS == {
        "site": "tpmfleet.tpm.site", "quote_mode": "tpmfleet.tpm.quote_mode", "report": "tpmfleet.tpm.report",
    }  # fmt: skip


# --------------------------------------------------------------------------
# tpm_report_source: cache (a report from the fact cache, no host contacted)
# --------------------------------------------------------------------------

SECRET = "endorsement-secret-5f2c9d"  # noqa: S105 - a marker that must never reach the fact cache


def _cache_files(cache):
    """host -> its cached facts (ansible-core's jsonfile files, with or without the payload envelope)."""
    out = {}
    for path in cache.iterdir():
        data = json.loads(path.read_text())
        if "__payload__" in data:
            data = json.loads(data["__payload__"])
        out[path.name.split("_", 1)[1] if path.name.startswith("s1_") else path.name] = (path, data)
    return out


def _plain(value):
    """A cached value without ansible-core's type tags ({"value": ..., "__ansible_type": ...})."""
    if isinstance(value, dict):
        if "__ansible_type" in value and "value" in value:
            return _plain(value["value"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _write_payload(path, data):
    raw = json.loads(path.read_text())
    if "__payload__" in raw:
        raw["__payload__"] = json.dumps(data)
    else:
        raw = data
    path.write_text(json.dumps(raw))


def _playbook(tmp, inventory, out, cache=None, extra=()):
    """The report over ``inventory``; with ``cache`` (a directory), through a jsonfile fact cache there."""
    cache_env = None
    if cache is not None:
        cache_env = {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
                     "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0"}  # fmt: skip
    return run_report(tmp, inventory, out, cache_env, extra)


@pytest.fixture(scope="module")
def cache_runs(tmp_path_factory):
    """A live run with a jsonfile fact cache, then cache runs with every host unreachable (a closed loopback
    port over SSH): one as the cache was left, one with a host's record made 3 days old and a host the cache
    has never seen. Returns (tmp, cache dir, live process, cache process, old-record process)."""
    tmp = tmp_path_factory.mktemp("report-cache")
    cache = tmp / "cache"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "tpm_verify_endorsement_auth": SECRET}  # fmt: skip
    live = _playbook(tmp, tpm_hosts({
        "tpmless": dict(local, tpm_quote_mode="direct", tpm_kernel_require_device=False),
        "badmode": dict(local, tpm_quote_mode="fast"),
        "brokenpy": dict(local, tpm_quote_mode="direct", ansible_python_interpreter="/usr/bin/false"),
        "gone": {"ansible_host": "127.0.0.1", "ansible_port": free_port_pair(), "ansible_user": "nobody",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5"},
    }), "live", cache, ("-e", "tpm_report_quote=true"))  # fmt: skip
    after_live = _cache_state(cache)
    closed = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port_pair(),
              "ansible_user": "nobody", "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5",
              "tpm_quote_mode": "abrmd"}  # fmt: skip
    names = ("tpmless", "badmode", "brokenpy", "gone")
    cached = _playbook(tmp, tpm_hosts(dict.fromkeys(names, closed)), "cached", cache,
                       ("-e", "tpm_report_source=cache", "-e", "tpm_report_quote=true"))  # fmt: skip
    after_cached = _cache_state(cache)
    files = _cache_files(cache)
    path, data = files["tpmless"]
    data["tpmfleet_report_record"] = _plain(data["tpmfleet_report_record"])
    data["tpmfleet_report_record"]["read_at"] = "2020-01-01T00:00:00Z"
    _write_payload(path, data)
    before_old = _cache_state(cache)
    old = _playbook(tmp, tpm_hosts(dict.fromkeys((*names, "newhost"), closed)), "old", cache,
                    ("-e", "tpm_report_source=cache", "-e", "tpm_report_quote=true"))  # fmt: skip
    states = {"live": after_live, "cached": after_cached, "before_old": before_old, "old": _cache_state(cache)}
    return tmp, cache, live, cached, old, states


def _cache_state(cache):
    """Every fact cache file: name -> (content, mtime in ns; the jsonfile plugin expires entries by mtime)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.iterdir()}


def test_a_cache_run_reports_what_the_live_run_read_without_contacting_a_host(cache_runs):
    tmp, _cache, live, cached, _old, _states = cache_runs
    assert live.returncode == 0, live.stdout + live.stderr
    assert cached.returncode == 0, cached.stdout + cached.stderr
    recap = cached.stdout[cached.stdout.index("PLAY RECAP") :]
    lines = [x for x in recap.splitlines()[1:] if "ok=" in x]
    assert lines and all(x.split()[0] in ("tpmless", "badmode", "brokenpy", "gone") for x in lines), lines
    for line in lines:
        # every host's port is closed: any task that reached for a host would have made it unreachable
        assert "unreachable=0" in line and "failed=0" in line and "changed=0" in line and "ignored=0" in line, line
    # no task ran on a host: the reads were skipped, not tried and their failure ignored
    assert "...ignoring" not in cached.stdout and "fatal:" not in cached.stdout
    reads = cached.stdout[cached.stdout.index("TASK [Read the TPM") : cached.stdout.index("TASK [Check that a test")]
    # every host but the first ended before the reads (meta end_host): no task per host at all
    assert re.findall(r"^(\w+): \[(\w+)\]", reads, re.M) == [("skipping", "badmode")]
    live_model, live_hosts = report_model(tmp, "live")
    cache_model, cache_hosts = report_model(tmp, "cached")
    assert cache_model["options"]["source"] == "cache" and live_model["options"]["source"] == "live"
    assert set(cache_hosts) == set(live_hosts) == {"tpmless", "badmode", "brokenpy", "gone"}
    assert {n: h["status"] for n, h in cache_hosts.items()} == {
        "tpmless": "no_tpm", "badmode": "failing", "brokenpy": "failing", "gone": "unreachable",
    }  # fmt: skip
    for name, host in cache_hosts.items():
        want = live_hosts[name]
        # the cache run judges by what was read then, not by the inventory it now has (tpm_quote_mode: abrmd)
        for key in ("status", "mode", "observed_mode", "reachable", "tpm", "expected", "observed", "quote",
                    "problems", "checks"):  # fmt: skip
            assert host[key] == want[key], (name, key)
        assert host["source"] == "cache" and want["source"] == "live"
        assert host["read_at"] == want["read_at"] and host["stale"] is False
        assert isinstance(host["age_seconds"], int) and host["age_seconds"] >= want["age_seconds"]
    assert "from the fact cache: 0 hosts without cached data, 0 older than 86400 s" in cached.stdout
    page = (tmp / "cached" / "index.html").read_text()
    assert "from the fact cache (no host contacted)" in page
    JUNIT_SCHEMA.validate(str(tmp / "cached" / "junit.xml"))
    assert (tmp / "cached" / "junit.xml").read_text() == (tmp / "live" / "junit.xml").read_text().replace(
        live_model["generated_at"], cache_model["generated_at"], 1
    )


def test_missing_and_old_records_are_not_healthy_and_say_why(cache_runs):
    tmp, _cache, _live, _cached, old, _states = cache_runs
    assert old.returncode == 0, old.stdout + old.stderr
    model, hosts = report_model(tmp, "old")
    new = hosts["newhost"]
    assert new["status"] == "unverified" and new["read_at"] is None and new["source"] == "cache"
    assert [(p["title"], p["cause"]) for p in new["problems"]] == [
        ("No cached data", "no cached data: run the report live or site once with a fact cache")
    ]
    stale = hosts["tpmless"]
    assert stale["stale"] is True and stale["read_at"] == "2020-01-01T00:00:00Z" and stale["status"] != "healthy"
    problem = next(p for p in stale["problems"] if p["title"] == "Data is older than tpm_report_max_age")
    assert problem["severity"] == "warning" and problem["cause"].startswith("data is ")
    assert problem["cause"].endswith(" days old (tpm_report_max_age is 24 hours)")
    assert model["summary"]["data"] == {"stale": 1, "not_cached": 1, "oldest_read_at": "2020-01-01T00:00:00Z"}
    assert model["summary"]["status"]["healthy"] == 0
    assert "1 hosts without cached data, 1 older than 86400 s" in old.stdout


def test_the_cache_holds_every_host_and_no_secret(cache_runs):
    _tmp, cache, _live, _cached, _old, _states = cache_runs
    files = _cache_files(cache)
    assert set(files) == {"tpmless", "badmode", "brokenpy", "gone"}  # not newhost: only a cache run saw it
    for name, (path, data) in files.items():
        assert SECRET not in path.read_text(), name
        record = _plain(data["tpmfleet_report_record"])
        assert record["source"] == "live" and record["collection"].startswith("tpmfleet.tpm ")
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", record["read_at"])
        # no module arguments (where a no_log password such as endorsement_auth would be) are kept
        assert "invocation" not in (record["facts"] or {}) and "invocation" not in (record["quote"] or {}), name


def test_a_cache_run_leaves_the_cache_as_it_found_it(cache_runs):
    """No entry added (a host the cache has no record of), none rewritten: the same bytes and mtimes.

    ansible-core 2.21 stores an empty fact cache entry for every host of the play when a run_once
    task's action registers its (empty) cacheable facts, as ansible.builtin.debug does."""
    *_rest, states = cache_runs
    assert len(states["live"]) == 4
    assert states["cached"] == states["live"]
    assert states["old"] == states["before_old"]


def test_a_cache_run_without_a_fact_cache_fails_with_one_message(tmp_path):
    proc = _playbook(tmp_path, tpm_hosts({"h1": {"ansible_connection": "local"}}), "nocache", None,
                     ("-e", "tpm_report_source=cache"))  # fmt: skip
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert out.count('no fact cache is configured (cache plugin "memory")') == 1, out
    assert "ANSIBLE_CACHE_PLUGIN=jsonfile ANSIBLE_CACHE_PLUGIN_CONNECTION=<dir>" in out
    assert not (tmp_path / "nocache").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("tpm_report_quote", "maybe"), ("tpm_attest_export", "sometimes"), ("tpm_attest_export_event_log", "2")],
)
def test_a_switch_that_is_not_a_boolean_is_refused_before_any_host_is_read(tmp_path, variable, value):
    """Ansible's bool filter would turn these into false; the prepare step refuses them by name instead."""
    proc = _playbook(tmp_path, tpm_hosts({"h1": {"ansible_connection": "local"}}), "badswitch", None,
                     ("-e", f"{variable}={value}"))  # fmt: skip
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert out.count(f'{variable} must be true or false, got "{value}"; set it to true or false') == 1, out
    assert "Read the TPM" not in out and "tpm_facts" not in out
    assert not (tmp_path / "badswitch").exists()


def test_a_bad_report_timeout_is_refused_before_any_host_is_read(tmp_path):
    proc = _playbook(tmp_path, tpm_hosts({"h1": {"ansible_connection": "local"}}), "badtimeout", None,
                     ("-e", "tpm_report_timeout=0"))  # fmt: skip
    assert proc.returncode != 0
    # one failed task, once (ansible-core also repeats its message in the error header above it)
    assert proc.stdout.count('"msg": "tpm_report_timeout must be a whole number of seconds from 1 to 3600') == 1, (
        proc.stdout
    )
    assert "failed=1" in proc.stdout
    assert not (tmp_path / "badtimeout").exists()


def test_the_report_timeout_reaches_every_tpm_read_and_quote():
    """tpm_report_timeout is passed, checked, to each task of the report that reads or quotes on a host."""
    plays = yaml.safe_load((REPO / "collections/ansible_collections/tpmfleet/tpm/playbooks/report.yml").read_text())
    tasks = [t for play in plays for t in play.get("tasks", [])]
    host_modules = ("tpmfleet.tpm.tpm_facts", "tpmfleet.tpm.tpm_quote", "tpmfleet.tpm.tpm_attest_evidence")
    calls = [(m, t[m]) for t in tasks for m in host_modules if m in t]
    assert len(calls) == 4, calls
    for module, args in calls:
        assert args.get("timeout") == "{{ __tpm_report_source.timeout | default(omit, true) }}", module
