"""`watch`: re-run a check on an interval or on alerts, and start the response runbook."""

from __future__ import annotations

import os
from typing import Any

import click
from opsbook.cli import base
from opsbook.cli.base import _extra, _extra_opt, _inventory_opt, _journal, _journal_opt, main
from opsbook.cli.running import _alert_starter, _webhook_token


def _auto_approval(given: tuple[str, ...], responses: list[str], registry: Any) -> Any:
    """path -> whether --auto-approve names it. Each value must be `all`, a response runbook
    (as given to --respond/--route, or the same file by another path) or its `name:`; a
    value that names none of them is a mistake, refused before anything is watched."""
    from opsbook.api import load_runbook

    names: dict[str, str] = {}
    for path in responses:
        try:
            names[path] = load_runbook(path, registry).name
        except Exception:  # noqa: BLE001 - a broken runbook is reported when it is loaded for real
            names[path] = ""
    same = lambda a, b: a == b or os.path.realpath(a) == os.path.realpath(b)  # noqa: E731
    for value in given:
        if value != "all" and not any(same(value, p) or value == names[p] for p in responses):
            shown = ", ".join(f"{p} (name: {names[p]})" if names[p] else p for p in responses) or "none"
            raise click.UsageError(f"--auto-approve {value}: not a response runbook of this watch; responses: "
                                   f"{shown}, or `all`")
    return lambda path: any(a == "all" or same(a, path) or a == names.get(path) for a in given)


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
@click.option("--auto-approve", "auto_approve", multiple=True, metavar="RUNBOOK|all",
              help="Approve the gates of this response runbook (as given to --respond/--route; `all` for "
                   "every one) without a human. Otherwise a gate waits for `opsbook approve`, announced "
                   "as an approval_needed line.")
@click.option("--approval-timeout", default="1h", show_default=True, metavar="DURATION",
              help="How long a response's gate waits for `opsbook approve` before it counts as denied.")
@_journal_opt
def watch(runbook: str | None, inventories: tuple[str, ...], extra: tuple[str, ...], respond: str | None,
          interval: str, failures: int, cooldown: str, max_responses: int | None, listen: str | None,
          routes: tuple[str, ...], token_file: str | None, auto_approve: tuple[str, ...], approval_timeout: str,
          journal_path: str | None) -> None:
    """Probe a runbook's health checks at an interval and start the response runbook after
    N consecutive failures (with a cool-down and a lock); optionally receive Alertmanager webhooks.

    The health checks are the runbook's probe.* steps before its first step marked
    mitigation, and its steps marked verification, run read-only. The response's approval
    gates wait for a human (`opsbook approve`) unless --auto-approve names its runbook."""
    import threading

    from opsbook.model import parse_duration
    from opsbook.watch import AlertReceiver, Route, WatchConfig, Watcher

    if not runbook and not listen:
        raise click.UsageError("give a RUNBOOK to watch, or --listen with --route for Alertmanager")
    registry = base._registry()
    journal = _journal(journal_path)
    params = _extra(extra)

    def say(kind: str, data: dict[str, Any]) -> None:
        import json

        from opsbook.visible import visible

        shown = (json.dumps(v, ensure_ascii=False) if isinstance(v, str) and (not v or any(c.isspace() for c in v))
                 else visible(str(v), lines=False) for v in data.values())
        click.echo(f"watch: {kind} {' '.join(f'{k}={v}' for k, v in zip(data, shown))}", err=True)

    waits = parse_duration(approval_timeout)
    auto = _auto_approval(auto_approve, [p for p in (respond or runbook,) if p]
                          + [Route.parse(r).runbook for r in routes], registry)

    receiver = None
    if listen:
        host, _, port = listen.rpartition(":")
        parsed = [Route.parse(r) for r in routes]
        if not parsed:
            raise click.UsageError("--listen needs at least one --route ALERTNAME:RUNBOOK")
        receiver = AlertReceiver(host or "127.0.0.1", int(port), parsed,
                                 _alert_starter(registry, inventories, params, journal_path, say, auto, waits),
                                 _webhook_token(token_file), parse_duration(cooldown))
        threading.Thread(target=receiver.serve, daemon=True).start()
        say("listening", {"address": f"{host}:{receiver.port}"})
    try:
        if runbook:
            config = WatchConfig(runbook, respond, list(inventories), params, parse_duration(interval), failures,
                                 parse_duration(cooldown), max_responses, auto_approve=auto(respond or runbook),
                                 approval_timeout=waits)
            watcher = Watcher(config, registry, journal, say)
            watcher.run()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if receiver is not None:
            receiver.close()
