"""Views of a plan and of the plugins: text, JSON, DOT, Mermaid, images (for the CLI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from opsbook.compile import BARRIER, HANDLER, Node, Plan
from opsbook.errors import UserError
from opsbook.registry import Registry
from opsbook.secrets import HIDDEN
from opsbook.template import render
from opsbook.variables import render_args


def _rendered_args(plan: Plan, node: Node, context: _Context) -> Any:
    """Arguments rendered as the run will render them, where everything they read is known
    before the run; else as written (they read results of the run, or its id)."""
    from opsbook.variables import Scope

    step = node.step
    if step.action is None:
        return None
    if step.no_log:
        return HIDDEN
    spec = context.registry.action(step.action.name)
    base = context.base(node.host)
    ctx = Scope(base, plan.runbook.vars, plan.params, step_vars=step.vars).resolve()
    try:
        if spec is None:
            return render(step.action.args, ctx)
        # conditions (`that:`) are shown as written, like `when:`
        return render_args(spec.without_expressions(), step.action.args, ctx, step.pos)
    except UserError:
        return step.action.args


def _rendered_text(plan: Plan, node: Node, context: _Context, text: str) -> str:
    """A message (an approval's) as the run will show it on this node's host, where
    everything it reads is known before the run; else as written."""
    from opsbook.variables import Scope

    step = node.step
    ctx = Scope(context.base(node.host), plan.runbook.vars, plan.params, step_vars=step.vars).resolve()
    try:
        return str(render(text, ctx))
    except UserError:
        return text


class _Context:
    """What every node of a plan view shares: the registry, the inventory's names."""

    def __init__(self, plan: Plan, registry: Registry | None) -> None:
        self.plan = plan
        self.registry = registry or Registry.from_entry_points()
        inv = plan.inventory
        self.groups = {g: [h.name for h in inv.hosts_of(g)] for g in inv.groups}
        self.hostvars = {name: {**h.vars, "inventory_hostname": name} for name, h in inv.hosts.items()}
        self.runbook_dir = str(Path(plan.runbook.path).resolve().parent)

    def base(self, host: str | None) -> dict[str, Any]:
        from opsbook.variables import builtin_names

        name = host or "localhost"
        host_vars = self.plan.inventory.host(host).vars if host else {}
        base = builtin_names(name, host_vars, self.groups, self.plan.params, self.runbook_dir)
        base["hostvars"] = self.hostvars  # the run adds its results; the plan knows none
        return base


def _secrets(plan: Plan) -> Any:
    """The runbook's secret parameters and the inventory's secrets: masked in every view of the plan."""
    from opsbook.secrets import SecretStore, register_plan

    return register_plan(plan, SecretStore())


def plan_json(plan: Plan, registry: Registry | None = None) -> dict[str, Any]:
    context = _Context(plan, registry)
    nodes = []
    needs = plan.dependencies()
    for node in sorted(plan.nodes.values(), key=lambda n: n.index):
        entry: dict[str, Any] = {"id": node.id, "kind": node.kind, "needs": sorted(needs[node.id])}
        if node.kind != BARRIER:
            step = node.step
            entry.update(step=step.name, step_id=step.id, host=node.host, action=step.action.name if step.action else None,
                         args=_rendered_args(plan, node, context), where=str(step.pos))
            entry.update(step_keywords(step, context.registry))
            if step.approve is not None:
                entry["approve"] = _rendered_text(plan, node, context, step.approve)
            if step.rollback is not None:
                entry["rollback"] = {step.rollback.name: HIDDEN if step.no_log else step.rollback.args}
            sections = node.leaf.sections  # type: ignore[union-attr]
            if sections:
                entry["block"] = [f"{s.block_id}:{s.part}" for s in sections]
        nodes.append(entry)
    return _secrets(plan).redact_any(  # type: ignore[no-any-return]
        {"runbook": plan.runbook.name, "path": plan.runbook.path, **runbook_keywords(plan.runbook),
         "params": plan.params, "nodes": nodes})


def plan_text(plan: Plan, registry: Registry | None = None) -> str:
    context = _Context(plan, registry)
    rb = plan.runbook
    lines = [f"runbook {rb.name} ({rb.phase})  {rb.path}"]
    settings = {k: v for k, v in runbook_keywords(rb).items() if k != "phase"}
    if settings:
        lines.append("with: " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in settings.items()))
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
        if step.approve is not None:
            for host in leaf.hosts or (None,):
                node = plan.nodes.get(f"{sid}@{host}") if host else None
                message = _rendered_text(plan, node, context, step.approve) if node is not None else step.approve
                lines.append(f"    approve{f' @ {host}' if host else ''}: {message}")
        shown = {k: v for k, v in step_keywords(step, context.registry).items()
                 if k not in ("when", "approve", "serial", "run_once", "rollback") and (k != "mutates" or v)}
        if shown:
            lines.append("    with: " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in shown.items()))
        for host in leaf.hosts:
            node = plan.nodes.get(f"{sid}@{host}")
            if node is None:
                continue
            args = _rendered_args(plan, node, context)
            lines.append(f"    {host}: {step.action.name if step.action else ''} {json.dumps(args, default=str)}")
        if not leaf.hosts:
            lines.append("    (no hosts)")
        if step.rollback is not None:
            rollback_args = HIDDEN if step.no_log else step.rollback.args
            lines.append(f"    rollback: {step.rollback.name} {json.dumps(rollback_args, default=str)}")
    return str(_secrets(plan).redact("\n".join(lines)))


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
    out = ["digraph plan {", '  rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];']
    if by_step or len(plan.nodes) > 400:
        nodes, edges = _step_graph(plan)
        for sid, label in nodes:
            color = (colors or {}).get(sid, "#f5f5f5")
            out.append(f'  "{sid}" [label={json.dumps(label)}, fillcolor="{color}"];')
        out += [f'  "{a}" -> "{b}";' for a, b in edges]
    else:
        for node in sorted(plan.nodes.values(), key=lambda n: n.index):
            shape = ', shape=point, width=0.1' if node.kind == BARRIER else ""
            color = (colors or {}).get(node.id, "#fff4d6" if node.kind == HANDLER else "#f5f5f5")
            out.append(f'  "{node.id}" [label="{_label(node)}", fillcolor="{color}"{shape}];')
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
                    "arguments": spec.args_model.model_json_schema()}  # type: ignore[attr-defined]
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
            if name:
                for fname, field in spec.args_model.model_fields.items():  # type: ignore[attr-defined]
                    req = "required" if field.is_required() else f"default {field.default!r}"
                    desc = f" - {field.description}" if field.description else ""
                    how = " [argv]" if fname in spec.argv_fields else " [shell]" if fname in spec.shell_fields else ""
                    lines.append(f"      {fname}: {_type_name(field.annotation)} ({req}){how}{desc}")
    for ep, why in registry.broken.items():
        lines.append(f"BROKEN {ep}: {why}")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "")
