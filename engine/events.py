"""Events the executor emits; the terminal display and JSON stream are listeners."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run. `kind` is one of:

    run_started, run_finished, node_started, node_finished, node_output, approval_requested,
    approval_decided, rollback_started, rollback_finished, warning, aborted, node_diff (--diff),
    node_rescued (a failed node whose block's rescue then succeeded on its host: counted `rescued`)
    """

    kind: str
    run_id: str
    ts: float = field(default_factory=time.time)
    node_id: str | None = None
    host: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind, "run": self.run_id, "ts": round(self.ts, 6)}
        if self.node_id:
            out.update(node=self.node_id, host=self.host, step=self.step)
        out.update(self.data)
        return out


Listener = Callable[[Event], None]


def wants_output(listeners: list[Listener]) -> bool:
    """Whether any listener takes `node_output` events (one per line of command output).

    A listener says it does not by a `wants_output = False` attribute; plain functions get
    every event."""
    return any(getattr(listener, "wants_output", True) for listener in listeners)
