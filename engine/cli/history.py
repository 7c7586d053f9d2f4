"""Commands that read what runs did: `journal check|recover`, `runs`, `show`, `report`, `evidence`."""

from __future__ import annotations

import sys

import click
from opsbook.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    _journal,
    _journal_opt,
    _output_option,
    _write,
    main,
)

# -- the journal itself -----------------------------------------------------------------------------


@main.group("journal")
def journal_group() -> None:
    """Check or recover the journal file itself (after a disk fault or a bad copy)."""


@journal_group.command("check")
@_journal_opt
def journal_check(journal_path: str | None) -> None:
    """Check the whole journal file (SQLite quick_check); exit 0 sound, 1 damaged."""
    journal = _journal(journal_path)
    from opsbook.journal import JournalDamaged

    try:
        journal.verify()
    except JournalDamaged as exc:
        click.secho(f"damaged: {exc}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"ok: {journal.path}")


@journal_group.command("recover")
@_journal_opt
def journal_recover(journal_path: str | None) -> None:
    """Copy every row that can still be read into a new journal at the same path.

    The damaged file is kept beside it as PATH.damaged-TIMESTAMP. Stop any run using the
    journal first."""
    from opsbook.journal_repair import recover
    from opsbook.paths import default_journal_path

    result = recover(str(journal_path or default_journal_path()))
    for table, copied in result.copied.items():
        lost = result.lost.get(table, 0)
        click.echo(f"{table:<10} {copied} row(s) copied" + (f", {lost} unreadable" if lost else ""))
    click.echo(f"recovered; the damaged file is kept as {result.kept}")


# -- history --------------------------------------------------------------------------------------


@main.command()
@_journal_opt
@click.option("-n", "limit", default=20, show_default=True, help="How many runs.")
def runs(journal_path: str | None, limit: int) -> None:
    """List recent runs."""
    import time as _t

    from opsbook.visible import visible

    journal = _journal(journal_path)
    for r in journal.list_runs(limit):
        when = _t.strftime("%Y-%m-%d %H:%M:%S", _t.localtime(r.started))
        took = f"{(r.finished - r.started):.1f}s" if r.finished else "-"
        status = f"{r.status} (dry run)" if (r.options or {}).get("check") else r.status
        click.echo(f"{r.id}  {when}  {status:<11} {took:>8}  {r.runbook_name}  ({r.who}@{r.host})")
        if r.status == "running":
            for gate in journal.pending_approvals(r.id):
                d = gate["detail"]
                name = d.get("block_name") or d.get("step_name") or gate["step_id"]
                click.echo(visible(f"    waiting for approval: {name} @ {d.get('host') or 'localhost'}: "
                                   f"{gate['prompt']}" + (f" (will run {d['action']})" if d.get("action") else ""),
                                   lines=False))


@main.command()
@click.argument("run_id", metavar="RUN", default="last")
@click.option("--debug", is_flag=True, help="Also print the traceback of every action's unexpected exception.")
@_journal_opt
def show(run_id: str, journal_path: str | None, debug: bool) -> None:
    """Print a run's timeline: every node, approval and rollback in order."""
    from opsbook.report import timeline_text
    from opsbook.visible import visible

    journal = _journal(journal_path)
    run_id = run_id if run_id != "last" else journal.latest_run_id()
    click.echo(visible(timeline_text(journal, run_id)))
    if debug:
        for _ts, kind, node, data in journal.events(run_id):
            if kind == "action_exception":
                click.echo(f"\n{data.get('action')} raised in step \"{data.get('step')}\" ({data.get('where')}) "
                           f"[{node}]:")
                click.echo(visible(str(data.get("traceback", ""))))


@main.command()
@click.argument("run_id", metavar="RUN", default="last")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "junit"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(), callback=_output_option, help="Write to a file instead of stdout.")
@_journal_opt
def report(run_id: str, fmt: str, output: str | None, journal_path: str | None) -> None:
    """Write a run report: summary, RTO against objectives, timeline, failures, approvals, rollbacks."""
    from opsbook.report import build_report

    journal = _journal(journal_path)
    _write(build_report(journal, run_id if run_id != "last" else journal.latest_run_id(), fmt), output)


@main.command()
@click.argument("run_id", metavar="RUN", default="last")
@click.option("--archive", is_flag=True, help="Write a tar.gz of the evidence with manifest.json.")
@click.option("-o", "--output", type=click.Path(), callback=_output_option, help="Archive path (default: beside the run folder).")
@click.option("--verify", "check_hashes", is_flag=True, help="Check every file against its recorded SHA-256.")
@_journal_opt
def evidence(run_id: str, archive: bool, output: str | None, check_hashes: bool, journal_path: str | None) -> None:
    """List a run's evidence (what, from where, which step, when, size, SHA-256), or archive it."""
    from pathlib import Path

    from opsbook import evidence as ev

    journal = _journal(journal_path)
    run_id = journal.get_run(run_id if run_id != "last" else journal.latest_run_id()).id
    if archive:
        click.echo(str(ev.archive(journal, run_id, Path(output) if output else None)))
        return
    if check_hashes:
        problems = ev.verify(journal, run_id)
        for problem in problems:
            click.secho(problem, fg="red", err=True)
        click.echo("evidence intact" if not problems else f"{len(problems)} problem(s)")
        sys.exit(EXIT_OK if not problems else EXIT_FAILED)
    data = ev.manifest(journal, run_id)
    click.echo(f"evidence of run {run_id} in {data['folder']}")
    for item in data["items"]:
        click.echo(f"  {item['collected']}  {item['size'] or 0:>9}  {(item['sha256'] or '')[:12]}  "
                   f"{item['path']}  <- {item['source']}  ({item['step']} @ {item['host']})")
