"""k8s.drain: cordon a node, then evict its pods through the Eviction API (honouring
PodDisruptionBudgets, naming the budget that refuses), wait for them to go and for the
scheduler to place their replacements elsewhere, and say which pods stay and why."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsbook.plugin import (
    ActionContext,
    Result,
    Seconds,
)
from opsbook_plugins.kubernetes import placement as k8s_placement
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import (
    _REPLACING,
    DEFAULT_WAIT,
    EVICT_RETRY,
    LATE_FOR,
    LATE_LOOKS,
    POLL,
    SETTLE,
    Session,
    session,
)
from opsbook_plugins.kubernetes.errors import ApiError, Conflict, K8sError, NotFound, Throttled
from opsbook_plugins.kubernetes.errors_explained import explain
from opsbook_plugins.kubernetes.nodes import NodeArgs, _node
from opsbook_plugins.kubernetes.objects import (
    Clock,
    _conditions,
    _finished,
    _key,
    _matches,
    _meta,
    _n,
    _owner,
    _selector,
    _timed_out,
)
from pydantic import Field

# --------------------------------------------------------------------------- drain


class DrainArgs(NodeArgs):
    """Cordon a node and evict its pods like kubectl drain, honouring PodDisruptionBudgets."""

    force: bool = Field(False, description="also delete pods no controller will recreate")
    delete_emptydir_data: bool = Field(
        False, description="also evict pods with emptyDir volumes (their data is lost)"
    )
    ignore_daemonsets: bool = Field(True, description="leave DaemonSet pods (they would come back)")
    disable_eviction: bool = Field(
        False, description="delete instead of evict: bypasses PodDisruptionBudgets (last resort)"
    )
    pod_selector: str | None = Field(None, description="only pods matching this label selector")
    grace_period: int | None = Field(
        None,
        description="seconds each pod gets to stop "
        "(default: the pod's own terminationGracePeriodSeconds)",
    )
    timeout: Seconds = Field(DEFAULT_WAIT, description="give up after this long")
    allow_unplaced: bool = Field(
        False,
        description="succeed even when the scheduler cannot place some replacements "
        "(default: the drain fails, naming them with the scheduler's reason)",
    )


@dataclass
class DrainPlan:
    """Which pods a drain evicts, skips, and which stop it (kubectl drain's filters)."""

    evict: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (pod, why)
    blocked: list[tuple[str, str]]  # (pod, why): the drain refuses to start
    warnings: list[str]


def drain_plan(pods: Iterable[Mapping[str, Any]], args: DrainArgs) -> DrainPlan:
    """kubectl's filters: mirror pods, DaemonSet pods, unmanaged pods, emptyDir data."""
    plan = DrainPlan([], [], [], [])
    for pod in pods:
        key, meta = _key(pod), _meta(pod)
        finished = _finished(pod)
        owner = _owner(pod)
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            plan.skipped.append((key, "mirror pod (static pod of the kubelet)"))
            continue
        if owner and owner.get("kind") == "DaemonSet":
            if args.ignore_daemonsets:
                plan.skipped.append((key, "DaemonSet-managed"))
                continue
            plan.blocked.append((key, "DaemonSet-managed (set ignore_daemonsets: true)"))
            continue
        if not owner and not finished:
            if not args.force:
                why = "no controller would recreate it (set force: true to delete it anyway)"
                plan.blocked.append((key, why))
                continue
            plan.warnings.append(f"deleting {key}: no controller will recreate it")
        local = [v["name"] for v in (pod.get("spec") or {}).get("volumes") or [] if "emptyDir" in v]
        if local and not finished:
            if not args.delete_emptydir_data:
                why = f"emptyDir volume {', '.join(local)} would be lost (set delete_emptydir_data: true)"
                plan.blocked.append((key, why))
                continue
            plan.warnings.append(f"deleting {key}: emptyDir data in {', '.join(local)} is lost")
        plan.evict.append(dict(pod))
    return plan


def _drain_inverse(args: DrainArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    if not result.data.get("cordoned"):
        return None  # the node was cordoned before the drain: keep it so
    return "k8s.uncordon", {**result.data.get("connection", {}), "node": result.data["node"]}


_PDB_NAME = re.compile(r"disruption budget (\S+?)(?: needs|\s|$)")


def pdb_reason(s: Session, exc: ApiError, pod: Mapping[str, Any]) -> str:
    """ "PodDisruptionBudget shop/web (The disruption budget web needs 2 healthy pods...)"."""
    ns = _meta(pod).get("namespace")
    causes = [c.get("message", "") for c in exc.causes if c.get("message")]
    for text in causes + [exc.api_message]:
        found = _PDB_NAME.search(text)
        if found:
            return f"PodDisruptionBudget {ns}/{found.group(1)} ({text})"
    try:  # not said in the answer: find the budget that selects this pod
        pdbs = s.list(s.ref("poddisruptionbudgets", None, ns))
        names = [
            _meta(p)["name"]
            for p in pdbs
            if _matches((p.get("spec") or {}).get("selector"), _meta(pod).get("labels") or {})
        ]
    except K8sError:
        names = []
    if names:
        return f"PodDisruptionBudget {ns}/{', '.join(names)} ({exc.api_message})"
    return f"the API server refused the eviction for now (HTTP 429: {exc.api_message})"


def _evict(s: Session, pod: Mapping[str, Any], args: DrainArgs, dry_run: bool) -> None:
    meta = _meta(pod)
    ref = s.ref("pods", meta["name"], meta["namespace"])
    options: dict[str, Any] = {"preconditions": {"uid": meta.get("uid")}}
    if args.grace_period is not None:
        options["gracePeriodSeconds"] = args.grace_period
    if dry_run:
        options["dryRun"] = ["All"]
    if args.disable_eviction:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options}
        s.cluster.request(
            "DELETE", ref.path(), body=body, query={"dryRun": "All" if dry_run else None}
        )
        return
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "deleteOptions": {"kind": "DeleteOptions", "apiVersion": "v1", **options},
    }
    s.cluster.request("POST", ref.path("eviction"), body=body)


@dataclass
class _Drain:
    s: Session
    args: DrainArgs
    node: str
    clock: Clock
    evicted: list[str]
    blocked_by: dict[str, str]  # pod -> why the last eviction was refused
    owners: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # uid -> (namespace, ownerReference): controllers that replace the pods evicted


@plugin.action(check=True, idempotent=True, inverse=_drain_inverse, inverse_actions=["k8s.uncordon"], mutates=True, disrupts=True)
def drain(ctx: ActionContext, args: DrainArgs) -> Result:
    """Cordon a node, then evict its pods (PDBs honoured; DaemonSet and mirror pods skipped).

    Then it waits (up to SETTLE seconds) until the scheduler has placed the replacements of
    the evicted pods: one it placed on the node before it saw the cordon is evicted too."""
    s = session(ctx, args)
    ref = _node(s, args)
    clock = Clock(ctx, args.timeout)
    node = s.get(ref)
    was = bool((node.get("spec") or {}).get("unschedulable"))
    if not was:
        s.patch(ref, {"spec": {"unschedulable": True}}, dry_run=ctx.check_mode)
        # the uncordon is recorded before the evictions and their wait
        ctx.changed(node=ref.name, cordoned=True, connection=s.connection_args())
    plan = _drain_plan_now(s, ref.name or "", args)
    data: dict[str, Any] = {
        "node": ref.name,
        "cordoned": not was,
        "connection": s.connection_args(),
        "to_evict": [_key(p) for p in plan.evict],
        "evicted": [],
        "late": [],
        "skipped_pods": [{"pod": p, "why": w} for p, w in plan.skipped],
        "warnings": plan.warnings,
        # every workload whose pods the drain moves, in every namespace: verify each after
        "workloads": k8s_placement.workloads_of(s, plan.evict),
        "unschedulable": [],
    }
    cordon_note = (
        "" if was else ("; would cordon it" if ctx.check_mode else "; the node stays cordoned")
    )
    if plan.blocked:
        listing = "; ".join(f"{p}: {w}" for p, w in plan.blocked)
        data["blocked"] = [{"pod": p, "why": w} for p, w in plan.blocked]
        return Result.failed(
            f"cannot drain node {ref.name}: {listing}{cordon_note}",
            data=data,
            changed=not was and not ctx.check_mode,
        )
    if ctx.check_mode:
        return _drain_check(s, ref.name or "", plan, args, data, was)
    for warning in plan.warnings:
        ctx.output(warning)
    run = _Drain(s, args, ref.name or "", clock, data["evicted"], {})
    pending = _evict_all(run, plan.evict)
    changed = not was or bool(plan.evict)
    if not pending:
        pending, blocked = _settle(run, data)
        if blocked:
            listing = "; ".join(f"{p}: {w}" for p, w in blocked)
            return Result.failed(
                f"cannot finish draining node {ref.name}: {listing}; node {ref.name} stays cordoned",
                data={**data, "blocked": [{"pod": p, "why": w} for p, w in blocked]},
                changed=True,
            )
        changed = changed or bool(data["late"])
    if pending:
        return _drain_timeout(run, pending, data, changed)
    how = "deleted" if args.disable_eviction else "evicted"
    data["workloads"] = k8s_placement.workloads_of(
        s,
        [{"metadata": {"namespace": ns, "ownerReferences": [o]}} for ns, o in run.owners.values()],
    ) or data["workloads"]
    refused = k8s_placement.cannot_place(s, run.owners.values())
    data["unschedulable"] = refused
    if refused and not args.allow_unplaced:
        return Result.failed(
            f"drained node {ref.name} ({how} {_n(len(data['evicted']), 'pod')}), but the "
            f"scheduler cannot place {_n(len(refused), 'replacement')}: "
            f"{k8s_placement.unplaced_text(refused)}; node {ref.name} stays cordoned",
            data=data,
            changed=True,
        )
    skipped = f", skipped {len(data['skipped_pods'])}" if data["skipped_pods"] else ""
    late = data["late"]
    after = f" ({len(late)} of them arrived during the drain)" if late else ""
    unplaced = (
        f"; after {SETTLE:.0f}s the scheduler had still to place: {'; '.join(data['unplaced'])}"
        if data.get("unplaced")
        else ""
    )
    if refused:
        unplaced += f"; the scheduler cannot place: {k8s_placement.unplaced_text(refused)}"
    return Result.ok(
        changed=changed,
        data=data,
        msg=f"drained node {ref.name}: {how} {_n(len(data['evicted']), 'pod')}{after}{skipped}"
        f" in {clock.elapsed():.0f}s{unplaced}",
    )


def _settle(
    run: _Drain, data: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]]]:
    """Look at the node again until the scheduler has placed the replacements of what was
    evicted, evicting what lands on the node meanwhile; (pods left to evict, why it cannot finish).

    The scheduler sees a cordon a moment after the API does, so a replacement can still land on
    the node (kubectl drain leaves such a pod behind). A pod whose controller's template names
    the node would only come back: it is skipped like a DaemonSet pod."""
    rounds, until, placed = 0, time.monotonic() + SETTLE, False
    while True:
        again = _drain_plan_now(run.s, run.node, run.args)
        if again.blocked:
            return {}, again.blocked
        fresh = [pod for pod in again.evict if not _leave_pinned(run, pod, data)]
        # a pod already terminating is leaving, not landing: waited for, never counted
        landing = [pod for pod in fresh if not _meta(pod).get("deletionTimestamp")]
        if landing and rounds >= LATE_LOOKS and run.clock.elapsed() >= LATE_FOR:
            why = (
                f"still lands on the node after {rounds} rounds of eviction in "
                f"{run.clock.elapsed():.0f}s: something places it there (a toleration of "
                "node.kubernetes.io/unschedulable, or a controller that sets spec.nodeName)"
            )
            return {}, [(_key(pod), why) for pod in landing]
        if fresh:
            arrived = [_key(p) for p in landing]
            if landing:
                rounds += 1
                run.s.ctx.output(f"new on node {run.node} since the drain began: {', '.join(arrived)}")
            for warning in drain_plan(landing, run.args).warnings:
                run.s.ctx.output(warning)
                data["warnings"].append(warning)
            data["late"] += arrived
            data["to_evict"] += arrived
            pending = _evict_all(run, fresh)
            if pending:
                return pending, []
            until, placed = time.monotonic() + SETTLE, False
            continue
        if placed:
            return {}, []
        waiting = _unplaced(run)
        if not waiting:
            placed = True  # look once more: the last pod placed may have landed here
            continue
        if time.monotonic() >= until or not run.clock.wait(POLL / 4):
            data["unplaced"] = waiting
            return {}, []


def _leave_pinned(run: _Drain, pod: Mapping[str, Any], data: dict[str, Any]) -> bool:
    pinned = _pinned_by(run.s, pod, run.node)
    if pinned is None:
        return False
    if all(skip["pod"] != _key(pod) for skip in data["skipped_pods"]):
        data["skipped_pods"].append({"pod": _key(pod), "why": pinned})
        run.s.ctx.output(f"leaving {_key(pod)}: {pinned}")
    return True


def _unplaced(run: _Drain) -> list[str]:
    """What the scheduler has still to place among the pods of the evicted pods' controllers:
    until it has, a replacement can still land on the node."""
    waiting = []
    for namespace, owner in run.owners.values():
        what = f"{owner['kind'].lower()} {namespace}/{owner['name']}"
        try:
            ref = run.s.ref(owner["kind"], owner["name"], namespace, owner.get("apiVersion"))
            found = run.s.get_or_none(ref)
            if found is None or _meta(found).get("uid") != owner.get("uid"):
                continue  # the controller is gone: nothing replaces its pods
            pods = run.s.list(run.s.ref("pods", None, namespace), label_selector=_selector(found))
        except K8sError as exc:
            if exc.transient:
                waiting.append(f"{what}: the API server not answering ({exc})")
            continue  # cannot tell: the drain's own evictions are done
        mine = [
            p
            for p in pods
            if (_owner(p) or {}).get("uid") == owner["uid"]
            and not _meta(p).get("deletionTimestamp")
            and not _finished(p)
        ]
        want = (found.get("spec") or {}).get("replicas", 1)
        if len(mine) < want:
            waiting.append(f"{what}: {want - len(mine)} of {want} pods not created yet")
        for pod in mine:
            scheduled = _conditions(pod).get("PodScheduled", {}).get("status")
            if not (pod.get("spec") or {}).get("nodeName") and scheduled != "False":
                waiting.append(f"pod {_key(pod)}: not yet seen by the scheduler")
    return waiting


def _pinned_by(s: Session, pod: Mapping[str, Any], node: str) -> str | None:
    """Why the pod would come straight back to `node`: its controller's template names it."""
    owner = _owner(pod)
    if owner is None:
        return None
    try:
        ref = s.ref(owner["kind"], owner["name"], _meta(pod)["namespace"], owner.get("apiVersion"))
        found = s.get_or_none(ref)
    except K8sError:
        return None  # cannot tell: evict it, like any other pod
    template = ((found or {}).get("spec") or {}).get("template") or {}
    if (template.get("spec") or {}).get("nodeName") != node:
        return None
    return f"pinned to this node by the template of {ref} (spec.nodeName): it would come back"


def _drain_plan_now(s: Session, node: str, args: DrainArgs) -> DrainPlan:
    """The drain plan of the pods on the node right now."""
    pods = s.list(
        s.ref("pods", None),
        field_selector=f"spec.nodeName={node}",
        label_selector=args.pod_selector,
        all_namespaces=True,
    )
    return drain_plan(pods, args)


def _drain_check(
    s: Session, node: str, plan: DrainPlan, args: DrainArgs, data: dict[str, Any], was: bool
) -> Result:
    refused = {}
    for pod in plan.evict:
        try:
            _evict(s, pod, args, dry_run=True)
        except Throttled as exc:
            refused[_key(pod)] = pdb_reason(s, exc, pod)
        except NotFound:
            continue
        except ApiError as exc:
            raise explain(
                s,
                exc,
                "create",
                s.ref("pods", _meta(pod)["name"], _meta(pod)["namespace"]),
                sub="eviction",
            ) from None
    data["refused_now"] = refused
    what = f"would evict {_n(len(plan.evict), 'pod')} from node {node}" + (
        "" if was else " after cordoning it"
    )
    if refused:
        listing = "; ".join(f"{p}: blocked by {why}" for p, why in refused.items())
        return Result.unknown(
            f"{what}; right now the API refuses {_n(len(refused), 'eviction')}: {listing}; "
            "a real drain retries them until its timeout",
            data=data,
            changed=True,
        )
    return Result.ok(
        changed=bool(plan.evict) or not was,
        data=data,
        msg=f"{what}; every eviction passed the dry run",
    )


def _evict_all(run: _Drain, pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Evict every pod, retrying refused ones, and wait until they are gone; what is left."""
    for pod in pods:
        owner = _owner(pod)
        if owner and owner.get("kind") in _REPLACING and owner.get("uid"):
            run.owners[owner["uid"]] = (_meta(pod)["namespace"], owner)
    pending = {_key(p): p for p in pods}  # to evict
    going: dict[str, dict[str, Any]] = {}  # evicted, still terminating
    next_try: dict[str, float] = {}
    while pending or going:
        for key, pod in list(pending.items()):
            if next_try.get(key, 0.0) > time.monotonic():
                continue
            try:
                _evict(run.s, pod, run.args, dry_run=False)
            except NotFound:
                pending.pop(key)
                run.evicted.append(key)
                continue
            except Throttled as exc:
                why = pdb_reason(run.s, exc, pod)
                if run.blocked_by.get(key) != why:
                    run.s.ctx.output(f"eviction of {key} refused: {why}; retrying")
                run.blocked_by[key] = why
                next_try[key] = time.monotonic() + EVICT_RETRY
                continue
            except Conflict:  # the uid precondition failed: a new pod of that name
                pending.pop(key)
                run.evicted.append(key)
                continue
            except K8sError as exc:
                if not exc.transient:
                    ref = run.s.ref("pods", _meta(pod)["name"], _meta(pod)["namespace"])
                    if isinstance(exc, ApiError):
                        raise explain(run.s, exc, "create", ref, sub="eviction") from None
                    raise
                run.blocked_by[key] = f"the API server not answering ({exc})"
                next_try[key] = time.monotonic() + EVICT_RETRY
                continue
            run.s.ctx.output(f"evicted {key}")
            run.blocked_by.pop(key, None)
            going[key] = pending.pop(key)
        for key, pod in list(going.items()):
            if _gone(run.s, pod):
                going.pop(key)
                run.evicted.append(key)
        if not (pending or going):
            break
        if not run.clock.wait(POLL / 2 if going else POLL):
            return {**pending, **going}
    return {}


def _gone(s: Session, pod: Mapping[str, Any]) -> bool:
    meta = _meta(pod)
    try:
        now = s.cluster.request("GET", s.ref("pods", meta["name"], meta["namespace"]).path())
    except NotFound:
        return True
    except K8sError as exc:
        if exc.transient:
            return False  # ask again on the next round
        raise
    return _meta(now).get("uid") != meta.get("uid")


def _drain_timeout(
    run: _Drain, left: dict[str, dict[str, Any]], data: dict[str, Any], changed: bool
) -> Result:
    blocked = [(k, run.blocked_by[k]) for k in left if k in run.blocked_by]
    terminating = [k for k in left if k not in run.blocked_by]
    parts = []
    if blocked:
        parts.append("; ".join(f"eviction of {k} blocked by {why}" for k, why in blocked))
    if terminating:
        parts.append(f"still terminating: {', '.join(terminating)}")
    data["left"] = list(left)
    data["blocked_by"] = dict(run.blocked_by)
    total = len(data["to_evict"])
    msg = (
        f"drain of node {run.node} not finished after {run.clock.elapsed():.0f}s: "
        f"{'; '.join(parts)}; evicted {len(run.evicted)} of {total} pods; node {run.node} stays "
        "cordoned (k8s.uncordon to undo)"
    )
    if blocked:
        msg += "; wait for the budget to allow it, scale the workload up, or use disable_eviction: true"
    return _timed_out(msg, data=data, changed=changed)
