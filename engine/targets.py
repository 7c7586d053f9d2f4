"""Where each step of a plan goes, as its plugin describes it (`Plugin.target`): the
Kubernetes context and API server of a k8s step, for instance. Computed from the plan
alone (arguments rendered as `plan` renders them, host vars); nothing is contacted.
"""

from __future__ import annotations

from typing import Any

from opsbook.compile import BARRIER, Node, Plan
from opsbook.registry import Registry


def node_target(plan: Plan, node: Node, registry: Registry, args: Any) -> str | None:
    """The plugin's description of where this node's action goes, or None."""
    step = node.step
    if step.action is None:
        return None
    plugin = registry.plugin(step.action.plugin)
    if plugin is None or plugin.target_of is None:
        return None
    host_vars = plan.inventory.host(node.host).vars if node.host else {}
    try:
        return plugin.target_of(step.action.name, args if isinstance(args, dict) else {}, host_vars)
    except Exception as exc:  # a describer must never break plan or run
        return f"(cannot tell: {exc})"


def plan_targets(plan: Plan, registry: Registry) -> list[str]:
    """'<target>: <steps>' lines, one per distinct target, in plan order."""
    used = {node.step.action.plugin for node in plan.nodes.values()
            if node.kind != BARRIER and node.step.action is not None}
    describing = {name for name in used if getattr(registry.plugin(name), "target_of", None) is not None}
    if not describing:
        return []  # no plugin of this plan describes a target: nothing to render (the usual run)
    from opsbook.planrender import PlanContext, rendered_args  # lazy: a run pays for it only here

    context = PlanContext(plan, registry)
    found: dict[str, list[str]] = {}
    for node in sorted(plan.nodes.values(), key=lambda n: n.index):
        if node.kind == BARRIER or node.step.action is None:
            continue
        if node.step.action.plugin not in describing:
            continue  # render only what a plugin will describe
        target = node_target(plan, node, registry, rendered_args(plan, node, context).value)
        if target:
            steps = found.setdefault(target, [])
            if node.step.name not in steps:
                steps.append(node.step.name)
    return [f"{target}: {', '.join(steps)}" for target, steps in found.items()]
