# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: remote_calls
type: aggregate
author: tpmfleet contributors (@tpmfleet)
short_description: Count the remote module executions of a run, per host
description:
  - Counts, for every host, the tasks of the run that executed a module on it (ok, changed or failed results;
    each loop item and each retry of C(until) counts once) and estimates the module executions they made.
  - Not counted are skipped tasks, unreachable hosts and actions that run on the controller only (C(set_fact),
    C(assert), C(debug), C(fail), C(meta), C(include_*), C(import_*), C(include_vars), C(validate_argument_spec),
    C(add_host), C(group_by), C(set_stats), C(pause)).
  - A task delegated to another host is counted under C(delegated) of the host it ran for, not as a call to it.
  - "Approximation: action plugins that run several modules cannot be observed from a callback. C(template) and
    C(copy) count as two executions each (a C(stat) of the destination, then C(copy) or C(file)); every other action
    counts as one. C(tasks) is the exact number of module-running task results; C(executions) is that estimate."
  - An action that reports in its result how many modules it ran on the host (C(remote_executions), as
    C(tpmfleet.tpm.settings_check) does) counts that many; with none, it is not a module-running task.
  - "It also counts, per host, every task the host went through (C(evaluated), whether ok, changed, failed, skipped
    or unreachable, once per task whatever its loop), the skipped ones among them (C(skipped)) and the changed
    ones (C(changed), as in Ansible's recap). Each costs controller CPU (a worker process, the templating of
    its conditions) even when nothing runs on the host."
  - At the end of the run it prints one line per host and, when O(output_file) is set, writes the figures as JSON
    (per host C(tasks), C(executions), C(delegated), C(evaluated), C(skipped), C(changed), C(by_action),
    C(by_task)).
options:
  output_file:
    description: The JSON file to write the per-host figures to.
    type: path
    env:
      - name: TPMFLEET_REMOTE_CALLS_FILE
    ini:
      - section: tpmfleet_remote_calls
        key: output_file
requirements:
  - enabled with C(callbacks_enabled) (or C(ANSIBLE_CALLBACKS_ENABLED=tpmfleet.lab.remote_calls))
"""

import json
import os
from collections import Counter, defaultdict

from ansible.plugins.callback import CallbackBase

CONTROLLER_ONLY = frozenset(
    {
        "add_host",
        "assert",
        "debug",
        "fail",
        "group_by",
        "import_playbook",
        "import_role",
        "import_tasks",
        "include",
        "include_role",
        "include_tasks",
        "include_vars",
        "meta",
        "pause",
        "set_fact",
        "set_stats",
        "validate_argument_spec",
    }
)
# Action plugins known to run more than one module per call (see the approximation above).
MODULES_PER_CALL = {"template": 2, "copy": 2}


def short_action(task):
    action = getattr(task, "resolved_action", None) or task.action or ""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix) :]
    return action


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tpmfleet.lab.remote_calls"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = defaultdict(
            lambda: {
                "tasks": 0, "executions": 0, "delegated": 0, "evaluated": 0, "skipped": 0, "changed": 0,
                "by_action": Counter(), "by_task": Counter(),
            }
        )  # fmt: skip

    def _evaluated(self, result, skipped=False, ok=False):
        host = self.hosts[result._host.get_name()]
        host["evaluated"] += 1
        host["skipped"] += int(skipped)
        # As in the recap: a failed task counts as failed (or ignored), never as changed.
        host["changed"] += int(ok and bool(result._result.get("changed")))

    def _count(self, result, item=False):
        task = result._task
        action = short_action(task)
        if action in CONTROLLER_ONLY:
            return
        # The task's own result after its loop items: the items were counted one by one.
        if not item and (task.loop is not None or task.loop_with) and "results" in result._result:
            return
        host = self.hosts[result._host.get_name()]
        if result._result.get("_ansible_delegated_vars") or task.delegate_to:
            host["delegated"] += 1
            return
        executions = result._result.get("remote_executions", MODULES_PER_CALL.get(action, 1))
        if not executions:
            return
        host["tasks"] += 1
        host["executions"] += executions
        host["by_action"][action] += 1
        host["by_task"][task.get_name()] += 1

    def v2_runner_on_ok(self, result):
        self._evaluated(result, ok=True)
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._evaluated(result)
        self._count(result)

    def v2_runner_on_skipped(self, result):
        self._evaluated(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._evaluated(result)

    def v2_runner_item_on_ok(self, result):
        self._count(result, item=True)

    def v2_runner_item_on_failed(self, result):
        self._count(result, item=True)

    def v2_runner_retry(self, result):
        self._count(result, item=True)

    def figures(self):
        return {
            name: {**h, "by_action": dict(h["by_action"]), "by_task": dict(h["by_task"])}
            for name, h in sorted(self.hosts.items())
        }

    def v2_playbook_on_stats(self, stats):
        figures = self.figures()
        for name, h in figures.items():
            self._display.display(
                f"remote calls: {name}: {h['executions']} module executions ({h['tasks']} module tasks"
                f"{', ' + str(h['delegated']) + ' delegated' if h['delegated'] else ''}"
                f"; {h['evaluated']} tasks evaluated, {h['skipped']} skipped, {h['changed']} changed)"
            )
        path = self.get_option("output_file")
        if path:
            path = os.path.expanduser(path)
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"hosts": figures}, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
