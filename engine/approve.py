"""Approvers: who says yes to an `approve:` gate — a flag, a person at the TTY, or the
journal (`opsbook approve RUN STEP` from another shell)."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from opsbook.cancel import CancelToken
from opsbook.execute import ApprovalRequest, Approver
from opsbook.journal import Journal, whoami


def auto_approver() -> Approver:
    who = f"{whoami()} (--yes)"
    return lambda request: (True, who)


def tty_approver(live: Any = None, stream_in: Any = None, stream_out: Any = None) -> Approver:
    """Ask on the terminal, one question at a time, showing what will run and where.

    The answer is read in a loop that also watches `request.cancelled`, so a stop of the
    run (Ctrl-C, SIGTERM) ends the question at once."""
    lock = threading.Lock()

    def ask(request: ApprovalRequest) -> tuple[bool, str]:
        with lock:
            if live is not None:
                live.pause()
            out = stream_out or sys.stderr
            inp = stream_in or sys.stdin
            try:
                out.write("\n=== " + "\n".join(request.describe()) + "\n")
                out.write("    approve? [y/N] ")
                out.flush()
                answer = _read_answer(inp, request.cancelled)
            finally:
                if live is not None:
                    live.resume()
        if answer is None:
            return False, "nobody (the run was stopped while asking)"
        return answer in ("y", "yes"), f"{whoami()} at the terminal"

    return ask


def _read_answer(inp: Any, cancelled: CancelToken) -> str | None:
    """A line from `inp`, or None once `cancelled` is set first."""
    import select

    try:
        fileno = inp.fileno()
    except (AttributeError, OSError, ValueError):
        fileno = None
    if fileno is None:  # a stream without a descriptor (tests): it answers at once
        return inp.readline().strip().lower()
    while not cancelled.is_set():
        ready, _, _ = select.select([fileno], [], [], 0.2)
        if ready:
            return inp.readline().strip().lower()
    return None


def journal_approver(open_journal: Callable[[], Journal], timeout: float, poll: float = 0.5) -> Approver:
    """Wait for `opsbook approve/deny RUN STEP` from another shell; deny on timeout; end at
    once when the run is stopped (`request.cancelled`)."""

    def wait(request: ApprovalRequest) -> tuple[bool, str]:
        journal = open_journal()
        try:
            print(f"  waiting for: opsbook approve {request.run_id} {shlex.quote(request.gate)}   (or deny)",
                  file=sys.stderr, flush=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                decision = journal.approval(request.run_id, request.node_id)
                if decision is not None:
                    return decision
                if request.cancelled.wait(poll):
                    return False, "nobody (the run was stopped while waiting)"
            # Close the gate in one conditional update: an approval recorded a moment before
            # the deadline is the decision; one after it is refused (`opsbook approve` says so).
            who = f"nobody within {timeout:g}s (approval timed out)"
            first = journal.close_gate(request.run_id, request.node_id, who)
            return first if first is not None else (False, who)
        finally:
            journal.close()

    return wait
