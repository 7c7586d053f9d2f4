"""k8s.scale: set a workload's replicas through its scale subresource, wait for the rollout,
and record the replica count it replaced as its inverse."""

from __future__ import annotations

from typing import Any

from opsbook.plugin import (
    ActionContext,
    Result,
    Seconds,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, _Obj, _object, session
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.objects import Clock
from opsbook_plugins.kubernetes.rollout import _WORKLOADS, _rollout_result, watch_rollout
from pydantic import Field

# --------------------------------------------------------------------------- scale


class ScaleArgs(_Obj):
    """Set a workload's replicas (scale subresource); rollback restores the previous count (kind: defaults to deployment)."""

    replicas: int = Field(ge=0, description="the new number of replicas")
    wait: bool = Field(False, description="wait until the rollout at the new size completes")
    timeout: Seconds = Field(DEFAULT_WAIT, description="how long wait: may take")


def _scale_inverse(args: ScaleArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    data = result.data
    if not result.changed or data.get("previous_replicas") is None:
        return None
    return "k8s.scale", {
        **data.get("connection", {}),
        "kind": data["kind"],
        "name": data["name"],
        "namespace": data.get("namespace"),
        "replicas": data["previous_replicas"],
    }


@plugin.action(check=True, idempotent=True, inverse=_scale_inverse, inverse_actions=["k8s.scale"], mutates=True)
def scale(ctx: ActionContext, args: ScaleArgs) -> Result:
    """Scale a Deployment/StatefulSet/ReplicaSet to `replicas` (capacity up or down)."""
    s = session(ctx, args)
    ref = _object(s, args, "deployment")
    if "scale" not in ref.resource.subresources:
        raise K8sError(f"{ref.resource.plural} cannot be scaled (no scale subresource)")
    current = s.get(ref, sub="scale")
    previous = (current.get("spec") or {}).get("replicas", 0)
    data = {
        "kind": ref.resource.kind,
        "name": ref.name,
        "namespace": ref.namespace,
        "previous_replicas": previous,
        "replicas": args.replicas,
        "connection": s.connection_args(),
    }
    changed = previous != args.replicas
    if changed:
        s.patch(
            ref, {"spec": {"replicas": args.replicas}}, "merge", sub="scale", dry_run=ctx.check_mode
        )
        ctx.changed(**data)  # the way back is recorded before the wait (a timeout, a crash)
    verb = "would scale" if ctx.check_mode else "scaled"
    msg = (
        f"{verb} {ref} from {previous} to {args.replicas} replicas"
        if changed
        else f"{ref} already has {previous} replicas"
    )
    # wait: also when the count was set already (a resumed run waits for it again)
    if ctx.check_mode or not args.wait or ref.resource.kind not in _WORKLOADS:
        return Result.ok(changed=changed, data=data, msg=msg)
    clock = Clock(ctx, args.timeout)
    state, obj = watch_rollout(s, ref, clock)
    result = _rollout_result(s, ref, state, obj, clock)
    result.changed, result.data = changed, {**data, **result.data}
    result.msg = f"{msg}; {result.msg}"
    return result
