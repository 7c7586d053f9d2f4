"""Reports of a run the real executor recorded (local plugin only: no host is touched)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from opsbook.api import RunRequest, load_inventory_sources, load_runbook, make_plan, start_run
from opsbook.approve import auto_approver
from opsbook.execute import RunOptions
from opsbook.report import build_report, rto, timeline_text

RUNBOOK = """\
opsbook: 1
name: db-restore
phase: disaster-recovery
objectives: {rto: 10m, rpo: 1h}
steps:
  - name: restore from backup
    local.set: {backup_time: "2020-01-01T00:00:00Z"}
    approve: "Restore on {{ host.name }}?"
    marks: [mitigation]
    rollback:
      local.noop: {}
  - name: database answers
    local.noop: {}
    marks: [verification]
  - name: replica caught up
    local.fail: "replica is 3 hours behind"
"""


def test_report_of_an_executed_run(tmp_path: Path, journal, registry):
    path = tmp_path / "db-restore.yaml"
    path.write_text(RUNBOOK)
    plan = make_plan(load_runbook(str(path), registry), load_inventory_sources([]))
    request = RunRequest(options=RunOptions(evidence_dir=tmp_path / "evidence"), approver=auto_approver())
    summary = start_run(plan, registry, journal, request)
    assert summary.status == "failed"

    r = rto(journal, summary.run_id)
    assert r["mitigation_node"] == "restore-from-backup@localhost"
    assert r["recovered_node"] == "database-answers@localhost"
    assert 0 <= r["rto"] < 60 and r["rto_met"] is True
    assert r["data_time_key"] == "backup_time" and r["rpo_met"] is False  # years of data lost

    text = timeline_text(journal, summary.run_id)
    assert "approved by" in text and "replica is 3 hours behind" in text and "rb done" in text
    md = build_report(journal, summary.run_id, "md")
    assert '- [ ] Why did "replica caught up" fail on localhost? (replica is 3 hours behind)' in md
    data = json.loads(build_report(journal, summary.run_id, "json"))
    assert data["rollbacks"][0]["action"] == "local.noop" and data["rollbacks"][0]["status"] == "done"
    junit = ET.fromstring(build_report(journal, summary.run_id, "junit"))
    failed = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert failed == ["replica caught up @ localhost", "RPO"]
