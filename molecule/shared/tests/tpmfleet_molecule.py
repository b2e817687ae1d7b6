"""What the scenarios' testinfra verifiers share: running playbooks against the scenario's VMs."""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

PROJECT = os.environ.get(
    "MOLECULE_PROJECT_DIRECTORY", os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
)
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SITE = os.path.join(PROJECT, "site.yml")
needs_inventory = pytest.mark.skipif(not INVENTORY, reason="needs molecule's inventory (run through molecule verify)")


def ansible_env(mitogen=False):
    """The environment of every Ansible run of the verifiers: the project's ansible.cfg, Ansible's own strategy
    unless ``mitogen``, and no colour (molecule forces it, and ANSIBLE_FORCE_COLOR wins over NOCOLOR: the recap
    lines must be plain)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": os.path.join(PROJECT, "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    # The scenario's converge may run with Mitogen (molecule passes its
    # provisioner env on to the verifier): a run asked without it gets Ansible's own.
    env.pop("ANSIBLE_STRATEGY", None)
    if mitogen:
        env["ANSIBLE_STRATEGY"] = "tpmfleet.lab.mitogen_linear"
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
        # Mitogen's connection (SSH and its Python bootstrap) must finish within
        # the connect timeout; a busy TCG VM takes longer than the default 10 s.
        env["ANSIBLE_TIMEOUT"] = "60"
    return env


def _run(tool, *args, timeout, mitogen=False):
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), tool), "-i", INVENTORY, *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=timeout, env=ansible_env(mitogen), check=False,
    )  # fmt: skip


def run_module(target, module, module_args, *args, timeout=300):
    """An ad-hoc ``ansible TARGET -m MODULE -a ARGS`` (the project's modules included)."""
    return _run("ansible", target, "-m", module, "-a", module_args, *args, timeout=timeout)


def run_playbook(playbook, *args, limit, mitogen=False, timeout=900):
    """ansible-playbook PLAYBOOK on the scenario's inventory, limited to ``limit``; the CompletedProcess.

    ``mitogen``: use the project's opt-in Mitogen strategy (plugins/strategy), which keeps
    repeated converges affordable under TCG."""
    return _run("ansible-playbook", "--limit", limit, playbook, *args, timeout=timeout, mitogen=mitogen)


def recap(run, name):
    """The PLAY RECAP counters of host ``name``: {'ok': N, 'changed': N, 'failed': N, ...}."""
    lines = [line for line in run.stdout.splitlines() if line.startswith(name + " ") and "ok=" in line]
    assert lines, run.stdout[-4000:] + run.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def junit_cases(path):
    """(classname, name) -> (kind, message) of every test case of a junit.xml: kind "pass", "skipped" or the
    failure/error element's type."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - the report's own output
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        found = failure if failure is not None else error
        if found is not None:
            got = (found.get("type"), found.get("message"))
        elif skipped is not None:
            got = ("skipped", skipped.get("message"))
        else:
            got = ("pass", None)
        cases[(case.get("classname"), case.get("name"))] = got
    return cases
