"""The real report playbook run from the unit tests, with or without a fact cache (shared by the jsonfile
and the Redis cache tests)."""

from __future__ import annotations

import json
import os
import subprocess

import jsonschema
import yaml
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report
from conftest import ANSIBLE, REPO

PLAYBOOK = str(ANSIBLE) + "-playbook"
# The fact-cache settings a run takes only from cache_env, never from the caller's environment.
CACHE_ENV = (
    "ANSIBLE_CACHE_PLUGIN",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION",
    "ANSIBLE_CACHE_PLUGIN_PREFIX",
    "ANSIBLE_CACHE_PLUGIN_TIMEOUT",
)


def run_report(tmp, inventory, out, cache_env=None, extra=()):
    """playbooks/report.yml over ``inventory`` (written to tmp/<out>.yml), the report in tmp/<out>/."""
    (tmp / f"{out}.yml").write_text(yaml.safe_dump(inventory))
    env = {k: v for k, v in os.environ.items() if k not in CACHE_ENV}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **(cache_env or {}))
    return subprocess.run(
        [PLAYBOOK, "-i", str(tmp / f"{out}.yml"), "playbooks/report.yml", "-e", f"tpm_report_dir={tmp / out}",
         *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def tpm_hosts(inventory_hosts):
    """An inventory with ``inventory_hosts`` in tpm_hosts."""
    return {"all": {"children": {"tpm_hosts": {"hosts": inventory_hosts}}}}


def report_model(tmp, out):
    """fleet.json of tmp/<out>/, validated against its schema, and its hosts by name."""
    model = json.loads((tmp / out / "fleet.json").read_text())
    with open(report.SCHEMA_PATH, encoding="utf-8") as fh:
        jsonschema.Draft202012Validator(json.load(fh)).validate(model)
    return model, {h["name"]: h for h in model["hosts"]}
