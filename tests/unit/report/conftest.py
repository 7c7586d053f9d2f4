"""A real SQLite journal and a real runbook file, filled through the journal's own methods."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opsbook.journal import Journal, NodeRecord, RunRecord

RUNBOOK = """\
opsbook: 1
name: web-restart
description: Restart nginx when the web tier stops answering.
phase: first-response
objectives: {rto: 5m, rpo: 1m}
steps:
  - name: web answers
    local.noop: {}
    ignore_errors: true
  - name: collect logs
    local.noop: {}
  - name: restart web
    local.noop: {}
    approve: "Restart nginx on {{ host.name }}?"
    marks: [mitigation]
  - name: restore db
    local.noop: {}
  - name: web answers again
    local.noop: {}
    marks: [verification]
"""


@dataclass
class RunBuilder:
    """Writes one run into the journal with timestamps relative to `t0` (seconds)."""

    journal: Journal
    run_id: str
    t0: float
    records: list[NodeRecord] = field(default_factory=list)

    def node(self, step_id: str, host: str | None, status: str, start: float, end: float, **kw: Any) -> NodeRecord:
        rec = NodeRecord(f"{step_id}@{host or '-'}", step_id, host, status, self.t0 + start, self.t0 + end, **kw)
        self.journal.node_finished(self.run_id, rec)
        return rec


@pytest.fixture
def runbook_file(tmp_path: Path) -> Path:
    path = tmp_path / "web-restart.yaml"
    path.write_text(RUNBOOK)
    return path


@pytest.fixture
def new_run(journal: Journal, runbook_file: Path):
    """new_run(status=..., duration=..., incident=-120, rto=300, rpo=60, path=...) -> RunBuilder."""

    def make(run_id: str = "20261125-031200-abc123", status: str = "succeeded", duration: float | None = 60.0,
             incident: float | None = None, rto: float | None = 300.0, rpo: float | None = 60.0,
             path: str | Path | None = None, ago: float = 3600.0, message: str = "") -> RunBuilder:
        t0 = time.time() - ago
        journal.create_run(RunRecord(
            id=run_id, runbook_path=str(path or runbook_file), runbook_name="web-restart", digest="d" * 64,
            params={"primary": "web1"}, inventory=["/inv/prod.yaml"], inventory_digest="", options={"forks": 50},
            status=status, started=t0, finished=None if duration is None else t0 + duration, who="alice",
            host="ops-laptop", pid=4242, objectives={"rto": rto, "rpo": rpo},
            incident_start=None if incident is None else t0 + incident,
            summary={"message": message} if message else {}))
        return RunBuilder(journal, run_id, t0)

    return make
