# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test only (tests/lab/test_interrupt.py): kill ansible-playbook at a task boundary, log the tasks."""

from __future__ import annotations

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: kill_at_task
type: aggregate
short_description: Test only - SIGKILL ansible-playbook's process group when its Nth task starts
description:
  - Counts every task and handler start of the run (gathering facts and includes too). When the count
    reaches E(TPMFLEET_KILL_AT_TASK), sends SIGKILL to the process group of ansible-playbook (the test
    starts it in a session of its own), so that tasks 1 to N-1 finished and task N never reached a host.
  - Or by name: E(TPMFLEET_KILL_AT_NAME) kills as the first task or handler of that name starts,
    E(TPMFLEET_KILL_AFTER_NAME) as the first one starts after a task of that name (finished: one host, a
    linear strategy); a name matches with or without its C(ROLE : ) prefix.
  - With E(TPMFLEET_TASK_LOG), appends one line per task start (number, name) and one per finished
    result that changed the host (C(changed), number).
  - Lives under tests/; never shipped in the collection.
author: tpmfleet contributors (@tpmfleet)
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_at_task"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count = 0
        self._kill_at = int(os.environ.get("TPMFLEET_KILL_AT_TASK") or 0)
        self._log = os.environ.get("TPMFLEET_TASK_LOG")
        self._at_name = os.environ.get("TPMFLEET_KILL_AT_NAME") or None
        self._after_name = os.environ.get("TPMFLEET_KILL_AFTER_NAME") or None
        self._previous = None

    @staticmethod
    def _named(task_name, wanted):
        return wanted is not None and (task_name == wanted or task_name.endswith(" : " + wanted))

    def _write(self, line):
        if self._log:
            with open(self._log, "a", encoding="utf-8") as log:
                log.write(line + "\n")
                log.flush()
                os.fsync(log.fileno())

    def _start(self, task):
        self._count += 1
        name = task.get_name()
        if (
            (self._kill_at and self._count == self._kill_at)
            or self._named(name, self._at_name)
            or self._named(self._previous or "", self._after_name)
        ):
            self._write(f"killed\t{self._count}\t{name}")
            os.killpg(os.getpgrp(), signal.SIGKILL)
        self._previous = name
        self._write(f"task\t{self._count}\t{name}")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_runner_on_ok(self, result):
        if result._result.get("changed"):
            self._write(f"changed\t{self._count}\t{result._task.get_name()}")

    def v2_runner_item_on_ok(self, result):
        if result._result.get("changed"):
            self._write(f"changed\t{self._count}\t{result._task.get_name()}")
