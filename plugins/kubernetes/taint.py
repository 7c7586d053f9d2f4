"""k8s.taint / k8s.untaint: a node's taints, each the other's rollback.

`taint` adds (or, with `overwrite`, re-values) one taint `key[=value]:effect`, as
`kubectl taint nodes <node> key=value:effect`; `untaint` removes the taints with that key
(and effect, if given), as `kubectl taint nodes <node> key[:effect]-`. Both write the whole
taint list with the node's resourceVersion, so a concurrent change is refused, not lost.
The rollback puts back exactly what was there: the removed taints, or the old value.
"""

from __future__ import annotations

from typing import Any, Literal

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import session
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.nodes import NodeArgs, _node
from pydantic import Field

Effect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class TaintArgs(NodeArgs):
    """One taint on a node: `key`, optional `value`, `effect`."""

    key: str = Field(description="taint key, e.g. dedicated or node.example.com/maintenance")
    value: str | None = Field(None, description="taint value (optional)")
    effect: Effect = Field("NoSchedule", description="NoSchedule, PreferNoSchedule or NoExecute")
    overwrite: bool = Field(False, description="replace a taint with the same key and effect")


class UntaintArgs(NodeArgs):
    """Taints to remove from a node: every taint with `key`, or only the one with `effect`."""

    key: str = Field(description="taint key")
    effect: Effect | None = Field(None, description="only the taint with this effect")


def _show(t: dict[str, Any]) -> str:
    value = f"={t['value']}" if t.get("value") else ""
    return f"{t['key']}{value}:{t['effect']}"


def _write(s: Any, ref: Any, node: dict[str, Any], taints: list[dict[str, Any]], dry: bool) -> None:
    body = {
        "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
        "spec": {"taints": taints or None},
    }
    s.patch(ref, body, "merge", dry_run=dry)


def _inverse(args: Any, result: Result) -> tuple[str, dict[str, Any]] | None:
    d = result.data
    if not result.changed:
        return None
    conn = {**d.get("connection", {}), "node": d["node"]}
    if d.get("added"):  # taint added, or re-valued: undo it
        old = d.get("replaced")
        if old:
            return "k8s.taint", {**conn, "key": old["key"], "value": old.get("value"),
                                 "effect": old["effect"], "overwrite": True}
        return "k8s.untaint", {**conn, "key": d["added"]["key"], "effect": d["added"]["effect"]}
    removed = d.get("removed") or []
    if len(removed) == 1:
        t = removed[0]
        return "k8s.taint", {**conn, "key": t["key"], "value": t.get("value"), "effect": t["effect"]}
    return "k8s.taints_restore", {**conn, "taints": removed}


@plugin.action(check=True, idempotent=True, inverse=_inverse, inverse_actions=["k8s.taint", "k8s.taints_restore", "k8s.untaint"], mutates=True)
def taint(ctx: ActionContext, args: TaintArgs) -> Result:
    """Add a taint to a node (rollback: remove it, or put back the value it replaced)."""
    s = session(ctx, args)
    ref = _node(s, args)
    node = s.get(ref)
    taints = list((node.get("spec") or {}).get("taints") or [])
    new = {"key": args.key, "effect": args.effect}
    if args.value:
        new["value"] = args.value
    data: dict[str, Any] = {"node": ref.name, "connection": s.connection_args(), "added": None,
                            "replaced": None}
    same = [t for t in taints if t.get("key") == args.key and t.get("effect") == args.effect]
    if same and (same[0].get("value") or None) == (args.value or None):
        data["taints"] = taints
        return Result.ok(changed=False, data=data, msg=f"node {ref.name} already has taint {_show(new)}")
    if same and not args.overwrite:
        raise K8sError(
            f"node {ref.name} already has taint {_show(same[0])}: pass overwrite: true to "
            f"change it to {_show(new)}"
        )
    kept = [t for t in taints if not (t.get("key") == args.key and t.get("effect") == args.effect)]
    after = kept + [new]
    _write(s, ref, node, after, ctx.check_mode)
    data.update(added=new, replaced={k: v for k, v in same[0].items() if k != "timeAdded"} if same else None,
                taints=after)
    verb = "would taint" if ctx.check_mode else "tainted"
    extra = f" (was {_show(same[0])})" if same else ""
    return Result.ok(changed=True, data=data, msg=f"{verb} node {ref.name} with {_show(new)}{extra}")


@plugin.action(check=True, idempotent=True, inverse=_inverse, inverse_actions=["k8s.taint", "k8s.taints_restore", "k8s.untaint"], mutates=True)
def untaint(ctx: ActionContext, args: UntaintArgs) -> Result:
    """Remove a node's taints with a key (and effect); rollback puts them back."""
    s = session(ctx, args)
    ref = _node(s, args)
    node = s.get(ref)
    taints = list((node.get("spec") or {}).get("taints") or [])

    def hit(t: dict[str, Any]) -> bool:
        return t.get("key") == args.key and (args.effect is None or t.get("effect") == args.effect)

    removed = [{k: v for k, v in t.items() if k != "timeAdded"} for t in taints if hit(t)]
    data: dict[str, Any] = {"node": ref.name, "connection": s.connection_args(), "removed": removed}
    want = f"{args.key}{':' + args.effect if args.effect else ''}"
    if not removed:
        data["taints"] = taints
        return Result.ok(changed=False, data=data, msg=f"node {ref.name} has no taint {want}")
    after = [t for t in taints if not hit(t)]
    _write(s, ref, node, after, ctx.check_mode)
    data["taints"] = after
    verb = "would remove" if ctx.check_mode else "removed"
    shown = ", ".join(_show(t) for t in removed)
    return Result.ok(changed=True, data=data, msg=f"{verb} taint {shown} from node {ref.name}")


class RestoreArgs(NodeArgs):
    """Taints to put back on a node (the rollback of an untaint that removed several)."""

    taints: list[dict[str, Any]] = Field(description="taints as the API spells them")


@plugin.action(check=True, idempotent=True)
def taints_restore(ctx: ActionContext, args: RestoreArgs) -> Result:
    """Put taints back on a node (what untaint removed); taints already there are kept."""
    s = session(ctx, args)
    ref = _node(s, args)
    node = s.get(ref)
    taints = list((node.get("spec") or {}).get("taints") or [])
    have = {(t.get("key"), t.get("effect")) for t in taints}
    back = [t for t in args.taints if (t.get("key"), t.get("effect")) not in have]
    if not back:
        return Result.ok(changed=False, msg=f"node {ref.name} has those taints already")
    _write(s, ref, node, taints + back, ctx.check_mode)
    verb = "would put back" if ctx.check_mode else "put back"
    return Result.ok(
        changed=True, msg=f"{verb} taint {', '.join(_show(t) for t in back)} on node {ref.name}"
    )
