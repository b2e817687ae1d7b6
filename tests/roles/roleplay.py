# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one role (or some of its tasks) on the controller with ansible-playbook; read its JSON result."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


def run_play(tmp_path, tasks_or_roles, variables, *args, check_mode=False, env=None, hosts=None):
    """ansible-playbook on the controller (local connection); ``tasks_or_roles``: {"roles": [...]} or
    {"tasks": [...]}. ``hosts``: {name: host vars}, every one of them the controller, played in parallel
    (default: localhost alone).

    Returns (rc, the ansible.posix.json document)."""
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump([{"name": "Run on the controller", "hosts": "all", "gather_facts": False, **tasks_or_roles}])
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"hosts": hosts or {"localhost": {}},
                     "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
        )
    )  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
        "ANSIBLE_STRATEGY": "linear",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_FORKS": str(max(len(hosts or {}), 5)),
        # The caller's settings win (a stand-in's PATH, a roles path, the forks).
        **(env or {}),
    }
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i", str(inventory), "-e", f"@{tmp_path / 'vars.json'}", str(play), *args,
    ]  # fmt: skip
    if check_mode:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600, check=False)
    try:
        out, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        raise AssertionError(f"unparseable output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None
    return proc.returncode, out


def stand_in(tmp_path, name, body, path=None):
    """An executable shell script ``name`` (``body`` after its #! line) in tmp_path/bin, standing in for a
    host tool; returns a PATH with it first, then ``path`` (default: the controller's PATH)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return f"{bindir}{os.pathsep}{os.environ['PATH'] if path is None else path}"


def run_role(tmp_path, role, variables, *args, check_mode=False, env=None, hosts=None):
    return run_play(tmp_path, {"roles": [{"role": role}]}, variables, *args, check_mode=check_mode, env=env,
                    hosts=hosts)  # fmt: skip


def tasks(out, host="localhost"):
    """(task name, the host's result) for every task that ran on the host."""
    return [(t["task"]["name"], t["hosts"][host]) for play in out["plays"] for t in play["tasks"] if host in t["hosts"]]


def messages(out, host="localhost"):
    return " ".join(str(r.get("msg", "")) for _, r in tasks(out, host))


def failed_tasks(out, host="localhost"):
    return [(name, r.get("msg", "")) for name, r in tasks(out, host) if r.get("failed") and not r.get("ignore_errors")]


def changed(out, host="localhost"):
    return out["stats"].get(host, {}).get("changed", 0)


def state(*paths, below=()):
    """Digest, owner, group and mode of each path (links not followed), and of everything below the
    directories in ``below``."""
    found = {}
    items = [Path(p) for p in paths]
    for top in map(Path, below):
        items += [top, *sorted(top.rglob("*"))]
    for item in items:
        if not os.path.lexists(item):
            found[str(item)] = None
            continue
        st = item.lstat()
        if item.is_symlink():
            content = "-> " + os.readlink(item)
        elif item.is_file():
            content = hashlib.sha256(item.read_bytes()).hexdigest()
        else:
            content = "dir"
        found[str(item)] = (content, st.st_uid, st.st_gid, oct(st.st_mode))
    return found


# The preflight's one check of every role, whose result also holds each role's plan (changes, entries).
EVERY_ROLE = "tpmfleet.tpm.tpm_preflight : Check the settings of every role before anything changes"


def preflight_plan(tmp_path, variables, role, **kwargs):
    """What the preflight's plan says ``role``'s apply would change, and what its entry runs (``entries``)."""
    preflight = {
        "name": "Validate and plan every role",
        "ansible.builtin.include_role": {"name": "tpmfleet.tpm.tpm_preflight"},
    }
    rc, out = run_play(tmp_path, {"tasks": [preflight]}, variables, **kwargs)
    assert rc == 0, failed_tasks(out)
    (check,) = [r for n, r in tasks(out) if n == EVERY_ROLE]
    return check["changes"][role], check["entries"][role]
