"""Approval gates: who is asked, once per what, and what a stop does to a gate that waits.

A step's `approve:` is asked once per host, right before the step acts. A block's
`approve:` is asked once per host before the first of the block's steps that runs on
that host; its decision holds for every later step of the block on that host (a
takeover is approved as a whole, never left half-switched waiting for a second yes).

A gate that waits ends at once when the run is stopped (a signal, the run's timeout): the
gate is recorded cancelled, its action does not run, and a decision that arrives later is
refused. The approver (a terminal, the journal, --yes) is handed the run's stop token
(`cancelled`, see opsbook.cancel) and must return when it is set; whatever it answers after a stop, the gated action never runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from opsbook.cancel import NEVER, CancelToken


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is shown: the prompt, where, and exactly what would run."""

    run_id: str
    node_id: str
    step_id: str
    step_name: str
    host: str | None
    prompt: str
    action: str
    args: Any
    block_id: str | None = None  # the block whose approval this is (asked once per host)
    block_name: str | None = None
    started_by: str = ""  # who started the run
    # the run's stop token (opsbook.cancel): an approver waits on it, never on a bare sleep
    cancelled: CancelToken = field(default=NEVER, compare=False, repr=False)
    runs_on: str | None = None  # the delegate the action runs on, when the step delegates
    steps: tuple[str, ...] = ()  # a block's approval: every step it covers ("name: action on host")
    four_eyes: bool = False  # only someone other than the user who started the run may approve

    @property
    def gate(self) -> str:
        """The name an operator approves: the block's for a block approval, else the step's."""
        return self.block_name or self.step_name

    def describe(self) -> list[str]:
        return describe_gate(self.gate, self.host, self.prompt, self.action, self.args, self.started_by,
                             self.run_id, self.step_name if self.block_id else None, runs_on=self.runs_on,
                             steps=self.steps, four_eyes=self.four_eyes)

    def detail(self) -> dict[str, Any]:
        """Stored with the request in the journal: `show`, `runs` and `opsbook approve` print it."""
        return {"step_name": self.step_name, "host": self.host, "action": self.action, "args": self.args,
                "block_id": self.block_id, "block_name": self.block_name, "started_by": self.started_by,
                "runs_on": self.runs_on, "steps": list(self.steps), "four_eyes": self.four_eyes}


Approver = Callable[[ApprovalRequest], "tuple[bool, str]"]


SHOWN = 2000  # characters of an action's arguments shown before an explicit "N more" note


def describe_gate(gate: str, host: str | None, prompt: str, action: str, args: Any, started_by: str = "",
                  run_id: str = "", first_step: str | None = None, full: bool = False,
                  runs_on: str | None = None, steps: Any = (), four_eyes: bool = False) -> list[str]:
    """What an approver reads before saying yes (the live output, the terminal question,
    `opsbook approve`, `show`): the gate, where, the prompt, what would run, who asked.

    Every value is one line with its control characters made visible (a rendered prompt
    cannot draw a fake "will run:" line or hide the real one), and a long action is cut
    only with a note saying how much is not shown and where to read all of it."""
    import json

    from opsbook.visible import visible

    shown = json.dumps(args, default=str, ensure_ascii=False)
    lines = [visible(f"approval needed: {gate} @ {host or 'localhost'}", lines=False)
             + (visible(f" (a block: asked once for all its steps, from {first_step})", lines=False)
                if first_step else ""),
             "  " + visible(prompt, lines=False)]
    if action:
        cut = "" if full or len(shown) <= SHOWN else (
            f" ... [{len(shown) - SHOWN} more characters not shown: opsbook approve {run_id or 'RUN'} "
            f"{gate} --full]")
        on = f" (on {runs_on})" if runs_on else ""
        lines.append("  will run: " + visible(f"{action} {shown if full else shown[:SHOWN]}{on}", lines=False) + cut)
    if steps:
        lines.append("  the block's steps: " + visible("; ".join(steps), lines=False))
    if started_by or run_id:
        lines.append(visible(f"  run {run_id} started by {started_by or 'unknown'}", lines=False))
    if four_eyes:
        lines.append("  four eyes (approved_by: another): someone other than the user who started the run "
                     "must approve")
    return lines


@dataclass(frozen=True)
class Decision:
    approved: bool
    who: str
    cancelled: str = ""  # why the gate was cancelled (the run stopped), if it was


class ApprovalGates:
    """The decisions of one run: a block's decision is taken once per (block, host).

    Two hosts of the same block are asked at the same time (one lock per block and host,
    not one for the run); the second step of a block on a host reuses the first's
    decision without asking."""

    def __init__(self, approver: Approver | None, four_eyes: bool = False) -> None:
        self.approver = approver
        self.four_eyes = four_eyes  # every request says that another person must approve
        self._decided: dict[tuple[str, str | None], Decision] = {}
        self._locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._guard = threading.Lock()

    def decide(self, request: ApprovalRequest, stopped: Callable[[], str],
               announce: Callable[[ApprovalRequest], None]) -> tuple[Decision, bool]:
        """(the decision, whether it was asked now) for `request`.

        `stopped()` names why the run is stopping ("" while it is not): a gate reached or
        answered after a stop is cancelled, whatever the approver said. `announce` is
        called right before an approver is asked (the journal, the live output)."""
        if self.four_eyes and not request.four_eyes:
            request = replace(request, four_eyes=True)
        if request.block_id is None:
            return self._ask(request, stopped, announce), True
        key = (request.block_id, request.host)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        # another step of the block on this host may be asking: wait for its decision, or
        # for the run's stop (the lock is taken through the stop token, never blindly)
        if not request.cancelled.acquire(lock):
            known = self._decided.get(key)
            return known or Decision(False, "nobody", cancelled=stopped() or request.cancelled.reason or "stopped"), False
        try:
            known = self._decided.get(key)
            if known is not None:
                return known, False
            decision = self._ask(request, stopped, announce)
            self._decided[key] = decision
            return decision, True
        finally:
            lock.release()

    def _ask(self, request: ApprovalRequest, stopped: Callable[[], str],
             announce: Callable[[ApprovalRequest], None]) -> Decision:
        why = stopped()
        if why:
            return Decision(False, "nobody", cancelled=why)
        announce(request)
        if self.approver is None:
            return Decision(False, "nobody (no approver configured)")
        approved, who = self.approver(request)
        why = stopped()
        if why:  # the answer came after the stop (or the wait was ended by it): nothing runs
            return Decision(False, who if approved else "nobody", cancelled=why)
        return Decision(approved, who)
