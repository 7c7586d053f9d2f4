"""Approvers: who says yes to an `approve:` gate — a flag, a person at the TTY, or the
journal (`opsbook approve RUN STEP` from another shell)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from opsbook.execute import ApprovalRequest, Approver
from opsbook.journal import Journal, whoami


def auto_approver() -> Approver:
    who = f"{whoami()} (--yes)"
    return lambda request: (True, who)


def tty_approver(live: Any = None, stream_in: Any = None, stream_out: Any = None) -> Approver:
    """Ask on the terminal, one question at a time, showing what will run and where."""
    lock = threading.Lock()

    def ask(request: ApprovalRequest) -> tuple[bool, str]:
        with lock:
            if live is not None:
                live.pause()
            out = stream_out or sys.stderr
            inp = stream_in or sys.stdin
            try:
                out.write(f"\n=== approval needed: {request.step_name} @ {request.host}\n")
                out.write(f"    {request.prompt}\n")
                out.write(f"    will run: {request.action} {json.dumps(request.args, default=str)[:400]}\n")
                out.write("    approve? [y/N] ")
                out.flush()
                answer = inp.readline().strip().lower()
            finally:
                if live is not None:
                    live.resume()
        return answer in ("y", "yes"), f"{whoami()} at the terminal"

    return ask


def journal_approver(open_journal: Callable[[], Journal], timeout: float, poll: float = 0.5) -> Approver:
    """Wait for `opsbook approve/deny RUN STEP` from another shell; deny on timeout."""

    def wait(request: ApprovalRequest) -> tuple[bool, str]:
        journal = open_journal()
        try:
            journal.request_approval(request.run_id, request.node_id, request.step_id, request.prompt)
            print(f"waiting for approval of {request.step_id} on {request.host}: "
                  f"opsbook approve {request.run_id} {request.step_id}   (or deny)", file=sys.stderr, flush=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                decision = journal.approval(request.run_id, request.node_id)
                if decision is not None:
                    return decision
                time.sleep(poll)
            return False, f"nobody within {timeout:g}s (approval timed out)"
        finally:
            journal.close()

    return wait
