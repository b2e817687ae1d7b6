"""remote_calls: a small playbook on two local hosts, counted by the callback, checked task by task."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from conftest import REPO

TASKS = [
    {"name": "One module", "ansible.builtin.ping": {}},
    {"name": "Controller only", "ansible.builtin.set_fact": {"x": 1}},
    {"name": "Controller only too", "ansible.builtin.debug": {"msg": "{{ x }}"}},
    {"name": "Checked on the controller", "ansible.builtin.assert": {"that": "x == 1", "quiet": True}},
    {"name": "Three items", "ansible.builtin.command": {"argv": ["true", "{{ item }}"]}, "loop": [1, 2, 3],
     "changed_when": False},
    {"name": "Skipped", "ansible.builtin.command": {"argv": ["true"]}, "when": "x == 2"},
    {"name": "Fails, ignored", "ansible.builtin.command": {"argv": ["false"]}, "ignore_errors": True},
    {"name": "Succeeds on the second try",
     "ansible.builtin.shell": "test -e {{ mark }} || { touch {{ mark }}; exit 1; }",
     "vars": {"mark": "{{ flag }}-{{ inventory_hostname }}"},
     "register": "r", "until": "r is success", "retries": 3, "delay": 0, "changed_when": False},
    {"name": "Two modules",
     "ansible.builtin.copy": {"content": "x\n", "dest": "{{ flag }}-{{ inventory_hostname }}.txt", "mode": "0644"}},
    {"name": "On the controller for the host", "ansible.builtin.ping": {}, "delegate_to": "localhost"},
    {"name": "Included", "ansible.builtin.include_tasks": "inner.yml"},
    {"name": "Meta", "ansible.builtin.meta": "noop"},
    # An action that says how many modules it ran: none (all it needs is given), then one (it reads the users).
    {"name": "Checked without the host", "tpmfleet.tpm.settings_check": {"role": "tpm_udev"},
     "vars": {"tpm_udev_mode": "0660", "tpm_udev_rules_path": "/etc/udev/rules.d/70-tpmfleet-tpm.rules"}},
    {"name": "Checked against the host", "tpmfleet.tpm.settings_check": {"role": "tpm_verify"},
     "vars": {"tpm_verify_user": "root", "tpm_verify_quote_count": 2, "tpm_verify_busy_retries": 5,
              "tpm_verify_timeout": 60, "tpm_quote_mode_tss_user": "tss"}},
]  # fmt: skip
INNER = [{"name": "Inner module", "ansible.builtin.ping": {}}]


def test_counts_the_module_executions_per_host(tmp_path):
    (tmp_path / "inner.yml").write_text(yaml.safe_dump(INNER))
    play = [{"name": "Count", "hosts": "all", "gather_facts": False, "vars": {"flag": str(tmp_path / "flag")},
             "tasks": TASKS}]  # fmt: skip
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"one": {}, "two": {}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))  # fmt: skip
    figures = tmp_path / "calls.json"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CALLBACKS_ENABLED="tpmfleet.lab.remote_calls",
        TPMFLEET_REMOTE_CALLS_FILE=str(figures),
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(tmp_path / "play.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = json.loads(figures.read_text())["hosts"]
    assert sorted(hosts) == ["one", "two"]
    for name, h in hosts.items():
        # ping 1, three items 3, the ignored failure 1, a retry and the success 2, copy 1, the included ping 1,
        # the check that read the users 1
        assert h["tasks"] == 10, (name, h)
        assert h["executions"] == 11, (name, h)  # copy: a stat, then copy
        assert h["delegated"] == 1
        # Every task but the meta one (which sends no result), the included one too; the skipped one among them.
        assert (h["evaluated"], h["skipped"]) == (14, 1), (name, h)
        # Changed, as in Ansible's recap: the three items' task (its command items are changed_when false) no,
        # the copy yes.
        assert h["changed"] == 1, (name, h)
        assert h["by_task"]["Three items"] == 3 and h["by_task"]["Succeeds on the second try"] == 2
        assert not {"Controller only", "Controller only too", "Checked on the controller", "Skipped", "Included",
                    "Meta"} & set(h["by_task"])  # fmt: skip
        assert h["by_action"] == {"ping": 2, "command": 4, "shell": 2, "copy": 1, "tpmfleet.tpm.settings_check": 1}
        assert "Checked without the host" not in h["by_task"] and h["by_task"]["Checked against the host"] == 1
    assert (
        "remote calls: one: 11 module executions (10 module tasks, 1 delegated; 14 tasks evaluated, 1 skipped, "
        "1 changed)"
    ) in proc.stdout
