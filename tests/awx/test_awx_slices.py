"""The sliced AWX path, run by the runner of AWX's execution nodes.

``make test-awx-slices`` (under the lab lock) boots a lab of its own and runs
this file against it (TPMFLEET_AWX_INVENTORY). What it does is what AWX does
for the job templates of docs/awx.md:

1. The collection is built from the checkout and installed into a
   collections directory of the job, as AWX installs a project's
   collections/requirements.yml (the collection's dependencies come from the
   controller's ``ansible`` package).
2. "tpmfleet site" with job slicing 2: AWX makes one job per slice, each with
   an inventory that holds only its hosts (the inventory's hosts by name,
   slice n taking every second host from the n-th: AWX's
   ``hosts[n-1::slice_count]``), groups and variables kept, written as an
   inventory script into the job's private data directory. The two slice
   jobs run at the same time, each by ``ansible-runner`` with process
   isolation (bubblewrap: the job sees /usr, /etc, its private data directory
   and the paths given to it; no container), the fact cache of each job in
   its artifacts (``fact_cache_type: jsonfile``), as on an execution node.
3. AWX's fact storage: after each job, the facts the job left in its fact
   cache are what AWX keeps per host; before the report job, AWX writes the
   kept facts of the job's hosts into the new job's fact cache. The test
   does the same with the files.
4. "tpmfleet report" (not sliced, the whole inventory, extra variable
   ``tpm_report_source: cache``): ONE report, written to a directory exposed
   to the job, covering every host of both slices from the fact cache.

It fails when a slice job fails, when the slices are not a disjoint cover of
the inventory, when a slice's fact cache lacks one of its hosts' report
records (or holds another slice's host), when the report job fails, or when
the report does not show every host from the cache, read by its slice, not
stale, healthy.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY = os.environ.get("TPMFLEET_AWX_INVENTORY")
SLICES = 2


def _tools_venv() -> Path:
    venv = os.environ.get("TPMFLEET_TOOLS_VENV") or str(
        REPO / ".cache" / "collection-tools-py{}.{}".format(*sys.version_info[:2])
    )
    runner = Path(venv) / "bin" / "ansible-runner"
    if not runner.exists():
        pytest.fail(f"ansible-runner not found in {venv}: make test-awx-slices installs it (requirements-tools.txt)")
    return Path(venv)


def _inventory(source: str) -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", source, "--list"], check=True, capture_output=True, text=True, cwd=REPO
    )
    return json.loads(out.stdout)


def _all_hosts(inventory: dict) -> list[str]:
    return sorted(inventory.get("_meta", {}).get("hostvars", {}))


def _slice_inventory(inventory: dict, hosts: list[str]) -> dict:
    """The inventory of one slice: its hosts only, groups and variables kept (AWX's inventory script)."""
    keep = set(hosts)
    sliced = {"_meta": {"hostvars": {h: v for h, v in inventory["_meta"]["hostvars"].items() if h in keep}}}
    for group, data in inventory.items():
        if group == "_meta":
            continue
        entry = dict(data)
        if "hosts" in entry:
            entry["hosts"] = [h for h in entry["hosts"] if h in keep]
        sliced[group] = entry
    return sliced


def _private_data_dir(base: Path, name: str, inventory: dict, extravars: dict, collections: Path) -> Path:
    """A job's private data directory as AWX writes it: project, inventory script, env."""
    pdd = base / name
    shutil.copytree(REPO / "tests/awx/project", pdd / "project")
    (pdd / "inventory").mkdir(parents=True)
    script = pdd / "inventory" / "hosts"
    data = pdd / "inventory.json"  # outside inventory/: ansible-playbook parses every file there
    data.write_text(json.dumps(inventory))
    script.write_text(f"#!/bin/sh\nexec cat {data}\n")
    script.chmod(stat.S_IRWXU)
    (pdd / "env").mkdir()
    (pdd / "home").mkdir()
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    envvars = {
        # The job's collections (AWX: the project's requirements), then the
        # controller's `ansible` package on the Python path for the dependencies.
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_CONFIG": str(pdd / "project" / "ansible.cfg"),
        "HOME": str(pdd / "home"),
        "ANSIBLE_LOCAL_TEMP": str(pdd / "home" / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(pdd / "home" / "cp"),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0",
    }
    (pdd / "env" / "envvars").write_text(json.dumps(envvars))
    (pdd / "env" / "settings").write_text(json.dumps({"fact_cache_type": "jsonfile"}))
    return pdd


def _start_job(tools: Path, pdd: Path, ident: str, playbook: str, show: list[Path], read_only: list[Path]):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{Path(sys.prefix).resolve() / 'bin'}:{env['PATH']}"
    cmd = [
        str(tools / "bin" / "ansible-runner"),
        "run",
        str(pdd),
        "--ident",
        ident,
        "-p",
        playbook,
        "--process-isolation",
        "--process-isolation-executable",
        "bwrap",
        "--process-isolation-path",
        str(pdd / "home"),
    ]
    # Each option takes its list at once (a second use would replace the first).
    if show:
        cmd += ["--process-isolation-show-paths", *map(str, show)]
    cmd += ["--process-isolation-ro-paths", *map(str, read_only)]
    log = (pdd / f"{ident}.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log


def _finish(pdd: Path, ident: str, process, log) -> dict:
    rc = process.wait()
    log.close()
    artifacts = pdd / "artifacts" / ident
    status = (artifacts / "status").read_text().strip() if (artifacts / "status").exists() else "missing"
    stats = {}
    for event_file in sorted((artifacts / "job_events").glob("*.json")):
        event = json.loads(event_file.read_text())
        if event.get("event") == "playbook_on_stats":
            stats = event["event_data"]
    if rc != 0 or status != "successful":
        tail = (pdd / f"{ident}.log").read_text()[-6000:]
        pytest.fail(f"job {ident}: ansible-runner rc={rc}, status {status!r}\n{tail}")
    return stats


def _cached_host(name: str, hosts: list[str]) -> str:
    """The host a jsonfile fact cache file is for: ``<host>``, or ``s1_<host>`` (ansible-core 2.19+)."""
    for host in hosts:
        if name in (host, f"s1_{host}"):
            return host
    return f"<not an inventory host: {name}>"


def _cached_facts(path: Path) -> dict:
    """The facts of a jsonfile fact cache file, with or without ansible-core 2.19's payload wrapper."""
    data = json.loads(path.read_text())
    if isinstance(data, dict) and set(data) == {"__payload__"}:
        data = json.loads(data["__payload__"])
    return _untagged(data)


def _untagged(value):
    """Values without ansible-core 2.19's serialized tags (``{"__ansible_type": ..., "value": ...}``)."""
    if isinstance(value, dict):
        if "__ansible_type" in value:
            if "value" in value:
                return _untagged(value["value"])
            value = {k: v for k, v in value.items() if k not in ("__ansible_type", "tags")}
        return {k: _untagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    return value


def _sliced_then_one_cached_report(tmp_path: Path, inventory: dict, slice_playbook: str):
    """Slice jobs of slice_playbook at once, AWX's fact storage, one report job from the cache.

    Returns the hosts, what the slices stored per host, the report's hosts by
    name and the seconds of the slice jobs (together) and of the report job.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    tools = _tools_venv()
    hosts = _all_hosts(inventory)
    assert len(hosts) >= SLICES, f"the lab inventory needs at least {SLICES} hosts, has {hosts}"
    slices = [hosts[n::SLICES] for n in range(SLICES)]
    assert sorted(h for s in slices for h in s) == hosts and all(slices)

    # 1. The collection from the checkout, installed for the jobs.
    collections = tmp_path / "collections"
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "collections/ansible_collections/tpmfleet/tpm", "--output-path",
         str(tmp_path / "dist")],
        check=True, cwd=REPO, capture_output=True,
    )  # fmt: skip
    tarball = next((tmp_path / "dist").glob("tpmfleet-tpm-*.tar.gz"))
    subprocess.run(
        ["ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections), "--no-deps", "--force"],
        check=True, capture_output=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
    )  # fmt: skip
    # (--force, from outside the checkout: else the checkout's own tpmfleet.tpm counts as installed.)
    assert (collections / "ansible_collections/tpmfleet/tpm/MANIFEST.json").is_file()

    # What a job may see beyond its private data directory: the controller's
    # Python and packages, the tools venv (ansible-runner's callback), the
    # collections and the lab's SSH keys (the machine credential).
    hostvars = inventory["_meta"]["hostvars"].values()
    keys = sorted(
        {
            Path(v["ansible_ssh_private_key_file"]).resolve().parent
            for v in hostvars
            if v.get("ansible_ssh_private_key_file")
        }
    )
    read_only = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), tools.resolve(), collections, *keys]

    # 2. The two slice jobs, at the same time.
    started = time.monotonic()
    jobs = []
    for n, slice_hosts in enumerate(slices, start=1):
        pdd = _private_data_dir(tmp_path, f"slice{n}", _slice_inventory(inventory, slice_hosts), {}, collections)
        jobs.append((pdd, f"slice{n}", *_start_job(tools, pdd, f"slice{n}", slice_playbook, [], read_only)))
    recaps = [_finish(pdd, ident, process, log) for pdd, ident, process, log in jobs]
    slice_seconds = time.monotonic() - started

    # Each slice ran its own hosts only, every one ok and none failed.
    for slice_hosts, stats in zip(slices, recaps, strict=True):
        assert sorted(stats.get("ok", {})) == slice_hosts, stats
        assert not stats.get("failures") and not stats.get("dark"), stats

    # 3. AWX's fact storage: what each job's fact cache holds per host. The
    # files are kept as ansible-core wrote them (2.19 and later name them
    # s1_<host> and wrap the facts in a JSON payload; AWX's fact storage must
    # read the format of its EE's ansible-core) and handed to the report job.
    stored = {}
    for (pdd, ident, *_), slice_hosts in zip(jobs, slices, strict=True):
        cache = pdd / "artifacts" / ident / "fact_cache"
        files = {_cached_host(p.name, hosts): p for p in cache.iterdir()}
        assert sorted(files) == slice_hosts, f"{ident}'s fact cache holds {sorted(files)}, its hosts are {slice_hosts}"
        for host, path in files.items():
            record = _cached_facts(path).get("tpmfleet_report_record")
            assert record and record["source"] == "live", f"{host}: no report record in {ident}'s fact cache"
            stored[host] = (path, record)
    assert sorted(stored) == hosts

    # 4. One report job, not sliced, over the whole inventory, from the cache.
    report_dir = tmp_path / "published-report"
    report_dir.mkdir(parents=True)
    pdd = _private_data_dir(
        tmp_path, "report", inventory, {"tpm_report_source": "cache", "tpm_report_dir": str(report_dir)}, collections
    )
    cache = pdd / "artifacts" / "report" / "fact_cache"
    cache.mkdir(parents=True)
    for path, _ in stored.values():
        shutil.copy2(path, cache / path.name)
    started = time.monotonic()
    process, log = _start_job(tools, pdd, "report", "report.yml", [report_dir], read_only)
    _finish(pdd, "report", process, log)
    report_seconds = time.monotonic() - started

    fleet = json.loads((report_dir / "fleet.json").read_text())
    by_name = {h["name"]: h for h in fleet["hosts"]}
    assert sorted(by_name) == hosts, f"the report covers {sorted(by_name)}, the inventory {hosts}"
    for host in hosts:
        entry = by_name[host]
        assert entry["source"] == "cache", entry
        assert entry["read_at"] == stored[host][1]["read_at"], entry
        assert entry["stale"] is False, entry
    # One report: the published directory holds the cache job's files only.
    assert sorted(p.name for p in report_dir.iterdir() if p.suffix in (".json", ".html", ".xml")) == [
        "fleet.json",
        "index.html",
        "junit.xml",
    ]
    print(
        f"\nawx slices: {len(hosts)} hosts in {SLICES} slices {slices} ({slice_playbook}): slice jobs "
        f"{slice_seconds:.0f} s (together), report job from the fact cache {report_seconds:.0f} s"
    )
    return hosts, stored, by_name


@pytest.mark.skipif(not INVENTORY, reason="needs a lab inventory (make test-awx-slices)")
def test_site_in_two_slices_then_one_report_from_the_fact_cache(tmp_path):
    """The lab: site (and the report's reads) in two slices, then one report, every host healthy."""
    hosts, _, by_name = _sliced_then_one_cached_report(tmp_path, _inventory(INVENTORY), "site.yml")
    for host in hosts:
        assert by_name[host]["status"] == "healthy", json.dumps(by_name[host], indent=1)[:3000]


def test_report_reads_in_two_slices_then_one_report_from_the_fact_cache(tmp_path):
    """Without a lab: the report's reads (read-only) in two slices of two local hosts, then one report.

    The hosts are this machine over the local connection (no TPM here): the
    slices' reads change nothing, and the point is the path of the records
    (slice jobs, AWX's fact storage, one report job from the cache), not the
    hosts' health. A host the report found no record for would be unverified
    with "No cached data"; each must carry its slice's record instead.
    """
    python = str(Path(sys.prefix).resolve() / "bin" / "python")
    source = tmp_path / "local.yml"
    source.write_text(
        json.dumps(
            {
                "tpm_hosts": {
                    "hosts": {f"awxlocal{n}": None for n in range(1, 4)},
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": python,
                        "tpm_quote_mode": "kernel_rm",
                    },
                }
            }
        )
    )
    hosts, _, by_name = _sliced_then_one_cached_report(tmp_path / "jobs", _inventory(str(source)), "report.yml")
    assert hosts == ["awxlocal1", "awxlocal2", "awxlocal3"]
    for host in hosts:
        assert "No cached data" not in json.dumps(by_name[host]["problems"]), by_name[host]["problems"]
