"""RTO / RPO accounting of a gathered run (see the package docstring for the rules)."""

from __future__ import annotations

from typing import Any

from opsbook.journal import Journal, NodeRecord
from opsbook.model import duration_or_none, format_duration, parse_timestamp
from opsbook.report.view import DATA_TIME_KEYS, RunView, gather

# -- RTO / RPO ---------------------------------------------------------------------------


def rto(journal: Journal, run_id: str, registry: Any = None) -> dict[str, Any]:
    """Recovery time (and point) of a run against the runbook's objectives; see the module doc."""
    return rto_of(gather(journal, run_id, registry))


def rto_of(view: RunView) -> dict[str, Any]:
    """RTO/RPO accounting of a gathered run (plain data: JSON-ready)."""
    run = view.run
    detection = float(run.incident_start) if run.incident_start is not None else float(run.started)
    out: dict[str, Any] = {
        "detection": detection,
        "detection_source": "incident_start" if run.incident_start is not None else "run_start",
        "marks_known": view.marks_known,
    }
    mitigation, recovered, basis = _recovery_points(view)
    out.update(
        mitigation=mitigation.finished if mitigation else None,
        mitigation_node=mitigation.node_id if mitigation else None,
        recovered=_finish_time(recovered, view) if recovered is not None else None,
        recovered_node=recovered.node_id if isinstance(recovered, NodeRecord) else None,
        basis=basis,
    )
    out["time_to_mitigate"] = out["mitigation"] - detection if out["mitigation"] is not None else None
    out["rto"] = out["recovered"] - detection if out["recovered"] is not None else None
    out.update(_verdict("rto", out["rto"], _objective(run.objectives, "rto"), recovered=out["rto"] is not None))
    if (run.options or {}).get("check"):
        out["rto_verdict"] = "not measured (dry run)"
    elif run.status == "running" and out["rto"] is None:
        out["rto_verdict"] = "not yet (the run is still running)"  # `show` while a gate waits
    out.update(_rpo(view, detection))
    return out


def _recovery_points(view: RunView) -> tuple[NodeRecord | None, NodeRecord | str | None, str]:
    """(mitigation node, recovery node or "run_end", basis)."""
    if (view.run.options or {}).get("check"):
        return None, None, "not measured: a dry run (--check) changes nothing, so nothing was recovered"
    marked = {m for s in view.steps.values() for m in s.marks}
    if not {"mitigation", "verification"} & marked:
        why = "no step is marked mitigation/verification" if view.marks_known else "step marks unknown"
        if view.run.status == "succeeded":
            return None, "run_end", f"end of the succeeded run ({why})"
        if view.run.status == "running":
            return None, None, f"not recovered yet: the run is still running ({why})"
        return None, None, f"not recovered: the run {view.run.status} ({why})"
    mitigation = _first_ok(view, "mitigation", None) if "mitigation" in marked else None
    if "mitigation" in marked and mitigation is None:
        return None, None, "not recovered: no step marked mitigation succeeded"
    if mitigation is not None and any(r["node_id"] == mitigation.node_id and r["status"] == "done"
                                      and r["action"] != "local.noop" for r in view.rollbacks):
        return mitigation, None, (f"not recovered: the mitigation ({view.step(mitigation.step_id).name} on "
                                  f"{mitigation.host or 'localhost'}) was rolled back when the run {view.run.status}")
    if "verification" not in marked:
        return mitigation, mitigation, "mitigation (no step is marked verification)"
    after = mitigation.finished if mitigation else None
    verified = _first_ok(view, "verification", after)
    if verified is None:
        return mitigation, None, "not recovered: no step marked verification succeeded after mitigation"
    return mitigation, verified, "first verification after mitigation" if mitigation else "first verification"


def _first_ok(view: RunView, mark: str, after: float | None) -> NodeRecord | None:
    hits = [n for n in view.nodes if n.status == "ok" and n.finished is not None
            and mark in view.step(n.step_id).marks and (after is None or n.finished >= after)]
    return min(hits, key=lambda n: n.finished or 0.0, default=None)


def _finish_time(point: NodeRecord | str, view: RunView) -> float:
    if isinstance(point, NodeRecord):
        return float(point.finished or 0.0)
    return view.end


def _objective(objectives: dict[str, Any], key: str) -> float | None:
    return duration_or_none((objectives or {}).get(key))


def _verdict(key: str, achieved: float | None, objective: float | None, recovered: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {f"{key}_objective": objective, f"{key}_met": None}
    if achieved is None:
        out[f"{key}_verdict"] = "not recovered" if key == "rto" and not recovered else "not measured"
    elif objective is None:
        out[f"{key}_verdict"] = "no objective"
    elif achieved <= objective:
        out[f"{key}_met"] = True
        out[f"{key}_verdict"] = f"met ({format_duration(objective - achieved)} to spare)"
    else:
        out[f"{key}_met"] = False
        out[f"{key}_verdict"] = f"missed by {format_duration(achieved - objective)}"
    return out


def _rpo(view: RunView, detection: float) -> dict[str, Any]:
    found: list[tuple[float, str, str]] = []  # (data time, node, key)
    for node in view.nodes:
        if node.status != "ok":
            continue
        for key, value in _data_times(node.registered, node.facts):
            stamp = _as_epoch(value)
            if stamp is not None:
                found.append((stamp, node.node_id, key))
    out: dict[str, Any] = {"data_time": None, "data_time_node": None, "data_time_key": None, "rpo": None}
    if found:
        stamp, node_id, key = min(found)  # the oldest restored data loses the most
        out.update(data_time=stamp, data_time_node=node_id, data_time_key=key,
                   rpo=max(0.0, detection - stamp))
    out.update(_verdict("rpo", out["rpo"], _objective(view.run.objectives, "rpo")))
    return out


def _data_times(*sources: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for source in sources:
        if not isinstance(source, dict):
            continue
        out += [(k, source[k]) for k in DATA_TIME_KEYS if source.get(k) not in (None, "")]
        for item in source.get("results") or ():  # a loop's per-item results
            out += _data_times(item)
    return out


def _as_epoch(value: Any) -> float | None:
    return parse_timestamp(value)
