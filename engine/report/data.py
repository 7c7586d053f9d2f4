"""The report as JSON: plain data of the run, its nodes, objectives and timeline."""

from __future__ import annotations

from typing import Any

from opsbook.report.recovery import rto_of
from opsbook.report.timeline import _iso, timeline
from opsbook.report.view import RunView

# -- JSON --------------------------------------------------------------------------------


def report_data(view: RunView, r: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the reports show, as plain data."""
    r = r if r is not None else rto_of(view)
    run = view.run
    start = run.started
    return {
        "format": "opsbook-report/1",
        "run": {**run.__dict__, "started_iso": _iso(run.started), "finished_iso": _iso(run.finished),
                "duration": view.end - run.started, "phase": view.phase or None},
        "counts": view.counts(),
        "rto": {**r, **{f"{k}_iso": _iso(r[k]) for k in ("detection", "mitigation", "recovered", "data_time")}},
        "runbook_note": view.runbook_note or None,
        "steps": {sid: s.__dict__ | {"marks": list(s.marks)} for sid, s in view.steps.items()},
        "nodes": [{**n.__dict__, "ignored": view.ignored(n), "rescued": view.rescued(n),
                   "step_name": view.step(n.step_id).name,
                   "offset": None if n.started is None else n.started - start,
                   "duration": (n.finished - n.started) if n.finished and n.started else None}
                  for n in view.nodes],
        "approvals": view.approvals,
        "rollbacks": view.rollbacks,
        "events": [{"ts": ts, "kind": kind, "node": node, "data": data} for ts, kind, node, data in view.events],
        "timeline": [e.to_json(start) for e in timeline(view, r)],
    }
