"""A run as the reports see it: the journal's records gathered once (`gather`), with the
runbook's step names and marks, nodes placed on the run's monotonic clock."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsbook.counts import FAILED, count_key, is_ignored, tally
from opsbook.errors import OpsbookError
from opsbook.journal import Journal, NodeRecord, RunRecord

FORMATS = ("md", "html", "json", "junit")
TAIL_LINES = 40  # output lines quoted per stream under a failure
TAIL_CHARS = 8000
DATA_TIME_KEYS = ("data_timestamp", "backup_time")
STATUS_COLORS = {
    "ok": "#2e9e4f", "failed": "#d1383d", "timed_out": "#e0822a", "rescued": "#c9a227", "ignored": "#b08a8c",
    "skipped": "#9aa0a6",
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
        """Step info by id; ids of serial batches (`x[0]`) fall back to their step `x`, and a
        handler's copy run by `meta: flush_handlers` (`<meta id>/<handler id>`) to its
        handler (its marks: a flushed handler can be the mitigation; its name, marked
        "(flush_handlers)" so that it reads apart from the same handler at the run's end)."""
        plain = re.sub(r"(\[\d+\])+$", "", step_id)
        info = self.steps.get(step_id) or self.steps.get(plain)
        if info is None and "/" in plain:
            parts = plain.split("/")
            info = next((self.steps[tail] for tail in ("/".join(parts[i:]) for i in range(1, len(parts)))
                         if tail in self.steps), None)
            if info is not None:
                info = dataclasses.replace(info, name=f"{info.name} (flush_handlers)")
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

    def ignored(self, node: NodeRecord) -> bool:
        """Whether the node's failure counts as ignored (ignore_errors): as the run recorded
        it, or, in a journal of an earlier version, as the runbook says now."""
        if node.ignored is not None:
            return node.ignored and node.status in FAILED
        return is_ignored(node.status, self.step(node.step_id).ignore_errors)

    @staticmethod
    def rescued(node: NodeRecord) -> bool:
        """Whether the node's failure counts as rescued: its block's rescue ran on the host
        and did not fail, as the run recorded it."""
        return node.rescued and node.status in FAILED

    def count_key(self, node: NodeRecord) -> str:
        """The count the node goes to (see opsbook.counts): `rescued`, `ignored`, `in doubt` or its status."""
        return count_key(node.status, self.ignored(node), self.rescued(node))

    def counts(self) -> dict[str, int]:
        """How many nodes per count, in the order every output shows them."""
        return tally((n.status, self.ignored(n), self.rescued(n)) for n in self.nodes)


def gather(journal: Journal, run_id: str, registry: Any = None) -> RunView:
    """Read one run from the journal, and its runbook's step names and marks if it still exists."""
    run = journal.get_run(run_id)
    nodes = [_on_run_clock(n) for n in journal.nodes(run.id).values()]
    nodes.sort(key=lambda n: (n.started or n.finished or 0.0, n.node_id))
    if (run.summary or {}).get("at") is not None and run.finished:
        run = dataclasses.replace(run, finished=float(run.summary["at"]))
    view = RunView(run, nodes, journal.approvals(run.id), _rollbacks(journal, run), journal.events(run.id))
    _attach_runbook(view, registry)
    return view


def _on_run_clock(node: NodeRecord) -> NodeRecord:
    """A node placed on the run's clock (monotonic time since the run started, anchored at
    its wall-clock start) when the journal has it: a wall-clock step during the run then
    changes no duration, no offset and no RTO (issue 24 item 15). The wall-clock stamps
    stay in the journal."""
    if node.at is None or node.elapsed is None:
        return node
    return dataclasses.replace(node, started=node.at - node.elapsed, finished=node.at)


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


def diffs(view: RunView) -> list[tuple[str, str, str]]:
    """(step, host, unified diff) of every change shown with --diff, in time order."""
    return [(str(d.get("step", "")), str(d.get("host") or ""), str(d.get("diff", "")))
            for _, kind, _node, d in view.events if kind == "diff"]
