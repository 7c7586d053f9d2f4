"""`no_log: true` (issue 16, item 4): the step's output and arguments are recorded nowhere. The
whole-artefact check is tests/reliability/test_secrets.py::test_no_log_steps_leave_no_output_and_no_arguments_anywhere."""

from __future__ import annotations

from opsbook.api import RunRequest, resume_run
from opsbook.execute import RunOptions
from opsbook.secrets import HIDDEN

RUNBOOK = """
    opsbook: 1
    name: t
    steps:
      - name: act
        local.command: "true"
        rollback: {{local.shell: "echo undo-{value} >> {log}"}}
        no_log: true
      - name: set
        local.set: {{kept: "{value}"}}
        no_log: true
      - name: stop
        local.fail: stop
    """


def test_a_no_log_rollback_runs_with_its_arguments_kept_in_memory_only(run, journal, tmp_path):
    log = tmp_path / "undo.log"
    summary = run(RUNBOOK.format(value="v1", log=log))
    assert summary.status == "failed"
    assert log.read_text() == "undo-v1\n"  # rolled back with the real arguments
    (entry,) = journal.rollbacks(summary.run_id)
    assert entry["args"] == HIDDEN and entry["status"] == "done"
    assert journal.nodes(summary.run_id)["set@localhost"].facts == {"kept": HIDDEN}


def test_after_a_restart_a_no_log_rollback_says_it_must_be_undone_by_hand(run, registry, journal, tmp_path):
    log = tmp_path / "undo.log"
    summary = run(RUNBOOK.format(value="v2", log=log), rollback="never")
    assert summary.status == "failed" and not log.exists()
    (entry,) = journal.rollbacks(summary.run_id)
    journal.rollback_status(summary.run_id, entry["seq"], "pending")  # as if opsbook died before its rollback
    again = resume_run(summary.run_id, registry, journal, RunRequest(options=RunOptions()), forget=["stop@localhost"])
    assert again.status == "failed" and not log.exists()
    (entry,) = journal.rollbacks(summary.run_id)
    assert entry["status"] == "failed"
    assert "not recorded (the step has no_log: true)" in entry["msg"] and "undo local.shell by hand" in entry["msg"]
