"""The report from a real Redis server through the community.general.redis cache plugin (the `ansible` package).

The test starts Debian's redis-server on a free loopback port with a password and a temporary directory
(nothing saved to disk), runs playbooks/report.yml live with the Redis fact cache, then with
``tpm_report_source: cache`` with every host behind a closed port: the same statuses and problems, each
host's data age, no secret in Redis, and no key added or changed by the cache run.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest
from conftest import free_port_pair
from report_runs import report_model, run_report, tpm_hosts

redis = pytest.importorskip("redis", reason="the python redis client is not installed (requirements.txt)")

REDIS_SERVER = shutil.which("redis-server")
SECRET = "endorsement-secret-8e41a7"  # noqa: S105 - a marker that must never reach the fact cache
PREFIX = "tpmfleet_test_"
NAMES = ("tpmless", "badmode", "brokenpy", "gone")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """redis-server on 127.0.0.1:<free port>, password-protected, nothing persisted; (client, connection)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed: scripts/setup.sh installs Debian's redis-server")
    tmp = tmp_path_factory.mktemp("redis")
    port = free_port_pair()
    password = secrets.token_hex(16)
    proc = subprocess.Popen(
        [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp), "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--requirepass", password,
         "--logfile", str(tmp / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.StrictRedis(host="127.0.0.1", port=port, db=0, password=password)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (tmp / "redis.log").read_text() if (tmp / "redis.log").exists() else ""
                    pytest.fail(f"redis-server did not start (exit {proc.poll()}): {log[-2000:]}")
                time.sleep(0.1)
        yield client, f"127.0.0.1:{port}:0:{password}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _playbook(tmp, inventory, out, connection, extra=()):
    """The report over ``inventory`` through the Redis fact cache at ``connection``."""
    cache_env = {"ANSIBLE_CACHE_PLUGIN": "community.general.redis", "ANSIBLE_CACHE_PLUGIN_CONNECTION": connection,
                 "ANSIBLE_CACHE_PLUGIN_PREFIX": PREFIX, "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0"}  # fmt: skip
    return run_report(tmp, inventory, out, cache_env, extra)


def _host_key(key):
    """The host of a cache key: the prefix, then (ansible-core 2.19+) the cache's serialization version."""
    return re.sub(r"^s[0-9]+_", "", key[len(PREFIX) :])


def _plain(value):
    """A cached value without ansible-core's envelope and type tags."""
    if isinstance(value, dict):
        if "__payload__" in value:
            return _plain(json.loads(value["__payload__"]))
        if "__ansible_type" in value and "value" in value:
            return _plain(value["value"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _redis_state(client):
    """Every key of the test's prefix and the plugin's keyset: key -> value (the keyset with its scores)."""
    state = {k.decode(): client.get(k) for k in client.scan_iter(match=PREFIX + "*")}
    state["ansible_cache_keys"] = client.zrange("ansible_cache_keys", 0, -1, withscores=True)
    return state


@pytest.fixture(scope="module")
def redis_runs(tmp_path_factory, redis_server):
    client, connection = redis_server
    tmp = tmp_path_factory.mktemp("report-redis")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "tpm_verify_endorsement_auth": SECRET}  # fmt: skip
    live = _playbook(tmp, tpm_hosts({
        "tpmless": dict(local, tpm_quote_mode="direct", tpm_kernel_require_device=False),
        "badmode": dict(local, tpm_quote_mode="fast"),
        "brokenpy": dict(local, tpm_quote_mode="direct", ansible_python_interpreter="/usr/bin/false"),
        "gone": {"ansible_host": "127.0.0.1", "ansible_port": free_port_pair(), "ansible_user": "nobody",
                 "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5"},
    }), "live", connection)  # fmt: skip
    after_live = _redis_state(client)
    closed = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port_pair(),
              "ansible_user": "nobody", "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ConnectTimeout=5",
              "tpm_quote_mode": "abrmd"}  # fmt: skip
    cached = _playbook(tmp, tpm_hosts(dict.fromkeys((*NAMES, "newhost"), closed)), "cached", connection,
                       ("-e", "tpm_report_source=cache"))  # fmt: skip
    return tmp, live, cached, after_live, _redis_state(client)


def test_the_live_run_stores_every_host_in_redis_without_a_secret(redis_runs):
    _tmp, live, _cached, after_live, _after = redis_runs
    assert live.returncode == 0, live.stdout + live.stderr
    keys = {_host_key(k): k for k in after_live if k != "ansible_cache_keys"}
    assert set(keys) == set(NAMES)
    assert {_host_key(PREFIX + m.decode()) for m, _score in after_live["ansible_cache_keys"]} == set(NAMES)
    for name in NAMES:
        raw = after_live[keys[name]].decode()
        assert SECRET not in raw, name
        record = _plain(json.loads(raw))["tpmfleet_report_record"]
        assert record["source"] == "live" and record["collection"].startswith("tpmfleet.tpm "), name
        assert "invocation" not in (record["facts"] or {}), name


def test_a_cache_run_from_redis_matches_the_live_run_and_names_each_hosts_age(redis_runs):
    tmp, _live, cached, _after_live, _after = redis_runs
    assert cached.returncode == 0, cached.stdout + cached.stderr
    # every host's port is closed: a task that reached for one would have made it unreachable or failed
    recap = [x for x in cached.stdout[cached.stdout.index("PLAY RECAP") :].splitlines() if "ok=" in x]
    assert recap and all("unreachable=0" in x and "failed=0" in x and "changed=0" in x for x in recap), recap
    live_model, live_hosts = report_model(tmp, "live")
    cache_model, cache_hosts = report_model(tmp, "cached")
    assert cache_model["options"]["source"] == "cache"
    assert set(cache_hosts) == {*NAMES, "newhost"}
    for name in NAMES:
        host, want = cache_hosts[name], live_hosts[name]
        for key in ("status", "mode", "observed_mode", "reachable", "tpm", "problems", "checks"):
            assert host[key] == want[key], (name, key)
        assert (host["source"], host["read_at"], host["stale"]) == ("cache", want["read_at"], False), name
        assert isinstance(host["age_seconds"], int) and host["age_seconds"] >= 0, name
    assert {n: h["status"] for n, h in cache_hosts.items()} == {
        "tpmless": "no_tpm", "badmode": "failing", "brokenpy": "failing", "gone": "unreachable",
        "newhost": "unverified",
    }  # fmt: skip
    assert cache_hosts["newhost"]["problems"][0]["title"] == "No cached data"
    assert {g["id"]: g["hosts"] for g in cache_model["problem_groups"] if "newhost" not in g["hosts"]} == {
        g["id"]: g["hosts"] for g in live_model["problem_groups"]
    }
    assert "from the fact cache: 1 hosts without cached data, 0 older than 86400 s" in cached.stdout


def test_a_cache_run_leaves_redis_as_it_found_it(redis_runs):
    _tmp, _live, _cached, after_live, after = redis_runs
    assert after == after_live  # no key for newhost, no entry rewritten (the keyset's scores are write times)
