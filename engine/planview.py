"""Views of a plan and of the plugins: text, JSON, DOT, Mermaid, images (for the CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from opsbook.argdoc import args_schema, argument_lines
from opsbook.compile import BARRIER, HANDLER, Node, Plan
from opsbook.errors import UserError
from opsbook.model import duration_text
from opsbook.planrender import (
    Known,
    PlanContext,
    known_names,
    loop_items,
    render_text,
    rendered_approval,
    rendered_args,
    rendered_items,
    rendered_rollback,
)
from opsbook.registry import Registry
from opsbook.secrets import HIDDEN
from opsbook.targets import node_target
from opsbook.template import render, short_value

_ITEMS_SHOWN = 20  # items of a known loop shown in the text view (JSON has all)
def _known_text(known: Known, secrets: Any) -> str:
    """The value as JSON, each string redacted before it is quoted (a secret's form inside a
    JSON text inside JSON would escape a redaction of the whole line)."""
    text = json.dumps(secrets.redact_any(known.value), default=str, ensure_ascii=False)
    if known.waits_for:
        text += f"   (templates left for the run: {', '.join(sorted(known.waits_for))})"
    return text


def _item_label(step: Any, item: Any, ctx: dict[str, Any], secrets: Any) -> str:
    """How an item is named: its `loop_control.label` rendered, else `item=value`."""
    if step.loop_label is not None:
        try:
            return str(secrets.redact(str(render(step.loop_label, {**ctx, step.loop_var: item}))))
        except UserError:
            pass
    shown = secrets.redact_any(item)
    return f"{step.loop_var}={shown if isinstance(shown, str) else short_value(shown)}"


def _per_host(label: str, by_host: dict[str, str]) -> list[str]:
    """One line when every host gets the same text, else one per host."""
    if len(set(by_host.values())) == 1:
        return [f"    {label}: {next(iter(by_host.values()))}"]
    return [f"    {label} on {host}: {text}" for host, text in by_host.items()]



def _secrets(plan: Plan) -> Any:
    """The runbook's secret parameters and the inventory's secrets: masked in every view of the plan."""
    from opsbook.secrets import SecretStore, register_plan

    return register_plan(plan, SecretStore())


def plan_json(plan: Plan, registry: Registry | None = None) -> dict[str, Any]:
    context = PlanContext(plan, registry)
    nodes = []
    needs = plan.dependencies()
    for node in sorted(plan.nodes.values(), key=lambda n: n.index):
        entry: dict[str, Any] = {"id": node.id, "kind": node.kind, "needs": sorted(needs[node.id])}
        if node.kind != BARRIER:
            step = node.step
            args = rendered_args(plan, node, context)
            entry.update(step=step.name, step_id=step.id, host=node.host, action=step.action.name if step.action else None,
                         args=args.value, where=str(step.pos))
            waits = set(args.waits_for)
            items = loop_items(plan, node, context) if step.action is not None else None
            if items is not None:  # the loop is known: each item's arguments
                each = rendered_items(plan, node, context, items)
                entry["loop_items"] = [{"item": item, "args": known.value} for item, known in zip(items, each)]
                waits = set().union(*(known.waits_for for known in each))
            if step.delegate_to is not None:  # where the action runs for this host
                delegate = render_text(step.delegate_to, known_names(plan, node, context))
                waits |= delegate.waits_for
            target = node_target(plan, node, context.registry, args.value)
            if target:
                entry["target"] = target
            entry.update(step_keywords(step, context.registry))
            if step.delegate_to is not None:
                entry["delegate_to"] = delegate.value
            if step.approve is not None:
                approval = rendered_approval(plan, node, context)
                entry["approve"], waits = approval.value, waits | approval.waits_for
            if step.rollback is not None:
                if items is not None:  # one undo per item
                    for each_item in entry["loop_items"]:
                        undo = rendered_rollback(plan, node, context, each_item["item"])
                        each_item["rollback"], waits = {step.rollback.name: undo.value}, waits | undo.waits_for
                else:
                    rollback = rendered_rollback(plan, node, context)
                    entry["rollback"], waits = {step.rollback.name: rollback.value}, waits | rollback.waits_for
            if waits:  # what stays a template: it reads what only the run will know
                entry["templates_left_for_the_run"] = sorted(waits)
            sections = node.leaf.sections  # type: ignore[union-attr]
            if sections:
                entry["block"] = [f"{s.block_id}:{s.part}" for s in sections]
        nodes.append(entry)
    return _secrets(plan).redact_any(  # type: ignore[no-any-return]
        {"runbook": plan.runbook.name, "path": plan.runbook.path, **runbook_keywords(plan.runbook),
         "params": plan.params, "nodes": nodes})


def plan_text(plan: Plan, registry: Registry | None = None) -> str:
    context = PlanContext(plan, registry)
    secrets = _secrets(plan)
    rb = plan.runbook
    lines = [f"runbook {rb.name} ({rb.phase})  {rb.path}"]
    asked: set[str | None] = set()  # blocks whose approval was shown (at their first step)
    settings = {k: v for k, v in runbook_keywords(rb).items() if k != "phase"}
    if settings:
        lines.append("with: " + ", ".join(f"{k}={_keyword_text(k, v)}" for k, v in settings.items()))
    if plan.params:
        lines.append("params: " + ", ".join(f"{k}={v!r}" for k, v in plan.params.items()))
    action_nodes = [n for n in plan.nodes.values() if n.kind != BARRIER]
    hosts = sorted({n.host for n in action_nodes if n.host})
    lines.append(f"{len(plan.leaves)} steps x {len(hosts)} hosts = {len(action_nodes)} nodes; nothing was contacted\n")
    step_needs: dict[str, set[str]] = {}  # one pass over the edges (not one per step)
    for a, b in plan.step_edges:
        step_needs.setdefault(b, set()).add(a)
    for sid, leaf in plan.leaves.items():
        step = leaf.step
        tags = []
        if leaf.handler:
            tags.append("handler")
        if step.approve is not None:
            tags.append("approval")
        if step.serial:
            tags.append(f"serial {list(step.serial)}")
        if step.run_once:
            tags.append("run_once")
        if leaf.sections:
            tags.append(" > ".join(f"{s.block_id}:{s.part}" for s in leaf.sections))
        lines.append(f"[{sid}] {step.name}" + (f"  ({'; '.join(tags)})" if tags else "") + f"  {step.pos}")
        deps = sorted(step_needs.get(sid, ()))
        if deps:
            lines.append(f"    after: {', '.join(deps)}")
        if step.when:
            lines.append(f"    when: {' and '.join(map(str, step.when))}")
        shown = {k: v for k, v in step_keywords(step, context.registry).items()
                 if k not in ("when", "approve", "serial", "run_once", "rollback") and (k != "mutates" or v)}
        if shown:
            lines.append("    with: " + ", ".join(f"{k}={_keyword_text(k, v)}" for k, v in shown.items()))
        approvals: dict[str, str] = {}
        rollbacks: dict[str, str] = {}
        for host in leaf.hosts:
            node = plan.nodes.get(f"{sid}@{host}")
            if node is None:
                continue
            action = step.action.name if step.action else ""
            if step.delegate_to is not None:  # where the action runs, for this host
                delegate = render_text(step.delegate_to, known_names(plan, node, context))
                action = f"(runs on {delegate.value if not delegate.waits_for else step.delegate_to}) {action}"
            items = loop_items(plan, node, context) if step.action is not None else None
            if items is None:
                known_args = rendered_args(plan, node, context)
                lines.append(f"    {host}: {action} {_known_text(known_args, secrets)}")
                target = node_target(plan, node, context.registry, known_args.value)
                if target:
                    lines.append(f"      -> {target}")
            else:  # the loop is known: one line per item
                each = rendered_items(plan, node, context, items)
                for item, known in list(zip(items, each))[:_ITEMS_SHOWN]:
                    where = f"{host} [{_item_label(step, item, known_names(plan, node, context), secrets)}]"
                    lines.append(f"    {where}: {action} {_known_text(known, secrets)}")
                    if step.rollback is not None:
                        undo = rendered_rollback(plan, node, context, item)
                        rollbacks[where] = f"{step.rollback.name} {_known_text(undo, secrets)}"
                if len(items) > _ITEMS_SHOWN:
                    lines.append(f"    {host}: ... and {len(items) - _ITEMS_SHOWN} more items (--format json has them all)")
                if not items:
                    lines.append(f"    {host}: loop over no items: skipped")
            if step.approve is not None and step.approve_scope not in asked:
                approvals[host] = _known_text(rendered_approval(plan, node, context), secrets)
            if step.rollback is not None and items is None:
                rollbacks[host] = f"{step.rollback.name} {_known_text(rendered_rollback(plan, node, context), secrets)}"
        if not leaf.hosts:
            lines.append("    (no hosts)")
        if approvals:
            lines += _per_host("approve", approvals)
        if step.approve_scope is not None:  # a block's approval: asked once, shown at its first step
            asked.add(step.approve_scope)
        if rollbacks:
            lines += _per_host("rollback", rollbacks)
    return str(secrets.redact("\n".join(lines)))


# what changes what a run does, besides the action and its arguments (Step field names)
_STEP_KEYWORDS = ("when", "loop", "loop_var", "register", "retries", "delay", "backoff", "until", "timeout",
                  "ignore_errors", "failed_when", "changed_when", "check_mode", "serial", "max_fail_percentage",
                  "max_errors", "run_once", "delegate_to", "become", "become_user", "approve", "tags", "notify",
                  "no_log", "marks", "restores", "undoes", "listen")
_DEFAULTS: dict[str, Any] = {"delay": 1.0, "backoff": 1.0, "loop_var": "item"}


def step_keywords(step: Any, registry: Registry | None = None) -> dict[str, Any]:
    """Every keyword of a step that changes what a run does, when not at its default
    (a plan view shows them, and `opsbook diff` compares them); `mutates`, from the
    action and the step's read-only marks (opsbook.policy)."""
    out: dict[str, Any] = {}
    for key in _STEP_KEYWORDS:
        value = getattr(step, key)
        if value in (None, (), [], "") or value is False and key != "check_mode" or value == _DEFAULTS.get(key):
            continue
        if key in ("retries",) and value == 0:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    if step.keep_healthy is not None:
        kh = step.keep_healthy
        out["keep_healthy"] = {k: v for k, v in (("min", kh.minimum if kh.template is None else kh.template),
                                                 ("percent", kh.percent), ("group", kh.group),
                                                 ("probe", {kh.probe.name: kh.probe.args} if kh.probe else None))
                               if v is not None}
    if step.rollback is not None:
        out["rollback"] = {step.rollback.name: HIDDEN if step.no_log else step.rollback.args}
    if registry is not None and step.action is not None:
        from opsbook.policy import step_mutates

        out["mutates"] = step_mutates(step, registry)
    return out


def _keyword_text(key: str, value: Any) -> str:
    """A keyword's value in plan text: durations as a runbook writes them (timeout=20s)."""
    if key in ("timeout", "delay") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return duration_text(value)
    if key == "objectives" and isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {duration_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, default=str)


def runbook_keywords(rb: Any) -> dict[str, Any]:
    """The runbook-level settings that change what a run does or how it is judged."""
    out: dict[str, Any] = {"phase": rb.phase}
    objectives = {k: v for k, v in (("rto", rb.objectives.rto), ("rpo", rb.objectives.rpo)) if v is not None}
    if objectives:
        out["objectives"] = objectives
    for key in ("timeout", "lock", "max_fail_percentage", "max_errors"):
        if getattr(rb, key) is not None:
            out[key] = getattr(rb, key)
    return out


def _label(node: Node) -> str:
    if node.kind == BARRIER:
        return node.id
    return f"{node.step.name}\\n@{node.host}" if node.host else node.step.name


def _step_graph(plan: Plan) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    nodes = [(sid, leaf.step.name + (f" [{len(leaf.hosts)} hosts]" if len(leaf.hosts) > 1 else
                                     f" @{leaf.hosts[0]}" if leaf.hosts else "")) for sid, leaf in plan.leaves.items()]
    return nodes, sorted(plan.step_edges)


def graph_dot(plan: Plan, by_step: bool = False, colors: dict[str, str] | None = None) -> str:
    """Steps top to bottom (a long rollout reads down a page, not across ten pages), the
    nodes of each `serial` batch in a box of their own."""
    out = ["digraph plan {", '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];']
    if by_step or len(plan.nodes) > 400:
        nodes, edges = _step_graph(plan)
        for sid, label in nodes:
            color = (colors or {}).get(sid, "#f5f5f5")
            out.append(f'  "{sid}" [label={json.dumps(label)}, fillcolor="{color}"];')
        out += [f'  "{a}" -> "{b}";' for a, b in edges]
    else:
        batches: dict[tuple[str, int], list[str]] = {}
        lines: dict[str, str] = {}
        for node in sorted(plan.nodes.values(), key=lambda n: n.index):
            shape = ', shape=point, width=0.1' if node.kind == BARRIER else ""
            color = (colors or {}).get(node.id, "#fff4d6" if node.kind == HANDLER else "#f5f5f5")
            lines[node.id] = f'"{node.id}" [label="{_label(node)}", fillcolor="{color}"{shape}];'
            leaf = plan.leaves.get(node.step.id) if node.kind != BARRIER else None
            if leaf is not None and leaf.serial_owner and node.host:
                k = next((i for i, batch in enumerate(leaf.batches, 1) if node.host in batch), 0)
                batches.setdefault((leaf.serial_owner, k), []).append(node.id)
        grouped = {node_id for members in batches.values() for node_id in members}
        out += [f"  {line}" for node_id, line in lines.items() if node_id not in grouped]
        for n, ((owner, k), members) in enumerate(batches.items()):
            total = max(kk for (o, kk) in batches if o == owner)
            out.append(f'  subgraph cluster_{n} {{ label="{owner}: batch {k} of {total}"; style="rounded,dashed"; '
                       'color="#8c959f"; fontname="Helvetica";')
            out += [f"    {lines[node_id]}" for node_id in members]
            out.append("  }")
        out += [f'  "{a}" -> "{b}";' for a, b in plan.edges]
    out.append("}")
    return "\n".join(out)


def graph_mermaid(plan: Plan, by_step: bool = False) -> str:
    ids: dict[str, str] = {}

    def mid(name: str) -> str:
        return ids.setdefault(name, f"n{len(ids)}")

    out = ["flowchart LR"]
    if by_step or len(plan.nodes) > 400:
        nodes, edges = _step_graph(plan)
        out += [f'  {mid(sid)}["{label}"]' for sid, label in nodes]
    else:
        nodes_ = sorted(plan.nodes.values(), key=lambda n: n.index)
        out += [f'  {mid(n.id)}(("{n.id}"))' if n.kind == BARRIER else f'  {mid(n.id)}["{_label(n).replace(chr(92) + "n", "<br/>")}"]'
                for n in nodes_]
        edges = list(plan.edges)
    out += [f"  {mid(a)} --> {mid(b)}" for a, b in edges]
    return "\n".join(out)


def plan_image(plan: Plan, by_step: bool, fmt: str, warn: Any = None) -> bytes:
    """The plan's graph as an image by Graphviz; without Graphviz an SVG is still drawn, as
    the report's grid (steps as rows, hosts as columns), and `warn` says so."""
    if shutil.which("dot") is None and fmt == "svg":
        from opsbook.plangrid import plan_grid_svg

        if warn is not None:
            warn("Graphviz's `dot` is not installed: drew the plan as a grid of steps x hosts "
                 "(apt-get install graphviz for the dependency graph)")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + plan_grid_svg(plan, {})).encode()
    return render_image(graph_dot(plan, by_step), fmt)


def render_image(dot: str, fmt: str) -> bytes:
    exe = shutil.which("dot")
    if exe is None:
        raise UserError(f"rendering {fmt} needs Graphviz's `dot` program, which is not installed",
                        hint="apt-get install graphviz, or use --format dot / mermaid")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise UserError(f"graphviz failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def plugins_json(registry: Registry, name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pname, plugin in sorted(registry.plugins.items()):
        if name and pname != name:
            continue
        out[pname] = {"doc": plugin.doc, "connections": sorted(plugin.connections), "actions": {
            aname: {"doc": spec.doc, "check_mode": spec.supports_check, "idempotent": spec.idempotent,
                    "rollback": spec.inverse is not None, "mutates": spec.mutates is not False,
                    "disrupts": spec.disrupts is not False, "observes": spec.observes,
                    "rollback_actions": None if spec.inverse_actions is None else sorted(spec.inverse_actions),
                    "problems": registry.inverse_problems(spec),
                    "arguments": args_schema(spec)}
            for aname, spec in sorted(plugin.actions.items())}}
    if registry.broken:
        out["_broken"] = registry.broken
    return out


def plugins_text(registry: Registry, name: str | None = None) -> str:
    lines = []
    for pname, plugin in sorted(registry.plugins.items()):
        if name and pname != name:
            continue
        conns = f"  (connections: {', '.join(sorted(plugin.connections))})" if plugin.connections else ""
        lines.append(f"{pname}: {plugin.doc}{conns}")
        for aname, spec in sorted(plugin.actions.items()):
            flags = ", ".join(f for f, on in (("check", spec.supports_check), ("idempotent", spec.idempotent),
                                              ("rollback", spec.inverse is not None),
                                              ("mutates", spec.mutates is not False),
                                              ("disrupts", spec.disrupts is not False)) if on)
            lines.append(f"  {pname}.{aname}  {spec.doc.splitlines()[0] if spec.doc else ''}"
                         + (f"  [{flags}]" if flags else ""))
            lines += [f"      PROBLEM: {problem}" for problem in registry.inverse_problems(spec)]
            if name and spec.inverse is not None:
                lines.append("      rollback runs: " + (", ".join(sorted(spec.inverse_actions)) if spec.inverse_actions
                                                         else "not declared (inverse_actions=): check cannot verify it"))
            if name:
                lines += argument_lines(spec)
    for ep, why in registry.broken.items():
        lines.append(f"BROKEN {ep}: {why}")
    return "\n".join(lines)

