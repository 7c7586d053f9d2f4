"""What a plan can render before the run: every argument (of an action, of its rollback, an
approval's text) rendered as far as what it reads is known; only the templates that read
what the run will know (registered results, `item` of a loop over results, `run.id`) are
left as written, and the names they wait for are returned so that the plan can say so.
`PlanContext` holds what every node of a plan shares (the registry, the inventory's names),
and `rendered_args` & co. render one node with it: for `plan`'s views (`planview`) and the
targets a run's header names (`targets`).

One argument that reads a result must not leave its neighbours raw: a map is rendered
argument by argument, a list item by item, and a text `{{ }}` by `{{ }}`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsbook.errors import UserError
from opsbook.plugin import ActionSpec
from opsbook.registry import Registry
from opsbook.secrets import HIDDEN
from opsbook.template import referenced_names, render
from opsbook.variables import OMIT

if TYPE_CHECKING:
    from opsbook.compile import Node, Plan

_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


@dataclass
class Known:
    """A value rendered as far as the plan knows; `waits_for`: the names its templates left
    for the run read."""

    value: Any
    waits_for: set[str] = field(default_factory=set)


def render_known(spec: ActionSpec | None, args: Any, ctx: Mapping[str, Any], pos: Any = None) -> Known:
    """An action's arguments as the run will render them, as far as `ctx` knows them.
    Conditions (`that:`) are shown as written, like `when:`."""
    from opsbook.variables import render_args

    try:
        if spec is None:
            return Known(render(args, ctx, pos=pos))
        return Known(render_args(spec.without_expressions(), args, ctx, pos))
    except UserError:
        pass
    out = Known(None)
    if spec is None:
        out.value = _partial(args, ctx, "plain", out.waits_for)
    elif isinstance(args, dict):
        value = {}
        for key, arg in args.items():
            rendered = _field(spec, key, arg, ctx, pos, out.waits_for)
            if rendered != OMIT:
                value[key] = rendered
        out.value = value
    elif spec.scalar_arg is not None:
        out.value = _field(spec, spec.scalar_arg, args, ctx, pos, out.waits_for)
    else:
        out.value = _partial(args, ctx, "plain", out.waits_for)
    return out


def render_text(text: Any, ctx: Mapping[str, Any]) -> Known:
    """A text such as an approval's question, rendered as far as `ctx` knows it."""
    out = Known(None)
    out.value = _partial(text, ctx, "plain", out.waits_for)
    return out


def _field(spec: ActionSpec, name: str, value: Any, ctx: Mapping[str, Any], pos: Any, waits: set[str]) -> Any:
    no_conditions = spec.without_expressions()
    try:
        return no_conditions.render_field(name, value, ctx, pos)
    except UserError:
        pass
    if isinstance(value, str) and (name in spec.argv_fields or name in spec.shell_fields):
        return _partial(value, ctx, "shell", waits)  # each value quoted, as the command line will read it
    return _partial(value, ctx, "plain", waits)


def _partial(value: Any, ctx: Mapping[str, Any], mode: str, waits: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _partial(v, ctx, mode, waits) for k, v in value.items()}
    if isinstance(value, list):
        return [_partial(v, ctx, "plain", waits) for v in value]  # a list is an argv: no quoting
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    try:
        return render(value, ctx, shell=mode == "shell")
    except UserError:
        pass
    if "{%" in value or "{#" in value:  # a statement spans the text: it stays whole
        waits |= _names(value, ctx)
        return value
    pieces = []
    last = 0
    for match in _EXPRESSION.finditer(value):
        pieces.append(value[last:match.start()])
        pieces.append(_expression(match.group(0), ctx, mode, waits))
        last = match.end()
    pieces.append(value[last:])
    return "".join(pieces)


def _expression(source: str, ctx: Mapping[str, Any], mode: str, waits: set[str]) -> str:
    try:
        if mode == "shell":
            return str(render(source, ctx, shell=True))
        value = render(source, ctx)
        return value if isinstance(value, str) else str(value)
    except UserError:
        waits |= _names(source, ctx)
        return source


def _names(source: str, ctx: Mapping[str, Any]) -> set[str]:
    """The names a template left for the run reads that the plan does not know (all of them
    when it knows each: the template failed for another reason, which the run will report)."""
    try:
        names = set(referenced_names(source))
    except UserError:
        return set()
    return {n for n in names if n not in ctx} or names


# -- the plan's names, per node, and what each node renders ----------------------------


class PlanContext:
    """What every node of a plan view shares: the registry, the inventory's names."""

    def __init__(self, plan: Plan, registry: Registry | None) -> None:
        self.plan = plan
        self.registry = registry or Registry.from_entry_points()
        inv = plan.inventory
        self.groups = {g: [h.name for h in inv.hosts_of(g)] for g in inv.groups}
        self.hostvars = {name: {**h.vars, "inventory_hostname": name} for name, h in inv.hosts.items()}
        self.runbook_dir = str(Path(plan.runbook.path).resolve().parent)
        self.node_ctx: dict[str, dict[str, Any]] = {}  # node id -> its known names (known_names)

    def base(self, host: str | None) -> dict[str, Any]:
        from opsbook.variables import builtin_names

        name = host or "localhost"
        host_vars = self.plan.inventory.host(host).vars if host else {}
        base = builtin_names(name, host_vars, self.groups, self.plan.params, self.runbook_dir)
        base["hostvars"] = self.hostvars  # the run adds its results; the plan knows none
        return base


_NO_ITEM = object()


def known_names(plan: Plan, node: Node, context: PlanContext) -> dict[str, Any]:
    """The names a node's templates read that are known before the run (vars that read
    results are left out), made once per node."""
    from opsbook.variables import Scope

    ctx = context.node_ctx.get(node.id)
    if ctx is None:
        scope = Scope(context.base(node.host), plan.runbook.vars, plan.params, step_vars=node.step.vars)
        ctx = context.node_ctx[node.id] = scope.resolve(drop_unrendered=True)
    return ctx


def rendered_args(plan: Plan, node: Node, context: PlanContext) -> Known:
    """Arguments rendered as the run will render them, as far as what they read is known
    before the run; templates that read results of the run (or its id) stay as written."""
    step = node.step
    if step.action is None:
        return Known(None)
    if step.no_log:
        return Known(HIDDEN)
    return render_known(context.registry.action(step.action.name), step.action.args,
                        known_names(plan, node, context), step.pos)


def loop_items(plan: Plan, node: Node, context: PlanContext) -> list[Any] | None:
    """The items of the node's loop when the plan knows them (a loop over params, inventory
    or vars); None when there is no loop or it reads what the run will know."""
    step = node.step
    if step.loop is None or step.no_log:
        return None
    try:
        items = render(step.loop, known_names(plan, node, context), pos=step.pos)
    except UserError:
        return None
    return items if isinstance(items, list) else None


def rendered_items(plan: Plan, node: Node, context: PlanContext, items: list[Any]) -> list[Known]:
    """The arguments of each item of a loop the plan knows."""
    step = node.step
    assert step.action is not None
    spec = context.registry.action(step.action.name)
    ctx = known_names(plan, node, context)
    return [render_known(spec, step.action.args, {**ctx, step.loop_var: item}, step.pos) for item in items]


def rendered_rollback(plan: Plan, node: Node, context: PlanContext, item: Any = _NO_ITEM) -> Known:
    """The step's own rollback, rendered as the run records it (a loop's with its item bound)."""
    step = node.step
    assert step.rollback is not None
    if step.no_log:
        return Known(HIDDEN)
    ctx = known_names(plan, node, context)
    if item is not _NO_ITEM:
        ctx = {**ctx, step.loop_var: item}
    return render_known(context.registry.action(step.rollback.name), step.rollback.args, ctx, step.pos)


def rendered_approval(plan: Plan, node: Node, context: PlanContext) -> Known:
    if node.step.no_log:
        return Known(HIDDEN)
    return render_text(node.step.approve, known_names(plan, node, context))
