"""`approve` and `deny`: decide a waiting approval gate from another shell."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from opsbook.cli import base
from opsbook.cli.base import EXIT_FAILED, EXIT_USAGE, _journal, _journal_opt, main

# -- approvals -----------------------------------------------------------------------------------


_gate_args = [
    click.argument("run_id", metavar="RUN"),
    click.argument("step", metavar="STEP"),
    click.option("--yes", "-y", is_flag=True, help="Do not ask to confirm (scripts, a second process)."),
    click.option("--full", is_flag=True, help="Show the action's arguments whole, however long."),
    click.option("--host", "hosts", multiple=True, metavar="HOST",
                 help="Only the gates of this host (repeatable); default: every host waiting at STEP."),
    _journal_opt,
]


def _gate_command(f: Any) -> Any:
    for option in reversed(_gate_args):
        f = option(f)
    return f


@main.command()
@_gate_command
def approve(run_id: str, step: str, yes: bool, full: bool, hosts: tuple[str, ...], journal_path: str | None) -> None:
    """Approve a waiting gate of a run (from another shell).

    STEP is the step's id or name, or the block's for a block approval. What is being
    approved (prompt, host, the rendered action, who started the run) is printed first,
    and confirmed on the terminal unless --yes. RUN may be `last`.
    """
    _decide(run_id, step, True, journal_path, yes, full, hosts)


@main.command()
@_gate_command
def deny(run_id: str, step: str, yes: bool, full: bool, hosts: tuple[str, ...], journal_path: str | None) -> None:
    """Deny a waiting gate of a run; the step fails and the run rolls back as configured."""
    _decide(run_id, step, False, journal_path, yes, full, hosts)


def _decide(run_id: str, step: str, approved: bool, journal_path: str | None, yes: bool, full: bool = False,
            hosts: tuple[str, ...] = ()) -> None:
    import shlex
    import socket

    from opsbook.gates import describe_gate
    from opsbook.journal import whoami

    verb = "approve" if approved else "deny"
    journal = _journal(journal_path)
    run_id = journal.get_run(run_id if run_id != "last" else journal.latest_run_id()).id
    waiting = journal.pending_approvals(run_id, step, hosts)
    if not waiting:
        if hosts and journal.pending_approvals(run_id, step):
            raise click.ClickException(f'nothing waits at "{step}" on {", ".join(hosts)} in run {run_id}; waiting on: '
                                       + ", ".join(sorted({a["detail"].get("host") or "localhost"
                                                           for a in journal.pending_approvals(run_id, step)})))
        _no_gate(journal, run_id, step)
    for gate in waiting:
        d = gate["detail"]
        lines = describe_gate(d.get("block_name") or d.get("step_name") or gate["step_id"], d.get("host"),
                              gate["prompt"], d.get("action", ""), d.get("args"), d.get("started_by", ""), run_id,
                              d.get("step_name") if d.get("block_name") else None, full=full,
                              runs_on=d.get("runs_on"), steps=d.get("steps") or (),
                              four_eyes=bool(d.get("four_eyes")))
        click.echo(f"{verb}: " + "\n".join(lines).removeprefix("approval needed: "))
    from opsbook.approve import refuse_self_approval

    run = journal.get_run(run_id)
    if approved:  # a four-eyes gate refuses its starter before asking anything
        refuse_self_approval(run, waiting, whoami())
    base._confirm_or_exit(yes, f"{verb} {len(waiting)} gate(s)?", f"not {'approved' if approved else 'denied'}",
                          f"opsbook {verb} {run_id} {shlex.quote(step)}", "nothing decided")
    starter = " (who started the run)" if whoami() == run.who else ""
    who = f"{whoami()}@{socket.gethostname()} via opsbook {verb}{starter}"
    decided = journal.decide(run_id, step, approved, who, hosts)
    if not decided:
        _no_gate(journal, run_id, step)
    click.echo(f"{'approved' if approved else 'denied'} {len(decided)} gate(s) of {step} in run {run_id}")


def _no_gate(journal: Any, run_id: str, step: str) -> NoReturn:
    """Why nothing waits at `step`: cancelled by a stop, already decided, or not a gate."""
    from opsbook.journal import _gate_names

    run = journal.get_run(run_id)
    known = [a for a in journal.approvals(run_id) if step in _gate_names(a)]
    cancelled = [a for a in known if a["cancelled"]]
    if cancelled:
        raise click.ClickException(f'the gate at "{step}" in run {run_id} was cancelled when the run stopped '
                                   f"({cancelled[0]['who']}); nothing of it runs any more. "
                                   f"The run is {run.status}: start a new run, or `opsbook resume {run_id}`")
    if known:
        a = known[-1]
        raise click.ClickException(f'the gate at "{step}" in run {run_id} was already '
                                   f"{'approved' if a['approved'] else 'denied'} by {a['who']}")
    pending = sorted({n for a in journal.pending_approvals(run_id) for n in (a["detail"].get("block_name")
                      or a["detail"].get("step_name") or a["step_id"],)})
    raise click.ClickException(f'nothing waits for approval at "{step}" in run {run_id} ({run.status})'
                               + (f"; waiting: {', '.join(pending)}" if pending else ""))
