"""Which value a name has for a node, and how a step's arguments are rendered with it.

One place for the precedence, used by the run (`Executor.context_for`), the plan view
(`opsbook plan`, which must show what the run will do) and the compiler (host patterns
and block loops rendered when the plan is made). Lowest precedence first:

1. the host's inventory variables, then the built-in names (`inventory_hostname`,
   `groups`, `hostvars`, `params`, `run`, `runbook_dir`, `host`);
2. the runbook's `vars:`, rendered in order (each sees the ones before it);
3. facts set by `local.set`, then registered results;
4. the step's `vars:`;
5. loop variables;
6. params and `-e` values: they win over everything, as Ansible's extra vars do.

A `vars:` value that cannot be rendered yet (it reads a result of the run) is kept as
written by the run and the plan; the compiler, which renders before any host exists,
leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opsbook.errors import TemplateError
from opsbook.plugin import ActionSpec
from opsbook.template import render

EMPTY: Mapping[str, Any] = MappingProxyType({})
OMIT = "__omit__"  # Ansible's `omit`: an argument rendered to this is dropped


@dataclass(frozen=True, slots=True)
class Scope:
    """The variables a template sees, by where they come from; `resolve()` applies the
    precedence."""

    base: Mapping[str, Any]  # inventory vars of the host, then the built-in names
    runbook_vars: Mapping[str, Any]
    params: Mapping[str, Any]  # params and -e: win over everything
    results: tuple[Mapping[str, Any], ...] = ()  # facts, then registered results
    step_vars: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # loop variables

    def resolve(self, drop_unrendered: bool = False) -> dict[str, Any]:
        ctx = dict(self.base)
        ctx.update(self.params)  # runbook vars may read params
        _render_into(ctx, self.runbook_vars, drop_unrendered)
        for layer in self.results:
            ctx.update(layer)
        _render_into(ctx, self.step_vars, drop_unrendered)
        ctx.update(self.extra)
        ctx.update(self.params)
        return ctx


def builtin_names(name: str, host_vars: Mapping[str, Any], groups: Mapping[str, list[str]],
                  params: Mapping[str, Any], runbook_dir: str) -> dict[str, Any]:
    """Layer 1 without `hostvars` and `run`, which the caller adds (the run knows results
    and its id; the plan only the inventory)."""
    ctx = dict(host_vars)
    ctx.update(inventory_hostname=name, groups=groups, params=params, runbook_dir=runbook_dir,
               host={"name": name, "address": str(host_vars.get("ansible_host", name)), "vars": host_vars},
               # Ansible's magic variables (the run adds ansible_check_mode and the play's hosts)
               inventory_hostname_short=name.split(".")[0],
               group_names=sorted(g for g, members in groups.items() if name in members and g != "all"))
    return ctx


def _render_into(ctx: dict[str, Any], values: Mapping[str, Any], drop_unrendered: bool) -> None:
    for key, value in values.items():
        try:
            ctx[key] = render(value, ctx)
        except TemplateError:
            if not drop_unrendered:
                ctx[key] = value


def render_args(spec: ActionSpec, args: Any, ctx: Mapping[str, Any], pos: Any) -> Any:
    """A step's arguments rendered for its action: argv and shell fields as declared, expression
    fields evaluated (as `when:`), arguments rendered to `omit` dropped."""
    from opsbook.template import evaluate

    if spec.expression_fields:
        if not isinstance(args, dict) and spec.scalar_arg in spec.expression_fields:
            args = {spec.scalar_arg: args}
        if isinstance(args, dict):
            evaluated = {k: _evaluate_all(v, ctx, pos, evaluate) for k, v in args.items()
                         if k in spec.expression_fields}
            rest = {k: v for k, v in args.items() if k not in spec.expression_fields}
            return {**render_args(spec.without_expressions(), rest, ctx, pos), **evaluated}
    if isinstance(args, dict):
        # each field as the action declares it (ActionSpec.render_field): a command line split
        # into an argv keeps each value one word, a shell line quotes it, a list is an argv
        rendered = {k: spec.render_field(k, v, ctx, pos) for k, v in args.items()}
        return {k: v for k, v in rendered.items() if v != OMIT}
    if spec.scalar_arg is not None:
        return spec.render_field(spec.scalar_arg, args, ctx, pos)
    return render(args, ctx, pos=pos)


def _evaluate_all(value: Any, ctx: Mapping[str, Any], pos: Any, evaluate: Any) -> Any:
    """Bare expressions (Ansible's `that:`/`when:` style), one or a list."""
    if isinstance(value, list):
        return [_evaluate_all(v, ctx, pos, evaluate) for v in value]
    if isinstance(value, str):
        return evaluate(value, ctx, pos)
    return value
