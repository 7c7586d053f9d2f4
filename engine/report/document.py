"""One document structure (sections of tables, paragraphs, code) built from a run, rendered
as Markdown or HTML: summary, state at the end, objectives, timeline, failures, approvals,
rollbacks, evidence, root cause and permanent fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsbook.journal import NodeRecord
from opsbook.report.timeline import (
    Entry,
    _clip,
    _counts_text,
    _decision,
    _dur,
    _local,
    _point,
    _rollbacks_text,
    _rpo_line,
    _tail,
    offset,
)
from opsbook.report.view import FAILED, TAIL_LINES, RunView, diffs

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
    rescued: list[str] = field(default_factory=list)  # failed, then the block's rescue succeeded
    in_doubt: list[str] = field(default_factory=list)  # may have changed it: abandoned, or cut short
    touched: bool = False

    def text(self) -> str:
        if not self.touched:
            return "never touched"
        parts = []
        if self.in_doubt:
            parts.append("IN DOUBT (check the host): " + ", ".join(self.in_doubt))
        if self.failed:
            parts.append("failed: " + ", ".join(self.failed))
        if self.rescued:
            parts.append("rescued: " + ", ".join(self.rescued))
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
        if view.rescued(node):
            end.rescued.append(f"{name} ({_clip(node.msg, 160)})" if node.msg else name)
        elif node.status in FAILED and not view.ignored(node):
            end.failed.append(f"{name} ({_clip(node.msg, 160)})" if node.msg else name)
        elif node.status in ("unknown", "started"):  # a real run's (a dry run has no end state)
            end.in_doubt.append(f"{name} ({_clip(node.msg, 160)})" if node.msg else name)
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
    shown = diffs(view)
    if not shown:
        return []
    return [Section("Changes (--diff)", [Code(f"{step} @ {host}", diff) for step, host, diff in shown], "changes")]


def _end_state_section(view: RunView) -> Section:
    if (view.run.options or {}).get("check"):
        return Section("State at the end", [Para("A dry run (--check): nothing was changed on any host; "
                                                 "\"changed\" results say what a real run would change.")],
                       "end-state")
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
        handled = " (ignored: ignore_errors)" if view.ignored(node) else \
            " (rescued: the block's rescue succeeded)" if view.rescued(node) else ""
        blocks.append(Heading(f"{info.name} on {node.host or '-'}: {state}{handled}"))
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
        if view.ignored(node):
            msg = f"{msg}; ignore_errors: was this failure the incident itself?".lstrip("; ")
        elif view.rescued(node):
            msg = f"{msg}; rescued: the block's rescue answered it".lstrip("; ")
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
