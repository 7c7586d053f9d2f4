"""`opsbook show`: the terminal timeline (80-120 columns)."""

from __future__ import annotations

import shlex
import textwrap
import time
from typing import Any

from opsbook.journal import Journal, NodeRecord
from opsbook.report.recovery import rto_of
from opsbook.report.timeline import (
    Entry,
    _clip,
    _counts_text,
    _dur,
    _local,
    _objectives_text,
    _point,
    _rollbacks_text,
    _rpo_line,
    _rto_line,
    _tail,
    offset,
    timeline,
)
from opsbook.report.view import FAILED, RunView, diffs, gather

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
    took = (f"running for {_dur(time.time() - run.started)} so far" if run.status == "running" and not run.finished
            else f"{run.status} after {_dur(view.end - run.started)}")
    rows += [("status", took),
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
    dry = bool((run.options or {}).get("check"))
    title = f"run {run.id}  {run.runbook_name}  {run.status.upper()}" + ("  (DRY RUN: --check, nothing was changed)"
                                                                          if dry else "")
    from opsbook.report.document import end_state  # the report's "State at the end", in short

    ends = end_state(view) if run.finished and not dry else []
    if any(e.touched for e in ends):
        rows.append(("at the end", ""))
        rows += [(f"  {e.host}", e.text()) for e in ends]
    return [title, *(f"  {k:<11} {v}".rstrip() for k, v in rows), *_waiting_gate_lines(view), *_diff_lines(view)]


def _diff_lines(view: RunView) -> list[str]:
    lines: list[str] = []
    for step, host, diff in diffs(view):
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
    subject_w = min(40, max([4, *(len(e.subject) for e in entries)]))
    head = f"  {'OFFSET':<9} {'DUR':>7}  {'STATUS':<11} {'HOST':<{host_w}}  {'STEP / EVENT':<{subject_w}}  DETAIL"
    lines = [head]
    start = view.run.started
    for e in entries:
        ts = offset(e.ts - start) if e.ts is not None else "-"
        mark = f" [{e.mark}]" if e.mark else ""
        prefix = (f"  {ts:<9} {_dur(e.duration) if e.duration is not None else '':>7}  {e.status:<11} "
                  f"{_clip(e.host, host_w):<{host_w}}  {_subject(e, subject_w):<{subject_w}}  ")
        room = max(10, width - len(prefix))
        detail = mark.strip() + (" " if mark and e.detail else "") + e.detail
        lines.append((prefix + _clip(detail, room)).rstrip())
        failed = e.kind == "node" and e.status in (*FAILED, "rescued", "ignored")
        if (failed or e.kind == "resumed") and len(" ".join(detail.split())) > room:
            # what a failure says, and what a resume will do, are read whole
            wrapped = textwrap.wrap(" ".join(detail.split()), max(20, width - 21))[:4]
            lines += [f"{'':11}{'msg':>6} | {w}" for w in wrapped]
        if failed:
            lines += _failure_tail(view.node(e.node_id), width)
    return lines


def _subject(e: Entry, width: int) -> str:
    """A step's name whole (a name cut short can read as another step: a handler and its
    flushed copy); an event's label clipped to the column."""
    return " ".join(e.subject.split()) if e.kind == "node" else _clip(e.subject, width)


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
