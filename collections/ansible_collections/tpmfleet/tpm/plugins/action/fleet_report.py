# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the fleet report: collect every play host's results from hostvars, write the report."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import (
    attest,
    input_rules,
    report,
    report_attest,
    report_cache,
    report_fleet,
    report_page,
)

# What the report playbook leaves per host (registered results and set_fact).
FACTS_VAR = "__tpm_report_facts"
QUOTE_VAR = "__tpm_report_quote"
MODE_ERROR_VAR = "__tpm_report_mode_error"
SETTINGS_VAR = "__tpm_report_settings"
ATTEST_VAR = "__tpm_report_attest"
CONSUMERS_VAR = "__tpm_report_consumers"


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


def host_input(name, host_vars, templated=None):
    """The report's record for one host (see plugin_utils/report.py) from its variables.

    ``host_vars`` are the host's variables as stored (``HostVars.raw_get``): the
    registered results and set_fact values the report reads are data already, and
    templating them again (``hostvars[name][var]``) walks every result (about 1 ms per
    host; no copy is made either: the report only reads them, and its renderings
    turn any value JSON cannot carry into text). Only the requested mode of a host whose mode is invalid, which may come
    from the inventory as a template, is read through ``templated`` (the templating
    ``hostvars[name]``) when given.
    """
    get = host_vars.get
    profile = get("tpm_quote_mode_profile")
    error = get(MODE_ERROR_VAR)
    if profile and not error:
        requested = profile.get("mode")
    else:
        requested = (templated if templated is not None else host_vars).get("tpm_quote_mode")
    record = _cached_record(host_vars)
    return {
        "name": name,
        "read_at": record.get("read_at") if record and get(FACTS_VAR) else None,
        "groups": get("group_names") or [],
        "requested_mode": requested,
        "profile": None if error else profile,
        "mode_error": error,
        "settings": get(SETTINGS_VAR) or {},
        "facts": get(FACTS_VAR),
        "quote": get(QUOTE_VAR),
        "attest": get(ATTEST_VAR),
        "consumers": get(CONSUMERS_VAR),
    }


def _cached_record(host_vars):
    """The host's tpmfleet_report_record fact (set by this run, or loaded from the fact cache), or None."""
    facts = host_vars.get("ansible_facts")
    record = facts.get(report_cache.RECORD_FACT) if isinstance(facts, dict) else None
    if record is None:
        record = host_vars.get(report_cache.RECORD_FACT)
    return record if isinstance(record, dict) else None


def collect(hostvars, hosts, source="live"):
    """Every host's record, from Ansible's HostVars (or a plain mapping of host -> variables).

    ``source`` "cache": from each host's cached tpmfleet_report_record alone (no host was read).
    """
    raw_get = getattr(hostvars, "raw_get", None)
    records = []
    for name in hosts:
        if name not in hostvars:
            raise AnsibleActionFail(f"{name} is not an inventory host")
        if source == "cache":
            host_vars = raw_get(name) if raw_get is not None else hostvars[name]
            groups = host_vars.get("group_names") or []
            records.append(report_cache.from_record(name, _cached_record(host_vars), groups))
            continue
        if raw_get is None:
            records.append(host_input(name, hostvars[name]))
            continue
        host_vars = raw_get(name)
        lazy = _Lazy(hostvars, name)
        records.append(host_input(name, host_vars, lazy))
    return records


class _Lazy:
    """``hostvars[name]``, made only when a value must be templated."""

    def __init__(self, hostvars, name):
        self._hostvars, self._name = hostvars, name

    def get(self, key, default=None):
        return self._hostvars[self._name].get(key, default)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        unknown = set(args) - {"hosts", "dest", "quote_test", "mixed_mode_ignore_groups", "source", "max_age",
                               "cache_plugin", "prepare", "attest_checks", "ek_ca_bundle", "ek_ca_dir",
                               "attest_export", "export_event_log", "ek_create", "timeout"}  # fmt: skip
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters {', '.join(sorted(unknown))} for fleet_report")
        try:
            source, max_age = report_cache.check_settings(
                args.get("source", "live"),
                args.get("max_age", report_cache.DEFAULT_MAX_AGE),
                args.get("cache_plugin"),
            )
            timeout = report_cache.check_timeout(args.get("timeout"))
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from None
        try:  # attestation inputs are checked in the prepare step too, before any host is read
            attest_checks = attest.parse_checks(args.get("attest_checks"))
            ca_certs = attest.load_ca_certificates(args.get("ek_ca_bundle"), args.get("ek_ca_dir"))
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from None
        # The switches, checked strictly here (Ansible's bool filter turns "maybe" into false) and returned
        # normalised by the prepare step for the tasks that follow it.
        quote_test = self._bool(args.get("quote_test", False), "tpm_report_quote")
        attest_export = self._bool(args.get("attest_export", True), "tpm_attest_export")
        export_event_log = self._bool(args.get("export_event_log", False), "tpm_attest_export_event_log")
        ek_create = self._bool(args.get("ek_create", False), "tpm_report_ek_create")
        if self._bool(args.get("prepare", False), "prepare"):
            result.update(changed=False, source=source, max_age=max_age, collection=report_cache.collection_version(),
                          attest_checks=attest_checks, quote_test=quote_test, attest_export=attest_export,
                          export_event_log=export_event_log, ek_create=ek_create, timeout=timeout,
                          msg=f"report source {source}")  # fmt: skip
            return result
        hosts = args.get("hosts")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise AnsibleActionFail("hosts must be a list of inventory host names, e.g. '{{ ansible_play_hosts_all }}'")
        ignore = args.get("mixed_mode_ignore_groups") or []
        if not isinstance(ignore, list):
            raise AnsibleActionFail("mixed_mode_ignore_groups must be a list of group names")
        dest_arg = to_text(args.get("dest") or "report")
        dest = os.path.abspath(os.path.expanduser(dest_arg))

        records = collect(task_vars["hostvars"], hosts, source)
        sources = [to_text(s) for s in task_vars.get("ansible_inventory_sources") or []]
        inventory = ", ".join(os.path.relpath(s) if s.startswith(os.getcwd()) else s for s in sources) or None
        model = report.build(
            records,
            quote_test=quote_test,
            ignore_groups=tuple(ignore),
            inventory=inventory,
            playbooks=playbooks(task_vars.get("playbook_dir")),
            limits_dir=dest_arg,
            source=source,
            max_age=max_age,
        )
        report_attest.apply(model, records, attest_checks, ca_certs)
        try:
            paths = report_page.write_report(model, dest)
            limit_files = report_fleet.write_limit_files(model, dest)
            if attest_checks and attest_export:
                result["attestation_exports"] = report_attest.write_exports(records, dest)
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
                + (f"; {model['attestation']['text']}" if attest_checks else "")
                + (
                    f" (from the fact cache: {s['data']['not_cached']} hosts without cached data, "
                    f"{s['data']['stale']} older than {max_age} s)"
                    if source == "cache"
                    else ""
                )
            ),
        )
        return result

    @staticmethod
    def _bool(value, name):
        from ansible.module_utils.parsing.convert_bool import boolean

        try:
            return boolean(value, strict=True)
        except TypeError:
            raise AnsibleActionFail(
                f"{name} must be true or false, got {input_rules.shown(value)}; set it to true or false"
            ) from None
