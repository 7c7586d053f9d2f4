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
from opsbook.errors import RunError, UserError
from opsbook.execute import ApprovalRequest, Approver
from opsbook.journal import Journal, RunRecord, whoami

# What kind of approver a function is (an attribute on it): --yes and the terminal approve
# as the user who started the run, so a four-eyes run cannot use them.
KIND = "opsbook_approver_kind"


def _kind(approver: Approver, kind: str) -> Approver:
    setattr(approver, KIND, kind)
    return approver


def auto_approver() -> Approver:
    who = f"{whoami()} (--yes)"
    return _kind(lambda request: (True, who), "yes")


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

    return _kind(ask, "terminal")


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
            other = " by someone other than the user who started the run" if request.four_eyes else ""
            print(f"  waiting for: opsbook approve {request.run_id} {shlex.quote(request.gate)}   (or deny){other}",
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

    return _kind(wait, "journal")


def unattended_approver(open_journal: Callable[[], Journal], timeout: float,
                        notify: Callable[[ApprovalRequest], None]) -> Approver:
    """A gate of a run nobody watches (`opsbook watch`, an alert): `notify` says a human is
    needed (the prompt and the `opsbook approve` command), then the gate waits for one as
    the journal approver does; no answer within `timeout` is a denial."""
    wait = journal_approver(open_journal, timeout)

    def ask(request: ApprovalRequest) -> tuple[bool, str]:
        notify(request)
        return wait(request)

    return _kind(ask, "journal")


def approve_command(request: ApprovalRequest) -> str:
    """The command that approves `request`'s gate, as a person types it."""
    host = f" --host {shlex.quote(request.host)}" if request.host and request.host != "localhost" else ""
    return f"opsbook approve {request.run_id} {shlex.quote(request.gate)}{host}"


def approver_for(approver: Approver | None, four_eyes: bool, open_journal: Callable[[], Journal],
                 timeout: float, runbook: str = "") -> Approver | None:
    """The approver a run uses. A four-eyes run (`approved_by: another`, `run --four-eyes`)
    cannot be approved by the user who started it: its terminal question becomes a wait for
    `opsbook approve` from another user, and --yes is refused before anything runs."""
    kind = getattr(approver, KIND, "")
    if not four_eyes or approver is None or kind == "journal":
        return approver
    if kind == "yes":
        raise RunError(f"{runbook or 'this run'} needs another person to approve its gates (approved_by: another, "
                       "or --four-eyes); --yes would approve them as you. Run without --yes and ask a teammate "
                       "to run `opsbook approve RUN STEP`")
    if kind == "terminal":  # the operator at the terminal sees what waits, as the question would show it
        wait = journal_approver(open_journal, timeout)

        def shown(request: ApprovalRequest) -> tuple[bool, str]:
            print("\n=== " + "\n".join(request.describe()), file=sys.stderr, flush=True)
            return wait(request)

        return _kind(shown, "journal")
    return journal_approver(open_journal, timeout)


def refuse_self_approval(run: RunRecord, gates: list[dict[str, Any]], who: str) -> None:
    """A four-eyes gate refuses an approval by the user who started the run (denying is
    always allowed: stopping a change needs no second person)."""
    if who != run.who:
        return
    strict = [g for g in gates if (g.get("detail") or {}).get("four_eyes")]
    if strict:
        names = ", ".join(sorted({g["detail"].get("block_name") or g["detail"].get("step_name") or g["step_id"]
                                  for g in strict}))
        raise UserError(f"you ({who}) started run {run.id}; its gate {names} needs another person's approval "
                        f"(four eyes: approved_by: another or --four-eyes). Ask a teammate to run "
                        f"`opsbook approve {run.id} {shlex.quote(names.split(', ')[0])}`; you may still deny it")
