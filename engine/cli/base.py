"""The command group itself: exit codes, shared options, error handling (one line, no
traceback), the registry and the journal a command opens."""

from __future__ import annotations

import gc
import sys
from typing import Any

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
                from opsbook.journal import damaged

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


def _confirm_or_exit(yes: bool, question: str, nothing: str, command: str, declined: str = "") -> None:
    """Go on only with --yes, or a "y" on a terminal. Without a terminal: say `nothing` and how
    to confirm (`command`), exit 2; a "no", end of input or Ctrl-C at the question: say
    `declined` (default `nothing`), exit 1."""
    if yes:
        return
    if not sys.stdin.isatty():
        click.secho(f"{nothing}: confirm on a terminal, or add --yes ({command} --yes)", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    try:
        sure = click.confirm(question, default=False)
    except click.Abort:  # end of input (Ctrl-D) or Ctrl-C at the question
        sure = False
        click.echo("")
    if not sure:
        click.echo(declined or nothing)
        sys.exit(EXIT_FAILED)


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
@click.option("--debug", is_flag=True, help="Show Python tracebacks: of internal errors, and of an action's "
              "unexpected exception (plugin authors; `show --debug` prints the recorded ones).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """opsbook: declarative runbooks for incident response.

    Validate (check), preview (plan, graph), execute (run), continue after a crash
    (resume), and review (runs, show, report) runbooks against SSH hosts, Docker
    daemons and Kubernetes clusters.
    """
    ctx.obj = {"debug": debug}
    if debug:  # actions' unexpected exceptions are printed with their traceback (opsbook.noderun)
        import os

        os.environ["OPSBOOK_DEBUG"] = "1"


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

def _extra(extra: tuple[str, ...]) -> dict[str, Any]:
    from opsbook.params import parse_extra_vars

    return parse_extra_vars(list(extra))


def _write(text: str | bytes, output: str | None) -> None:
    if output:
        from opsbook.paths import write_output

        write_output(output, text)
        click.echo(f"wrote {output}", err=True)
    elif isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        click.echo(text)
