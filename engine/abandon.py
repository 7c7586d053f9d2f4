"""Abandoning an action that ignores its cancellation: the run's bounded way out.

A node's cancel token is set by its step's `timeout:`, the run's timeout or a signal
(opsbook.cancel). An action that observes it returns within moments. One that does not (a
plugin calling `time.sleep(30)`, a library call with no timeout) would hold the run's end
for as long as it runs. So once a running node has been cancelled for longer than the
grace period (`RunOptions.cancel_grace`, `--cancel-grace`, default `DEFAULT_GRACE`), the
scheduler gives it up (`Stragglers.due`, then `give_up`):

- the node is recorded in doubt (`unknown`) in the journal, with an `abandoned` event, as
  if opsbook had died during its action: the action may still be changing the host, so
  `opsbook resume` asks before running it again (see NodeRunner._in_doubt);
- its worker thread is forsaken (`opsbook.scheduler.Workers.forsake`): a daemon thread that
  no longer counts towards `--forks` and that neither the end of the run nor the
  interpreter's exit waits for;
- the run goes on (rollbacks, the summary) and finishes.

Should the action return after all, its result is only noted (a `late_result` event):
`claim` and `give_up` decide, under one lock, which of the worker and the scheduler owns
the node's outcome, so a late result never overwrites the recorded decision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_GRACE = 5.0  # seconds an action gets to return after its node was cancelled

_FATE = threading.Lock()  # claim() and give_up(): one of the two owns a node's outcome


def claim(ticket: Any) -> bool:
    """The worker's side, once its action returned: True when its outcome is still the
    run's to record (the scheduler can no longer abandon it), False when it was abandoned."""
    with _FATE:
        if ticket.abandoned:
            return False
        ticket.settling = True
        return True


def give_up(ticket: Any) -> bool:
    """The scheduler's side: True when the node is abandoned now; False when its action
    returned meanwhile (its worker records the outcome)."""
    with _FATE:
        if ticket.settling or ticket.abandoned:
            return False
        ticket.abandoned = True
        return True


class Stragglers:
    """When each running node was first seen cancelled, on a monotonic clock (injectable)."""

    def __init__(self, grace: float = DEFAULT_GRACE, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace = max(0.0, grace)
        self.clock = clock
        self._since: dict[str, float] = {}

    def due(self, inflight: Mapping[str, Any]) -> list[Any]:
        """The tickets in flight cancelled more than `grace` seconds ago (a cancelled one
        seen for the first time starts its clock now). A ticket no thread has taken yet
        runs nothing that could be stuck: it is not counted until one does."""
        now = self.clock()
        since = self._since
        out = []
        for nid, ticket in inflight.items():
            if ticket.cancel.is_set() and ticket.worker is not None:
                first = since.setdefault(nid, now)
                if now - first > self.grace:
                    out.append(ticket)
        for nid in [n for n in since if n not in inflight]:
            del since[nid]
        return out

    def why(self, ticket: Any, action: str) -> str:
        """The abandoned node's message: why it was cancelled, what opsbook did about it."""
        step = ticket.node.step
        reason = ticket.cancel.reason or "cancelled"
        if reason == "timed out" and step.timeout:
            reason = f"timed out after {step.timeout:g}s"
        return (f"{reason}; {action} did not stop within {self.grace:g}s of being cancelled: abandoned, in doubt "
                "(it may still be changing the host; `opsbook resume` asks before running it again)")
