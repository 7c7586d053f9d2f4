"""Deployment revisions: k8s.rollout_history, k8s.rollout_undo, k8s.rollout_pause/resume.

A Deployment's revisions are its ReplicaSets (annotation deployment.kubernetes.io/revision),
as `kubectl rollout history/undo` read them. `rollout_undo` puts a revision's pod template
back (the previous one by default), refuses when that template is the one already running
(an undo that changes nothing is no mitigation), shows the template diff and the target
revision in check mode (server-side dry run), and records as its rollback an undo to the
revision it replaced. Its `wait:` watches the rollout only after the change is made and
its inverse is derivable from the returned data: the change and the wait are two phases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, Session, _Obj, _object, session
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.events import _safe, _save
from opsbook_plugins.kubernetes.objects import Clock, _meta, _n, _now, _owner, _selector, diff_text
from opsbook_plugins.kubernetes.rollout import _rollout_result, watch_rollout
from pydantic import Field

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH = "pod-template-hash"


def _deployment(s: Session, args: _Obj) -> tuple[Any, dict[str, Any]]:
    ref = _object(s, args, "deployment")
    if ref.resource.kind != "Deployment" or ref.resource.group != "apps":
        raise K8sError(
            f"revisions (history, undo) are read from a Deployment's ReplicaSets; "
            f"{ref.resource.plural} are not supported"
        )
    return ref, s.get(ref)


def revisions(s: Session, ref: Any, dep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's ReplicaSets, oldest revision first."""
    sets = s.list(s.ref("replicasets", None, ref.namespace), label_selector=_selector(dep))
    uid = _meta(dep).get("uid")
    owned = [rs for rs in sets if (_owner(rs) or {}).get("uid") == uid]
    owned = [rs for rs in owned if str(_meta(rs).get("annotations", {}).get(REVISION, "")).isdigit()]
    return sorted(owned, key=lambda rs: int(_meta(rs)["annotations"][REVISION]))


def _template_of(rs: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's pod template as the Deployment would carry it (no pod-template-hash)."""
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH, None)
    return template


def _row(rs: Mapping[str, Any], current: str | None) -> dict[str, Any]:
    meta, spec, st = _meta(rs), rs.get("spec") or {}, rs.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    revision = int(meta["annotations"][REVISION])
    return {
        "revision": revision,
        "change_cause": (meta.get("annotations") or {}).get(CHANGE_CAUSE),
        "template_hash": (meta.get("labels") or {}).get(HASH),
        "replicaset": meta.get("name"),
        "images": [c.get("image") for c in containers],
        "replicas": spec.get("replicas", 0),
        "ready": st.get("readyReplicas", 0),
        "created": meta.get("creationTimestamp"),
        "current": str(revision) == str(current),
    }


def history_table(rows: list[dict[str, Any]]) -> str:
    out = [f"{'REVISION':<10}{'HASH':<13}{'READY':<8}{'CURRENT':<9}{'IMAGES':<45}CHANGE-CAUSE"]
    for r in rows:
        out.append(
            f"{r['revision']:<10}{r['template_hash'] or '-':<13}"
            f"{str(r['ready']) + '/' + str(r['replicas']):<8}{'*' if r['current'] else '':<9}"
            f"{','.join(i or '' for i in r['images']):<45}{r['change_cause'] or '<none>'}"
        )
    return "\n".join(out) + "\n"


class HistoryArgs(_Obj):
    """A Deployment's revisions (kind: defaults to deployment)."""

    dest: str | None = Field(
        None,
        description="evidence file, relative to the run's evidence folder "
        "(default: k8s/<namespace>/deployment-<name>.history.txt)",
    )


@plugin.action(check=True, idempotent=True, observes=True)
def rollout_history(ctx: ActionContext, args: HistoryArgs) -> Result:
    """Save a Deployment's revisions (change-cause, template hash, images) as evidence and data."""
    s = session(ctx, args)
    ref, dep = _deployment(s, args)
    current = _meta(dep).get("annotations", {}).get(REVISION)
    rows = [_row(rs, current) for rs in revisions(s, ref, dep)]
    default = f"k8s/{_safe(ref.namespace)}/deployment-{_safe(ref.name)}.history.txt"
    header = (
        f"# revisions of {ref}, cluster {s.label}, collected "
        f"{_now().isoformat(timespec='seconds')}\n"
    )
    ev = _save(
        ctx,
        ctx.evidence_file(args.dest, default) if args.dest else default,
        header + history_table(rows),
        f"k8s {s.cluster.context}: history of {ref}",
        f"revisions of {ref}",
    )
    return Result.ok(
        evidence=[ev],
        msg=f"{ref}: {_n(len(rows), 'revision')}, current {current}; saved {ev.path}",
        data={
            "revisions": rows,
            "current": int(current) if current and str(current).isdigit() else None,
            "count": len(rows),
            "path": ev.path,
        },
    )


class UndoArgs(_Obj):
    """Roll a Deployment back to the previous revision, or to `to_revision` (kind: defaults to deployment)."""

    to_revision: int = Field(0, ge=0, description="the revision to go back to (0: the previous)")
    wait: bool = Field(False, description="then wait until the rollout completes")
    timeout: Seconds = Field(DEFAULT_WAIT, description="how long wait: may take")


def _undo_inverse(args: UndoArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    data = result.data
    if not result.changed or not data.get("from_revision"):
        return None
    return "k8s.rollout_undo", {
        **data.get("connection", {}),
        "kind": "deployment",
        "name": data["name"],
        "namespace": data["namespace"],
        "to_revision": data["from_revision"],
    }


@plugin.action(check=True, inverse=_undo_inverse, inverse_actions=["k8s.rollout_undo"], mutates=True)
def rollout_undo(ctx: ActionContext, args: UndoArgs) -> Result:
    """Put a Deployment's previous (or a given) revision's pod template back, like kubectl rollout undo."""
    s = session(ctx, args)
    ref, dep = _deployment(s, args)
    if (dep.get("spec") or {}).get("paused"):
        raise K8sError(
            f"{ref} is paused: resume it first (k8s.rollout_resume); a paused Deployment "
            "does not roll back"
        )
    current = str(_meta(dep).get("annotations", {}).get(REVISION, ""))
    sets = revisions(s, ref, dep)
    by_rev = {int(_meta(rs)["annotations"][REVISION]): rs for rs in sets}
    known = ", ".join(str(r) for r in sorted(by_rev)) or "none"
    if args.to_revision:
        target = by_rev.get(args.to_revision)
        if target is None:
            raise K8sError(f"{ref} has no revision {args.to_revision}; revisions: {known}")
    else:
        older = [r for r in sorted(by_rev) if current.isdigit() and r < int(current)]
        if not older:
            raise K8sError(
                f"{ref} has no revision before the current one ({current or '?'}) to go back "
                f"to; revisions: {known}"
            )
        target = by_rev[older[-1]]
    target_rev = int(_meta(target)["annotations"][REVISION])
    template = _template_of(target)
    data: dict[str, Any] = {
        "kind": "Deployment",
        "name": ref.name,
        "namespace": ref.namespace,
        "from_revision": int(current) if current.isdigit() else None,
        "to_revision": target_rev,
        "to_replicaset": _meta(target).get("name"),
        "images": [c.get("image") for c in (template.get("spec") or {}).get("containers") or []],
        "connection": s.connection_args(),
    }
    live_template = (dep.get("spec") or {}).get("template") or {}
    if _same_template(live_template, template):
        return Result.failed(
            f"{ref}: revision {target_rev} has the template already running (revision "
            f"{current}): an undo would change nothing; pick another to_revision "
            f"(revisions: {known})",
            data=data,
        )
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": _meta(dep)["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    cause = (_meta(target).get("annotations") or {}).get(CHANGE_CAUSE)
    if cause:
        key = CHANGE_CAUSE.replace("/", "~1")
        if _meta(dep).get("annotations"):
            ops.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": cause})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {CHANGE_CAUSE: cause}})
    after = s.patch(ref, ops, "json", dry_run=ctx.check_mode, verb="update")
    label = f"{ref.resource.label}/{ref.name}"
    diff = diff_text(
        {"metadata": {"name": ref.name}, "spec": {"template": live_template}},
        {"metadata": {"name": ref.name}, "spec": {"template": (after.get("spec") or {}).get("template")}},
        label,
    )
    data["template_diff"] = diff
    images = ", ".join(i or "?" for i in data["images"])
    if ctx.check_mode:
        return Result.ok(
            changed=True,
            diff=diff,
            data=data,
            msg=f"would roll {ref} back from revision {current} to revision {target_rev} "
            f"({images}): the API server accepted the dry run",
        )
    msg = f"rolled {ref} back from revision {current} to revision {target_rev} ({images})"
    result = Result.ok(changed=True, diff=diff if ctx.diff_mode else None, data=data, msg=msg)
    if not args.wait:
        return result
    # the change is made and `data` names the revision it replaced: its undo is recorded
    # (a timeout or a crash during the wait keeps it), now the wait
    ctx.changed(**data)
    return _then_wait(s, ref, args.timeout, result)


def _then_wait(s: Session, ref: Any, timeout: float, changed: Result) -> Result:
    clock = Clock(s.ctx, timeout)
    state, obj = watch_rollout(s, ref, clock)
    waited = _rollout_result(s, ref, state, obj, clock)
    waited.changed, waited.data = True, {**changed.data, **waited.data}
    waited.msg = f"{changed.msg}; {waited.msg}"
    waited.diff = changed.diff
    return waited


def _same_template(live: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    """kubectl's equality: the templates without pod-template-hash, as the API returns them."""
    a = copy.deepcopy(dict(live))
    ((a.get("metadata") or {}).get("labels") or {}).pop(HASH, None)
    return a == dict(target)


class PauseArgs(_Obj):
    """A Deployment (kind: defaults to deployment)."""


def _pause_inverse(action: str) -> Callable[[PauseArgs, Result], tuple[str, dict[str, Any]] | None]:
    def inverse(args: PauseArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
        if not result.changed:
            return None
        d = result.data
        return action, {**d.get("connection", {}), "kind": "deployment", "name": d["name"],
                        "namespace": d["namespace"]}

    return inverse


def _set_paused(ctx: ActionContext, args: PauseArgs, want: bool) -> Result:
    s = session(ctx, args)
    ref, dep = _deployment(s, args)
    was = bool((dep.get("spec") or {}).get("paused"))
    data = {
        "name": ref.name,
        "namespace": ref.namespace,
        "paused": want,
        "was_paused": was,
        "connection": s.connection_args(),
    }
    word = "pause" if want else "resume"
    if was == want:
        return Result.ok(
            changed=False, data=data, msg=f"{ref} already {'paused' if want else 'not paused'}"
        )
    s.patch(ref, {"spec": {"paused": want}}, "merge", dry_run=ctx.check_mode)
    msg = f"would {word} {ref}" if ctx.check_mode else f"{word}d rollout of {ref}"
    return Result.ok(changed=True, data=data, msg=msg)


@plugin.action(check=True, idempotent=True, inverse=_pause_inverse("k8s.rollout_resume"), inverse_actions=["k8s.rollout_resume"], mutates=True)
def rollout_pause(ctx: ActionContext, args: PauseArgs) -> Result:
    """Pause a Deployment's rollout (template changes wait); rollback: resume, unless it was paused."""
    return _set_paused(ctx, args, True)


@plugin.action(check=True, idempotent=True, inverse=_pause_inverse("k8s.rollout_pause"), inverse_actions=["k8s.rollout_pause"], mutates=True)
def rollout_resume(ctx: ActionContext, args: PauseArgs) -> Result:
    """Resume a paused Deployment's rollout; rollback: pause again, unless it was not paused."""
    return _set_paused(ctx, args, False)
