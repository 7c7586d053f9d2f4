"""The merged timeline of a run (nodes, approvals, rollbacks, events) and the small
formatting helpers every output shares."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsbook.journal import Journal, NodeRecord
from opsbook.model import format_duration
from opsbook.report.recovery import rto_of
from opsbook.report.view import FAILED, TAIL_CHARS, TAIL_LINES, RunView, gather

# -- the merged timeline -----------------------------------------------------------------

_ORDER = {"incident": 0, "approval": 1, "resumed": 2, "node": 3, "evidence": 4, "event": 5,
          "rollback": 6, "run_end": 7}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: a node, an approval, a rollback, evidence, a resume."""

    ts: float | None
    kind: str
    status: str
    host: str
    subject: str
    detail: str = ""
    duration: float | None = None
    node_id: str | None = None
    mark: str = ""  # "mitigation" / "recovered" on the nodes RTO accounting used

    def to_json(self, start: float) -> dict[str, Any]:
        return {"ts": self.ts, "offset": None if self.ts is None else round(self.ts - start, 6),
                "kind": self.kind, "status": self.status, "host": self.host or None, "subject": self.subject,
                "detail": self.detail, "duration": self.duration, "node": self.node_id, "mark": self.mark or None}


def timeline(view: RunView, rto_data: dict[str, Any] | None = None) -> list[Entry]:
    """Nodes, approvals, rollbacks and events of a run, merged in time order."""
    rto_data = rto_data if rto_data is not None else rto_of(view)
    entries: list[Entry] = []
    if rto_data["detection_source"] == "incident_start":
        entries.append(Entry(rto_data["detection"], "incident", "incident", "", "incident began (detection)"))
    entries += [_node_entry(view, n, rto_data) for n in view.nodes]
    entries += [_approval_entry(view, a) for a in view.approvals]
    entries += [_rollback_entry(view, r) for r in view.rollbacks]
    entries += [_event_entry(view, e) for e in view.events if e[1] != "diff"]  # diffs: their own section
    if view.run.finished:
        entries.append(Entry(view.run.finished, "run_end", view.run.status, "", f"run {view.run.status}",
                             detail=str(view.run.summary.get("message") or "")))
    last = view.end + 1e9  # undated entries (pending rollbacks) go last
    return sorted(entries, key=lambda e: (e.ts if e.ts is not None else last, _ORDER.get(e.kind, 5)))


def _node_entry(view: RunView, node: NodeRecord, rto_data: dict[str, Any]) -> Entry:
    marks = []
    if node.node_id == rto_data.get("mitigation_node"):
        marks.append("mitigation")
    if node.node_id == rto_data.get("recovered_node"):
        marks.append("recovered")
    status = view.count_key(node)  # an ignored (rescued) failure reads so; its detail says how it failed
    detail = node.msg
    if status == "in doubt":
        detail = "started, no result recorded (opsbook stopped or is still running)"
    if node.rc not in (None, 0) and node.status in FAILED:
        detail = f"rc {node.rc}: {detail}"
    if status == "ignored":
        detail = f"{node.status} (ignore_errors): {detail}".rstrip(": ")
    elif status == "rescued":
        detail = f"{node.status} (the block's rescue succeeded): {detail}".rstrip(": ")
    duration = (node.finished - node.started) if node.finished and node.started else None
    return Entry(node.started or node.finished, "node", status, node.host or "", view.step(node.step_id).name,
                 detail, duration, node.node_id, "+".join(marks))


def _decision(a: dict[str, Any]) -> str:
    """waiting | approved | denied | cancelled (the run stopped while the gate waited)."""
    if a["decided"] is None:
        return "waiting"
    if a.get("cancelled"):
        return "cancelled"
    return "approved" if a["approved"] else "denied"


def _approval_entry(view: RunView, a: dict[str, Any]) -> Entry:
    node = view.node(a["node_id"])
    detail_of = a.get("detail") or {}
    name = detail_of.get("block_name") or view.step(a["step_id"]).name
    host = node.host if node and node.host else (a["node_id"] or "").partition("@")[2]
    decision = _decision(a)
    if decision == "waiting":
        shown = json.dumps(detail_of.get("args"), default=str)[:200] if detail_of.get("action") else ""
        asked = f'asked: "{a["prompt"]}"' + (f"; will run {detail_of['action']} {shown}" if shown else "") \
            + (f"; run started by {detail_of['started_by']}" if detail_of.get("started_by") else "")
        return Entry(a["requested"], "approval", "waiting", host, name, asked + " (no decision)",
                     node_id=a["node_id"])
    waited = (a["decided"] - a["requested"]) if a["requested"] else 0.0
    by = a["who"] if decision != "cancelled" else a["who"].removeprefix("cancelled: ")
    detail = f'{decision} by {by}: "{a["prompt"]}"' if decision != "cancelled" else \
        f'cancelled ({by}): "{a["prompt"]}" never ran'
    detail += f" (waited {format_duration(waited)})" if waited >= 0.5 else ""
    return Entry(a["decided"], "approval", decision, host, name, detail, node_id=a["node_id"])


def _rollback_entry(view: RunView, r: dict[str, Any]) -> Entry:
    node = view.node(r["node_id"])
    of = view.step(node.step_id).name if node else r["node_id"]
    duration = (r["finished"] - r["started"]) if r["finished"] and r["started"] else None
    where = f" (ran on {r['target']})" if r.get("target") and r["target"] != r["host"] else ""
    detail = f"undo {of}{where}" + (f": {r['msg']}" if r["msg"] else "")
    return Entry(r["started"], "rollback", f"rb {r['status']}", r["host"] or "", r["action"], detail, duration,
                 r["node_id"])


def _event_entry(view: RunView, ev: tuple[float, str, str | None, dict[str, Any]]) -> Entry:
    ts, kind, node_id, data = ev
    node = view.node(node_id)
    host = str(data.get("host") or (node.host if node else "") or "")
    if kind == "evidence":
        detail = f"{data.get('path', '?')} <- {data.get('source', '?')}"
        if data.get("description"):
            detail += f" ({data['description']})"
        return Entry(ts, "evidence", "evidence", host, str(data.get("step") or (view.label(node) if node else "")),
                     detail, node_id=node_id)
    if kind == "resumed":
        detail = f"by {data.get('by', '?')} (pid {data.get('pid', '?')})"
        if data.get("forgotten"):
            detail += f", {data['forgotten']} node(s) to run again"
            if data.get("redone"):
                detail += f" ({data['redone']} rolled back, redone)"
        return Entry(ts, "resumed", "resumed", "", "run resumed", detail, node_id=node_id)
    detail = ", ".join(f"{k}={v}" for k, v in data.items())
    return Entry(ts, "event", kind, host, kind, detail, node_id=node_id)


# -- small formatting helpers ------------------------------------------------------------


def offset(seconds: float | None) -> str:
    """Time since the run started: +mm:ss.s under an hour, +h:mm:ss above; '' when unknown."""
    if seconds is None:
        return ""
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{sign}{int(minutes):02d}:{secs:04.1f}"
    hours, rest = divmod(int(seconds), 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _local(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ts))


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dur(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "-"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def _tail(text: str, lines: int = TAIL_LINES) -> tuple[str, int]:
    """The last lines of an output stream, and how many lines were left out."""
    all_lines = text.rstrip("\n").splitlines()
    kept = all_lines[-lines:]
    out = "\n".join(kept)
    if len(out) > TAIL_CHARS:
        out = out[-TAIL_CHARS:]
    return out, len(all_lines) - len(kept)


def _counts_text(view: RunView) -> str:
    return ", ".join(f"{v} {k}" for k, v in view.counts().items()) or "no nodes recorded"


def _rollbacks_text(view: RunView) -> str:
    if not view.rollbacks:
        return "none recorded"
    statuses = [r["status"] for r in view.rollbacks]
    if all(st in ("not needed", "pending") for st in statuses) and view.run.status == "succeeded":
        return f"{len(statuses)} recorded, not needed (the run succeeded)"
    if all(st == "kept" for st in statuses):
        return f"{len(statuses)} recorded, kept (--rollback never)"
    done, failed = statuses.count("done"), statuses.count("failed")
    text = f"{done} of {len(statuses)} done"
    return text + (f", {failed} failed" if failed else "")


def _rto_line(view: RunView, r: dict[str, Any]) -> str:
    if r["rto"] is None:
        text = r["rto_verdict"]
    else:
        text = format_duration(r["rto"])
        if r["rto_objective"] is not None:
            text += f" against {format_duration(r['rto_objective'])}"
        text += f": {r['rto_verdict']}"
    return f"{text}; basis: {r['basis']}"


def _rpo_line(view: RunView, r: dict[str, Any]) -> str:
    if r["rpo"] is None:
        return "not measured (no step registered a data_timestamp or backup_time)"
    node = view.node(r["data_time_node"])
    text = format_duration(r["rpo"])
    if r["rpo_objective"] is not None:
        text += f" against {format_duration(r['rpo_objective'])}"
    text += f": {r['rpo_verdict']}"
    return text + f"; data as of {_local(r['data_time'])} ({view.label(node) if node else r['data_time_node']})"


def _objectives_text(r: dict[str, Any]) -> str:
    parts = [f"{k.upper()} {format_duration(r[f'{k}_objective'])}" for k in ("rto", "rpo")
             if r[f"{k}_objective"] is not None]
    return ", ".join(parts) or "none declared"


def _point(view: RunView, r: dict[str, Any], key: str) -> str:
    ts = r[key]
    if ts is None:
        return "-"
    node = view.node(r.get(f"{key}_node"))
    where = f" by {view.label(node)}" if node else ""
    return f"{offset(ts - view.run.started)} ({_dur(ts - r['detection'])} after detection){where}"


def objectives_line(journal: Journal, run_id: str) -> str:
    """`RTO 42.0s against 5m00s: met; RPO ...` when the runbook declares objectives, else ""."""
    if not journal.get_run(run_id).declares_objectives:
        return ""  # nothing to gather (the run's nodes, its runbook) for a verdict nobody asked for
    view = gather(journal, run_id)
    objectives = view.run.objectives or {}
    r = rto_of(view)
    parts = []
    if objectives.get("rto") is not None:
        parts.append("RTO " + _rto_line(view, r).split("; basis:")[0])
    if objectives.get("rpo") is not None:
        parts.append("RPO " + _rpo_line(view, r).split("; data as of")[0])
    return "; ".join(parts)
