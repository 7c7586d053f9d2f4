"""The `opsbook` command line. Heavy imports stay inside commands so `--version` is instant.

Exit codes (stable): 0 success; 1 the runbook is invalid or the run failed;
2 bad usage or input (file:line errors); 3 the run timed out or was aborted by a failure
threshold; 130/143 the run was stopped by SIGINT/SIGTERM (and rolled back); 4 the run needs a human (a denied approval, an in-doubt node);
70 an internal error (a bug: please report it with --debug output).
"""

from __future__ import annotations

import gc
import sys
from typing import Any, NoReturn

import click
from opsbook import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ABORTED, EXIT_HUMAN, EXIT_BUG = 0, 1, 2, 3, 4, 70
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal, the shell's convention

_inventory_opt = click.option("-i", "--inventory", "inventories", multiple=True, metavar="SRC",
                              help="Ansible inventory (INI/YAML file or directory); repeat to merge.")
_extra_opt = click.option("-e", "--extra-vars", "extra", multiple=True, metavar="K=V",
                          help="Parameter or variable: key=value, a JSON object, or @file.yaml; repeatable.")
_secret_opt = click.option("--secret", "secrets", multiple=True, metavar="NAME=SRC",
                           help="Secret parameter from env:VAR or file:PATH; redacted everywhere.")
_journal_opt = click.option("--journal", "journal_path", envvar="OPSBOOK_JOURNAL", metavar="PATH",
                            help="SQLite journal (default $XDG_STATE_HOME/opsbook/journal.db).")


_RUNS = ("run", "resume", "retry")  # they switch the collector on themselves (_with_signals)


class _Group(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name not in _RUNS:
            gc.enable()  # see opsbook.main: only the run commands keep it off through start-up
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        from opsbook.errors import OpsbookError, UserError

        try:
            return super().invoke(ctx)
        except UserError as exc:
            _print_diagnostics(exc.diagnostics)
            sys.exit(EXIT_USAGE)
        except OpsbookError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `opsbook runs | head -1`: the reader has what it wanted
            from opsbook.display import write_lines

            write_lines(sys.stdout, "")  # points stdout at /dev/null: Python's flush at exit stays quiet
            sys.exit(141)  # 128 + SIGPIPE, as a tool killed by the signal
        except Exception as exc:
            sqlite3 = sys.modules.get("sqlite3")
            if sqlite3 is not None and isinstance(exc, sqlite3.DatabaseError) and _OPENED:
                # a damaged page met by a read (runs, show, report)
                from opsbook.journal_repair import damaged

                click.secho(f"error: {damaged(_OPENED[-1], str(exc))}".replace("nothing was written to it. ", ""),
                            fg="red", err=True)
                sys.exit(EXIT_USAGE)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            import traceback

            click.secho("internal error (a bug in opsbook); details with --debug:", fg="red", err=True)
            click.echo(traceback.format_exc().strip().splitlines()[-1], err=True)
            sys.exit(EXIT_BUG)


def _output_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from opsbook.paths import output_option

    return output_option(ctx, param, value)


def _print_diagnostics(diagnostics: list[Any]) -> None:
    from opsbook.visible import visible

    for diag in diagnostics:
        color = "yellow" if diag.severity == "warning" else "red"
        where = visible(f"{diag.position}: ", lines=False) if diag.position else ""
        click.echo(f"{where}" + click.style(f"{diag.severity}: ", fg=color) + visible(diag.message), err=True)
        if diag.hint:
            click.echo(f"  hint: {visible(diag.hint)}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsbook")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """opsbook: declarative runbooks for incident response.

    Validate (check), preview (plan, graph), execute (run), continue after a crash
    (resume), and review (runs, show, report) runbooks against SSH hosts, Docker
    daemons and Kubernetes clusters.
    """
    ctx.obj = {"debug": debug}


def _registry() -> Any:
    from opsbook.registry import Registry

    return Registry.from_entry_points()


_OPENED: list[str] = []  # journals this command opened (named when one turns out damaged)


def _journal(path: str | None) -> Any:
    from opsbook.journal import Journal
    from opsbook.paths import default_journal_path

    journal = Journal(path or default_journal_path())
    _OPENED.append(journal.path)
    return journal


# -- check -------------------------------------------------------------------------------


@main.command()
@click.argument("runbooks", nargs=-1, required=True, type=click.Path())
@_inventory_opt
@_extra_opt
@click.option("--junit", type=click.Path(), callback=_output_option, help="Write JUnit XML: one test case per runbook.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1, JUnit failures).")
@click.option("--config", "config", type=click.Path(dir_okay=False), metavar="FILE",
              help="Policy config (default: .opsbook.yaml here or in a parent folder).")
@click.option("--no-policy", is_flag=True, help="Skip the policy rules (check the language only).")
@click.option("--timings", is_flag=True, help="Add each runbook's seconds to --format json.")
def check(runbooks: tuple[str, ...], inventories: tuple[str, ...], extra: tuple[str, ...], junit: str | None,
          fmt: str, strict: bool, config: str | None, no_policy: bool, timings: bool) -> None:
    """Validate runbooks without touching any host (exit 0 valid, 1 invalid).

    Checks YAML, keys, types, actions and their arguments, templates (undefined names),
    needs/cycles and, with -i, that every host pattern matches. Without -i, host patterns
    naming hosts or groups (and variables only their hosts could define) are not
    checked: each runbook's line says which, and everything else is checked.
    The policy rules (docs/policy.md) run too, as the project's .opsbook.yaml sets them.
    """
    from opsbook.ci import GateOptions, gate

    reports = gate(runbooks, _registry(), inventories, _extra(extra), GateOptions(config, not no_policy, strict))
    if fmt == "json":
        import json

        click.echo(json.dumps([r.to_json(timings) for r in reports], indent=2))
    else:
        for report in reports:
            _print_diagnostics(report.diagnostics)
            mark = click.style("ok", fg="green") if report.ok else click.style("FAILED", fg="red")
            click.echo(f"{mark}  {report.path}" + (f"  ({report.stats})" if report.stats else ""))
    if junit:
        from opsbook.report import write_check_junit

        write_check_junit(reports, junit)
    sys.exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED)


def _extra(extra: tuple[str, ...]) -> dict[str, Any]:
    from opsbook.params import parse_extra_vars

    return parse_extra_vars(list(extra))


def _plan(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], secrets: tuple[str, ...] = ()) -> Any:
    from opsbook.api import load_inventory_sources, load_runbook, make_plan, refuse_evidence_conflicts
    from opsbook.secrets import SecretStore

    registry = _registry()
    rb = load_runbook(runbook, registry)
    given = {**_extra(extra), **_secret_params({"secrets": secrets}, SecretStore())}
    the_plan = make_plan(rb, load_inventory_sources(list(inventories), registry), given)
    refuse_evidence_conflicts(the_plan, registry)
    _refuse_certain_mistakes(the_plan, registry, given, bool(inventories))
    return the_plan, registry


# -- plan / graph --------------------------------------------------------------------------



@main.command()
@click.argument("runbooks", nargs=-1, required=True, type=click.Path())
@_inventory_opt
@_extra_opt
@_secret_opt
@click.option("--params-file", type=click.Path(dir_okay=False), metavar="FILE",
              help='Parameters per runbook: {runbook name or path: {param: value}, "*": {...}}.')
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(runbooks: tuple[str, ...], inventories: tuple[str, ...], extra: tuple[str, ...], secrets: tuple[str, ...],
         params_file: str | None, fmt: str) -> None:
    """Show every node (step x host) with rendered arguments and dependencies; contacts nothing.

    RUNBOOKS are files or folders (searched like check searches them); --format json
    prints one plan object for one file, a list for several. Exit 2 if any runbook cannot
    be planned. Secret parameters are taken like `run` takes them (--secret
    NAME=env:VAR) and shown masked."""
    from opsbook.cli_ci import show_plans
    from opsbook.planset import PlanInputs, load_params_file
    from opsbook.secrets import SecretStore

    given = {**_extra(extra), **_secret_params({"secrets": secrets}, SecretStore())}
    show_plans(runbooks, PlanInputs(inventories, given, load_params_file(params_file)), fmt, _registry())


@main.command()
@click.argument("runbook", type=click.Path())
@_inventory_opt
@_extra_opt
@_secret_opt
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "svg", "png"]), default="dot", show_default=True)
@click.option("-o", "--output", type=click.Path(), callback=_output_option, help="Write here instead of stdout (required for png).")
@click.option("--steps", "by_step", is_flag=True, help="One box per step instead of per step x host.")
def graph(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], secrets: tuple[str, ...], fmt: str,
          output: str | None, by_step: bool) -> None:
    """Draw the plan's dependency graph (DOT, Mermaid, or an SVG/PNG image via Graphviz)."""
    from opsbook.planview import graph_dot, graph_mermaid, render_image

    the_plan, _ = _plan(runbook, inventories, extra, secrets)
    if fmt == "mermaid":
        text: str | bytes = graph_mermaid(the_plan, by_step)
    elif fmt == "dot":
        text = graph_dot(the_plan, by_step)
    else:
        text = render_image(graph_dot(the_plan, by_step), fmt)
    _write(text, output)


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
                   say: Any) -> Any:
    """route, alert -> the id of a run that is journaled and holds its lock (it goes on in a
    thread); the runbook's lock, or one per response runbook, keeps alerts from starting it twice."""
    import dataclasses
    import threading

    def start(route: Any, alert: dict[str, Any]) -> str:
        from opsbook.api import RunRequest, load_inventory_sources, load_runbook, make_plan, start_run
        from opsbook.approve import auto_approver
        from opsbook.execute import RunOptions

        rb = load_runbook(route.runbook, registry)
        if rb.lock is None:
            rb = dataclasses.replace(rb, lock=f"watch:{rb.name}")
        given = {**params, **route.given(alert.get("labels", {}))}
        the_plan = make_plan(rb, load_inventory_sources(list(inventories), registry), given)
        begun = _parse_time(str(alert["startsAt"])) if alert.get("startsAt") else None
        request = RunRequest(list(inventories), RunOptions(), approver=auto_approver(), incident_start=begun,
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


def _write(text: str | bytes, output: str | None) -> None:
    if output:
        from opsbook.paths import write_output

        write_output(output, text)
        click.echo(f"wrote {output}", err=True)
    elif isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        click.echo(text)


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
        click.option("--format", "fmt", type=click.Choice(["auto", "text", "json"]), default="auto",
                     help="Live progress (TTY), plain lines, or one JSON event per line."),
        _secret_opt,
        click.option("--ask", "ask", multiple=True, metavar="NAME", help="Prompt for a secret parameter (no echo)."),
        click.option("--approval-timeout", default="1h", show_default=True, metavar="DURATION",
                     help="How long to wait for `opsbook approve` when there is no TTY."),
        click.option("-v", "--verbose", count=True, help="More output (-vv: command output lines)."),
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

    registry = _registry()
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
                                                    _registry(), journal, request, allow_changed=allow_changed,
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
    summary = _with_signals(lambda hook: resume_run(run_id, _registry(), journal, request, forget=forget,
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
    from opsbook.model import parse_duration

    split = lambda v: frozenset(t.strip() for t in v.split(",") if t.strip()) if v else frozenset()
    options = RunOptions(forks=kw["forks"], check=kw["check_mode"], diff=kw["diff"], rollback=kw["rollback"],
                         timeout=parse_duration(kw["timeout"]) if kw.get("timeout") else None,
                         max_errors=kw.get("max_errors"), tags=split(kw.get("tags")),
                         skip_tags=split(kw.get("skip_tags")),
                         approval_timeout=parse_duration(kw["approval_timeout"]))
    request = RunRequest(inventory_sources=inventories, options=options)
    request.listeners = _listeners(kw, request)
    request.approver = _approver(kw, request)
    return request


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
        try:
            from opsbook.report import objectives_line

            verdict = objectives_line(_journal(kw.get("journal_path")), summary.run_id)
        except Exception:  # noqa: BLE001 - the verdict is a courtesy; the run is already recorded
            verdict = ""
        cause += f"\n  {verdict}" if verdict else ""
        cause += "".join(f"\n  ROLLBACK FAILED: {p}" for p in summary.rollback_problems)
        from opsbook.visible import visible

        write_lines(sys.stderr, visible(f"run {summary.run_id}: {summary.status}  (opsbook show {summary.run_id} | "
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
                              runs_on=d.get("runs_on"), steps=d.get("steps") or ())
        click.echo(f"{verb}: " + "\n".join(lines).removeprefix("approval needed: "))
    if not yes:
        if not sys.stdin.isatty():
            click.secho(f"not {'approved' if approved else 'denied'}: confirm on a terminal, or add --yes "
                        f"(opsbook {verb} {run_id} {shlex.quote(step)} --yes)", fg="red", err=True)
            sys.exit(EXIT_USAGE)
        if not click.confirm(f"{verb} {len(waiting)} gate(s)?", default=False):
            click.echo("nothing decided")
            sys.exit(EXIT_FAILED)
    who = f"{whoami()}@{socket.gethostname()} via opsbook {verb}"
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


# -- the journal itself -----------------------------------------------------------------------------


@main.group("journal")
def journal_group() -> None:
    """Check or recover the journal file itself (after a disk fault or a bad copy)."""


@journal_group.command("check")
@_journal_opt
def journal_check(journal_path: str | None) -> None:
    """Check the whole journal file (SQLite quick_check); exit 0 sound, 1 damaged."""
    journal = _journal(journal_path)
    from opsbook.journal_repair import JournalDamaged

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
        click.echo(f"{r.id}  {when}  {r.status:<11} {took:>8}  {r.runbook_name}  ({r.who}@{r.host})")
        if r.status == "running":
            for gate in journal.pending_approvals(r.id):
                d = gate["detail"]
                name = d.get("block_name") or d.get("step_name") or gate["step_id"]
                click.echo(visible(f"    waiting for approval: {name} @ {d.get('host') or 'localhost'}: "
                                   f"{gate['prompt']}" + (f" (will run {d['action']})" if d.get("action") else ""),
                                   lines=False))


@main.command()
@click.argument("run_id", metavar="RUN", default="last")
@_journal_opt
def show(run_id: str, journal_path: str | None) -> None:
    """Print a run's timeline: every node, approval and rollback in order."""
    from opsbook.report import timeline_text

    from opsbook.visible import visible

    journal = _journal(journal_path)
    click.echo(visible(timeline_text(journal, run_id if run_id != "last" else journal.latest_run_id())))


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


@main.command()
@click.argument("runbook", type=click.Path(), required=False)
@_inventory_opt
@_extra_opt
@click.option("--respond", type=click.Path(), help="Runbook to start on failure (default: the watched one).")
@click.option("--interval", default="10s", show_default=True, help="Time between probe rounds.")
@click.option("--failures", default=3, show_default=True, help="Consecutive failing rounds before responding.")
@click.option("--cooldown", default="10m", show_default=True, help="No second response within this time.")
@click.option("--max-responses", type=int, help="Exit after this many responses.")
@click.option("--listen", metavar="127.0.0.1:PORT", help="Also accept Alertmanager webhooks here (loopback only).")
@click.option("--route", "routes", multiple=True, metavar="ALERTNAME:RUNBOOK[:LABEL=PARAM,...]",
              help="Map a firing alert (alertname, or LABEL=VALUE) to a runbook, and the labels that fill its "
                   "parameters (only those); repeatable.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="The webhook's bearer token (or OPSBOOK_WEBHOOK_TOKEN); required with --listen.")
@_journal_opt
def watch(runbook: str | None, inventories: tuple[str, ...], extra: tuple[str, ...], respond: str | None,
          interval: str, failures: int, cooldown: str, max_responses: int | None, listen: str | None,
          routes: tuple[str, ...], token_file: str | None, journal_path: str | None) -> None:
    """Probe a runbook's health checks at an interval and start the response runbook after
    N consecutive failures (with a cool-down and a lock); optionally receive Alertmanager webhooks.

    The health checks are the runbook's probe.* steps before its first step marked
    mitigation, and its steps marked verification, run read-only."""
    import threading

    from opsbook.model import parse_duration
    from opsbook.watch import AlertReceiver, Route, WatchConfig, Watcher

    if not runbook and not listen:
        raise click.UsageError("give a RUNBOOK to watch, or --listen with --route for Alertmanager")
    registry = _registry()
    journal = _journal(journal_path)
    params = _extra(extra)

    def say(kind: str, data: dict[str, Any]) -> None:
        click.echo(f"watch: {kind} {' '.join(f'{k}={v}' for k, v in data.items())}", err=True)

    receiver = None
    if listen:
        host, _, port = listen.rpartition(":")
        parsed = [Route.parse(r) for r in routes]
        if not parsed:
            raise click.UsageError("--listen needs at least one --route ALERTNAME:RUNBOOK")
        receiver = AlertReceiver(host or "127.0.0.1", int(port), parsed,
                                 _alert_starter(registry, inventories, params, journal_path, say),
                                 _webhook_token(token_file), parse_duration(cooldown))
        threading.Thread(target=receiver.serve, daemon=True).start()
        say("listening", {"address": f"{host}:{receiver.port}"})
    try:
        if runbook:
            config = WatchConfig(runbook, respond, list(inventories), params, parse_duration(interval), failures,
                                 parse_duration(cooldown), max_responses)
            watcher = Watcher(config, registry, journal, say)
            watcher.run()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.close()


# -- inventory / plugins / schema ------------------------------------------------------------------


@main.command()
@_inventory_opt
@click.option("--list", "as_list", is_flag=True, help="JSON like `ansible-inventory --list`.")
@click.option("--graph", "as_graph", is_flag=True, help="Tree like `ansible-inventory --graph`.")
@click.option("--host", "host", metavar="NAME", help="Variables of one host, and where each comes from.")
@click.option("--vars", "with_vars", is_flag=True, help="With --graph: show variables.")
def inventory(inventories: tuple[str, ...], as_list: bool, as_graph: bool, host: str | None, with_vars: bool) -> None:
    """Show an inventory as opsbook (and Ansible) reads it."""
    import json

    from opsbook.api import load_inventory_sources

    inv = load_inventory_sources(list(inventories))
    if host:
        for var, source, value in inv.var_sources(host):
            click.echo(f"{var} = {json.dumps(value, default=str)}    # {source}")
    elif as_graph:
        click.echo(inv.to_ansible_graph(vars=with_vars))
    else:
        click.echo(json.dumps(inv.to_ansible_list(), indent=4, sort_keys=True, default=str))


@main.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plugins(name: str | None, fmt: str) -> None:
    """List installed plugins and their actions (arguments, check-mode support)."""
    from opsbook.planview import plugins_json, plugins_text

    registry = _registry()
    if fmt == "json":
        import json

        click.echo(json.dumps(plugins_json(registry, name), indent=2))
    else:
        click.echo(plugins_text(registry, name))


@main.command()
@click.option("-o", "--output", type=click.Path(), callback=_output_option, help="Write to a file.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of runbooks (for editors: validation and completion)."""
    import json

    from opsbook.schema import runbook_schema

    _write(json.dumps(runbook_schema(_registry()), indent=2), output)


def _ci_commands() -> None:
    from opsbook.cli_ci import diff

    main.add_command(diff)


_ci_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
