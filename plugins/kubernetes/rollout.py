"""Rollouts: k8s.rollout_restart and k8s.rollout_status, the rollout state read from a
workload's status as kubectl does, and `watch_rollout`/`_rollout_result`, which the actions
that change a workload share to wait for it (revisions, undo and pause: `rollout_history`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.plugin import (
    ActionContext,
    Result,
    Seconds,
    Status,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import (
    DEFAULT_WAIT,
    POLL,
    RESTARTED_AT,
    Session,
    _Obj,
    _object,
    session,
)
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.objects import (
    Clock,
    _conditions,
    _meta,
    _now,
    _owner,
    _pod_problem,
    _pod_ready,
    _selector,
    _timed_out,
)
from pydantic import Field

# --------------------------------------------------------------------------- rollouts


_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


class RolloutRestartArgs(_Obj):
    """Restart a workload's pods the way kubectl rollout restart does (kind: defaults to deployment)."""


def _workload(s: Session, args: _Obj) -> tuple[Ref, dict[str, Any]]:
    ref = _object(s, args, "deployment")
    if ref.resource.kind not in _WORKLOADS or ref.resource.group != "apps":
        raise K8sError(
            f"rollouts work on deployments, statefulsets and daemonsets, not {ref.resource.plural}"
        )
    return ref, s.get(ref)


@plugin.action(check=True, mutates=True)
def rollout_restart(ctx: ActionContext, args: RolloutRestartArgs) -> Result:
    """Restart a Deployment/StatefulSet/DaemonSet (pod template annotation restartedAt, like kubectl)."""
    s = session(ctx, args)
    ref, obj = _workload(s, args)
    if (obj.get("spec") or {}).get("paused"):
        raise K8sError(
            f"{ref} is paused: resume it first (kubectl rollout resume "
            f"{ref.resource.label}/{ref.name} -n {ref.namespace}); a paused rollout "
            "does not restart"
        )
    annotations = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "annotations"
    ) or {}
    now = _now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if annotations.get(RESTARTED_AT) == stamp:  # restarted twice within one second
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    after = s.patch(ref, patch, dry_run=ctx.check_mode)
    replicas = (obj.get("spec") or {}).get("replicas")
    data = {
        "kind": ref.resource.kind,
        "name": ref.name,
        "namespace": ref.namespace,
        "restarted_at": stamp,
        "previous_restart": annotations.get(RESTARTED_AT),
        "generation": _meta(after).get("generation"),
        "replicas": replicas,
    }
    count = f" ({replicas} replicas)" if replicas is not None else ""
    if ctx.check_mode:
        return Result.ok(
            changed=True,
            data=data,
            msg=f"would restart {ref}{count}: the API server accepted the dry run",
        )
    return Result.ok(changed=True, data=data, msg=f"restarted {ref}{count} at {stamp}")


class RolloutStatusArgs(_Obj):
    """Wait until a rollout is complete: new pods updated, ready and available (kind: defaults to deployment)."""

    timeout: Seconds = Field(DEFAULT_WAIT, description="give up after this long (e.g. 5m)")
    must_complete: bool = Field(
        True,
        description="false: at the deadline, report where the rollout stands (ok, "
        "data.done false) instead of timing out — to detect a stuck rollout",
    )


@dataclass
class Rollout:
    """Where a rollout stands (kubectl rollout status's logic)."""

    done: bool
    message: str
    desired: int
    ready: int
    updated: int
    available: int
    fatal: str = ""

    def counts(self) -> str:
        return (
            f"{self.ready}/{self.desired} ready, {self.updated}/{self.desired} updated, "
            f"{self.available}/{self.desired} available"
        )


# Where each kind's status keeps the counts kubectl compares, in `Rollout`'s order: ready,
# updated, available. (How many are desired: a DaemonSet's status.desiredNumberScheduled,
# else spec.replicas.) Another kind is read as a Deployment.
_STATUS_COUNTS = {
    "DaemonSet": ("numberReady", "updatedNumberScheduled", "numberAvailable"),
    "StatefulSet": ("readyReplicas", "updatedReplicas", "availableReplicas"),
    "Deployment": ("readyReplicas", "updatedReplicas", "availableReplicas"),
}


def rollout_state(obj: Mapping[str, Any]) -> Rollout:
    """kubectl's status viewers for Deployments, StatefulSets and DaemonSets."""
    kind = obj.get("kind")
    spec, st, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    name = meta.get("name")
    observed = st.get("observedGeneration", 0) >= meta.get("generation", 0)
    if kind == "DaemonSet":
        desired = st.get("desiredNumberScheduled", 0)
    else:
        desired = spec.get("replicas", 1)
    counts = _STATUS_COUNTS.get(str(kind), _STATUS_COUNTS["Deployment"])
    r = Rollout(False, "", desired, *(st.get(field, 0) for field in counts))
    if kind == "DaemonSet":
        if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
            r.fatal = "rollout status is only available for the RollingUpdate strategy"
        elif not observed:
            r.message = f'waiting for daemon set "{name}" spec update to be observed'
        elif r.updated < desired:
            r.message = f"{r.updated} out of {desired} new pods have been updated"
        elif r.available < desired:
            r.message = f"{r.available} of {desired} updated pods are available"
        else:
            r.done, r.message = True, f'daemon set "{name}" successfully rolled out'
        return r
    if kind == "StatefulSet":
        rolling = spec.get("updateStrategy") or {}
        if rolling.get("type", "RollingUpdate") != "RollingUpdate":
            r.fatal = "rollout status is only available for the RollingUpdate strategy"
        elif not observed:
            r.message = f'waiting for statefulset "{name}" spec update to be observed'
        elif r.ready < desired:
            r.message = f"{desired - r.ready} pods are not ready yet"
        elif (
            partition := ((rolling.get("rollingUpdate") or {}).get("partition") or 0)
        ) and r.updated < desired - partition:
            r.message = (
                f"partitioned roll out: {r.updated} of {desired - partition} new pods updated"
            )
        elif not partition and st.get("updateRevision") != st.get("currentRevision"):
            r.message = (
                f"{r.updated} pods at revision {st.get('updateRevision')}, "
                f"waiting for the rolling update to complete"
            )
        else:
            r.done, r.message = True, f'statefulset "{name}" rolling update complete'
        return r
    total = st.get("replicas", 0)
    progressing = _conditions(obj).get("Progressing", {})
    if not observed:
        r.message = f'waiting for deployment "{name}" spec update to be observed'
    elif progressing.get("reason") == "ProgressDeadlineExceeded":
        r.fatal = f'deployment "{name}" exceeded its progress deadline'
    elif r.updated < desired:
        r.message = f"{r.updated} out of {desired} new replicas have been updated"
    elif total > r.updated:
        r.message = f"{total - r.updated} old replicas are pending termination"
    elif r.available < r.updated:
        r.message = f"{r.available} of {r.updated} updated replicas are available"
    else:
        r.done, r.message = True, f'deployment "{name}" successfully rolled out'
    return r


def _new_pods(s: Session, ref: Ref, obj: Mapping[str, Any], timeout: float) -> list[dict[str, Any]]:
    """The pods of the rollout's newest revision (Deployment: the new ReplicaSet's)."""
    pods = s.list(
        s.ref("pods", None, ref.namespace), label_selector=_selector(obj), timeout=timeout
    )
    if ref.resource.kind == "Deployment":
        revision = _meta(obj).get("annotations", {}).get("deployment.kubernetes.io/revision")
        sets = s.list(
            s.ref("replicasets", None, ref.namespace),
            label_selector=_selector(obj),
            timeout=timeout,
        )
        uid = _meta(obj).get("uid")
        new = [
            rs
            for rs in sets
            if (_owner(rs) or {}).get("uid") == uid
            and _meta(rs).get("annotations", {}).get("deployment.kubernetes.io/revision")
            == revision
        ]
        if new:
            hash_ = _meta(new[0]).get("labels", {}).get("pod-template-hash")
            pods = [p for p in pods if _meta(p).get("labels", {}).get("pod-template-hash") == hash_]
    return pods


def _new_replicaset(s: Session, ref: Ref, obj: Mapping[str, Any]) -> str | None:
    msg = _conditions(obj).get("Progressing", {}).get("message", "")
    found = re.search(r'ReplicaSet "([^"]+)"', msg)
    return found.group(1) if found else None


def watch_rollout(s: Session, ref: Ref, clock: Clock) -> tuple[Rollout, dict[str, Any]]:
    """Poll until the rollout completes, fails for good, or the clock runs out."""
    last = ""
    while True:
        obj = clock.poll(lambda: s.get(ref, timeout=clock.request_timeout()))
        state = rollout_state(obj)
        if state.done or state.fatal:
            return state, obj
        if s.ctx.check_mode:  # nothing we did changes anything: look once, do not wait
            return state, obj
        if state.message != last:
            s.ctx.output(f"{ref}: {state.message} ({state.counts()})")
            last = state.message
        if not clock.wait(POLL):
            return state, obj


def _rollout_result(
    s: Session, ref: Ref, state: Rollout, obj: Mapping[str, Any], clock: Clock
) -> Result:
    data = {
        "kind": ref.resource.kind,
        "name": ref.name,
        "namespace": ref.namespace,
        "desired": state.desired,
        "ready": state.ready,
        "updated": state.updated,
        "available": state.available,
        "done": state.done,
        "message": state.message,
        "revision": _meta(obj).get("annotations", {}).get("deployment.kubernetes.io/revision"),
        "new_replicaset": _new_replicaset(s, ref, obj),
        "seconds": round(clock.elapsed(), 1),
    }
    if state.done:
        return Result.ok(data=data, msg=f"{ref} rolled out: {state.counts()}")
    why = state.fatal or state.message
    try:
        stuck = [p for p in _new_pods(s, ref, obj, 10.0) if not _pod_ready(p)]
    except K8sError:
        stuck = []
    pods = "; ".join(f"{_meta(p)['name']} {_pod_problem(p)}" for p in stuck[:3])
    detail = f"; pods not ready: {pods}" if pods else ""
    data["pods_not_ready"] = [_meta(p)["name"] for p in stuck]
    if state.fatal:
        return Result.failed(f"rollout of {ref} failed: {why}: {state.counts()}{detail}", data=data)
    if s.ctx.check_mode:
        return Result.unknown(
            f"rollout of {ref} not complete now: {state.counts()} ({why}){detail}; "
            f"a real run waits up to {clock.limit:g}s",
            data=data,
        )
    return _timed_out(
        f"rollout of {ref} not complete after {clock.elapsed():.0f}s: "
        f"{state.counts()} ({why}){detail}",
        data=data,
    )


@plugin.action(check=True, idempotent=True, observes=True)
def rollout_status(ctx: ActionContext, args: RolloutStatusArgs) -> Result:
    """Wait for a rollout to finish (observedGeneration caught up, new pods ready and available)."""
    s = session(ctx, args)
    ref, _ = _workload(s, args)
    clock = Clock(ctx, args.timeout)
    state, obj = watch_rollout(s, ref, clock)
    result = _rollout_result(s, ref, state, obj, clock)
    if not args.must_complete and not state.done:
        result.status = Status.OK  # a finding, not a failure: the caller decides
        result.msg = f"not complete (must_complete: false): {result.msg}"
    return result
