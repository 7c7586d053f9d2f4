"""RTO/RPO accounting from known journal timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from opsbook.report import rto
from opsbook_lab.pytest_plugin import opsbook


def test_rto_runs_from_incident_start_to_first_verification_after_mitigation(journal, new_run):
    run = new_run(incident=-120.0)
    run.node("web-answers", "web1", "failed", 0, 2, msg="connection refused")
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    r = rto(journal, run.run_id)
    assert r["detection"] == pytest.approx(run.t0 - 120)
    assert r["detection_source"] == "incident_start"
    assert r["mitigation_node"] == "restart-web@web1"
    assert r["time_to_mitigate"] == pytest.approx(130.0)
    assert r["recovered_node"] == "web-answers-again@web1"
    assert r["rto"] == pytest.approx(145.0)
    assert r["rto_objective"] == 300.0
    assert r["rto_met"] is True
    assert r["rto_verdict"] == "met (2m35s to spare)"


def test_detection_is_the_run_start_without_an_incident_start(journal, new_run):
    run = new_run()
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 10, 12.5)
    r = rto(journal, run.run_id)
    assert r["detection_source"] == "run_start"
    assert r["detection"] == pytest.approx(run.t0)
    assert r["rto"] == pytest.approx(12.5)


def test_verification_before_mitigation_does_not_count(journal, new_run):
    run = new_run()
    run.node("web-answers-again", "web0", "ok", 0, 1)  # passes before anything was fixed
    run.node("restart-web", "web1", "failed", 1, 4, msg="nginx: [emerg]")  # a failed mitigation is no mitigation
    run.node("restart-web", "web2", "ok", 2, 8)
    run.node("web-answers-again", "web1", "ok", 9, 11)
    r = rto(journal, run.run_id)
    assert r["mitigation_node"] == "restart-web@web2"
    assert r["mitigation"] == pytest.approx(run.t0 + 8)
    assert r["recovered_node"] == "web-answers-again@web1"
    assert r["rto"] == pytest.approx(11.0)


def test_missed_objective_says_by_how_much(journal, new_run):
    run = new_run(incident=-300.0, rto=300.0)
    run.node("restart-web", "web1", "ok", 0, 40)
    run.node("web-answers-again", "web1", "ok", 40, 60)
    r = rto(journal, run.run_id)
    assert r["rto"] == pytest.approx(360.0)
    assert r["rto_met"] is False
    assert r["rto_verdict"] == "missed by 60.0s"


def test_no_mitigation_success_means_not_recovered(journal, new_run):
    run = new_run(status="failed")
    run.node("restart-web", "web1", "failed", 0, 5, msg="exit 1")
    run.node("web-answers-again", "web1", "ok", 5, 6)
    r = rto(journal, run.run_id)
    assert r["mitigation"] is None and r["recovered"] is None and r["rto"] is None
    assert r["rto_verdict"] == "not recovered"
    assert r["rto_met"] is None
    assert "no step marked mitigation succeeded" in r["basis"]


def test_without_marks_a_succeeded_run_recovers_at_its_end(journal, new_run, tmp_path: Path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("opsbook: 1\nname: plain\nsteps:\n  - name: one\n    local.noop: {}\n")
    run = new_run(path=plain, duration=42.0, rto=None)
    run.node("one", "web1", "ok", 0, 3)
    r = rto(journal, run.run_id)
    assert r["marks_known"] is True
    assert r["rto"] == pytest.approx(42.0)
    assert r["basis"].startswith("end of the succeeded run")
    assert r["rto_verdict"] == "no objective"


def test_without_marks_a_failed_run_is_not_recovered(journal, new_run, tmp_path: Path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("opsbook: 1\nname: plain\nsteps:\n  - name: one\n    local.noop: {}\n")
    run = new_run(path=plain, status="failed")
    run.node("one", "web1", "failed", 0, 3)
    assert rto(journal, run.run_id)["rto"] is None


def test_a_run_still_running_is_not_recovered_yet(journal, new_run, tmp_path: Path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("opsbook: 1\nname: plain\nsteps:\n  - name: one\n    local.noop: {}\n")
    run = new_run(path=plain, status="running", duration=None, ago=5.0)
    run.node("one", "web1", "ok", 0, 1)
    r = rto(journal, run.run_id)
    assert r["rto"] is None and r["rto_met"] is None
    assert r["rto_verdict"] == "not yet (the run is still running)"
    assert r["basis"] == "not recovered yet: the run is still running (no step is marked mitigation/verification)"


def test_missing_runbook_falls_back_to_no_marks(journal, new_run, tmp_path: Path):
    run = new_run(path=tmp_path / "gone.yaml", duration=30.0)
    run.node("restart-web", "web1", "ok", 0, 3)  # marked in the lost file, unknowable now
    r = rto(journal, run.run_id)
    assert r["marks_known"] is False
    assert r["mitigation"] is None
    assert r["rto"] == pytest.approx(30.0)
    assert "step marks unknown" in r["basis"]


def test_mitigation_without_verification_steps_recovers_at_mitigation(journal, new_run, tmp_path: Path):
    path = tmp_path / "mit.yaml"
    path.write_text("opsbook: 1\nname: mit\nsteps:\n  - name: failover\n    local.noop: {}\n"
                    "    marks: [mitigation]\n  - name: cleanup\n    local.noop: {}\n")
    run = new_run(path=path, duration=100.0)
    run.node("failover", "db2", "ok", 5, 17)
    run.node("cleanup", "db2", "ok", 17, 90)
    r = rto(journal, run.run_id)
    assert r["rto"] == pytest.approx(17.0)
    assert r["recovered_node"] == "failover@db2"


def test_serial_batch_step_ids_keep_their_marks(journal, new_run):
    run = new_run()
    run.node("restart-web[1]", "web2", "ok", 0, 7)
    run.node("web-answers-again[1]", "web2", "ok", 7, 9)
    r = rto(journal, run.run_id)
    assert r["mitigation_node"] == "restart-web[1]@web2"
    assert r["rto"] == pytest.approx(9.0)


def test_rpo_from_registered_backup_time(journal, new_run):
    run = new_run(incident=-60.0, rpo=60.0)
    run.node("restore-db", "db1", "ok", 0, 20, registered={"backup_time": run.t0 - 100, "ok": True})
    r = rto(journal, run.run_id)
    assert r["data_time_key"] == "backup_time"
    assert r["data_time_node"] == "restore-db@db1"
    assert r["rpo"] == pytest.approx(40.0)
    assert r["rpo_met"] is True


def test_rpo_reads_iso_data_timestamps_and_takes_the_oldest(journal, new_run):
    run = new_run(rpo=30.0)
    old = datetime.fromtimestamp(run.t0 - 90, UTC).isoformat().replace("+00:00", "Z")
    run.node("restore-db", "db1", "ok", 0, 5, registered={"data_timestamp": run.t0 - 10})
    run.node("restore-db", "db2", "ok", 0, 6, registered={"results": [{"data_timestamp": old}]})
    run.node("restore-db", "db3", "failed", 0, 6, registered={"data_timestamp": run.t0 - 5000})  # not restored
    r = rto(journal, run.run_id)
    assert r["data_time_node"] == "restore-db@db2"
    assert r["rpo"] == pytest.approx(90.0, abs=1e-3)
    assert r["rpo_met"] is False
    assert r["rpo_verdict"] == "missed by 60.0s"


def test_rpo_not_measured_without_data_times(journal, new_run):
    run = new_run()
    run.node("restore-db", "db1", "ok", 0, 5, registered={"ok": True})
    r = rto(journal, run.run_id)
    assert r["rpo"] is None
    assert r["rpo_verdict"] == "not measured"


def test_data_newer_than_detection_loses_nothing(journal, new_run):
    run = new_run()
    run.node("restore-db", "db1", "ok", 0, 5, registered={"backup_time": run.t0 + 3})
    assert rto(journal, run.run_id)["rpo"] == 0.0


def test_a_mitigation_the_rollback_undid_is_not_a_recovery(journal, new_run):
    """A failed run whose mitigation was undone left the service as it was: no RTO, and the
    basis says why (issue 29 item 3; a newcomer saw "failed" and "RTO met" on one line)."""
    run = new_run(incident=-120.0, status="failed")
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    journal.add_rollback(run.run_id, "restart-web@web1", "web1", "ssh.command", {"cmd": "nginx -s stop"})
    journal.rollback_status(run.run_id, 1, "done", "stopped")
    r = rto(journal, run.run_id)
    assert r["rto"] is None and r["rto_met"] is None and r["rto_verdict"] == "not recovered"
    assert r["basis"] == "not recovered: the mitigation (restart web on web1) was rolled back when the run failed"


def test_an_undo_that_changes_nothing_keeps_the_recovery(journal, new_run):
    run = new_run(incident=-120.0, status="failed")
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    journal.add_rollback(run.run_id, "restart-web@web1", "web1", "local.noop", {})
    journal.rollback_status(run.run_id, 1, "done", "")
    assert rto(journal, run.run_id)["rto"] == pytest.approx(145.0)


def test_a_dry_run_measures_no_rto(journal, new_run):
    run = new_run(incident=-120.0)
    journal.db.execute("UPDATE runs SET options=? WHERE id=?", ('{"check": true}', run.run_id))
    run.node("restart-web", "web1", "ok", 3, 10)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    r = rto(journal, run.run_id)
    assert r["rto"] is None and r["rto_verdict"] == "not measured (dry run)"
    assert r["basis"].startswith("not measured: a dry run (--check) changes nothing")


def test_a_dry_run_says_so_in_runs_show_and_its_last_line(tmp_path):
    rb = tmp_path / "dry.yaml"
    rb.write_text(f"opsbook: 1\nname: dry\nsteps:\n  - name: act\n    local.command: touch {tmp_path}/x\n")
    done = opsbook(tmp_path, "run", str(rb), "--check", "--format", "text")
    assert "(1 nodes, a dry run: --check changes nothing)" in done.stderr
    assert ": succeeded (a dry run: --check, nothing was changed)" in done.stderr
    assert "succeeded (dry run)" in opsbook(tmp_path, "runs").stdout
    shown = opsbook(tmp_path, "show", "last").stdout
    assert "(DRY RUN: --check, nothing was changed)" in shown and "left changed" not in shown
    report = opsbook(tmp_path, "report", "last", "--format", "md").stdout
    assert "A dry run (--check): nothing was changed on any host" in report
    assert not (tmp_path / "x").exists()


def test_a_flushed_handler_can_be_the_mitigation(tmp_path):
    """`meta: flush_handlers` runs a copy of the handler (`<meta id>/<handler id>`): its marks
    are the handler's, so the RTO is measured from it (a rolling restart's mitigation)."""
    import json
    import os
    import subprocess
    import sys

    from opsbook.journal import Journal

    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: flushed
objectives: {rto: 5m}
steps:
  - name: config tests clean
    local.command: "true"
    changed_when: true
    notify: restart
  - name: restart now
    meta: flush_handlers
  - name: answers again
    local.command: "true"
    changed_when: false
    marks: [verification]
handlers:
  - name: restart
    local.command: "true"
    marks: [mitigation]
""")
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "opsbook", "run", str(rb), "--yes", "--format", "json"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    run_id = next(json.loads(line)["run"] for line in done.stdout.splitlines() if line.startswith("{"))
    journal = Journal(tmp_path / "j.db")
    try:
        measured = rto(journal, run_id)
    finally:
        journal.close()
    assert measured["mitigation_node"] == "restart-now/restart@localhost", measured
    assert measured["recovered_node"] == "answers-again@localhost" and measured["rto_met"] is True, measured
