"""k8s.cordon and k8s.uncordon: mark a node (un)schedulable, each the other's inverse; the
node an action is about (argument, else the inventory host). Drains are in `drain`, taints
in `taint`, where a drain's pods went in `placement`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsbook.plugin import (
    ActionContext,
    Result,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import Session, _Conn, session
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import K8sError
from pydantic import Field

# --------------------------------------------------------------------------- nodes


class NodeArgs(_Conn):
    """A node: `node:`, else host var k8s_node, else the host itself when it is a node."""

    node: str | None = Field(None, description="node name (default: the inventory host's node)")


def _node(s: Session, args: NodeArgs) -> Ref:
    host = s.ctx.host
    name = args.node or host.vars.get("k8s_node")
    if not name and str(host.vars.get("k8s_kind", "")).lower() == "node":
        name = host.name
    if not name:
        raise K8sError(
            "which node? pass node: (or run on a host of the k8s inventory's k8s_nodes group)"
        )
    return s.ref("nodes", str(name))


def _set_unschedulable(ctx: ActionContext, args: NodeArgs, want: bool) -> Result:
    s = session(ctx, args)
    ref = _node(s, args)
    node = s.get(ref)
    was = bool((node.get("spec") or {}).get("unschedulable"))
    word = "cordon" if want else "uncordon"
    data = {
        "node": ref.name,
        "unschedulable": want,
        "was_unschedulable": was,
        "connection": s.connection_args(),
    }
    if was == want:
        return Result.ok(
            changed=False,
            data=data,
            msg=f"node {ref.name} already {'cordoned' if want else 'schedulable'}",
        )
    s.patch(ref, {"spec": {"unschedulable": want}}, dry_run=ctx.check_mode)
    msg = f"would {word} node {ref.name}" if ctx.check_mode else f"{word}ed node {ref.name}"
    return Result.ok(changed=True, data=data, msg=msg)


def _node_inverse(action: str) -> Callable[[NodeArgs, Result], tuple[str, dict[str, Any]] | None]:
    def inverse(args: NodeArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
        if not result.changed:
            return None  # it was like this before: leave it so
        return action, {**result.data.get("connection", {}), "node": result.data["node"]}

    return inverse


@plugin.action(check=True, idempotent=True, inverse=_node_inverse("k8s.uncordon"), inverse_actions=["k8s.uncordon"], mutates=True,
               disrupts=True)
def cordon(ctx: ActionContext, args: NodeArgs) -> Result:
    """Mark a node unschedulable (rollback: uncordon, unless it was cordoned already)."""
    return _set_unschedulable(ctx, args, True)


@plugin.action(check=True, idempotent=True, inverse=_node_inverse("k8s.cordon"), inverse_actions=["k8s.cordon"], mutates=True)
def uncordon(ctx: ActionContext, args: NodeArgs) -> Result:
    """Mark a node schedulable again (rollback: cordon, unless it was schedulable already)."""
    return _set_unschedulable(ctx, args, False)
