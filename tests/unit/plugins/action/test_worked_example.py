"""docs/architecture.md's worked example is true: a setting added to a role in three files (its argument spec, its
default, its file in plugins/plugin_utils/roles/) is checked by the preflight's one check and by the role's own,
with nothing else changed. The change is made in a temporary copy of the collection and run by Ansible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import COLLECTION, REPO

HOSTS = {
    "good": {"tpm_udev_comment": "TPM nodes, managed by tpmfleet"},
    "newline": {"tpm_udev_comment": "one\ntwo"},
    "typed": {"tpm_udev_comment": ["a list"]},
}


def _add_the_setting(collection):
    """The three changes of the worked example, as a developer would make them."""
    role = collection / "roles" / "tpm_udev"
    spec_file = role / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["argument_specs"]["main"]["options"]["tpm_udev_comment"] = {
        "type": "str", "default": "", "description": "One line written at the top of the rules file."}  # fmt: skip
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    defaults = role / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + 'tpm_udev_comment: ""\n')
    module = collection / "plugins" / "plugin_utils" / "roles" / "tpm_udev.py"
    text = module.read_text()
    old_inputs = 'INPUTS = ("tpm_udev_mode", "tpm_udev_rules_path")'
    assert old_inputs in text
    text = text.replace(old_inputs, 'INPUTS = ("tpm_udev_mode", "tpm_udev_rules_path", "tpm_udev_comment")')
    text = text.replace("import (\n", "import (\n    CONTROL_RE,\n", 1)
    text += """

_checks = input_errors


def input_errors(v):
    errors = _checks(v)
    comment = v.get("tpm_udev_comment")
    if not isinstance(comment, str) or CONTROL_RE.search(comment):
        errors.append(f"tpm_udev_comment must be one line of text (got {shown(comment)}).")
    return errors
"""
    module.write_text(text)


def _play(tmp_path, collections):
    tasks = [
        {"name": "Put the role's variables in the play as the preflight does", "ansible.builtin.include_role": {
            "name": "tpmfleet.tpm.tpm_udev", "tasks_from": "variables", "public": True}},
        {"name": "Check as the preflight does", "tpmfleet.tpm.settings_check": {"roles": ["tpm_udev"]},
         "ignore_errors": True},
        {"name": "Check as the role does", "ansible.builtin.include_role": {
            "name": "tpmfleet.tpm.tpm_udev", "tasks_from": "validate"}},
    ]  # fmt: skip
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": HOSTS, "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                 "tpm_quote_mode": "kernel_rm"}}}))  # fmt: skip
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=f"{collections}:~/.ansible/collections:/usr/share/ansible/collections",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(play)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    try:
        return json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])[0]
    except ValueError:
        pytest.fail(f"unparseable output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _results(out, host):
    return {t["task"]["name"]: t["hosts"][host] for p in out["plays"] for t in p["tasks"] if host in t["hosts"]}


def test_a_setting_added_in_three_files_is_checked_by_the_preflight_and_by_the_role(tmp_path):
    collections = tmp_path / "collections"
    copy = collections / "ansible_collections" / "tpmfleet" / "tpm"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    _add_the_setting(copy)
    changed = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()
                     and before.get(p.relative_to(copy)) != p.read_bytes())  # fmt: skip
    assert changed == [
        "plugins/plugin_utils/roles/tpm_udev.py",
        "roles/tpm_udev/defaults/main.yml",
        "roles/tpm_udev/meta/argument_specs.yml",
    ]
    out = _play(tmp_path, collections)

    good = _results(out, "good")
    assert not good["Check as the preflight does"].get("failed"), good
    assert not good["tpmfleet.tpm.tpm_udev : Check the tpm_udev settings"].get("failed"), good

    message = 'tpm_udev_comment must be one line of text (got "one\\ntwo").'
    bad = _results(out, "newline")
    assert bad["Check as the preflight does"]["msg"] == message
    assert bad["tpmfleet.tpm.tpm_udev : Check the tpm_udev settings"]["msg"] == message

    # The argument spec (type str) lets a list through, as Ansible's own check does; the role's check refuses it.
    typed = _results(out, "typed")["Check as the preflight does"]["msg"]
    assert typed == 'tpm_udev_comment must be one line of text (got ["a list"]).', typed
