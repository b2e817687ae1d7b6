# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the fleet report: collect every play host's results from hostvars, write the report."""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_fleet, report_page

# What the report playbook leaves per host (registered results and set_fact).
FACTS_VAR = "__tpm_report_facts"
QUOTE_VAR = "__tpm_report_quote"
MODE_ERROR_VAR = "__tpm_report_mode_error"
SETTINGS_VAR = "__tpm_report_settings"


def _plain(value):
    """Plain JSON data (hostvars hold lazy and tagged objects)."""
    return json.loads(json.dumps(value, default=to_text))


def playbooks(playbook_dir, cwd=None):
    """How fix commands name the playbooks.

    A run from a checkout of this project names its files, relative to the current
    directory: the checkout is the play's playbook_dir or its parent, or the current
    directory, when it holds site.yml beside playbooks/quote_mode.yml (the top-level
    playbooks/report.yml imports the collection's playbook, whose playbook_dir is the
    collection's). Any other run names the installed collection's playbooks
    (``ansible-playbook tpmfleet.tpm.site``).
    """
    cwd = cwd or os.getcwd()
    roots = [cwd]
    if playbook_dir:
        roots[:0] = [playbook_dir, os.path.dirname(os.path.abspath(playbook_dir))]
    for root in roots:
        if os.path.isfile(os.path.join(root, "site.yml")) and os.path.isfile(
            os.path.join(root, "playbooks", "quote_mode.yml")
        ):
            rel = os.path.relpath(root, cwd)
            return {
                name: path if rel == "." else os.path.join(rel, path)
                for name, path in (
                    ("site", "site.yml"),
                    ("quote_mode", "playbooks/quote_mode.yml"),
                    ("report", "playbooks/report.yml"),
                )
            }
    return dict(report.PLAYBOOKS)


def host_input(name, hostvars):
    """The report's record for one host (see plugin_utils/report.py) from its hostvars."""
    get = hostvars.get
    profile = get("tpm_quote_mode_profile")
    error = get(MODE_ERROR_VAR)
    requested = get("tpm_quote_mode")
    if requested is None and profile:
        requested = profile.get("mode")
    return _plain(
        {
            "name": name,
            "groups": get("group_names") or [],
            "requested_mode": requested,
            "profile": None if error else profile,
            "mode_error": error,
            "settings": get(SETTINGS_VAR) or {},
            "facts": get(FACTS_VAR),
            "quote": get(QUOTE_VAR),
        }
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        unknown = set(args) - {"hosts", "dest", "quote_test", "mixed_mode_ignore_groups"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters {', '.join(sorted(unknown))} for fleet_report")
        hosts = args.get("hosts")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise AnsibleActionFail("hosts must be a list of inventory host names, e.g. '{{ ansible_play_hosts_all }}'")
        ignore = args.get("mixed_mode_ignore_groups") or []
        if not isinstance(ignore, list):
            raise AnsibleActionFail("mixed_mode_ignore_groups must be a list of group names")
        dest_arg = to_text(args.get("dest") or "report")
        dest = os.path.abspath(os.path.expanduser(dest_arg))
        quote_test = self._bool(args.get("quote_test", False))

        hostvars = task_vars["hostvars"]
        records = []
        for name in hosts:
            if name not in hostvars:
                raise AnsibleActionFail(f"{name} is not an inventory host")
            records.append(host_input(name, hostvars[name]))
        sources = [to_text(s) for s in task_vars.get("ansible_inventory_sources") or []]
        inventory = ", ".join(os.path.relpath(s) if s.startswith(os.getcwd()) else s for s in sources) or None
        model = report.build(
            records,
            quote_test=quote_test,
            ignore_groups=tuple(ignore),
            inventory=inventory,
            playbooks=playbooks(task_vars.get("playbook_dir")),
            limits_dir=dest_arg,
        )
        try:
            paths = report_page.write_report(model, dest)
            limit_files = report_fleet.write_limit_files(model, dest)
        except OSError as exc:
            raise AnsibleActionFail(f"cannot write the report into {dest}: {exc}; choose tpm_report_dir") from None
        s = model["summary"]
        result.update(
            changed=False,
            paths=paths,
            limit_files=limit_files,
            summary=s,
            fleet_findings=len(model["fleet_findings"]),
            msg=(
                f"{s['hosts']} hosts: {s['status']['healthy']} healthy, {s['status']['drifted']} drifted, "
                f"{s['status']['unverified']} unverified, {s['status']['failing']} failing, "
                f"{s['status']['unreachable']} unreachable, {s['status']['no_tpm']} without TPM; "
                f"{len(model['problem_groups'])} problem groups; report in {paths['index.html']}"
            ),
        )
        return result

    @staticmethod
    def _bool(value):
        from ansible.module_utils.parsing.convert_bool import boolean

        try:
            return boolean(value, strict=True)
        except TypeError:
            raise AnsibleActionFail(f"quote_test must be true or false, got {value!r}") from None
