"""The pull timer's pieces on the controller: the wrapper (playbooks/files/tpmfleet-pull) running the real
ansible-pull of a local git repository with the tpmfleet.tpm.last_run callback, and pull_timer.yml refusing bad
settings before it touches a host. (``make test-pull`` runs the whole timer on a lab VM.)"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "playbooks" / "files" / "tpmfleet-pull"
CALLBACK = REPO / "collections" / "ansible_collections" / "tpmfleet" / "tpm" / "plugins" / "callback" / "last_run.py"
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- name: Converge
  hosts: all
  gather_facts: false
  tasks:
    - name: Publish a quote mode as the tpm_quote_mode role does
      ansible.builtin.set_fact:
        tpm_quote_mode_profile: {mode: kernel_rm}
    - name: Change something
      ansible.builtin.command: /bin/true
      changed_when: true
    - name: Fail on request
      ansible.builtin.fail:
        msg: failing on request
      when: fail_on_request | default(false) | bool
"""


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def pull(tmp_path):
    """A repository to pull (a playbook, its ansible.cfg finding the collection) and the wrapper's settings."""
    source = tmp_path / "source"
    source.mkdir()
    deps = next(p for p in sys.path if (Path(p) / "ansible_collections" / "community" / "general").is_dir())
    (source / "ansible.cfg").write_text(
        f"[defaults]\ninventory = inventory/lab\ncollections_path = {REPO / 'collections'}:{deps}\n"
    )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (source / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    (source / "pull.yml").write_text(PLAYBOOK)
    _git("init", "-q", "-b", "main", cwd=source)
    _git("add", ".", cwd=source)
    _git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "pull", cwd=source)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True).stdout.strip()
    # The callback where pull_timer.yml installs it: beside the wrapper, under the name the wrapper enables.
    callbacks = tmp_path / "callback"
    callbacks.mkdir()
    shutil.copyfile(CALLBACK, callbacks / "tpmfleet_last_run.py")
    settings = {
        "url": f"file://{source}",
        "branch": "main",
        "directory": str(tmp_path / "checkout"),
        "inventory": "hosts.yml",
        "playbook": "pull.yml",
        "ansible_pull": str(BIN / "ansible-pull"),
        "extra_args": [],
        "last_run_path": str(tmp_path / "state" / "last-run.json"),
        "callback_plugins": str(callbacks),
    }
    return tmp_path, settings, commit


def run_wrapper(tmp_path, settings, **extra_env):
    config = tmp_path / "pull-service.json"
    config.write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        TPMFLEET_PULL_CONFIG=str(config), TPMFLEET_PULL_LOCK=str(tmp_path / "pull.lock"), PATH=f"{BIN}:{env['PATH']}"
    )
    env.update(extra_env)
    # Run from / as systemd runs the service: not from a directory whose ansible.cfg would find the collection.
    run = subprocess.run(
        ["/usr/bin/python3", str(WRAPPER)], env=env, cwd="/", capture_output=True, text=True, timeout=300, check=False
    )
    record_path = Path(settings["last_run_path"])
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    return run, record


def test_a_run_is_recorded_atomically_with_its_commit_mode_and_counts(pull):
    tmp_path, settings, commit = pull
    run, record = run_wrapper(tmp_path, settings)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    # No warning of Ansible's nor of Python's: the checkout step loads the callback too (it runs from /, like the
    # service, where no ansible.cfg finds the collection).
    assert "[WARNING]" not in out and "Warning: " not in out, out
    assert record["result"] == "ok" and record["rc"] == 0 and record["source"] == "callback", record
    assert (record["changed"], record["failed"], record["unreachable"]) == (1, 0, 0), record
    assert record["commit"] == commit and record["quote_mode"] == "kernel_rm", record
    assert record["run_id"] and f"run {record['run_id']}: rc=0, result=ok" in out, out
    path = Path(settings["last_run_path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["last-run.json"]  # no temporary file left
    assert "file://" not in path.read_text()  # not the URL (it may carry credentials)


def test_a_failed_playbook_fails_the_run_and_is_recorded(pull):
    tmp_path, settings, _commit = pull
    run, record = run_wrapper(tmp_path, {**settings, "extra_args": ["-e", "fail_on_request=true"]})
    assert run.returncode == 2, run.stdout + run.stderr
    assert record["result"] == "failed" and record["failed"] == 1 and record["rc"] == 2, record


def test_a_run_that_ends_before_the_playbook_is_recorded_by_the_wrapper(pull):
    tmp_path, settings, _commit = pull
    run, record = run_wrapper(tmp_path, {**settings, "url": f"file://{tmp_path}/no-such-repository"})
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "before the run's end was recorded" in out, out
    assert record["result"] == "failed" and record["source"] == "tpmfleet-pull" and record["rc"] != 0, record


def test_a_run_that_records_nothing_is_a_failure_even_when_ansible_pull_exits_0(pull, tmp_path):
    _tmp, settings, _commit = pull
    fake = tmp_path / "fake-ansible-pull"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    run, record = run_wrapper(tmp_path, {**settings, "ansible_pull": str(fake)})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "exited 0 but the run recorded nothing" in run.stdout
    assert record["result"] == "failed" and record["rc"] == 1, record


def test_a_second_run_while_one_holds_the_lock_does_nothing_and_fails(pull):
    tmp_path, settings, _commit = pull
    with open(tmp_path / "pull.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run, record = run_wrapper(tmp_path, settings)
    assert run.returncode == 75 and "this run did nothing" in run.stdout, run.stdout + run.stderr
    assert record is None


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({}, "tpmfleet_pull_url"),
        ({"tpmfleet_pull_url": "https://git.example.net/t.git", "tpmfleet_pull_random_delay": "15 min"}, "15 min"),
        ({"tpmfleet_pull_url": "https://git.example.net/t.git", "tpmfleet_pull_branch": "--upload-pack=x"}, "branch"),
        ({"tpmfleet_pull_url": "https://git.example.net/t.git\n"}, "tpmfleet_pull_url"),
        ({"tpmfleet_pull_url": "https://git.example.net/t.git", "tpmfleet_pull_on_calendar": "hourly\nx"}, "calendar"),
    ],
)
def test_bad_settings_are_refused_before_any_host_is_touched(tmp_path, extra, name):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"tpm_hosts": {"hosts": {"closed-1": {"ansible_host": "127.0.0.1", "ansible_port": 9}}}})
    )
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{tmp_path / 'extra.json'}",
         str(REPO / "playbooks" / "pull_timer.yml")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert name in out and "UNREACHABLE" not in out and "Traceback" not in out, out


def test_good_settings_pass_the_checks_and_go_on_to_the_host(tmp_path):
    """The control for the test above: valid settings get past the checks to the (closed) host."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"tpm_hosts": {"hosts": {"closed-1": {"ansible_host": "127.0.0.1", "ansible_port": 9}}}})
    )
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_TIMEOUT="5")
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", "tpmfleet_pull_url=https://git.example.net/t.git",
         str(REPO / "playbooks" / "pull_timer.yml")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert "UNREACHABLE" in out and "Invalid pull timer settings" not in out, out


def test_settings_from_the_inventory_are_used_and_checked(tmp_path):
    """A setting in host_vars/group_vars is not hidden by the playbook's defaults."""
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": 9, "tpmfleet_pull_random_delay": "15 min"}
    inventory.write_text(yaml.safe_dump({"tpm_hosts": {"hosts": {"closed-1": host}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_TIMEOUT="5")
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", "tpmfleet_pull_url=https://git.example.net/t.git",
         str(REPO / "playbooks" / "pull_timer.yml")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode != 0 and 'tpmfleet_pull_random_delay="15 min"' in out, out
    assert "UNREACHABLE" not in out, out
