"""Changes to objects: k8s.apply (server-side apply, a dry run compared with the live object
in check mode), k8s.patch (strategic, merge, JSON patches) and k8s.delete (with
propagation, waiting until the objects are gone)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, Literal

from opsbook.plugin import (
    ActionContext,
    Result,
    Seconds,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import (
    FIELD_MANAGER,
    PATCH_TYPES,
    POLL,
    Session,
    _delete_body,
    _Ns,
    _Obj,
    _object,
    session,
)
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import ApiError, K8sError, NotFound
from opsbook_plugins.kubernetes.errors_explained import explain, not_found
from opsbook_plugins.kubernetes.objects import (
    Clock,
    _comparable,
    _meta,
    _timed_out,
    applied_change,
    diff_text,
    strip,
)
from pydantic import Field, model_validator

# --------------------------------------------------------------------------- delete


class DeleteArgs(_Obj):
    """Delete an object (e.g. a stuck pod), or every object a label selector matches (kind: defaults to pod)."""

    label_selector: str | None = Field(None, description="delete every match in the namespace")
    grace_period: int | None = Field(None, ge=0, description="seconds to stop (pods)")
    force: bool = Field(
        False,
        description="grace period 0: gone from the API at once "
        "(kubectl delete --force --grace-period=0)",
    )
    propagation: Literal["Background", "Foreground", "Orphan"] = "Background"
    missing_ok: bool = Field(False, description="an object that is already gone is fine")
    wait: bool = Field(True, description="wait until the object is gone (like kubectl)")
    timeout: Seconds = Field(60.0, description="how long wait: may take")


@plugin.action(check=True, mutates=True, disrupts=True)
def delete(ctx: ActionContext, args: DeleteArgs) -> Result:
    """Delete objects with a grace period (check mode: a server-side dry run)."""
    s = session(ctx, args)
    if args.label_selector and not args.name:
        ref = s.ref(args.kind or "pods", None, api_version=args.api_version)
        objs = s.list(ref, label_selector=args.label_selector)
        if not objs and not args.missing_ok:
            raise K8sError(
                f"no {ref.resource.plural} in {ref.namespace} match {args.label_selector}"
            )
        refs = [Ref(ref.resource, _meta(o).get("namespace"), _meta(o)["name"]) for o in objs]
    else:
        refs = [_object(s, args, "pod")]
    options: dict[str, Any] = {"propagationPolicy": args.propagation}
    if args.force:
        options["gracePeriodSeconds"] = 0
    elif args.grace_period is not None:
        options["gracePeriodSeconds"] = args.grace_period
    gone: list[tuple[Ref, str | None]] = []
    for ref in refs:
        try:
            answer = s.cluster.request(
                "DELETE",
                ref.path(),
                body=_delete_body(options, ctx.check_mode),
                query={"dryRun": "All" if ctx.check_mode else None},
            )
        except NotFound:
            if args.missing_ok:
                continue
            raise K8sError(not_found(s, ref)) from None
        except ApiError as exc:
            raise explain(s, exc, "delete", ref) from None
        gone.append((ref, _meta(answer).get("uid")))
    names = [f"{r.namespace}/{r.name}" if r.namespace else str(r.name) for r, _ in gone]
    data = {"deleted": names, "count": len(names)}
    if not gone:
        return Result.ok(
            changed=False, data=data, msg=f"{refs[0] if refs else 'nothing'} already gone"
        )
    if ctx.check_mode:
        return Result.ok(
            changed=True,
            data=data,
            msg=f"would delete {', '.join(map(str, (r for r, _ in gone)))}"
            " (the API server accepted the dry run)",
        )
    if args.wait:
        clock = Clock(ctx, args.timeout)
        left = _wait_gone(s, gone, clock)
        if left:
            return _timed_out(_still_there(s, left, clock), changed=True, data=data)
    return Result.ok(changed=True, data=data, msg=f"deleted {', '.join(str(r) for r, _ in gone)}")


def _wait_gone(s: Session, refs: list[tuple[Ref, str | None]], clock: Clock) -> list[Ref]:
    while True:
        left = []
        for ref, uid in refs:
            obj = clock.poll(partial(s.get_or_none, ref, timeout=clock.request_timeout()))
            if obj is not None and (uid is None or _meta(obj).get("uid") == uid):
                left.append(ref)
        if not left or not clock.wait(POLL / 2):
            return left


def _still_there(s: Session, left: list[Ref], clock: Clock) -> str:
    details = []
    for ref in left[:3]:
        obj = s.get_or_none(ref) or {}
        fin = _meta(obj).get("finalizers") or []
        extra = f" (finalizers: {', '.join(fin)})" if fin else ""
        details.append(f"{ref}{extra}")
    hint = (
        "; a pod on an unreachable node needs force: true" if left[0].resource.kind == "Pod" else ""
    )
    return (
        f"deletion requested but still there after {clock.elapsed():.0f}s: "
        f"{', '.join(details)}{hint}"
    )


# --------------------------------------------------------------------------- apply / patch


class ApplyArgs(_Ns):
    """Server-side apply of manifests, inline or from a file (field manager opsbook)."""

    manifest: dict[str, Any] | list[dict[str, Any]] | str | None = Field(
        None, description="an object, a list of objects, or YAML text (--- separated)"
    )
    src: str | None = Field(None, description="a YAML file with one or more manifests")
    force_conflicts: bool = Field(False, description="take over fields other managers own")
    dry_run: bool = Field(
        False,
        description="only a server-side dry run, even outside check "
        "mode: what the API would accept and change (data.diff)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ApplyArgs:
        if (self.manifest is None) == (self.src is None):
            raise ValueError("give exactly one of manifest: (inline) or src: (a file)")
        return self


def manifests(args: ApplyArgs) -> list[dict[str, Any]]:
    """The objects to apply, in order; List kinds are unpacked."""
    import yaml

    raw: Any = args.manifest
    origin = "manifest"
    if args.src is not None:
        path = os.path.expanduser(args.src)
        try:
            with open(path) as fh:
                raw = fh.read()
        except OSError as exc:
            raise K8sError(f"cannot read src {args.src}: {exc.strerror}") from None
        origin = args.src
    if isinstance(raw, str):
        try:
            raw = [d for d in yaml.safe_load_all(raw) if d is not None]
        except yaml.YAMLError as exc:
            raise K8sError(f"{origin} is not valid YAML: {exc}") from None
    docs = raw if isinstance(raw, list) else [raw]
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(docs, 1):
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
            out += list(doc["items"])
            continue
        if not isinstance(doc, dict):
            raise K8sError(f"{origin}: document {index} is not a mapping")
        missing = [k for k in ("apiVersion", "kind") if not doc.get(k)]
        if not (doc.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            raise K8sError(
                f"{origin}: document {index} ({doc.get('kind', '?')}) has no {', '.join(missing)}"
            )
        out.append(doc)
    if not out:
        raise K8sError(f"{origin} holds no objects")
    return out


def _apply_one(
    s: Session, doc: Mapping[str, Any], args: ApplyArgs, dry: bool
) -> tuple[bool, dict[str, Any] | None, dict[str, Any], Any, Ref]:
    """Server-side apply of one object: (changed, live before, after, resource, ref)."""
    res = s.cluster.resource_for(str(doc["apiVersion"]), str(doc["kind"]))
    ns = (doc.get("metadata") or {}).get("namespace") or s.namespace
    ref = Ref(res, ns if res.namespaced else None, doc["metadata"]["name"])
    body = json.loads(json.dumps(doc))
    if res.namespaced:
        body["metadata"]["namespace"] = ns
    live = s.get_or_none(ref)
    query = {
        "fieldManager": FIELD_MANAGER,
        "force": "true" if args.force_conflicts else None,
        "dryRun": "All" if dry else None,
    }
    after = s.call(
        "patch", ref, "PATCH", ref.path(), body=body, content_type=PATCH_TYPES["apply"], query=query
    )
    return applied_change(live, after, body), live, after, res, ref


def _applied_text(objects: Iterable[Mapping[str, Any]], words: Mapping[str, str]) -> str:
    return ", ".join(
        f"{o['kind'].lower()} {o['namespace'] + '/' if o['namespace'] else ''}{o['name']} "
        f"{words.get(o['action'], o['action'])}"
        for o in objects
    )


@plugin.action(check=True, idempotent=True, mutates=lambda args: args.get("dry_run") is not True)
def apply(ctx: ActionContext, args: ApplyArgs) -> Result:
    """Server-side apply (check mode or dry_run: a dry run compared with the live object)."""
    s = session(ctx, args)
    dry = ctx.check_mode or args.dry_run
    objects, diffs = [], []
    for doc in manifests(args):
        try:
            changed, live, after, res, ref = _apply_one(s, doc, args, dry)
        except K8sError as exc:
            done = [o for o in objects if o["action"] != "unchanged"]
            if dry or not done:
                raise
            # the objects before this one are changed: say so, so the step's rollback runs
            return Result.failed(
                f"{exc}; applied before it: {_applied_text(objects, {})}",
                changed=True,
                data={"objects": objects, "would_change": True, "diff": ""},
            )
        action = "created" if live is None else ("configured" if changed else "unchanged")
        objects.append(
            {"kind": res.kind, "name": ref.name, "namespace": ref.namespace, "action": action}
        )
        if changed and not dry:
            ctx.changed(objects=objects)  # a step's rollback: is recorded before the next object
        if changed and (ctx.diff_mode or args.dry_run):
            where = f"{ref.namespace}/" if ref.namespace else ""
            diffs.append(diff_text(live, after, f"{res.label}/{where}{ref.name}"))
    counts = {
        a: sum(1 for o in objects if o["action"] == a)
        for a in ("created", "configured", "unchanged")
    }
    would = counts["created"] + counts["configured"] > 0
    words = {"created": "would be created", "configured": "would be configured"} if dry else {}
    what = _applied_text(objects, words)
    diff = "".join(diffs) or None
    data: dict[str, Any] = {"objects": objects, **counts, "would_change": would, "diff": diff or ""}
    prefix = "server-side dry run: " if dry else ""
    # a dry_run step changes nothing, in check mode or not; check mode reports what would
    return Result.ok(changed=would and not args.dry_run, data=data, diff=diff, msg=prefix + what)


class PatchArgs(_Obj):
    """Patch an object: strategic merge (default), JSON merge, or JSON patch."""

    patch: dict[str, Any] | list[dict[str, Any]] | str = Field(
        description="the patch: a mapping (strategic/merge), a list of ops (json), or YAML/JSON text"
    )
    type: Literal["strategic", "merge", "json"] = "strategic"
    sub: str | None = Field(None, description="a subresource to patch, e.g. status or scale")


@plugin.action(check=True, mutates=True)
def patch(ctx: ActionContext, args: PatchArgs) -> Result:
    """Patch one object (check mode: server-side dry run; --diff shows the change)."""
    import yaml

    s = session(ctx, args)
    ref = _object(s, args, None)
    body: Any = args.patch
    if isinstance(body, str):
        try:
            body = yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise K8sError(f"patch is not valid YAML/JSON: {exc}") from None
    if args.type == "json" and not isinstance(body, list):
        raise K8sError(
            "a json patch is a list of operations like [{op: replace, path: /spec/replicas, value: 3}]"
        )
    if args.type != "json" and not isinstance(body, dict):
        raise K8sError(
            f"a {args.type} patch is a mapping (use type: json for a list of operations)"
        )
    live = s.get(ref, sub=args.sub)
    after = s.patch(ref, body, args.type, sub=args.sub, dry_run=ctx.check_mode)
    status = args.sub == "status"
    changed = _comparable(live, status) != _comparable(after, status)
    label = f"{ref.resource.label}/{ref.name}"
    diff = diff_text(live, after, label, status) if changed and ctx.diff_mode else None
    verb = (
        ("would patch" if changed else "patch would change nothing on")
        if ctx.check_mode
        else ("patched" if changed else "patch changed nothing on")
    )
    return Result.ok(changed=changed, diff=diff, data={"object": strip(after)}, msg=f"{verb} {ref}")
