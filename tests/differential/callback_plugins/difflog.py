"""Ansible stdout callback for the differential suite: one JSON object per line.

Loaded by ansible-core (ANSIBLE_STDOUT_CALLBACK=difflog, ANSIBLE_CALLBACK_PLUGINS=<this
folder>) in its own venv; never imported by the tests. Each line is
{"ev": kind, ...}; difftool.py reads them back:

  play      a play starts (name)
  batch     a serial batch starts: the first task of a play is started a second time
  result    one task on one host: status ok|failed|skipped|unreachable, changed,
            ignored (ignore_errors), handler, run_once, and the task's return value
  stats     the play recap per host
"""

from __future__ import annotations

import json
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: difflog
type: stdout
short_description: JSON lines of every task result, for opsbook's differential tests
description: [One JSON object per line on stdout.]
"""


def _plain(value):
    """JSON-safe copy (Ansible's values are already native types; anything else as str)."""
    return json.loads(json.dumps(value, default=str))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "difflog"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = set()
        self._batch = 0

    def _emit(self, kind, **data):
        sys.stdout.write(json.dumps({"ev": kind, **data}, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play):
        self._started = set()
        self._batch = 0
        self._emit("play", name=play.get_name())

    def _task_start(self, task):
        # Each serial batch starts the play's tasks again: a task seen twice opens a batch.
        if task._uuid in self._started:
            self._started = set()
            self._batch += 1
            self._emit("batch", index=self._batch)
        self._started.add(task._uuid)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._started.add(task._uuid)

    def _result(self, status, result, ignored=False):
        task = result.task
        self._emit(
            "result",
            status=status,
            host=result.host.get_name(),
            # a role's task as Ansible displays it, "role : name" (opsbook names it so too)
            task=task.get_name() if getattr(task, "_role", None) else (result.task_name or task.get_name()),
            action=task.action,
            handler=type(task).__name__ == "Handler",
            run_once=bool(task.run_once),
            ignored=bool(ignored),
            batch=self._batch,
            result=_plain(result.result),
        )

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("failed", result, ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        self._emit("stats", hosts={h: stats.summarize(h) for h in hosts})
