"""The CI side of the command line: `opsbook plan` over many runbooks and `opsbook diff`.
Registered on the `opsbook` group by opsbook.cli; heavy imports stay inside the commands."""

from __future__ import annotations

import sys
from typing import Any

import click

_params_file_opt = click.option("--params-file", type=click.Path(dir_okay=False), metavar="FILE",
                                help='Parameters per runbook: {runbook name or path: {param: value}, "*": {...}}.')


def show_plans(runbooks: tuple[str, ...], inputs: Any, fmt: str, registry: Any) -> None:
    """`opsbook plan`: each runbook's plan; errors of one runbook do not stop the others
    (exit 2 if any had one)."""
    from opsbook.planset import plan_many
    from opsbook.planview import plan_json, plan_text

    results = plan_many(runbooks, registry, inputs)
    failed = [r for r in results if r.plan is None]
    for result in failed:
        _print_diagnostics(result.diagnostics)
    if fmt == "json":
        import json

        import os

        data = [plan_json(r.plan, registry) for r in results if r.plan is not None]
        one_file = len(runbooks) == 1 and not os.path.isdir(runbooks[0])  # the shape plan always had
        click.echo(json.dumps(data[0] if one_file and data else data, indent=2, default=str))
    else:
        click.echo("\n\n".join(plan_text(r.plan, registry) for r in results if r.plan is not None))
    if failed:
        sys.exit(2)


def _print_diagnostics(diagnostics: list[Any]) -> None:
    from opsbook.cli.base import _print_diagnostics as show

    show(diagnostics)


@click.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="SRC",
              help="Ansible inventory (INI/YAML file or directory); repeat to merge.")
@click.option("-e", "--extra-vars", "extra", multiple=True, metavar="K=V",
              help="Parameter or variable: key=value, a JSON object, or @file.yaml; repeatable.")
@_params_file_opt
@click.option("--format", "fmt", type=click.Choice(["text", "md", "json"]), default="text", show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit 1 when the plans differ (like git diff --exit-code).")
def diff(old: str, new: str, inventories: tuple[str, ...], extra: tuple[str, ...], params_file: str | None,
         fmt: str, exit_code: bool) -> None:
    """Show what a change to a runbook changes in its plan, per step and host; contacts nothing.

    OLD and NEW are runbook files, or git revisions of one as REV:PATH
    (`opsbook diff origin/main:runbooks/x.yaml runbooks/x.yaml`). Both are planned with the
    same inventory and parameters. --format md writes a table for a pull-request comment.
    """
    from opsbook.api import load_inventory_sources
    from opsbook.params import parse_extra_vars
    from opsbook.plandiff import FORMATS, diff_plans, read_side
    from opsbook.planset import PlanInputs, load_params_file, plan_one
    from opsbook.planview import plan_json
    from opsbook.registry import Registry

    registry = Registry.from_entry_points()
    inputs = PlanInputs(inventories, parse_extra_vars(list(extra)), load_params_file(params_file))
    inventory = load_inventory_sources(list(inventories), registry)
    sides = []
    for spec in (old, new):
        path, text = read_side(spec)
        sides.append(plan_json(plan_one(path, registry, inputs, inventory, text=text), registry))
    changes = diff_plans(sides[0], sides[1])
    click.echo(FORMATS[fmt](changes, old, new))
    sys.exit(1 if exit_code and changes else 0)


__all__ = ["diff", "show_plans"]
