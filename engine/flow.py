"""Handler control and run flow: Ansible's `meta:` values and when handlers run.

`meta: X` is the step action `local.meta` (the built-in local plugin speaks Ansible's `meta`
module); this module gives its values their meaning, for `compile` and `execute`:

- `flush_handlers`: compiled into a copy of every handler right after the meta step, on
  its hosts (ids `<meta step id>/<handler id>`), chained in handler order; a copy runs on a
  host where its handler was notified since that handler last ran there.
- `end_host`: when the node succeeds, the host's remaining nodes (its handlers too) are
  skipped, not failed.
- `end_play`: a barrier (every host reaches it first); when one of its nodes succeeds,
  every node not started yet is skipped, handlers too; the run succeeds unless a host failed.
- `clear_host_errors`: its node runs on hosts that failed as well, and makes them alive again.

Notifications are kept per host as a sequence: `notify` stamps each name with the host's
next number, and a handler (end of run or flushed copy) runs when one of its names was
stamped after the handler last ran on that host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

META_ACTION = "local.meta"
GATHERING_ID = "gathering-facts"  # the id of the step `gather_facts: true` adds (opsbook.load)
META_VALUES = ("flush_handlers", "end_host", "end_play", "clear_host_errors", "noop")


def meta_of(step: Any) -> str | None:
    """The meta value of a step (`meta: end_host`), or None for any other step."""
    action = getattr(step, "action", None)
    if action is None or action.name != META_ACTION:
        return None
    args = action.args
    value = args.get("free_form") if isinstance(args, dict) else args
    return value if isinstance(value, str) else None


def barrier_step(step: Any) -> bool:
    """Steps every host reaches before any host goes past them (as Ansible's linear strategy):
    `meta: end_play`, and the runbook's `Gathering Facts` (so `hostvars` of every host hold
    facts from the first step on)."""
    return meta_of(step) == "end_play" or (step.id == GATHERING_ID and step.action is not None)


def notify(state: Any, names: Iterable[str]) -> None:
    """Stamp each notified name on the host (run-state lock held)."""
    for name in names:
        state.notify_seq += 1
        state.notified[name] = state.notify_seq


def pending(state: Any, step: Any, handler_id: str) -> bool:
    """Whether a handler (`handler_id`: the handler's own id, also for a flushed copy) was
    notified on the host since it last ran there."""
    names = set(step.listen) | {step.name, handler_id}
    last = max((state.notified.get(n, 0) for n in names), default=0)
    return last > state.handled.get(handler_id, 0)


def handled(state: Any, handler_id: str) -> None:
    """A handler ran on the host: notifications so far are answered."""
    state.handled[handler_id] = state.notify_seq
