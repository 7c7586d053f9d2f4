"""Commands that run: `run`, `resume`, `retry`; their options, the approver and listeners,
signals (SIGINT/SIGTERM interrupt the run through its cancel token) and exit codes."""

from __future__ import annotations

import gc
import sys
from typing import Any, NoReturn

import click
from opsbook.cli import base
from opsbook.cli.base import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_HUMAN,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    _extra,
    _extra_opt,
    _inventory_opt,
    _journal,
    _journal_opt,
    _secret_opt,
    main,
)


def _refuse_certain_mistakes(the_plan: Any, registry: Any, given: dict[str, Any], inventory_given: bool) -> None:
    """A typo `check` is sure of (params.verison) stops `run` and `plan` before anything
    starts, not halfway through the run."""
    from opsbook.check import certain_mistakes
    from opsbook.errors import ValidationError

    problems = certain_mistakes(the_plan.runbook, the_plan.inventory, registry, given, inventory_given)
    if problems:
        raise ValidationError(problems)


def _webhook_token(token_file: str | None) -> str:
    """The shared secret Alertmanager sends as a bearer token: a file, or the environment."""
    import os

    if token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise click.UsageError(f"--token-file {token_file}: {exc.strerror}") from None
    token = os.environ.get("OPSBOOK_WEBHOOK_TOKEN", "").strip()
    if not token:
        raise click.UsageError("--listen needs a token: --token-file PATH or OPSBOOK_WEBHOOK_TOKEN (Alertmanager sends "
                               "it with http_config: {authorization: {credentials_file: PATH}})")
    return token


def _alert_starter(registry: Any, inventories: tuple[str, ...], params: dict[str, Any], journal_path: str | None,
                   say: Any, auto_approve: Any = lambda runbook: False, approval_timeout: float = 3600.0) -> Any:
    """route, alert -> the id of a run that is journaled and holds its lock (it goes on in a
    thread); the runbook's lock, or one per response runbook, keeps alerts from starting it twice."""
    import dataclasses
    import threading

    def start(route: Any, alert: dict[str, Any]) -> str:
        from opsbook.api import (
            RunRequest,
            load_inventory_sources,
            load_runbook,
            make_plan,
            start_run,
        )
        from opsbook.execute import RunOptions
        from opsbook.watch import response_approver

        rb = load_runbook(route.runbook, registry)
        if rb.lock is None:
            rb = dataclasses.replace(rb, lock=f"watch:{rb.name}")
        given = {**params, **route.given(alert.get("labels", {}))}
        the_plan = make_plan(rb, load_inventory_sources(list(inventories), registry), given)
        _refuse_certain_mistakes(the_plan, registry, given, bool(inventories))
        begun = _parse_time(str(alert["startsAt"])) if alert.get("startsAt") else None
        approver = response_approver(auto_approve(route.runbook), _journal(journal_path).path, approval_timeout, say,
                                     rb.approved_by == "another", route.runbook)
        request = RunRequest(list(inventories), RunOptions(), approver=approver, incident_start=begun,
                             given_params=given)
        holding = threading.Event()
        outcome: dict[str, Any] = {}

        def go() -> None:
            try:
                summary = start_run(the_plan, registry, _journal(journal_path), request,
                                    on_executor=lambda ex: (outcome.update(run=ex.run_id), holding.set()))
                say("alert-run", {"runbook": route.runbook, "run": summary.run_id, "status": summary.status})
            except Exception as exc:  # noqa: BLE001 - handed to the HTTP answer below
                outcome["error"] = exc
            finally:
                holding.set()

        threading.Thread(target=go, daemon=True).start()
        holding.wait()
        if "run" in outcome:
            return str(outcome["run"])
        raise outcome.get("error") or UserError("the run did not start")

    from opsbook.errors import UserError

    return start




# -- run / resume ------------------------------------------------------------------------------


def _run_options(f: Any) -> Any:
    options = [
        click.option("--check", "check_mode", is_flag=True, help="Dry run: read-only checks; nothing changes."),
        click.option("--diff", is_flag=True, help="Show what steps would change (where the action can tell)."),
        click.option("--limit", metavar="PATTERN", help="Only these hosts (Ansible pattern)."),
        click.option("--tags", metavar="T1,T2", help="Only steps with these tags."),
        click.option("--skip-tags", metavar="T1,T2", help="Skip steps with these tags."),
        click.option("--forks", type=int, default=50, show_default=True, help="Nodes run at once."),
        click.option("--yes", "-y", is_flag=True, help="Approve every approval gate (automation)."),
        click.option("--rollback", type=click.Choice(["on-failure", "always", "never"]), default="on-failure",
                     show_default=True, help="When to run the inverses of completed actions."),
        click.option("--timeout", metavar="DURATION", help="Whole-run timeout, e.g. 15m."),
        click.option("--max-errors", type=int, help="Stop scheduling after this many failed nodes."),
        click.option("--cancel-grace", default="5s", show_default=True, metavar="DURATION",
                     help="How long a cancelled action (step or run timeout, Ctrl-C) may take to return; "
                          "then the run abandons it, records its node in doubt and finishes."),
        click.option("--format", "fmt", type=click.Choice(["auto", "text", "json"]), default="auto",
                     help="Live progress (TTY), plain lines, or one JSON event per line."),
        _secret_opt,
        click.option("--ask", "ask", multiple=True, metavar="NAME", help="Prompt for a secret parameter (no echo)."),
        click.option("--approval-timeout", default="1h", show_default=True, metavar="DURATION",
                     help="How long to wait for `opsbook approve` when there is no TTY."),
        click.option("--four-eyes", "four_eyes", is_flag=True,
                     help="Gates need a user other than you to approve (`opsbook approve` from their "
                          "account), as the runbook's `approved_by: another` asks."),
        click.option("--force-handlers", "force_handlers", is_flag=True,
                     help="Notified handlers run on hosts that failed too (the runbook's "
                          "`force_handlers: false` notwithstanding)."),
        click.option("-v", "--verbose", count=True, help="More output (-vv: command output lines); "
                     "also `ansible_verbosity` (debug's `verbosity:`)."),
        _journal_opt,
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("runbook", type=click.Path())
@_inventory_opt
@_extra_opt
@_run_options
@click.option("--incident-start", metavar="TIME", help="When the incident began (ISO time or epoch) for RTO.")
def run(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], incident_start: str | None,
        **kw: Any) -> None:
    """Execute a runbook (live progress, approvals, rollback on failure, journal)."""
    request = _request(kw, list(inventories))
    request.given_params = {**_extra(extra), **_secret_params(kw, request.secrets)}
    request.incident_start = _parse_time(incident_start) if incident_start else None
    _start_new_run(runbook, request, kw)


def _start_new_run(runbook: str, request: Any, kw: dict[str, Any]) -> NoReturn:
    """Plan `runbook` for `request` (refusing what check is sure of), run it, exit with its code."""
    from opsbook.api import load_inventory_sources, load_runbook, make_plan, start_run

    registry = base._registry()
    rb = load_runbook(runbook, registry)
    sources = request.inventory_sources
    the_plan = make_plan(rb, load_inventory_sources(sources, registry), request.given_params)
    _refuse_certain_mistakes(the_plan, registry, request.given_params, bool(sources))
    if kw.get("limit"):
        request.options.limit = frozenset(h.name for h in the_plan.inventory.match(kw["limit"]))
    journal = _journal(kw.get("journal_path"))
    _finish(_with_signals(lambda hook: start_run(the_plan, registry, journal, request, on_executor=hook)), kw)


@main.command()
@click.argument("run_id", metavar="RUN")
@_run_options
@click.option("--confirm", "confirm", multiple=True, metavar="NODE",
              help="Re-run this in-doubt node (was running when opsbook died); 'all' for every one.")
@click.option("--allow-changed", is_flag=True, help="Resume even though the runbook file changed.")
@_extra_opt
def resume(run_id: str, confirm: tuple[str, ...], allow_changed: bool, extra: tuple[str, ...], **kw: Any) -> None:
    """Continue a run whose process died: done nodes are not executed again."""
    from opsbook.api import resume_run

    request = _request(kw, [])
    request.given_params = {**_extra(extra), **_secret_params(kw, request.secrets)}
    request.options.confirm_rerun = frozenset("*" if c == "all" else c for c in confirm)
    journal = _journal(kw.get("journal_path"))
    summary = _with_signals(lambda hook: resume_run(run_id if run_id != "last" else journal.latest_run_id(),
                                                    base._registry(), journal, request, allow_changed=allow_changed,
                                                    on_executor=hook))
    _finish(summary, kw)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--failed", "only_failed", is_flag=True, help="Run the failed (and timed out) nodes again.")
@click.option("--from", "from_step", metavar="STEP", help="Run this step and everything after it again.")
@_run_options
@_extra_opt
@click.option("--real", is_flag=True,
              help="The run was a dry run (--check): start a new, real run of the same runbook, "
                   "inventory and parameters instead (a dry run's retry is otherwise a dry run).")
def retry(run_id: str, only_failed: bool, from_step: str | None, extra: tuple[str, ...], real: bool,
          **kw: Any) -> None:
    """Run part of a finished run again: its failed nodes, or from a step on.

    A dry run (--check) is retried as a dry run; `--real` starts a new real run instead,
    never mixing real changes into the dry run's record."""
    from opsbook.api import resume_run

    journal = _journal(kw.get("journal_path"))
    run_id = run_id if run_id != "last" else journal.latest_run_id()
    record = journal.get_run(run_id)
    if real:
        if not record.options.get("check"):
            raise click.UsageError(f"run {record.id} was not a dry run; --real only turns a dry run into a new real run")
        _real_run_of(record, extra, kw)
    if not only_failed and not from_step:
        raise click.UsageError("say what to retry: --failed or --from STEP")
    if record.options.get("check"):
        click.echo(f"run {record.id} was a dry run (--check): this retry is a dry run too; to make the "
                   f"changes for real, start a new run: opsbook retry {record.id} --real", err=True)
    nodes = journal.nodes(journal.get_run(run_id).id)
    forget: list[str] = []
    if only_failed:
        forget += [n for n, r in nodes.items() if r.status in ("failed", "timed_out", "unknown", "started")]
        forget += [n for n, r in nodes.items() if r.status == "skipped"]
    if from_step:
        order = list(dict.fromkeys(r.step_id for r in sorted(nodes.values(), key=lambda r: r.started or 0)))
        if from_step not in order:
            raise click.UsageError(f'run {run_id} has no step "{from_step}"; steps: {", ".join(order)}')
        later = set(order[order.index(from_step):])
        forget += [n for n, r in nodes.items() if r.step_id in later]
    request = _request(kw, [])
    request.given_params = {**_extra(extra), **_secret_params(kw, request.secrets)}
    summary = _with_signals(lambda hook: resume_run(run_id, base._registry(), journal, request, forget=forget,
                                                    on_executor=hook))
    _finish(summary, kw)


def _real_run_of(record: Any, extra: tuple[str, ...], kw: dict[str, Any]) -> NoReturn:
    """A new real run of what a dry run tried: same runbook, inventory and parameters."""
    request = _request({**kw, "check_mode": False}, list(record.inventory))
    secret = [n for n, v in record.params.items() if v == "********"]
    given = {**{k: v for k, v in record.params.items() if k not in secret}, **_extra(extra),
             **_secret_params(kw, request.secrets)}
    missing = [n for n in secret if n not in given]
    if missing:
        raise click.UsageError("secret parameters are not stored in the journal; pass them again: "
                               + ", ".join(f"--secret {n}=env:VAR" for n in missing))
    request.given_params = given
    click.echo(f"run {record.id} was a dry run: starting a new, real run of {record.runbook_path}", err=True)
    _start_new_run(record.runbook_path, request, kw)


def _request(kw: dict[str, Any], inventories: list[str]) -> Any:
    from opsbook.api import RunRequest
    from opsbook.execute import RunOptions

    split = lambda v: frozenset(t.strip() for t in v.split(",") if t.strip()) if v else frozenset()
    options = RunOptions(forks=kw["forks"], check=kw["check_mode"], diff=kw["diff"], rollback=kw["rollback"],
                         timeout=_duration(kw, "timeout") if kw.get("timeout") else None,
                         max_errors=kw.get("max_errors"), tags=split(kw.get("tags")),
                         skip_tags=split(kw.get("skip_tags")),
                         approval_timeout=_duration(kw, "approval_timeout"),
                         four_eyes=bool(kw.get("four_eyes")), verbosity=kw.get("verbose", 0) or 0,
                         force_handlers=bool(kw.get("force_handlers")),
                         cancel_grace=_duration(kw, "cancel_grace", "5s"))
    request = RunRequest(inventory_sources=inventories, options=options)
    request.listeners = _listeners(kw, request)
    request.approver = _approver(kw, request)
    return request


def _duration(kw: dict[str, Any], name: str, default: str = "") -> float:
    """A duration option (--timeout 15m), or a usage error naming the option."""
    from opsbook.model import parse_duration

    try:
        return parse_duration(kw.get(name) or default)
    except ValueError as exc:
        raise click.UsageError(f"--{name.replace('_', '-')}: {exc}") from None


def _secret_params(kw: dict[str, Any], request: Any) -> dict[str, Any]:
    """--secret and --ask values, added to `request` (a RunRequest or a SecretStore)."""
    store = getattr(request, "secrets", request)
    out: dict[str, Any] = {}
    for item in kw.get("secrets") or ():
        name, _, source = item.partition("=")
        if not source:
            raise click.UsageError(f"--secret {item}: expected NAME=env:VAR or NAME=file:PATH")
        out[name] = store.resolve(name, source)
    for name in kw.get("ask") or ():
        if not sys.stdin.isatty():
            raise click.UsageError(f"--ask {name} needs a terminal; use --secret {name}=env:VAR instead")
        out[name] = store.add(name, click.prompt(f"{name}", hide_input=True))
    return out


def _listeners(kw: dict[str, Any], request: Any) -> list[Any]:
    from opsbook.display import JsonLines, LiveProgress, PlainLines

    fmt = kw.get("fmt", "auto")
    if fmt == "json":
        return [JsonLines()]
    if fmt == "auto" and sys.stderr.isatty():
        from rich.console import Console

        live = LiveProgress(Console(stderr=True), kw.get("verbose", 0))
        request.live = live
        return [live]
    return [PlainLines(verbose=kw.get("verbose", 0))]


def _approver(kw: dict[str, Any], request: Any) -> Any:
    from opsbook.approve import auto_approver, journal_approver, tty_approver

    if kw.get("yes"):
        return auto_approver()
    if sys.stdin.isatty():
        return tty_approver(getattr(request, "live", None))
    return journal_approver(lambda: _journal(kw.get("journal_path")), request.options.approval_timeout)


def _with_signals(start: Any) -> Any:
    """SIGINT/SIGTERM interrupt the run (rollback follows); a second one exits at once."""
    import signal

    if not gc.isenabled():  # the console entry point switched it off for start-up (opsbook.main)
        # What exists now lives as long as the run: keep it out of the collector's passes,
        # and collect what the run leaves behind.
        gc.freeze()
        gc.enable()

    holder: dict[str, Any] = {}

    def hook(executor: Any) -> None:
        holder["ex"] = executor

    def handler(signum: int, frame: Any) -> None:
        ex = holder.get("ex")
        if ex is None or ex.interrupted:
            raise KeyboardInterrupt
        click.echo(f"\n{signal.Signals(signum).name}: stopping; rolling back what completed "
                   "(press again to exit immediately)", err=True)
        ex.interrupt(f"interrupted by {signal.Signals(signum).name}", signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return start(hook)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _finish(summary: Any, kw: dict[str, Any]) -> NoReturn:
    if kw.get("fmt") != "json":
        from opsbook.display import write_lines

        cause = f"\n  cause: {summary.cause}" if summary.cause else ""
        dry = ""
        verdict = ""
        try:
            journal = _journal(kw.get("journal_path"))
            record = journal.get_run(summary.run_id)
            if record.declares_objectives:  # the report package is imported only for a verdict
                from opsbook.report import objectives_line

                verdict = objectives_line(journal, summary.run_id)
            if record.options.get("check"):
                dry = " (a dry run: --check, nothing was changed)"
        except Exception:  # noqa: BLE001 - the verdict is a courtesy; the run is already recorded
            verdict = ""
        cause += f"\n  {verdict}" if verdict else ""
        cause += "".join(f"\n  ROLLBACK FAILED: {p}" for p in summary.rollback_problems)
        from opsbook.visible import visible

        write_lines(sys.stderr, visible(f"run {summary.run_id}: {summary.status}{dry}  (opsbook show {summary.run_id} | "
                                        f"opsbook report {summary.run_id}){cause}\n"))
    if summary.denied or "confirmation" in summary.message or summary.rollback_problems:
        sys.exit(EXIT_HUMAN)  # a human must decide, confirm, or undo by hand what did not roll back
    if summary.status == "succeeded":
        sys.exit(EXIT_OK)
    if summary.status == "interrupted" and summary.signal:
        import signal

        sys.exit(EXIT_SIGINT if summary.signal == signal.SIGINT else EXIT_SIGTERM)
    if summary.status in ("interrupted", "timed_out", "aborted"):
        sys.exit(EXIT_ABORTED)
    sys.exit(EXIT_FAILED)


def _parse_time(text: str) -> float:
    from opsbook.model import parse_timestamp

    when = parse_timestamp(text)
    if when is None:
        raise click.BadParameter(f"{text!r}: expected an ISO time (2026-11-25T03:12:00) or epoch seconds")
    return when


@main.command("rollback")
@click.argument("run_id", metavar="RUN")
@click.option("--yes", "-y", is_flag=True, help="Do not ask to confirm (scripts, a second process).")
@click.option("--allow-changed", is_flag=True, help="Use the runbook file even if it changed since the run.")
@_secret_opt
@click.option("-v", "--verbose", count=True, help="More output.")
@_journal_opt
def rollback(run_id: str, yes: bool, allow_changed: bool, secrets: tuple[str, ...], verbose: int,
             journal_path: str | None) -> None:
    """Undo what a finished run left changed: the undos its steps recorded that never ran
    (the run succeeded, or ran with --rollback never), per host newest first, as a new run
    linked to the first (the "un-isolate" of a first response, once the cause is fixed).

    What would be undone is printed first and confirmed on the terminal unless --yes.
    RUN may be `last`. Exit 0 when every undo ran, 4 when one failed or was not run.
    """
    import shlex

    from opsbook.api import RunRequest
    from opsbook.display import PlainLines
    from opsbook.execute import RunOptions
    from opsbook.secrets import SecretStore
    from opsbook.undo import rollback_run, undo_plan
    from opsbook.visible import visible

    journal = _journal(journal_path)
    run_id = journal.latest_run_id() if run_id == "last" else run_id
    store = SecretStore()
    given = _secret_params({"secrets": secrets}, store)
    undo = undo_plan(run_id, base._registry(), journal, given, allow_changed)
    first = undo.record
    click.echo(f"rollback of run {first.id} ({first.runbook_name}, {first.status}): {len(undo.entries)} undo(s), "
               "per host newest first:")
    by_host: dict[str, list[dict[str, Any]]] = {}
    for entry in undo.entries:
        by_host.setdefault(entry["host"] or "localhost", []).append(entry)
    for host, entries in by_host.items():
        for entry in reversed(entries):
            step = undo.plan.nodes[entry["node_id"]].step.name if entry["node_id"] in undo.plan.nodes else entry["node_id"]
            on = f" (on {entry['target']})" if entry["target"] and entry["target"] != entry["host"] else ""
            click.echo(visible(f"  {host}: {entry['action']} {store.redact(str(entry['args']))}{on}  "
                               f"undoes \"{step}\"", lines=False))
    base._confirm_or_exit(yes, f"undo these {len(undo.entries)} change(s)?", "nothing undone",
                          f"opsbook rollback {shlex.quote(first.id)}")
    request = RunRequest(options=RunOptions(), secrets=store)
    request.listeners = [PlainLines(verbose=verbose)]
    summary = rollback_run(undo, base._registry(), journal, request)
    problems = "".join(f"\n  ROLLBACK FAILED: {p}" for p in summary.rollback_problems)
    click.echo(visible(f"run {summary.run_id}: {summary.status}: {summary.message}  "
                       f"(opsbook show {summary.run_id} | opsbook show {first.id}){problems}"), err=True)
    sys.exit(EXIT_OK if summary.status == "succeeded" else EXIT_HUMAN)
