"""Commands that describe the installation: `inventory`, `plugins`, `schema`."""

from __future__ import annotations

import click
from opsbook.cli import base
from opsbook.cli.base import _inventory_opt, _output_option, _write, main

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
    from opsbook.inventory import ansible_graph, ansible_list

    inv = load_inventory_sources(list(inventories))
    if host:
        for var, source, value in inv.var_sources(host):
            click.echo(f"{var} = {json.dumps(value, default=str)}    # {source}")
    elif as_graph:
        click.echo(ansible_graph(inv, vars=with_vars))
    else:
        click.echo(json.dumps(ansible_list(inv), indent=4, sort_keys=True, default=str))


@main.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plugins(name: str | None, fmt: str) -> None:
    """List installed plugins and their actions (arguments, check-mode support)."""
    from opsbook.planview import plugins_json, plugins_text

    registry = base._registry()
    if name and registry.plugin(name) is None:
        import difflib

        known = registry.names
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        why = f" (it is installed but broken: {registry.broken[name]})" if name in registry.broken else ""
        raise click.UsageError(f'no plugin named "{name}"{why}' + (f' (did you mean "{close[0]}"?)' if close else "")
                               + f"; installed: {', '.join(known)}")
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

    _write(json.dumps(runbook_schema(base._registry()), indent=2), output)


if __name__ == "__main__":  # pragma: no cover
    main()
