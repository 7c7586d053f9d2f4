"""Report stage: turn a run's journal into documents people read after an incident.

Everything here reads the journal only (secrets were redacted before they were written);
the runbook file is re-read for step names and `marks:` (RTO accounting) when it is still
there. Outputs:

- `timeline_text`: `opsbook show`, a terminal timeline (80-120 columns);
- `build_report`: `opsbook report` as Markdown (postmortem), one self-contained HTML page
  (with an inline SVG Gantt chart), JSON, or JUnit XML (one test case per node);
- `rto`: recovery time (and point) measured against the runbook's objectives;
- `write_check_junit`: JUnit XML for `opsbook check`.

RTO accounting: detection is the run's `incident_start` (else the run start); mitigation
is the finish of the first ok node of a step marked `mitigation`; recovery is the finish
of the first ok node marked `verification` at or after mitigation. Without verification
marks, recovery is the mitigation; without any marks, the end of a succeeded run. RPO is
detection minus the oldest `data_timestamp`/`backup_time` an ok node registered.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsbook.errors import OpsbookError
from opsbook.journal import Journal, NodeRecord, RunRecord
from opsbook.model import format_duration, parse_duration, parse_timestamp
from opsbook.visible import visible

FORMATS = ("md", "html", "json", "junit")
TAIL_LINES = 40  # output lines quoted per stream under a failure
TAIL_CHARS = 8000
DATA_TIME_KEYS = ("data_timestamp", "backup_time")
FAILED = ("failed", "timed_out")
STATUS_COLORS = {
    "ok": "#2e9e4f", "failed": "#d1383d", "timed_out": "#e0822a", "skipped": "#9aa0a6",
    "unknown": "#7d5fb2", "started": "#e3c02b", "done": "#3b73c4", "pending": "#c9ccd1",
    "running": "#e3c02b",
}


# -- what the journal knows about a run, gathered once ---------------------------------------


@dataclass(frozen=True)
class StepInfo:
    """What the runbook file says about a step (or a stand-in when the file is gone)."""

    id: str
    name: str
    marks: tuple[str, ...] = ()
    ignore_errors: bool = False


@dataclass
class RunView:
    """A run as the reports see it: the journal's records plus the runbook's step info."""

    run: RunRecord
    nodes: list[NodeRecord]  # start order
    approvals: list[dict[str, Any]]
    rollbacks: list[dict[str, Any]]
    events: list[tuple[float, str, str | None, dict[str, Any]]]
    steps: dict[str, StepInfo] = field(default_factory=dict)
    marks_known: bool = False
    runbook_note: str = ""  # why marks are unknown, or that the file changed since the run
    phase: str = ""

    def step(self, step_id: str) -> StepInfo:
        """Step info by id; ids of serial batches (`x[0]`) fall back to their step `x`."""
        info = self.steps.get(step_id) or self.steps.get(re.sub(r"(\[\d+\])+$", "", step_id))
        return info or StepInfo(step_id, step_id)

    @property
    def end(self) -> float:
        """When the run finished, or its last recorded activity while it is still running."""
        if self.run.finished:
            return float(self.run.finished)
        times = [n.finished or n.started or 0.0 for n in self.nodes]
        times += [r["finished"] or r["started"] or 0.0 for r in self.rollbacks]
        times += [e[0] for e in self.events]
        return max([self.run.started, *times])

    def node(self, node_id: str | None) -> NodeRecord | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def label(self, node: NodeRecord) -> str:
        return f"{self.step(node.step_id).name} @ {node.host or '-'}"


def gather(journal: Journal, run_id: str, registry: Any = None) -> RunView:
    """Read one run from the journal, and its runbook's step names and marks if it still exists."""
    run = journal.get_run(run_id)
    nodes = sorted(journal.nodes(run.id).values(), key=lambda n: (n.started or n.finished or 0.0, n.node_id))
    view = RunView(run, nodes, journal.approvals(run.id), _rollbacks(journal, run), journal.events(run.id))
    _attach_runbook(view, registry)
    return view


def _rollbacks(journal: Journal, run: Any) -> list[dict[str, Any]]:
    """The run's rollback entries; after a success, the undos it recorded were not needed, and
    with --rollback never they were kept (they stay `pending` in the journal: a later `retry`
    that fails may still need them)."""
    entries = journal.rollbacks(run.id)
    kept = "not needed" if run.status == "succeeded" else \
        "kept" if (run.options or {}).get("rollback") == "never" and run.finished else None
    if kept:
        for entry in entries:
            if entry["status"] == "pending":
                entry["status"] = kept
    return entries


def _attach_runbook(view: RunView, registry: Any) -> None:
    path = view.run.runbook_path
    if not path or not os.path.isfile(path):
        view.runbook_note = f"runbook {path or '(none)'} not found: step marks unknown"
        return
    try:
        from opsbook.load import RunbookLoader
        from opsbook.registry import Registry

        runbook = RunbookLoader(registry or Registry.from_entry_points()).load_file(path)
    except OpsbookError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        view.runbook_note = f"runbook {path} cannot be loaded ({first}): step marks unknown"
        return
    for step in [*runbook.all_steps(), *_walk(runbook.handlers)]:
        view.steps[step.id] = StepInfo(step.id, step.name, tuple(step.marks), bool(step.ignore_errors))
    view.marks_known = True
    view.phase = runbook.phase
    if runbook.digest != view.run.digest:
        view.runbook_note = f"{path} changed since the run; step names and marks are from the current file"


def _walk(steps: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for step in steps:
        out += [step, *_walk(step.block), *_walk(step.rescue), *_walk(step.always)]
    return out


# -- RTO / RPO ---------------------------------------------------------------------------


def rto(journal: Journal, run_id: str, registry: Any = None) -> dict[str, Any]:
    """Recovery time (and point) of a run against the runbook's objectives; see the module doc."""
    return rto_of(gather(journal, run_id, registry))


def objectives_line(journal: Journal, run_id: str) -> str:
    """`RTO 42.0s against 5m00s: met; RPO ...` when the runbook declares objectives, else ""."""
    view = gather(journal, run_id)
    objectives = view.run.objectives or {}
    if not any(objectives.get(k) is not None for k in ("rto", "rpo")):
        return ""
    r = rto_of(view)
    parts = []
    if objectives.get("rto") is not None:
        parts.append("RTO " + _rto_line(view, r).split("; basis:")[0])
    if objectives.get("rpo") is not None:
        parts.append("RPO " + _rpo_line(view, r).split("; data as of")[0])
    return "; ".join(parts)


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
    out.update(_rpo(view, detection))
    return out


def _recovery_points(view: RunView) -> tuple[NodeRecord | None, NodeRecord | str | None, str]:
    """(mitigation node, recovery node or "run_end", basis)."""
    marked = {m for s in view.steps.values() for m in s.marks}
    if not {"mitigation", "verification"} & marked:
        why = "no step is marked mitigation/verification" if view.marks_known else "step marks unknown"
        if view.run.status == "succeeded":
            return None, "run_end", f"end of the succeeded run ({why})"
        return None, None, f"not recovered: the run {view.run.status} ({why})"
    mitigation = _first_ok(view, "mitigation", None) if "mitigation" in marked else None
    if "mitigation" in marked and mitigation is None:
        return None, None, "not recovered: no step marked mitigation succeeded"
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
    value = (objectives or {}).get(key)
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


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
    status = node.status
    detail = node.msg
    if status == "started":
        status, detail = "in doubt", "started, no result recorded (opsbook stopped or is still running)"
    elif status in FAILED and view.step(node.step_id).ignore_errors:
        detail = f"{detail} (ignored: ignore_errors)".strip()
    duration = (node.finished - node.started) if node.finished and node.started else None
    if node.rc not in (None, 0) and status in FAILED:
        detail = f"rc {node.rc}: {detail}"
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


def _counts(view: RunView) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in view.nodes:
        key = "in doubt" if node.status == "started" else node.status
        counts[key] = counts.get(key, 0) + 1
    return counts


def _counts_text(view: RunView) -> str:
    counts = _counts(view)
    order = ["ok", "failed", "timed_out", "skipped", "unknown", "in doubt"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in order]
    return ", ".join(parts) or "no nodes recorded"


def _rollbacks_text(view: RunView) -> str:
    if not view.rollbacks:
        return "none recorded"
    statuses = [r["status"] for r in view.rollbacks]
    if all(st == "not needed" for st in statuses):
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


# -- `opsbook show`: the terminal timeline ------------------------------------------------


def timeline_text(journal: Journal, run_id: str, width: int = 110, registry: Any = None) -> str:
    """A run's header and its merged timeline as plain text for an 80-120 column terminal."""
    view = gather(journal, run_id, registry)
    r = rto_of(view)
    lines = _header_lines(view, r)
    lines += ["", *_timeline_lines(view, timeline(view, r), width)]
    return "\n".join(lines)


def _header_lines(view: RunView, r: dict[str, Any]) -> list[str]:
    run = view.run
    finished = f"   finished {_local(run.finished)}" if run.finished else "   (still running or stopped)"
    rows = [
        ("runbook", run.runbook_path + (f" (phase {view.phase})" if view.phase else "")),
        ("run by", f"{run.who}@{run.host}, pid {run.pid}"),
        ("started", _local(run.started) + finished),
    ]
    if run.incident_start is not None:
        before = _dur(run.started - run.incident_start)
        rows.append(("incident", f"{_local(run.incident_start)} ({before} before the run)"))
    rows += [("status", f"{run.status} after {_dur(view.end - run.started)}"),
             ("nodes", _counts_text(view) + f"; rollbacks: {_rollbacks_text(view)}")]
    rows += [("objectives", _objectives_text(r)), ("RTO", _rto_line(view, r))]
    if r["mitigation"] is not None:
        rows.append(("mitigated", _point(view, r, "mitigation")))
    if r["recovered"] is not None:
        rows.append(("recovered", _point(view, r, "recovered")))
    rows.append(("RPO", _rpo_line(view, r)))
    cause = run.summary.get("cause") if isinstance(run.summary, dict) else None
    if cause:
        rows.insert(0, ("cause", str(cause)))
    message = run.summary.get("message") if isinstance(run.summary, dict) else None
    if message:
        rows.append(("message", str(message)))
    if view.runbook_note:
        rows.append(("note", view.runbook_note))
    title = f"run {run.id}  {run.runbook_name}  {run.status.upper()}"
    ends = end_state(view) if run.finished else []
    if any(e.touched for e in ends):
        rows.append(("at the end", ""))
        rows += [(f"  {e.host}", e.text()) for e in ends]
    return [title, *(f"  {k:<11} {v}".rstrip() for k, v in rows), *_waiting_gate_lines(view), *_diff_lines(view)]


def _diffs(view: RunView) -> list[tuple[str, str, str]]:
    """(step, host, unified diff) of every change shown with --diff, in time order."""
    return [(str(d.get("step", "")), str(d.get("host") or ""), str(d.get("diff", "")))
            for _, kind, _node, d in view.events if kind == "diff"]


def _diff_lines(view: RunView) -> list[str]:
    lines: list[str] = []
    for step, host, diff in _diffs(view):
        lines += ["", f"  diff of {step} @ {host}:", *("    " + line for line in diff.rstrip("\n").splitlines())]
    return lines


def _waiting_gate_lines(view: RunView) -> list[str]:
    """Gates that wait now, in full (the timeline's DETAIL column is cut to the terminal)."""
    from opsbook.gates import describe_gate

    lines: list[str] = []
    for a in view.approvals:
        if a["decided"] is not None or view.run.status != "running":
            continue
        d = a.get("detail") or {}
        gate = d.get("block_name") or d.get("step_name") or a["step_id"]
        described = describe_gate(gate, d.get("host"), a["prompt"] or "", d.get("action", ""), d.get("args"),
                                  d.get("started_by", ""), view.run.id,
                                  d.get("step_name") if d.get("block_name") else None,
                                  runs_on=d.get("runs_on"), steps=d.get("steps") or ())
        lines += ["", "  " + described[0].replace("approval needed", "WAITING for approval"),
                  *("  " + line for line in described[1:]),
                  f"    decide: opsbook approve {view.run.id} {shlex.quote(gate)}   (or deny)"]
    return lines


def _timeline_lines(view: RunView, entries: list[Entry], width: int) -> list[str]:
    host_w = min(16, max([4, *(len(e.host) for e in entries)]))
    subject_w = min(30, max([4, *(len(e.subject) for e in entries)]))
    head = f"  {'OFFSET':<9} {'DUR':>7}  {'STATUS':<11} {'HOST':<{host_w}}  {'STEP / EVENT':<{subject_w}}  DETAIL"
    lines = [head]
    start = view.run.started
    for e in entries:
        ts = offset(e.ts - start) if e.ts is not None else "-"
        mark = f" [{e.mark}]" if e.mark else ""
        prefix = (f"  {ts:<9} {_dur(e.duration) if e.duration is not None else '':>7}  {e.status:<11} "
                  f"{_clip(e.host, host_w):<{host_w}}  {_clip(e.subject, subject_w):<{subject_w}}  ")
        room = max(10, width - len(prefix))
        detail = mark.strip() + (" " if mark and e.detail else "") + e.detail
        lines.append((prefix + _clip(detail, room)).rstrip())
        if e.kind == "node" and e.status in FAILED:
            if len(" ".join(detail.split())) > room:
                wrapped = textwrap.wrap(" ".join(detail.split()), max(20, width - 21))[:4]
                lines += [f"{'':11}{'msg':>6} | {w}" for w in wrapped]
            lines += _failure_tail(view.node(e.node_id), width)
    return lines


def _failure_tail(node: NodeRecord | None, width: int, lines: int = 3) -> list[str]:
    if node is None:
        return []
    out = []
    for name, text in (("stderr", node.stderr), ("stdout", node.stdout)):
        if text.strip():
            tail, _ = _tail(text, lines)
            out += [f"{'':11}{name:>6} | {_clip(line, width - 22)}" for line in tail.splitlines()]
            break  # one stream is enough here; the report has both
    return out


# -- documents: one structure rendered as Markdown or HTML -------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    status_col: int | None = None  # column coloured by status in HTML


@dataclass
class Para:
    text: str


@dataclass
class Code:
    caption: str
    text: str


@dataclass
class Bullets:
    items: list[str]
    checklist: bool = False


@dataclass
class Heading:
    text: str
    level: int = 3


Block = Table | Para | Code | Bullets | Heading


@dataclass
class Section:
    title: str
    blocks: list[Block]
    anchor: str = ""


def _sections(view: RunView, r: dict[str, Any], entries: list[Entry]) -> list[Section]:
    return [
        _summary_section(view),
        _end_state_section(view),
        _objectives_section(view, r),
        _timeline_section(view, entries),
        *_changes_section(view),
        _failures_section(view),
        _approvals_section(view),
        _rollbacks_section(view),
        _evidence_section(view),
        _root_cause_section(view),
        _permanent_fix_section(view),
    ]


@dataclass
class HostEnd:
    """How the run left one host: what it changed and left so, undid, failed to undo, failed."""

    host: str
    left_changed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    rollback_failed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    touched: bool = False

    def text(self) -> str:
        if not self.touched:
            return "never touched"
        parts = []
        if self.failed:
            parts.append("failed: " + ", ".join(self.failed))
        if self.rollback_failed:
            parts.append("ROLLBACK FAILED: " + "; ".join(self.rollback_failed))
        if self.rolled_back:
            parts.append("rolled back: " + ", ".join(self.rolled_back))
        if self.left_changed:
            parts.append("left changed: " + ", ".join(self.left_changed))
        return "; ".join(parts) or "nothing changed"


def end_state(view: RunView) -> list[HostEnd]:
    """Per host (the host a step acted for), in first-seen order: how the run left it."""
    hosts: dict[str, HostEnd] = {}
    undo: dict[str, list[dict[str, Any]]] = {}
    for r in view.rollbacks:
        undo.setdefault(r["node_id"], []).append(r)
    for node in view.nodes:
        if not node.host:
            continue
        end = hosts.setdefault(node.host, HostEnd(node.host))
        if node.status in ("skipped",):
            continue
        end.touched = True
        name = view.step(node.step_id).name
        if node.status in FAILED and not view.step(node.step_id).ignore_errors:
            end.failed.append(f"{name} ({_clip(node.msg, 160)})" if node.msg else name)
        entries = undo.get(node.node_id, [])
        if not (node.changed and node.status == "ok") and not entries:
            continue
        if any(e["status"] in ("failed", "skipped") for e in entries):
            why = next(e["msg"] for e in entries if e["status"] in ("failed", "skipped"))
            end.rollback_failed.append(f"{name} ({why})" if why else name)
        elif entries and all(e["status"] == "done" for e in entries):
            end.rolled_back.append(name)
        elif node.changed and node.status == "ok":
            end.left_changed.append(name + ("" if entries else " (no undo recorded)"))
    return list(hosts.values())


def _changes_section(view: RunView) -> list[Section]:
    """The diffs of a run made with --diff (nothing when there are none)."""
    diffs = _diffs(view)
    if not diffs:
        return []
    return [Section("Changes (--diff)", [Code(f"{step} @ {host}", diff) for step, host, diff in diffs], "changes")]


def _end_state_section(view: RunView) -> Section:
    ends = end_state(view)
    if not ends:
        return Section("State at the end", [Para("No host was part of this run.")], "end-state")
    rows = [[e.host, e.text()] for e in ends]
    return Section("State at the end", [Para("How the run left each host, after its rollbacks."),
                                        Table(["Host", "State"], rows)], "end-state")


def _summary_section(view: RunView) -> Section:
    run = view.run
    rows = [
        ["Run", run.id], ["Runbook", f"{run.runbook_name} ({run.runbook_path})"],
        ["Phase", view.phase or "-"], ["Status", run.status],
        ["Started", _local(run.started)], ["Finished", _local(run.finished)],
        ["Duration", _dur(view.end - run.started)], ["Run by", f"{run.who}@{run.host} (pid {run.pid})"],
        ["Nodes", _counts_text(view)], ["Rollbacks", _rollbacks_text(view)],
    ]
    if run.params:
        rows.append(["Parameters", ", ".join(f"{k}={v}" for k, v in run.params.items())])
    if run.inventory:
        rows.append(["Inventory", ", ".join(run.inventory)])
    flags = {k: v for k, v in (run.options or {}).items() if v not in (None, False, [], "on-failure", 50)}
    if flags:
        rows.append(["Options", ", ".join(f"{k}={v}" for k, v in flags.items())])
    cause = run.summary.get("cause") if isinstance(run.summary, dict) else None
    if cause:
        rows.insert(0, ["Cause", str(cause)])
    message = run.summary.get("message") if isinstance(run.summary, dict) else None
    if message:
        rows.append(["Message", str(message)])
    blocks: list[Block] = [Table(["", ""], rows)]
    if view.runbook_note:
        blocks.append(Para(f"Note: {view.runbook_note}."))
    return Section("Summary", blocks, "summary")


def _objectives_section(view: RunView, r: dict[str, Any]) -> Section:
    def row(key: str) -> list[str]:
        achieved = r[key]
        return [key.upper(), _dur(achieved), _dur(r[f"{key}_objective"]), r[f"{key}_verdict"]]

    blocks: list[Block] = [Table(["", "Achieved", "Objective", "Verdict"], [row("rto"), row("rpo")])]
    source = ("the incident start given to the run" if r["detection_source"] == "incident_start"
              else "the run start (no --incident-start given)")
    points = [f"Detection: {_local(r['detection'])}, {source}.",
              f"Mitigation: {_point(view, r, 'mitigation')}.",
              f"Recovered: {_point(view, r, 'recovered')}; basis: {r['basis']}."]
    if r["rpo"] is not None:
        points.append(f"RPO: {_rpo_line(view, r)}.")
    blocks.append(Bullets(points))
    return Section("Recovery objectives", blocks, "objectives")


def _timeline_section(view: RunView, entries: list[Entry]) -> Section:
    start = view.run.started
    rows = [[offset(e.ts - start) if e.ts is not None else "-", _dur(e.duration) if e.duration is not None else "",
             e.status, e.host or "", e.subject, (f"[{e.mark}] " if e.mark else "") + e.detail] for e in entries]
    return Section("Timeline", [Table(["Offset", "Duration", "Status", "Host", "Step / event", "Detail"], rows,
                                      status_col=2)], "timeline")


def _failed_nodes(view: RunView) -> list[NodeRecord]:
    return [n for n in view.nodes if n.status in (*FAILED, "started", "unknown")]


def _failures_section(view: RunView) -> Section:
    failed = _failed_nodes(view)
    if not failed:
        return Section("Failures", [Para("No node failed.")], "failures")
    blocks: list[Block] = []
    for node in failed:
        info = view.step(node.step_id)
        state = "in doubt" if node.status == "started" else node.status
        ignored = " (ignored: ignore_errors)" if info.ignore_errors and node.status in FAILED else ""
        blocks.append(Heading(f"{info.name} on {node.host or '-'}: {state}{ignored}"))
        facts = [f"node {node.node_id}", f"started {offset((node.started or view.run.started) - view.run.started)}",
                 f"took {_dur((node.finished - node.started) if node.finished and node.started else None)}",
                 f"attempts {node.attempts}"] + ([f"rc {node.rc}"] if node.rc is not None else [])
        blocks.append(Para(", ".join(facts) + (f". {node.msg}" if node.msg else ".")))
        for name, text in (("stdout", node.stdout), ("stderr", node.stderr)):
            if text.strip():
                tail, dropped = _tail(text)
                caption = f"{name}" + (f" (last {TAIL_LINES} lines; {dropped} earlier lines not shown)"
                                       if dropped else "")
                blocks.append(Code(caption, tail))
    return Section("Failures", blocks, "failures")


def _approvals_section(view: RunView) -> Section:
    if not view.approvals:
        return Section("Approvals", [Para("No approval gate was reached.")], "approvals")
    rows = []
    for a in view.approvals:
        node = view.node(a["node_id"])
        decision = _decision(a)
        waited = (a["decided"] - a["requested"]) if a["decided"] and a["requested"] else None
        rows.append([view.step(a["step_id"]).name, (node.host or "-") if node else a["node_id"], a["prompt"] or "",
                     decision, a["who"] or "-", _local(a["decided"] or a["requested"]),
                     _dur(waited) if waited and waited >= 0.5 else "-"])
    return Section("Approvals", [Table(["Step", "Host", "Prompt", "Decision", "Who", "When", "Waited"], rows,
                                       status_col=3)], "approvals")


def _rollbacks_section(view: RunView) -> Section:
    if not view.rollbacks:
        return Section("Rollbacks", [Para("Nothing was rolled back.")], "rollbacks")
    rows = []
    for r in view.rollbacks:
        node = view.node(r["node_id"])
        host = (r["host"] or "-") + (f" (on {r['target']})" if r.get("target") and r["target"] != r["host"] else "")
        rows.append([str(r["seq"]), r["action"], host, view.step(node.step_id).name if node else
                     r["node_id"], r["status"], _dur((r["finished"] - r["started"]) if r["finished"] and
                                                     r["started"] else None), r["msg"] or ""])
    return Section("Rollbacks", [Table(["#", "Action", "Host", "Undoes", "Status", "Took", "Message"], rows,
                                       status_col=4)], "rollbacks")


def _evidence_section(view: RunView) -> Section:
    items = []
    for ts, kind, node_id, data in view.events:
        if kind != "evidence":
            continue
        text = f"{data.get('path', '?')}: from {data.get('source', '?')} (step {data.get('step', '?')}" \
               f" on {data.get('host') or '-'}, {offset(ts - view.run.started)})"
        if data.get("description"):
            text += f": {data['description']}"
        items.append(text)
    if not items:
        return Section("Evidence", [Para("No evidence was collected.")], "evidence")
    return Section("Evidence", [Para("Files in the run's evidence folder (runs/<run id>/evidence):"),
                                Bullets(items)], "evidence")


def _problem_groups(view: RunView) -> list[tuple[str, list[str], str]]:
    """(step name, hosts, first message) per step that failed, in first-failure order."""
    groups: dict[str, tuple[str, list[str], str]] = {}
    for node in _failed_nodes(view):
        info = view.step(node.step_id)
        name = info.name
        msg = node.msg
        if info.ignore_errors and node.status in FAILED:
            msg = f"{msg}; ignore_errors: was this failure the incident itself?".lstrip("; ")
        entry = groups.setdefault(name, (name, [], msg))
        entry[1].append(node.host or "-")
    rolled = [r for r in view.rollbacks if r["status"] == "failed"]
    for r in rolled:
        name = f"rollback {r['action']}"
        groups.setdefault(name, (name, [], r["msg"] or ""))[1].append(r["host"] or "-")
    return list(groups.values())


def _root_cause_section(view: RunView) -> Section:
    groups = _problem_groups(view)
    if not groups:
        return Section("Root cause notes", [Para("No step failed. What caused the incident the run responded "
                                                 "to? (Read the evidence above.)")], "root-cause")
    items = [f"Why did \"{name}\" fail on {', '.join(hosts)}?" + (f" ({_clip(msg, 160)})" if msg else "")
             for name, hosts, msg in groups]
    items.append("What did the evidence show at the time of failure (logs, resource state)?")
    return Section("Root cause notes", [Bullets(items, checklist=True)], "root-cause")


def _permanent_fix_section(view: RunView) -> Section:
    groups = _problem_groups(view)
    items = [f"What change keeps \"{name}\" from failing on {', '.join(hosts)} again "
             "(configuration, capacity, monitoring)?" for name, hosts, _ in groups]
    items.append("Which monitoring threshold or alert would have caught this earlier?")
    items.append("Does this runbook need a new step, a check or a better objective?")
    return Section("Permanent fix", [Bullets(items, checklist=True)], "permanent-fix")


# -- Markdown ----------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|") or " "


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Table):
        head = "| " + " | ".join(_md_cell(h) for h in block.headers) + " |"
        lines = [head, "|" + "|".join("---" for _ in block.headers) + "|"]
        return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows] + [""]
    if isinstance(block, Para):
        return [block.text, ""]
    if isinstance(block, Code):
        fence = _fence(block.text)
        return [f"{block.caption}:", "", f"{fence}text", block.text, fence, ""]
    if isinstance(block, Bullets):
        bullet = "- [ ] " if block.checklist else "- "
        return [bullet + " ".join(item.split()) for item in block.items] + [""]
    return [f"{'#' * block.level} {block.text}", ""]


def _markdown(view: RunView, sections: list[Section]) -> str:
    lines = [f"# Run report: {view.run.runbook_name} ({view.run.id})", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block)
    lines.append(f"_Generated by opsbook from the journal on {_local(time.time())}._")
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------

_CSS = """
.plan-graph svg{max-width:100%;height:auto}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;
padding:0 1em;color:#1d1f23}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d8dadd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6}pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:.6em;overflow:auto;
font-size:12px;max-height:30em}
.st{font-weight:600}.st-ok,.st-approved,.st-done,.st-rb-done{color:#2e7d3e}
.st-failed,.st-denied,.st-timed_out,.st-rb-failed{color:#c0272d}.st-skipped,.st-pending,.st-cancelled{color:#6b7075}
.st-in-doubt,.st-waiting{color:#a07800}
ul.check{list-style:none;padding-left:1em}ul.check li:before{content:"\\2610  "}
.gantt{border:1px solid #e1e4e8;margin:.6em 0;max-width:100%;height:auto}
.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
footer{color:#6b7075;margin-top:2em;font-size:12px}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _status_class(status: str) -> str:
    return "st st-" + re.sub(r"[^a-z_-]+", "-", status.lower())


def _html_block(block: Block) -> str:
    if isinstance(block, Table):
        head = "".join(f"<th>{_h(h)}</th>" for h in block.headers)
        rows = []
        for row in block.rows:
            cells = [f'<td class="{_status_class(c)}">{_h(c)}</td>' if i == block.status_col else f"<td>{_h(c)}</td>"
                     for i, c in enumerate(row)]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        thead = f"<thead><tr>{head}</tr></thead>" if any(block.headers) else ""
        return f"<table>{thead}<tbody>{''.join(rows)}</tbody></table>"
    if isinstance(block, Para):
        return f"<p>{_h(block.text)}</p>"
    if isinstance(block, Code):
        return f"<p>{_h(block.caption)}:</p><pre><code>{_h(block.text)}</code></pre>"
    if isinstance(block, Bullets):
        cls = ' class="check"' if block.checklist else ""
        return f"<ul{cls}>" + "".join(f"<li>{_h(i)}</li>" for i in block.items) + "</ul>"
    return f"<h{block.level + 1}>{_h(block.text)}</h{block.level + 1}>"


def _html(view: RunView, r: dict[str, Any], sections: list[Section]) -> str:
    title = f"Run report: {view.run.runbook_name} ({view.run.id})"
    body = [f"<h1>{_h(title)}</h1>"]
    for section in sections:
        body.append(f'<section id="{_h(section.anchor)}"><h2>{_h(section.title)}</h2>')
        body += [_html_block(b) for b in section.blocks]
        if section.anchor == "objectives":
            body.append('<h3>Gantt chart</h3>' + gantt_svg(view, r) + _legend())
            body.append('<h3>Plan graph, coloured by outcome</h3>' + plan_graph_html(view))
        body.append("</section>")
    body.append(f"<footer>Generated by opsbook from the journal on {_h(_local(time.time()))}.</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_h(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


_SEVERITY = ("failed", "timed_out", "unknown", "started", "ok", "skipped")


def plan_graph_html(view: RunView) -> str:
    """The plan's graph (one box per step) coloured by what its nodes did, as inline SVG
    rendered by Graphviz; the DOT text when Graphviz or the runbook is not available."""
    from opsbook.planview import graph_dot, render_image

    try:
        from opsbook.api import load_inventory_sources, load_runbook, make_plan
        from opsbook.registry import Registry

        registry = Registry.from_entry_points()
        plan = make_plan(load_runbook(view.run.runbook_path, registry),
                         load_inventory_sources(list(view.run.inventory), registry), dict(view.run.params))
    except Exception as exc:  # noqa: BLE001 - the report is still useful without the graph
        return f"<p>(plan graph not available: {_h(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)})</p>"
    worst: dict[str, str] = {}
    for node in view.nodes:
        step_id = re.sub(r"(\[\d+\])+$", "", node.step_id) if node.step_id not in plan.leaves else node.step_id
        current = worst.get(node.step_id)
        if current is None or _SEVERITY.index(node.status) < _SEVERITY.index(current):
            worst[node.step_id] = node.status if node.status in _SEVERITY else "ok"
        worst.setdefault(step_id, worst[node.step_id])
    colors = {sid: STATUS_COLORS.get(status, "#f5f5f5") for sid, status in worst.items()}
    dot = graph_dot(plan, by_step=True, colors=colors)
    try:
        svg = render_image(dot, "svg").decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - no Graphviz: show the graph as text
        return f"<pre>{_h(dot)}</pre>"
    start = svg.find("<svg")
    return f'<div class="plan-graph">{svg[start:]}</div>' if start >= 0 else f"<pre>{_h(dot)}</pre>"


def _legend() -> str:
    items = [("ok", "ok"), ("failed", "failed"), ("timed_out", "timed out"), ("skipped", "skipped"),
             ("started", "in doubt"), ("done", "rollback done")]
    spans = "".join(f'<span><i style="background:{STATUS_COLORS[k]}"></i>{_h(label)}</span>' for k, label in items)
    return f'<p class="legend">{spans}<span>dashed lines: mitigated, recovered, RTO objective</span></p>'


# -- the SVG Gantt chart ----------------------------------------------------------------

SVG_NS = "http://www.w3.org/2000/svg"
_LABEL_W, _CHART_W, _ROW_H, _TOP, _PAD = 300, 680, 18, 28, 10
# A node of a few milliseconds in a run of minutes must still show (and carry its tooltip):
# 4 px stays a visible block of colour once the edges are antialiased.
_MIN_BAR_W = 4.0


def gantt_svg(view: RunView, r: dict[str, Any] | None = None) -> str:
    """An inline SVG Gantt chart: one row per node (step x host) and per rollback, coloured by status."""
    r = r if r is not None else rto_of(view)
    rows = _gantt_rows(view)
    start = view.run.started
    span = max(_chart_end(view, rows) - start, 1e-3)
    scale = _CHART_W / span
    height = _TOP + len(rows) * _ROW_H + 2 * _PAD
    width = _LABEL_W + _CHART_W + 2 * _PAD
    svg = ET.Element("svg", {"xmlns": SVG_NS, "width": str(width), "height": str(height),
                             "viewBox": f"0 0 {width} {height}", "class": "gantt", "role": "img",
                             "font-family": "system-ui,sans-serif", "font-size": "11"})
    ET.SubElement(svg, "title").text = f"Timeline of run {view.run.id}"
    _gantt_axis(svg, span, scale, height)
    for i, (label, t0, t1, status, tip) in enumerate(rows):
        y = _TOP + i * _ROW_H
        text = ET.SubElement(svg, "text", {"x": str(_PAD), "y": str(y + 13), "class": "label"})
        text.text = _clip(label, 46)
        x0 = _LABEL_W + (t0 - start) * scale
        w = max(_MIN_BAR_W, (t1 - t0) * scale)
        bar = ET.SubElement(svg, "rect", {"x": f"{x0:.1f}", "y": str(y + 3), "width": f"{w:.1f}",
                                          "height": str(_ROW_H - 6), "rx": "2",
                                          "fill": STATUS_COLORS.get(status, "#888888"),
                                          "class": f"bar status-{status}"})
        ET.SubElement(bar, "title").text = tip
    _gantt_approvals(svg, view, rows, scale)
    _gantt_markers(svg, view, r, scale, height)
    return ET.tostring(svg, encoding="unicode")


def _gantt_rows(view: RunView) -> list[tuple[str, float, float, str, str]]:
    """(label, start, end, status, tooltip) per node and per executed rollback."""
    rows = []
    for n in view.nodes:
        t0 = n.started or n.finished or view.run.started
        t1 = n.finished or view.end
        tip = f"{view.label(n)}: {n.status}, {_dur(t1 - t0)}" + (f" - {n.msg}" if n.msg else "")
        rows.append((view.label(n), t0, t1, n.status, tip))
    for rb in view.rollbacks:
        if rb["started"] is None:
            continue
        t1 = rb["finished"] or view.end
        label = f"rollback {rb['action']} for {rb['host'] or '-'}"
        rows.append((label, rb["started"], t1, "done" if rb["status"] == "done" else rb["status"],
                     f"{label}: {rb['status']}" + (f" - {rb['msg']}" if rb["msg"] else "")))
    return rows


def _chart_end(view: RunView, rows: list[tuple[str, float, float, str, str]]) -> float:
    stamps = [row[2] for row in rows] + [a["decided"] or a["requested"] or 0.0 for a in view.approvals]
    return float(max([view.end, *stamps]))


def _nice_step(span: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if span / step <= 10:
            return float(step)
    return 86400.0


def _gantt_axis(svg: ET.Element, span: float, scale: float, height: int) -> None:
    step = _nice_step(span)
    axis = ET.SubElement(svg, "g", {"class": "axis", "stroke": "#e1e4e8"})
    tick = 0.0
    while tick <= span + 1e-9:
        x = f"{_LABEL_W + tick * scale:.1f}"
        ET.SubElement(axis, "line", {"x1": x, "x2": x, "y1": str(_TOP - 6), "y2": str(height - _PAD)})
        label = ET.SubElement(svg, "text", {"x": x, "y": str(_TOP - 10), "text-anchor": "middle",
                                            "fill": "#6b7075", "class": "tick"})
        label.text = offset(tick)
        tick += step


def _gantt_approvals(svg: ET.Element, view: RunView, rows: list[tuple[str, float, float, str, str]],
                     scale: float) -> None:
    by_label = {row[0]: i for i, row in enumerate(rows)}
    for a in view.approvals:
        node = view.node(a["node_id"])
        ts = a["decided"] or a["requested"]
        if node is None or ts is None or view.label(node) not in by_label:
            continue
        x = _LABEL_W + (ts - view.run.started) * scale
        y = _TOP + by_label[view.label(node)] * _ROW_H + _ROW_H / 2
        points = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        decision = _decision(a)
        mark = ET.SubElement(svg, "polygon", {"points": points, "fill": "#1d1f23", "class": "approval"})
        ET.SubElement(mark, "title").text = f"approval {decision} by {a['who'] or '-'}: {a['prompt']}"


def _gantt_markers(svg: ET.Element, view: RunView, r: dict[str, Any], scale: float, height: int) -> None:
    start = view.run.started
    marks = [("mitigated", r["mitigation"], "#3b73c4"), ("recovered", r["recovered"], "#2e9e4f")]
    if r["rto_objective"] is not None:
        marks.append(("RTO objective", r["detection"] + r["rto_objective"], "#d1383d"))
    for name, ts, color in marks:
        if ts is None or not start <= ts <= start + _CHART_W / scale + 1e-6:
            continue
        x = f"{_LABEL_W + (ts - start) * scale:.1f}"
        line = ET.SubElement(svg, "line", {"x1": x, "x2": x, "y1": str(_TOP - 4), "y2": str(height - _PAD),
                                           "stroke": color, "stroke-dasharray": "4 3", "class": "marker"})
        ET.SubElement(line, "title").text = f"{name} at {offset(ts - start)}"


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
        "counts": _counts(view),
        "rto": {**r, **{f"{k}_iso": _iso(r[k]) for k in ("detection", "mitigation", "recovered", "data_time")}},
        "runbook_note": view.runbook_note or None,
        "steps": {sid: s.__dict__ | {"marks": list(s.marks)} for sid, s in view.steps.items()},
        "nodes": [{**n.__dict__, "step_name": view.step(n.step_id).name,
                   "offset": None if n.started is None else n.started - start,
                   "duration": (n.finished - n.started) if n.finished and n.started else None}
                  for n in view.nodes],
        "approvals": view.approvals,
        "rollbacks": view.rollbacks,
        "events": [{"ts": ts, "kind": kind, "node": node, "data": data} for ts, kind, node, data in view.events],
        "timeline": [e.to_json(start) for e in timeline(view, r)],
    }


# -- JUnit -------------------------------------------------------------------------------


def _junit_node(view: RunView, suite: ET.Element, node: NodeRecord) -> None:
    info = view.step(node.step_id)
    took = (node.finished - node.started) if node.finished and node.started else 0.0
    case = ET.SubElement(suite, "testcase", {"classname": f"{view.run.runbook_name}.{node.step_id}",
                                             "name": view.label(node), "time": f"{took:.3f}"})
    message = node.msg or node.status
    if node.status in FAILED and not info.ignore_errors:
        failure = ET.SubElement(case, "failure", {"message": message, "type": node.status})
        failure.text = f"{view.label(node)}: {node.status}" + (f" (rc {node.rc})" if node.rc is not None else "") \
            + f"\n{node.msg}"
    elif node.status == "started":
        ET.SubElement(case, "error", {"message": "in doubt: started, no result recorded", "type": "in_doubt"})
    elif node.status in ("skipped", "unknown"):
        ET.SubElement(case, "skipped", {"message": message})
    if node.status in FAILED and info.ignore_errors:
        ET.SubElement(case, "system-out").text = f"failed, ignored (ignore_errors): {node.msg}"
    elif node.stdout.strip():
        ET.SubElement(case, "system-out").text = _tail(node.stdout)[0]
    if node.stderr.strip():
        ET.SubElement(case, "system-err").text = _tail(node.stderr)[0]


def _suite(parent: ET.Element, name: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", {"name": name, **attrs})


def _count_suite(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    suite.set("time", f"{sum(float(c.get('time', '0')) for c in cases):.3f}")


def _junit(view: RunView, r: dict[str, Any]) -> str:
    run = view.run
    root = ET.Element("testsuites", {"name": f"opsbook run {run.id}"})
    suite = _suite(root, run.runbook_name, timestamp=_iso(run.started) or "", hostname=run.host)
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", run.id), ("status", run.status), ("runbook", run.runbook_path),
                       ("rto", r["rto"]), ("rto_verdict", r["rto_verdict"]), ("rpo", r["rpo"]),
                       ("rpo_verdict", r["rpo_verdict"])):
        ET.SubElement(props, "property", {"name": key, "value": "" if value is None else str(value)})
    for node in view.nodes:
        _junit_node(view, suite, node)
    _count_suite(suite)
    if view.rollbacks:
        rb_suite = _suite(root, f"{run.runbook_name} rollback")
        for rb in view.rollbacks:
            took = (rb["finished"] - rb["started"]) if rb["finished"] and rb["started"] else 0.0
            case = ET.SubElement(rb_suite, "testcase", {"classname": f"{run.runbook_name}.rollback",
                                                        "name": f"{rb['action']} @ {rb['host'] or '-'} "
                                                                f"(undo {rb['node_id']})", "time": f"{took:.3f}"})
            if rb["status"] == "failed":
                ET.SubElement(case, "failure", {"message": rb["msg"] or "rollback failed", "type": "rollback"})
            elif rb["status"] != "done":
                ET.SubElement(case, "skipped", {"message": f"rollback {rb['status']}"})
        _count_suite(rb_suite)
    _junit_objectives(root, view, r)
    _count_root(root)
    return _xml_text(root)


def _junit_objectives(root: ET.Element, view: RunView, r: dict[str, Any]) -> None:
    suite = _suite(root, f"{view.run.runbook_name} objectives")
    for key in ("rto", "rpo"):
        case = ET.SubElement(suite, "testcase", {"classname": f"{view.run.runbook_name}.objectives",
                                                 "name": key.upper(), "time": "0.000"})
        if r[f"{key}_met"] is False or (key == "rto" and r["rto"] is None and r["rto_objective"] is not None):
            ET.SubElement(case, "failure", {"message": f"{key.upper()} {r[f'{key}_verdict']}", "type": "objective"})
        elif r[f"{key}_met"] is None:
            ET.SubElement(case, "skipped", {"message": f"{key.upper()} {r[f'{key}_verdict']}"})
    _count_suite(suite)


def _count_root(root: ET.Element) -> None:
    for attr in ("tests", "failures", "errors"):  # the schema has no `skipped` on <testsuites>
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root.findall("testsuite"))))
    root.set("time", f"{sum(float(s.get('time', '0')) for s in root.findall('testsuite')):.3f}")


def _xml_text(root: ET.Element) -> str:
    """The XML document; control characters (not allowed in XML 1.0) made visible."""
    ET.indent(root)
    return visible('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


# -- public entry points ----------------------------------------------------------------


def build_report(journal: Journal, run_id: str, fmt: str = "md", registry: Any = None) -> str:
    """A run report as Markdown (`md`), one self-contained HTML page, JSON or JUnit XML."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    view = gather(journal, run_id, registry)
    r = rto_of(view)
    if fmt == "json":
        return json.dumps(report_data(view, r), indent=2, default=str) + "\n"
    if fmt == "junit":
        return _junit(view, r)
    sections = _sections(view, r, timeline(view, r))
    # Markdown is read on terminals too (cat, less -R): no raw escape sequence from a target
    return visible(_markdown(view, sections)) if fmt == "md" else _html(view, r, sections)


def write_check_junit(reports: Sequence[Any], path: str) -> None:
    """JUnit XML for `opsbook check`: one test case per runbook file, a failure per error."""
    from opsbook.paths import write_output

    write_output(path, check_junit(reports))


def check_junit(reports: Sequence[Any]) -> str:
    """The text `write_check_junit` writes (reports are opsbook.check.CheckReport objects)."""
    from opsbook.check_junit import check_junit as schema_valid

    return schema_valid(reports)
