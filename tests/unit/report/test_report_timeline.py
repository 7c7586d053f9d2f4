"""`opsbook show`: the header and the merged, chronological timeline."""

from __future__ import annotations

import re
import time

import pytest
from opsbook.errors import RunError
from opsbook.report import offset, timeline_text


def _body(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index(next(line for line in lines if line.strip().startswith("OFFSET"))) + 1:]


def test_header_names_runbook_who_status_objectives_and_rto(journal, new_run, runbook_file):
    run = new_run(incident=-120.0, duration=50.0, status="failed", message="1 host failed")
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    text = timeline_text(journal, run.run_id)
    head = text.split("OFFSET")[0]
    assert head.splitlines()[0] == f"run {run.run_id}  web-restart  FAILED"
    assert str(runbook_file) in head and "phase first-response" in head
    assert "alice@ops-laptop, pid 4242" in head
    assert "failed after 50.0s" in head
    assert "2m00s before the run" in head
    assert "RTO 5m00s, RPO 60.0s" in head
    assert "2m25s against 5m00s: met (2m35s to spare)" in head
    assert "mitigated   +00:10.0 (2m10s after detection) by restart web @ web1" in head
    assert "1 host failed" in head


def test_nodes_are_listed_in_start_order_with_offset_duration_status_host_step_message(journal, new_run):
    run = new_run()
    run.node("restore-db", "db1", "ok", 12, 20.5, msg="restored 3 tables")
    run.node("web-answers", "web1", "failed", 0, 2, rc=7, msg="connection refused")
    run.node("collect-logs", "web1", "skipped", 2, 2, msg="when: false is false")
    lines = _body(timeline_text(journal, run.run_id))
    nodes = [line for line in lines if re.match(r"\s+[+-]\d\d:", line) and "run succeeded" not in line]
    assert [line.split()[0] for line in nodes] == ["+00:00.0", "+00:02.0", "+00:12.0"]
    first, _, third = nodes
    assert first.split()[1:4] == ["2.0s", "ignored", "web1"]  # ignore_errors: counted ignored, failed in detail
    assert "web answers" in first and "failed (ignore_errors): rc 7: connection refused" in first
    assert third.split()[1:4] == ["8.5s", "ok", "db1"] and third.rstrip().endswith("restored 3 tables")


def test_approvals_rollbacks_evidence_and_resumes_merge_in_time_order(journal, new_run):
    # The approval is decided now, so the approved node starts just after it; rollbacks follow.
    run = new_run(ago=30.0, duration=None, status="failed")
    run.node("web-answers", "web1", "failed", 0, 1, msg="refused")
    journal.event(run.run_id, "evidence", "web-answers@web1",
                  {"path": "web1/error.log", "source": "web1:/var/log/nginx/error.log", "step": "web answers",
                   "host": "web1"}, ts=run.t0 + 1.5)
    journal.event(run.run_id, "resumed", data={"by": "bob", "pid": 77, "forgotten": 0}, ts=run.t0 + 2)
    journal.record_decision(run.run_id, "restart-web@web1", "restart-web", "Restart nginx on web1?", True, "alice")
    decided = journal.approvals(run.run_id)[0]["decided"]
    run.node("restart-web", "web1", "ok", decided - run.t0 + 0.01, decided - run.t0 + 0.05, changed=True)
    run.node("restore-db", "db1", "failed", decided - run.t0 + 0.05, decided - run.t0 + 0.06, msg="no backup")
    journal.add_rollback(run.run_id, "restart-web@web1", "web1", "ssh.command", {"cmd": "nginx -s stop"})
    journal.add_rollback(run.run_id, "restore-db@db1", "db1", "local.noop", {})
    time.sleep(0.1)
    journal.rollback_status(run.run_id, 1, "failed", "permission denied")
    text = timeline_text(journal, run.run_id)
    order = [line for line in _body(text) if not line.startswith(" " * 5)]  # not output tails
    kinds = [re.search(r"\s(failed|ok|evidence|resumed|approved|rb \w+)\s", line).group(1) for line in order]
    assert kinds == ["failed", "evidence", "resumed", "approved", "ok", "failed", "rb failed", "rb pending"]
    approval = next(line for line in order if "approved" in line)
    assert 'approved by alice: "Restart nginx on web1?"' in approval
    assert "web1/error.log <- web1:/var/log/nginx/error.log" in text
    assert "by bob (pid 77)" in text
    assert "rb failed" in text and "undo restart web: permission denied" in text
    assert "rb pending" in order[-1]  # never ran: listed last, without a time


def test_lines_fit_the_terminal_and_failures_show_their_output(journal, new_run):
    run = new_run(status="failed")
    run.node("restore-db", "db" + "x" * 40, "failed", 0, 1, rc=2, msg="pg_restore: " + "very long error " * 20,
             stderr="".join(f"line {i}: {'noise ' * 30}\n" for i in range(10)))
    text = timeline_text(journal, run.run_id, width=100)
    body = _body(text)
    assert all(len(line) <= 100 for line in body)
    assert any("stderr | line 9:" in line for line in body)
    assert not any("line 6:" in line for line in body)  # only the tail
    assert any(line.strip().startswith("msg | rc 2: pg_restore:") for line in body)


def test_node_without_result_is_in_doubt(journal, new_run):
    run = new_run(ago=5.0, duration=None, status="running")
    journal.node_started(run.run_id, "restart-web@web1", "restart-web", "web1")
    text = timeline_text(journal, run.run_id)
    assert "in doubt" in text and "no result recorded" in text
    assert "1 in doubt" in text


def test_pending_approval_is_shown_as_waiting(journal, new_run):
    run = new_run(ago=5.0, duration=None, status="running")
    journal.request_approval(run.run_id, "restart-web@web1", "restart-web", "Restart nginx on web1?")
    assert re.search(r"waiting\s+web1\s+restart web\s+asked: \"Restart nginx on web1\?\"",
                     timeline_text(journal, run.run_id))


def test_unknown_run_is_a_clear_error(journal, new_run):
    new_run()
    with pytest.raises(RunError, match="no run"):
        timeline_text(journal, "nope")


def test_offsets_read_like_a_stopwatch():
    assert offset(0) == "+00:00.0"
    assert offset(75.25) == "+01:15.2"
    assert offset(-120) == "-02:00.0"
    assert offset(3723) == "+1:02:03"
    assert offset(None) == ""


def test_a_succeeded_run_shows_its_recorded_undos_as_not_needed_not_pending(journal, new_run):
    """Issue 15 item 8: after a successful run, its rollback entries were never meant to run."""
    run = new_run(status="succeeded")
    run.node("restart-web", "web1", "ok", 0, 1, changed=True)
    journal.add_rollback(run.run_id, "restart-web@web1", "web1", "ssh.command", {"cmd": "nginx -s stop"})
    text = timeline_text(journal, run.run_id)
    assert "rollbacks: 1 recorded, not needed (the run succeeded)" in text
    assert "pending" not in text
    assert re.search(r"rb not needed\s+web1\s+ssh.command\s+undo restart web", text), text


def test_a_report_of_a_row_without_the_flag_reads_ignore_errors_from_the_runbook(journal, new_run):
    run = new_run()
    run.node("web-answers", "web1", "failed", 0, 1, msg="refused")  # the runbook: ignore_errors: true
    run.node("restore-db", "db1", "failed", 1, 2, msg="no backup", ignored=False)
    assert "nodes       1 failed, 1 ignored;" in timeline_text(journal, run.run_id)
