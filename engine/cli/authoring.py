"""Commands that read a runbook without running it: `check`, `plan`, `graph`."""

from __future__ import annotations

import sys
from typing import Any

import click
from opsbook.cli import base
from opsbook.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    _extra,
    _extra_opt,
    _inventory_opt,
    _output_option,
    _print_diagnostics,
    _secret_opt,
    _write,
    main,
)
from opsbook.cli.running import _refuse_certain_mistakes, _secret_params

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
@click.option("--profile", type=click.Choice(["minimal", "safety", "production"]),
              help="Policy rules to run (instead of the config's); their findings are errors in every runbook.")
@click.option("--no-policy", is_flag=True, help="Skip the policy rules (check the language only).")
@click.option("--timings", is_flag=True, help="Add each runbook's seconds to --format json.")
def check(runbooks: tuple[str, ...], inventories: tuple[str, ...], extra: tuple[str, ...], junit: str | None,
          fmt: str, strict: bool, config: str | None, profile: str | None, no_policy: bool, timings: bool) -> None:
    """Validate runbooks without touching any host (exit 0 valid, 1 invalid).

    Checks YAML, keys, types, actions and their arguments, templates (undefined names),
    needs/cycles and, with -i, that every host pattern matches. Without -i, host patterns
    naming hosts or groups (and variables only their hosts could define) are not
    checked: each runbook's line says which, and everything else is checked.
    The policy rules (docs/policy.md) run too, as the project's .opsbook.yaml sets them.
    Without a .opsbook.yaml or --profile, a policy finding is an error in an incident
    runbook (one with phase: or objectives:) and a warning in an ad-hoc one.
    """
    from opsbook.ci import GateOptions, gate

    reports = gate(runbooks, base._registry(), inventories, _extra(extra),
                   GateOptions(config, not no_policy, strict, profile))
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




def _plan(runbook: str, inventories: tuple[str, ...], extra: tuple[str, ...], secrets: tuple[str, ...] = ()) -> Any:
    from opsbook.api import (
        load_inventory_sources,
        load_runbook,
        make_plan,
        refuse_evidence_conflicts,
    )
    from opsbook.secrets import SecretStore

    registry = base._registry()
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
    show_plans(runbooks, PlanInputs(inventories, given, load_params_file(params_file)), fmt, base._registry())


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
    """Draw the plan's dependency graph (DOT, Mermaid, or an SVG/PNG image via Graphviz; SVG without Graphviz: a grid)."""
    from opsbook.planview import graph_dot, graph_mermaid, plan_image

    the_plan, _ = _plan(runbook, inventories, extra, secrets)
    if fmt == "mermaid":
        text: str | bytes = graph_mermaid(the_plan, by_step)
    elif fmt == "dot":
        text = graph_dot(the_plan, by_step)
    else:
        text = plan_image(the_plan, by_step, fmt, warn=lambda note: click.echo(f"note: {note}", err=True))
    _write(text, output)
