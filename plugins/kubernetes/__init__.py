"""k8s: Kubernetes actions for incident runbooks, through the official Python client.

Restart and watch rollouts, scale, cordon and drain nodes (evictions honour
PodDisruptionBudgets), delete stuck objects, server-side apply and patch fixes, read
objects into `register`, collect events and describe output as evidence, and wait for
conditions. Check mode (`--check`) sends every change as a server-side dry run
(`dryRun=All`): the API server validates, authorises and admits it exactly as it would the
real request, and nothing is persisted. Read-only actions run normally in check mode, except
that waits (`wait`, `rollout_status`) look once instead of waiting for what only a real run
would cause: not there yet is `unknown`, with what they saw.

Reaching the cluster works like kubectl (see `opsbook_plugins.kubernetes_api`): arguments
`kubeconfig`, `context`, `namespace`, `as_user`, `as_groups`, else host vars
`k8s_kubeconfig`, `k8s_context`, `k8s_namespace`, `k8s_as_user`, `k8s_as_groups`, else
`$KUBECONFIG`, `~/.kube/config`, the in-cluster service account. One API client per
(kubeconfig, context, identity) is shared by every step and thread.

Hosts from `k8s_inventory()` carry `k8s_kind`/`k8s_name`/`k8s_namespace`, so
`k8s.cordon: {}` on group `k8s_nodes`, or `k8s.describe: {}` on a pod host, need no names.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

from opsbook.model import parse_duration
from opsbook.plugin import (
    ActionContext,
    Evidence,
    HostInfo,
    Plugin,
    Result,
    Seconds,
    Status,
)
from opsbook_plugins.kubernetes_api import (
    ApiError,
    Cluster,
    ClusterPool,
    Conflict,
    Forbidden,
    Invalid,
    K8sError,
    NotFound,
    Ref,
    Throttled,
    did_you_mean,
    settings_for,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

plugin = Plugin(
    "k8s",
    "Kubernetes: rollouts, scaling, cordon/drain, apply/patch/delete, facts, events, waits.",
)

FIELD_MANAGER = "opsbook"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DEFAULT_WAIT = 300.0  # seconds an action waits when neither it nor its step says
POLL = 1.0  # seconds between polls while waiting
EVICT_RETRY = 2.0  # seconds between eviction attempts a PodDisruptionBudget refused
LATE_LOOKS = 3  # rounds of late arrivals a drain evicts before it calls them coming back ...
LATE_FOR = 10.0  # ... and seconds since the drain began: a scheduler under load sees a cordon late
SETTLE = 15.0  # seconds a drain waits, at most, for the scheduler to place the replacements
_REPLACING = ("ReplicaSet", "StatefulSet", "ReplicationController")  # kinds that replace a pod
_LIST_CAP = 15  # names shown in "did you mean" listings

clusters = ClusterPool()
T = TypeVar("T")


# --------------------------------------------------------------------------- durations

# Durations: the engine's parser and argument type (30, "30s", "1m30s", "500ms").


# --------------------------------------------------------------------------- arguments


class _Conn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    kubeconfig: str | None = Field(
        None,
        description="kubeconfig path (a:b merged); default host var k8s_kubeconfig, "
        "$KUBECONFIG, ~/.kube/config, in-cluster",
    )
    context: str | None = Field(
        None,
        description="kubeconfig context; default host var k8s_context, then the current-context",
    )
    as_user: str | None = Field(None, description="impersonate this user (host var k8s_as_user)")
    as_groups: list[str] = Field(
        default_factory=list, description="impersonate these groups (host var k8s_as_groups)"
    )


class _Ns(_Conn):
    namespace: str | None = Field(
        None,
        description="default host var k8s_namespace, then the context's namespace, then default",
    )


class _Obj(_Ns):
    kind: str | None = Field(
        None,
        description="resource type as kubectl takes it: deployment, "
        "deploy, pods, poddisruptionbudgets.policy, ...",
    )
    name: str | None = Field(None, description="object name; `kind/name` also works")
    api_version: str | None = Field(None, description="pin a group/version, e.g. apps/v1")


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """One action's view of a cluster: the shared client plus this host's namespace."""

    cluster: Cluster
    namespace: str
    ctx: ActionContext

    @property
    def label(self) -> str:
        return f"{self.cluster.context} ({self.cluster.server})"

    def connection_args(self) -> dict[str, Any]:
        """Arguments that reach this same cluster as this same identity (for inverses)."""
        s = self.cluster.settings
        out: dict[str, Any] = {"context": self.cluster.context}
        if s.kubeconfig:
            out["kubeconfig"] = s.kubeconfig
        if s.as_user:
            out["as_user"] = s.as_user
        if s.as_groups:
            out["as_groups"] = list(s.as_groups)
        return out

    # -- references --------------------------------------------------------------------
    def ref(
        self,
        kind: str,
        name: str | None,
        namespace: str | None = None,
        api_version: str | None = None,
    ) -> Ref:
        res = self.cluster.resource(kind, api_version)
        return Ref(res, (namespace or self.namespace) if res.namespaced else None, name)

    # -- requests with on-call errors --------------------------------------------------
    def call(self, verb: str, ref: Ref, method: str, path: str, **kw: Any) -> Any:
        try:
            return self.cluster.request(method, path, **kw)
        except ApiError as exc:
            raise explain(self, exc, verb, ref, sub=_sub_of(path, ref)) from None

    def get(self, ref: Ref, sub: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.call("get", ref, "GET", ref.path(sub), timeout=timeout)

    def get_or_none(self, ref: Ref, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return self.cluster.request("GET", ref.path(), timeout=timeout)
        except NotFound:
            return None
        except ApiError as exc:
            raise explain(self, exc, "get", ref) from None

    def list(
        self,
        ref: Ref,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        all_namespaces: bool = False,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        path = ref.resource.path(None if all_namespaces else ref.namespace)
        items: list[dict[str, Any]] = []
        token = None
        while True:
            query = {
                "labelSelector": label_selector or None,
                "fieldSelector": field_selector or None,
                "limit": 500,
                "continue": token,
            }
            page = self.call(
                "list",
                Ref(ref.resource, None if all_namespaces else ref.namespace),
                "GET",
                path,
                query=query,
                timeout=timeout,
            )
            kind = ref.resource.kind
            for item in page.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", ref.resource.api_version)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch(
        self,
        ref: Ref,
        body: Any,
        patch_type: str = "strategic",
        *,
        sub: str | None = None,
        dry_run: bool = False,
        verb: str = "patch",
    ) -> dict[str, Any]:
        content = PATCH_TYPES[patch_type]
        query = {"dryRun": "All" if dry_run else None, "fieldManager": FIELD_MANAGER}
        return self.call(
            verb,
            ref,
            "PATCH",
            ref.path(sub),
            body=body,
            content_type=content,
            query=query,
        )


PATCH_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _delete_body(options: Mapping[str, Any], dry_run: bool) -> dict[str, Any]:
    body = {"kind": "DeleteOptions", "apiVersion": "v1", **options}
    if dry_run:
        body["dryRun"] = ["All"]
    return body


def _sub_of(path: str, ref: Ref) -> str | None:
    base = ref.path()
    return path[len(base) + 1 :] if ref.name and path.startswith(base + "/") else None


def session(ctx: ActionContext, args: _Conn) -> Session:
    """The cluster (from the pool) and namespace an action works on."""
    host_vars = ctx.host.vars
    cluster = clusters.get(settings_for(args, host_vars))
    namespace = (
        getattr(args, "namespace", None)
        or host_vars.get("k8s_namespace")
        or cluster.default_namespace
    )
    return Session(cluster, str(namespace), ctx)


def _object(s: Session, args: _Obj, default_kind: str | None) -> Ref:
    """The object an action is about: args, else the k8s_* vars of an inventory host."""
    host = s.ctx.host.vars
    kind, name = args.kind, args.name
    if name and "/" in name and not kind:  # kubectl's deployment/web
        kind, _, name = name.partition("/")
    if (
        not name
        and host.get("k8s_name")
        and (not kind or _same_kind(s, kind, host.get("k8s_kind")))
    ):
        name, kind = str(host["k8s_name"]), kind or str(host.get("k8s_kind") or "")
    kind = kind or default_kind
    if not kind:
        raise K8sError("which kind of object? pass kind: (deployment, pod, node, ...)")
    if not name:
        raise K8sError(f"which {kind}? pass name: (or run on a host from the k8s inventory)")
    return s.ref(kind, name, api_version=args.api_version)


def _same_kind(s: Session, kind: str, host_kind: Any) -> bool:
    if not host_kind:
        return False
    try:
        return s.cluster.resource(kind) == s.cluster.resource(str(host_kind))
    except K8sError:
        return False


# --------------------------------------------------------------------------- errors


def explain(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None = None) -> K8sError:
    """An API error as the person on call needs it: who may not do what, what exists."""
    err = _explain(s, exc, verb, ref, sub)
    err.status = exc.status
    return err


def _explain(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None) -> K8sError:
    if isinstance(exc, Forbidden):
        return K8sError(_forbidden(s, exc, verb, ref, sub))
    if isinstance(exc, NotFound) and ref.name:
        return K8sError(not_found(s, ref))
    if isinstance(exc, NotFound) and ref.namespace:
        missing = _namespace_missing(s, ref)
        if missing:
            return K8sError(missing)
    if isinstance(exc, Conflict) and _SSA_CONFLICT.search(exc.api_message):
        return K8sError(
            f"{ref}: {exc.api_message}; another field manager owns these fields "
            "(set force_conflicts: true on k8s.apply to take them over)"
        )
    if isinstance(exc, Invalid):
        return K8sError(f"{ref} was rejected by the API: {exc.api_message}")
    if exc.status == 415 and verb == "patch":
        return K8sError(
            f"{ref}: {exc.api_message}; custom resources do not support strategic "
            "merge patches: use type: merge"
        )
    if exc.status >= 500:  # the server itself is in trouble (restarting, overloaded): say which
        return K8sError(
            f"{verb} {ref}: the API server at {s.cluster.server} answered HTTP {exc.status} "
            f"{exc.reason}: {exc.api_message}"
        )
    return K8sError(f"{verb} {ref}: HTTP {exc.status} {exc.reason}: {exc.api_message}")


# Server-side apply reports "Apply failed with N conflict(s): conflict with "manager" ...";
# an optimistic-lock 409 ("the object has been modified") is a different problem.
_SSA_CONFLICT = re.compile(r'Apply failed with \d+ conflicts?|conflicts? with "[^"]+"')

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<res>[^"]+)" in API group '
    r'"(?P<group>[^"]*)"(?: (?:in the namespace "(?P<ns>[^"]*)"|at the cluster scope))?'
)


def _forbidden(s: Session, exc: ApiError, verb: str, ref: Ref, sub: str | None) -> str:
    found = _FORBIDDEN.search(exc.api_message)
    resource = ref.resource.qualified + (f"/{sub}" if sub else "")
    if found:
        user, verb = found["user"], found["verb"]
        base, _, subres = found["res"].partition("/")
        resource = (f"{base}.{found['group']}" if found["group"] else base) + (
            f"/{subres}" if subres else ""
        )
        where = f'in namespace "{found["ns"]}"' if found["ns"] else "at cluster scope"
    else:
        user = s.cluster.settings.as_user or "(this identity)"
        where = f'in namespace "{ref.namespace}"' if ref.namespace else "at cluster scope"
    ns_flag = f" -n {ref.namespace}" if ref.namespace else ""
    return (
        f'forbidden: user "{user}" may not {verb} {resource} {where} '
        f"({s.cluster.settings.describe()}). RBAC does not allow it: use an identity that may, "
        f"or ask for a Role granting {verb} on {resource}. "
        f"Check with: kubectl --context {s.cluster.context} auth can-i {verb} {resource}{ns_flag}"
    )


def not_found(s: Session, ref: Ref) -> str:
    """ "deployment shop/web9 not found; deployments in shop: api, web (did you mean "web"?)"."""
    missing_ns = _namespace_missing(s, ref)
    if missing_ns:
        return missing_ns
    plural = ref.resource.plural
    where = f" in {ref.namespace}" if ref.resource.namespaced else ""
    try:
        names = sorted(_names(s, Ref(ref.resource, ref.namespace)))
    except (ApiError, K8sError):
        return f"{ref} not found (cannot list {plural}{where} to suggest names)"
    if not names:
        return f"{ref} not found; there are no {plural}{where}"
    shown = ", ".join(names[:_LIST_CAP]) + (
        f", ... ({len(names)} in all)" if len(names) > _LIST_CAP else ""
    )
    return f"{ref} not found; {plural}{where}: {shown}{did_you_mean(ref.name or '', names)}"


def _names(s: Session, ref: Ref) -> list[str]:
    page = s.cluster.request("GET", ref.resource.path(ref.namespace), query={"limit": 500})
    return [i["metadata"]["name"] for i in page.get("items") or []]


def _namespace_missing(s: Session, ref: Ref) -> str | None:
    if not (ref.resource.namespaced and ref.namespace):
        return None
    try:
        s.cluster.request("GET", s.cluster.resource("namespaces").path(None, ref.namespace))
        return None
    except NotFound:
        pass
    except ApiError:
        return None
    try:
        names = sorted(_names(s, Ref(s.cluster.resource("namespaces"), None)))
        listing = (
            f"; namespaces: {', '.join(names[:_LIST_CAP])}{did_you_mean(ref.namespace, names)}"
        )
    except (ApiError, K8sError):
        listing = ""
    return f'namespace "{ref.namespace}" not found (looking for {ref}){listing}'


# --------------------------------------------------------------------------- time


class Clock:
    """An action's own deadline, kept inside the step's so our message is the one shown."""

    def __init__(self, ctx: ActionContext, seconds: float | None) -> None:
        limit = DEFAULT_WAIT if seconds is None else seconds
        if ctx.timeout is not None:
            margin = min(1.0, ctx.timeout * 0.1)
            limit = min(limit, max(0.0, ctx.timeout - margin))
        self.ctx = ctx
        self.limit = limit
        self.start = time.monotonic()
        self.end = self.start + limit

    def left(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def wait(self, interval: float = POLL) -> bool:
        """Sleep up to `interval`; False when the time is up or the step was cancelled."""
        left = self.left()
        if left <= 0 or self.ctx.cancelled.is_set():
            return False
        return not self.ctx.cancelled.wait(min(interval, left)) and self.left() > 0

    def request_timeout(self) -> float:
        return max(1.0, self.left())

    def poll(self, fn: Callable[[], T]) -> T:
        """fn(), asked again while the API server is restarting or overloaded (until the
        clock runs out): an incident is exactly when the control plane blips."""
        while True:
            try:
                return fn()
            except K8sError as exc:
                if not exc.transient or not self.wait(POLL):
                    raise
                self.ctx.output(f"API server not answering, asking again: {exc}")


def _timed_out(msg: str, **kw: Any) -> Result:
    """Our own deadline passed (before the step's): TIMED_OUT with the message we wrote."""
    return Result(status=Status.TIMED_OUT, msg=msg, **kw)


def _n(count: int, word: str) -> str:
    """'1 pod', '3 pods'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _ago(value: str | None, now: dt.datetime | None = None) -> str:
    when = _ts(value)
    if when is None:
        return "<unknown>"
    secs = max(0, int(((now or _now()) - when).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


# --------------------------------------------------------------------------- object helpers


def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object as kubectl get -o yaml shows it (no managedFields)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _comparable(obj: Mapping[str, Any] | None, status: bool = False) -> dict[str, Any]:
    """What a change is judged on: not the bookkeeping, and not the status controllers
    keep writing (it changes between our read and our write without us)."""
    if obj is None:
        return {}
    out = strip(obj)
    if not status:
        out.pop("status", None)
    meta = out["metadata"]
    for key in ("resourceVersion", "generation", "creationTimestamp", "uid"):
        meta.pop(key, None)
    return out


def _project(obj: Any, shape: Any) -> Any:
    """The part of obj that a manifest of this shape speaks about."""
    if isinstance(shape, dict) and isinstance(obj, dict):
        return {key: _project(obj.get(key), sub) for key, sub in shape.items()}
    if isinstance(shape, list) and isinstance(obj, list) and len(shape) == len(obj):
        return [_project(o, s) for o, s in zip(obj, shape, strict=True)]
    return obj


def _owned_fields(obj: Mapping[str, Any] | None) -> Any:
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            return entry.get("fieldsV1")
    return None


def applied_change(
    live: Mapping[str, Any] | None, after: Mapping[str, Any], body: Mapping[str, Any]
) -> bool:
    """Did a server-side apply change the object? Judged on the fields the manifest sets
    and on the set of fields opsbook owns (a field dropped from the manifest is removed),
    never on what controllers write between our read and our apply (a Deployment's
    revision annotation, a Service's cluster IP)."""
    if live is None:
        return True
    intent = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")}
    if _project(strip(live), intent) != _project(strip(after), intent):
        return True
    owned = _owned_fields(live)
    return owned is not None and owned != _owned_fields(after)


def diff_text(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    label: str,
    status: bool = False,
) -> str:
    """A unified YAML diff of two objects (kubectl diff's view, without status noise)."""
    import yaml

    def lines(obj: Mapping[str, Any] | None) -> list[str]:
        if not obj:
            return []
        return yaml.safe_dump(_comparable(obj, status), sort_keys=True).splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(lines(before), lines(after), f"live/{label}", f"new/{label}")
    )


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _owner(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _finished(pod: Mapping[str, Any]) -> bool:
    """The pod ran to its end (Succeeded or Failed): nothing runs, nothing replaces it."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return _conditions(pod).get("Ready", {}).get("status") == "True"


def _pod_problem(pod: Mapping[str, Any]) -> str:
    """Why a pod is not ready, in a few words (Pending: unschedulable, CrashLoopBackOff...)."""
    status = pod.get("status") or {}
    phase = status.get("phase", "Unknown")
    sched = _conditions(pod).get("PodScheduled", {})
    if sched.get("status") == "False":
        return f"{phase}: {sched.get('reason', '')}: {sched.get('message', '')}".strip(": ")
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            return f"{phase}: {cs.get('name')} {waiting.get('reason', 'waiting')}" + (
                f": {waiting['message']}" if waiting.get("message") else ""
            )
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode"):
            return f"{phase}: {cs.get('name')} exited {term.get('exitCode')} ({term.get('reason', '')})"
    ready = _conditions(pod).get("Ready", {})
    if ready.get("message"):
        return f"{phase}: {ready['message']}"
    return f"{phase}, not ready"


def _selector(obj: Mapping[str, Any]) -> str:
    """A label selector string from spec.selector (matchLabels and simple expressions)."""
    sel = (obj.get("spec") or {}).get("selector") or {}
    if "matchLabels" not in sel and "matchExpressions" not in sel:
        sel = {"matchLabels": sel}  # a Service's plain map
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _key(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta.get("name"))


# --------------------------------------------------------------------------- get


class GetArgs(_Obj):
    """Read one object (name) or a list (label/field selector) into `register`."""

    label_selector: str | None = Field(None, description="e.g. app.kubernetes.io/name=web")
    field_selector: str | None = Field(None, description="e.g. status.phase=Running")
    all_namespaces: bool = False
    missing_ok: bool = Field(False, description="an absent object is not a failure: found=false")


@plugin.action(check=True, idempotent=True)
def get(ctx: ActionContext, args: GetArgs) -> Result:
    """Read objects into `register`: data.object (by name) or data.objects, count, found."""
    s = session(ctx, args)
    by_host = not (args.kind or args.label_selector or args.field_selector or args.all_namespaces)
    if args.name or (by_host and ctx.host.vars.get("k8s_name")):
        ref = _object(s, args, None)
        obj = s.get_or_none(ref) if args.missing_ok else s.get(ref)
        if obj is None:
            return Result.ok(
                msg=f"{ref} does not exist",
                data={"found": False, "object": None, "objects": [], "count": 0},
            )
        obj = strip(obj)
        return Result.ok(
            msg=f"read {ref}", data={"found": True, "object": obj, "objects": [obj], "count": 1}
        )
    if not args.kind:
        raise K8sError("k8s.get needs kind: (and name:, or a selector)")
    ref = s.ref(args.kind, None, api_version=args.api_version)
    items = [
        strip(i)
        for i in s.list(
            ref,
            label_selector=args.label_selector,
            field_selector=args.field_selector,
            all_namespaces=args.all_namespaces,
        )
    ]
    where = "all namespaces" if args.all_namespaces or not ref.namespace else ref.namespace
    return Result.ok(
        msg=f"{len(items)} {ref.resource.plural} in {where}",
        data={
            "found": bool(items),
            "objects": items,
            "count": len(items),
            "names": [_meta(i).get("name") for i in items],
            "object": items[0] if len(items) == 1 else None,
        },
    )


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


def rollout_state(obj: Mapping[str, Any]) -> Rollout:
    """kubectl's status viewers for Deployments, StatefulSets and DaemonSets."""
    kind = obj.get("kind")
    spec, st, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    name = meta.get("name")
    observed = st.get("observedGeneration", 0) >= meta.get("generation", 0)
    if kind == "DaemonSet":
        desired = st.get("desiredNumberScheduled", 0)
        r = Rollout(
            False,
            "",
            desired,
            st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0),
            st.get("numberAvailable", 0),
        )
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
    desired = spec.get("replicas", 1)
    if kind == "StatefulSet":
        r = Rollout(
            False,
            "",
            desired,
            st.get("readyReplicas", 0),
            st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0),
        )
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
    r = Rollout(
        False,
        "",
        desired,
        st.get("readyReplicas", 0),
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
    )
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


# --------------------------------------------------------------------------- evidence


class EventsArgs(_Obj):
    """Events of an object (and, for workloads, of its ReplicaSets and pods) or a namespace (kind: defaults to deployment)."""

    since: str | None = Field(
        None, description="only newer events: a duration ago (15m) or a timestamp"
    )
    types: list[Literal["Normal", "Warning"]] = Field(default_factory=list)
    related: bool = Field(True, description="include events of owned ReplicaSets and pods")
    all_namespaces: bool = False
    dest: str | None = Field(
        None,
        description="evidence file, relative to the run's evidence folder (default: "
        "k8s/<namespace>/<kind>-<name>...); a folder (ending with /) gets <dest>/<host>/k8s/...",
    )


def _safe(part: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(part)) or "_"


def _event_time(ev: Mapping[str, Any]) -> str:
    return (
        ev.get("lastTimestamp")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or _meta(ev).get("creationTimestamp")
        or ""
    )


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return _now() - dt.timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    when = _ts(value)
    if when is None:
        raise K8sError(f'since: "{value}" is neither a duration ago (15m) nor a timestamp')
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _related_uids(s: Session, ref: Ref, obj: Mapping[str, Any]) -> set[str]:
    """The object, and what it owns two levels down (Deployment -> ReplicaSets -> Pods)."""
    uids = {_meta(obj).get("uid", "")}
    if ref.resource.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return uids
    selector = _selector(obj)
    owned: list[dict[str, Any]] = []
    if ref.resource.kind == "Deployment":
        owned = [
            rs
            for rs in s.list(s.ref("replicasets", None, ref.namespace), label_selector=selector)
            if (_owner(rs) or {}).get("uid") in uids
        ]
        uids |= {_meta(rs)["uid"] for rs in owned}
    for pod in s.list(s.ref("pods", None, ref.namespace), label_selector=selector):
        if (_owner(pod) or {}).get("uid") in uids:
            uids.add(_meta(pod)["uid"])
    return uids


def collect_events(
    s: Session, args: EventsArgs, ref: Ref | None, obj: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Events, oldest first, filtered like the arguments say."""
    ev_ref = s.ref("events", None, ref.namespace if ref is not None and ref.namespace else None)
    if ref is not None and obj is not None:
        if ref.resource.namespaced:
            uids = _related_uids(s, ref, obj) if args.related else {_meta(obj).get("uid", "")}
            events = [
                e for e in s.list(ev_ref) if (e.get("involvedObject") or {}).get("uid") in uids
            ]
        else:  # nodes: their events live in whatever namespace the reporter chose
            sel = f"involvedObject.kind={ref.resource.kind},involvedObject.name={ref.name}"
            events = s.list(ev_ref, field_selector=sel, all_namespaces=True)
    else:
        events = s.list(ev_ref, all_namespaces=args.all_namespaces)
    cutoff = _since(args.since)
    if cutoff is not None:
        events = [e for e in events if (_ts(_event_time(e)) or cutoff) >= cutoff]
    if args.types:
        events = [e for e in events if e.get("type") in args.types]
    return sorted(events, key=_event_time)


def event_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        inv = e.get("involvedObject") or {}
        out.append(
            {
                "time": _event_time(e),
                "type": e.get("type", ""),
                "reason": e.get("reason", ""),
                "object": f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
                "namespace": inv.get("namespace") or _meta(e).get("namespace"),
                "message": (e.get("message") or "").strip(),
                "count": e.get("count") or 1,
                "source": (e.get("source") or {}).get("component")
                or e.get("reportingComponent", ""),
            }
        )
    return out


def events_table(rows: list[dict[str, Any]], now: dt.datetime | None = None) -> str:
    """kubectl events' table: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE."""
    if not rows:
        return "No events.\n"
    header = ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")
    table = [header] + [
        (
            _ago(r["time"], now) + (f" (x{r['count']})" if r["count"] > 1 else ""),
            r["type"],
            r["reason"],
            r["object"],
            r["message"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "   " + row[4] + "\n"
        for row in table
    )


def _save(ctx: ActionContext, relative: str, text: str, source: str, what: str) -> Evidence:
    path = ctx.evidence_path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    rel = str(path.relative_to(ctx.evidence_dir)) if ctx.evidence_dir else relative
    return Evidence(rel, source, what)


def _own_dest(dest: str | None) -> str | None:
    """A dest that names a file (not a folder): known before the run."""
    return dest if dest and not dest.endswith("/") else None


def _events_file(args: EventsArgs, host: HostInfo) -> list[str] | None:
    dest = _own_dest(args.dest)
    return None if dest is None else [dest]


@plugin.action(check=True, idempotent=True, evidence=_events_file)
def events(ctx: ActionContext, args: EventsArgs) -> Result:
    """Save events (of an object and what it owns, or of a namespace) as evidence and data."""
    s = session(ctx, args)
    ref = obj = None
    if args.name or (ctx.host.vars.get("k8s_name") and not args.all_namespaces):
        ref = _object(s, args, "deployment")
        obj = s.get(ref)
    rows = event_rows(collect_events(s, args, ref, obj))
    if ref is not None:
        default = f"k8s/{_safe(ref.namespace or '_cluster')}/{_safe(ref.resource.label)}-{_safe(ref.name)}.events.txt"
        title = f"Events of {ref}{' and what it owns' if args.related else ''}"
    else:
        where = "all namespaces" if args.all_namespaces else f"namespace {s.namespace}"
        default = f"k8s/{_safe('_all' if args.all_namespaces else s.namespace)}/events.txt"
        title = f"Events in {where}"
    since = f" since {args.since}" if args.since else ""
    header = (
        f"# {title}{since}, cluster {s.label}, collected {_now().isoformat(timespec='seconds')}\n"
    )
    ev = _save(
        ctx,
        ctx.evidence_file(args.dest, default) if args.dest else default,
        header + events_table(rows),
        f"k8s {s.cluster.context}: {title}",
        title,
    )
    warnings = sum(1 for r in rows if r["type"] == "Warning")
    return Result.ok(
        evidence=[ev],
        msg=f"saved {ev.path}: {_n(len(rows), 'event')} ({_n(warnings, 'warning')})",
        data={"events": rows, "count": len(rows), "warnings": warnings, "path": ev.path},
    )


class DescribeArgs(_Obj):
    """kubectl describe of an object, with its events, saved as evidence (kind: defaults to deployment)."""

    dest: str | None = Field(
        None,
        description="evidence file, relative to the run's evidence folder (default: "
        "k8s/<namespace>/<kind>-<name>...); a folder (ending with /) gets <dest>/<host>/k8s/...",
    )


def _described_files(args: DescribeArgs, host: HostInfo) -> list[str] | None:
    dest = _own_dest(args.dest)
    if dest is None:
        return None
    base = dest.removesuffix(".describe.txt")
    return [base + ".describe.txt", base + ".yaml"]


@plugin.action(check=True, idempotent=True, evidence=_described_files)
def describe(ctx: ActionContext, args: DescribeArgs) -> Result:
    """Save a kubectl-describe-style text of an object and its events (plus its YAML)."""
    import yaml

    s = session(ctx, args)
    ref = _object(s, args, "deployment")
    obj = s.get(ref)
    extra: dict[str, Any] = {}
    if ref.resource.kind in _WORKLOADS:
        extra["pods"] = s.list(s.ref("pods", None, ref.namespace), label_selector=_selector(obj))
    if ref.resource.kind == "Node":
        extra["pods"] = s.list(
            s.ref("pods", None), field_selector=f"spec.nodeName={ref.name}", all_namespaces=True
        )
    rows = event_rows(collect_events(s, EventsArgs.model_validate({"related": False}), ref, obj))
    text = describe_text(obj, rows, extra)
    default = f"k8s/{_safe(ref.namespace or '_cluster')}/{_safe(ref.resource.label)}-{_safe(ref.name)}"
    base = ctx.evidence_file(args.dest, default) if args.dest else default
    base = base.removesuffix(".describe.txt")
    source = f"k8s {s.cluster.context}: {ref}"
    evidence = [
        _save(ctx, base + ".describe.txt", text, source, f"describe {ref}"),
        _save(
            ctx,
            base + ".yaml",
            yaml.safe_dump(strip(obj), sort_keys=False),
            source,
            f"{ref} as YAML",
        ),
    ]
    return Result.ok(
        evidence=evidence,
        msg=f"saved {evidence[0].path} ({_n(len(rows), 'event')})",
        data={"text": text, "path": evidence[0].path, "events": len(rows)},
    )


def describe_text(
    obj: Mapping[str, Any], events: list[dict[str, Any]], extra: Mapping[str, Any] | None = None
) -> str:
    """A kubectl-describe-like text: metadata, the kind's key facts, conditions, events."""
    extra = extra or {}
    meta, spec, st = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    kind = obj.get("kind", "")
    out: list[str] = []

    def line(key: str, value: Any, indent: int = 0) -> None:
        out.append(f"{' ' * indent}{key + ':':<24}{'' if value is None else value}")

    def mapping(key: str, values: Mapping[str, Any] | None, indent: int = 0) -> None:
        items = sorted((values or {}).items())
        if not items:
            line(key, "<none>", indent)
            return
        line(key, f"{items[0][0]}={items[0][1]}", indent)
        for k, v in items[1:]:
            out.append(f"{' ' * (indent + 24)}{k}={v}")

    line("Name", meta.get("name"))
    if meta.get("namespace"):
        line("Namespace", meta.get("namespace"))
    line("Kind", f"{kind} ({obj.get('apiVersion', '')})")
    line("CreationTimestamp", meta.get("creationTimestamp"))
    mapping("Labels", meta.get("labels"))
    mapping(
        "Annotations",
        {
            k: (v if len(str(v)) < 120 else str(v)[:117] + "...")
            for k, v in (meta.get("annotations") or {}).items()
        },
    )
    owner = _owner(obj)
    if owner:
        line("Controlled By", f"{owner.get('kind')}/{owner.get('name')}")
    section = _DESCRIBERS.get(kind)
    if section is not None:
        section(out, line, mapping, obj, extra)
    else:
        import yaml

        for key, value in (("Spec", spec), ("Status", st)):
            if value:
                out.append(f"{key}:")
                out += ["  " + ln for ln in yaml.safe_dump(value, sort_keys=False).splitlines()]
    conds = st.get("conditions") or []
    if conds:
        out.append("Conditions:")
        out.append(f"  {'Type':<26}{'Status':<8}{'Reason':<30}Message")
        for c in conds:
            out.append(
                f"  {c.get('type', ''):<26}{c.get('status', ''):<8}{c.get('reason', '') or '':<30}"
                f"{c.get('message', '') or ''}"
            )
    out.append("Events:" if events else f"{'Events:':<24}<none>")
    if events:
        out += ["  " + ln for ln in events_table(events).splitlines()]
    return "\n".join(out) + "\n"


def _describe_deployment(
    out: list[str], line: Any, mapping: Any, obj: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    line("Selector", _selector(obj))
    line(
        "Replicas",
        f"{spec.get('replicas', 1)} desired | {st.get('updatedReplicas', 0)} updated | "
        f"{st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} available | "
        f"{st.get('unavailableReplicas', 0)} unavailable",
    )
    strategy = spec.get("strategy") or spec.get("updateStrategy") or {}
    line("StrategyType", strategy.get("type"))
    ru = strategy.get("rollingUpdate") or {}
    if ru:
        line("RollingUpdateStrategy", ", ".join(f"{k} {v}" for k, v in ru.items()))
    if spec.get("paused"):
        line("Paused", "true")
    _describe_template(out, (spec.get("template") or {}))
    pods = extra.get("pods") or []
    if pods:
        out.append("Pods:")
        out.append("  " + _POD_HEADER)
        for p in pods:
            out.append("  " + _pod_row(p))


_POD_HEADER = f"{'NAME':<44}{'READY':<8}{'STATUS':<12}{'RESTARTS':<10}{'NODE':<20}PROBLEM"


def _pod_row(p: Mapping[str, Any]) -> str:
    ps = p.get("status") or {}
    cs = ps.get("containerStatuses") or []
    ready = f"{sum(1 for c in cs if c.get('ready'))}/{len((p.get('spec') or {}).get('containers') or [])}"
    restarts = sum(c.get("restartCount", 0) for c in cs)
    problem = "" if _pod_ready(p) else _pod_problem(p)
    name = _meta(p).get("name", "")
    if _meta(p).get("namespace"):
        name = f"{_meta(p)['namespace']}/{name}"
    return (
        f"{name:<44}{ready:<8}{ps.get('phase', ''):<12}{restarts:<10}"
        f"{(p.get('spec') or {}).get('nodeName') or '<none>':<20}{problem}"
    )


def _describe_template(out: list[str], template: Mapping[str, Any]) -> None:
    pod_spec = template.get("spec") or {}
    out.append("Pod Template:")
    labels = (template.get("metadata") or {}).get("labels") or {}
    out.append(f"  Labels:  {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or '<none>'}")
    ann = (template.get("metadata") or {}).get("annotations") or {}
    if ann:
        out.append(f"  Annotations:  {', '.join(f'{k}: {v}' for k, v in sorted(ann.items()))}")
    _describe_containers(out, pod_spec, {})


def _describe_containers(
    out: list[str], pod_spec: Mapping[str, Any], statuses: Mapping[str, Mapping[str, Any]]
) -> None:
    out.append("  Containers:")
    for c in pod_spec.get("containers") or []:
        out.append(f"   {c.get('name')}:")
        out.append(f"    Image:      {c.get('image')}")
        ports = ", ".join(
            f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or []
        )
        out.append(f"    Ports:      {ports or '<none>'}")
        res = c.get("resources") or {}
        for key in ("limits", "requests"):
            if res.get(key):
                out.append(
                    f"    {key.title() + ':':<12}{', '.join(f'{k}={v}' for k, v in res[key].items())}"
                )
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(probe):
                out.append(
                    f"    {probe[:-5].title() + ':':<12}{json.dumps(c[probe], sort_keys=True)}"
                )
        st = statuses.get(c.get("name", ""))
        if st:
            state = st.get("state") or {}
            name = next(iter(state), "unknown")
            detail = state.get(name) or {}
            reason = f" ({detail.get('reason')})" if detail.get("reason") else ""
            out.append(f"    State:      {name.title()}{reason}")
            last = st.get("lastState") or {}
            if last:
                lname = next(iter(last))
                out.append(
                    f"    Last State: {lname.title()} ({(last[lname] or {}).get('reason', '')}, "
                    f"exit code {(last[lname] or {}).get('exitCode', '?')})"
                )
            out.append(f"    Ready:      {st.get('ready')}")
            out.append(f"    Restarts:   {st.get('restartCount', 0)}")
    if pod_spec.get("volumes"):
        out.append(
            "  Volumes:    "
            + ", ".join(
                f"{v.get('name')} ({next((k for k in v if k != 'name'), '?')})"
                for v in pod_spec["volumes"]
            )
        )
    if pod_spec.get("nodeSelector"):
        out.append(
            "  Node-Selectors: "
            + ", ".join(f"{k}={v}" for k, v in pod_spec["nodeSelector"].items())
        )
    if pod_spec.get("tolerations"):
        out.append(
            "  Tolerations: "
            + ", ".join(
                f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
                for t in pod_spec["tolerations"]
            )
        )


def _describe_pod(
    out: list[str], line: Any, mapping: Any, obj: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    line(
        "Node",
        f"{spec.get('nodeName') or '<none>'}" + (f"/{st['hostIP']}" if st.get("hostIP") else ""),
    )
    line(
        "Status",
        str(st.get("phase", "Unknown"))
        + (" (terminating)" if _meta(obj).get("deletionTimestamp") else ""),
    )
    if st.get("reason") or st.get("message"):
        line("Reason", f"{st.get('reason', '')} {st.get('message', '')}".strip())
    line("IP", st.get("podIP") or "<none>")
    line("QoS Class", st.get("qosClass"))
    statuses = {c.get("name", ""): c for c in st.get("containerStatuses") or []}
    _describe_containers(out, spec, statuses)


def _describe_node(
    out: list[str], line: Any, mapping: Any, obj: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    roles = [
        k.split("/", 1)[1]
        for k in (_meta(obj).get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    ]
    line("Roles", ", ".join(roles) or "<none>")
    taints = spec.get("taints") or []
    line(
        "Taints",
        ", ".join(
            f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
            for t in taints
        )
        or "<none>",
    )
    line("Unschedulable", bool(spec.get("unschedulable")))
    addrs = ", ".join(f"{a.get('type')}={a.get('address')}" for a in st.get("addresses") or [])
    line("Addresses", addrs or "<none>")
    mapping("Capacity", st.get("capacity"))
    mapping("Allocatable", st.get("allocatable"))
    info = st.get("nodeInfo") or {}
    if info:
        line("Kubelet Version", info.get("kubeletVersion"))
    pods = [p for p in extra.get("pods") or [] if not _finished(p)]
    out.append(f"{'Non-terminated Pods:':<24}({len(pods)} in total)")
    if pods:
        out.append("  " + _POD_HEADER)
    for p in pods:
        out.append("  " + _pod_row(p))


_DESCRIBERS: dict[str, Callable[..., None]] = {
    "Deployment": _describe_deployment,
    "StatefulSet": _describe_deployment,
    "DaemonSet": _describe_deployment,
    "ReplicaSet": _describe_deployment,
    "Pod": _describe_pod,
    "Node": _describe_node,
}


# --------------------------------------------------------------------------- wait


class WaitArgs(_Obj):
    """Wait for a condition (Available, Ready=False), a field value, or deletion."""

    label_selector: str | None = Field(
        None,
        description="without name: wait for every object "
        'that matches ("" or none: every object of the kind)',
    )
    condition: str | None = Field(
        None, description="a status condition: Available, Ready, Progressing=True, Ready=False"
    )
    field: str | None = Field(
        None,
        description="a JSONPath-ish field: status.phase, "
        '{.status.readyReplicas}, .status.conditions[?(@.type=="Ready")].status',
    )
    value: Any = Field(None, description="the value field must have (default: any non-empty value)")
    deleted: bool = Field(False, description="wait until the object is gone")
    timeout: Seconds = Field(DEFAULT_WAIT, description="give up after this long")

    @model_validator(mode="after")
    def _one_goal(self) -> WaitArgs:
        goals = [self.condition is not None, self.field is not None, self.deleted]
        if sum(goals) != 1:
            raise ValueError(
                "give exactly one of condition:, field: (with value:) or deleted: true"
            )
        return self


_PATH_TOKEN = re.compile(
    r"\[\?\(@\.([\w.-]+)\s*==\s*['\"]?([^'\")]*)['\"]?\)\]"  # [?(@.type=="Ready")]
    r"|\[(\*|-?\d+)\]"  # [0], [*]
    r"|\[['\"]([^'\"]+)['\"]\]"  # ['kubectl.kubernetes.io/restartedAt']
    r"|((?:\\\.|[^.\[\]])+)"  # name, with \. for a dot inside it
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Values at a kubectl-style JSONPath: `{.status.phase}`, `spec.containers[0].image`,
    `.status.conditions[?(@.type=="Ready")].status`, `items[*].metadata.name`."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.lstrip("$").lstrip(".")
    tokens = _PATH_TOKEN.findall(text)
    if not tokens and text:
        raise K8sError(f"cannot read field path {path!r}")
    current = [obj]
    for filt_key, filt_val, index, quoted, plain in tokens:
        name = quoted or plain.replace("\\.", ".")
        nxt: list[Any] = []
        for value in current:
            if name:
                if isinstance(value, Mapping) and name in value:
                    nxt.append(value[name])
            elif index == "*":
                nxt += (
                    list(value)
                    if isinstance(value, list)
                    else list(value.values())
                    if isinstance(value, Mapping)
                    else []
                )
            elif index:
                if isinstance(value, list) and -len(value) <= int(index) < len(value):
                    nxt.append(value[int(index)])
            else:
                items = value if isinstance(value, list) else []
                nxt += [
                    i
                    for i in items
                    if isinstance(i, Mapping) and str(_dig(i, filt_key)) == filt_val
                ]
        current = nxt
    return current


def _dig(obj: Mapping[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _same(actual: Any, want: Any) -> bool:
    if isinstance(actual, bool) or isinstance(want, bool):
        return str(actual).lower() == str(want).lower()
    try:
        return float(actual) == float(want)
    except (TypeError, ValueError):
        return str(actual) == str(want)


def condition_met(obj: Mapping[str, Any], condition: str) -> tuple[bool, str]:
    """(met, what it is now) for `Available`, `Ready=False` (types compared case-insensitively)."""
    ctype, _, want = condition.partition("=")
    want = want or "True"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if str(c.get("type", "")).lower() == ctype.strip().lower():
            now = f"{c.get('type')}={c.get('status')}"
            why = ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
            return str(c.get("status")).lower() == want.strip().lower(), now + (
                f" ({why})" if why else ""
            )
    return False, f"no {ctype} condition yet"


def field_met(obj: Mapping[str, Any], path: str, want: Any) -> tuple[bool, str]:
    values = jsonpath(obj, path)
    if not values:
        return False, f"{path} is not set"
    shown = values[0] if len(values) == 1 else values
    if want is None:
        return all(v not in (None, "", [], {}) for v in values), f"{path} is {shown!r}"
    return all(_same(v, want) for v in values), f"{path} is {shown!r}"


@plugin.action(check=True, idempotent=True, observes=True)
def wait(ctx: ActionContext, args: WaitArgs) -> Result:
    """Wait until objects meet a condition, have a field value, or are deleted (kubectl wait)."""
    s = session(ctx, args)
    clock = Clock(ctx, args.timeout)
    by_host = ctx.host.vars.get("k8s_name") and not (args.kind or args.label_selector is not None)
    ref: Ref | None
    if args.name or by_host:
        ref = base = _object(s, args, None)
    else:
        ref, base = None, s.ref(args.kind or "pods", None, api_version=args.api_version)
    goal = (
        f"condition {args.condition}"
        if args.condition
        else "deletion"
        if args.deleted
        else f"{args.field} = {args.value!r}"
        if args.value is not None
        else f"{args.field} to be set"
    )
    last = ""

    def fetch() -> list[dict[str, Any]]:
        timeout = clock.request_timeout()
        if ref is None:
            return s.list(base, label_selector=args.label_selector, timeout=timeout)
        obj = s.get_or_none(ref, timeout=timeout) if args.deleted else s.get(ref, timeout=timeout)
        return [] if obj is None else [obj]

    while True:
        objs = clock.poll(fetch)
        verdicts = [_verdict(o, args) for o in objs]
        pending = [(o, why) for o, (ok, why) in zip(objs, verdicts) if not ok]
        if args.deleted and not objs or objs and not pending and not args.deleted:
            what = (
                str(ref)
                if ref is not None
                else f"{len(objs)} {base.resource.plural}"
                + (f" ({args.label_selector})" if args.label_selector else "")
            )
            return Result.ok(
                msg=f"{what}: {goal} after {clock.elapsed():.1f}s",
                data={
                    "objects": [strip(o) for o in objs],
                    "object": strip(objs[0]) if len(objs) == 1 else None,
                    "seconds": round(clock.elapsed(), 1),
                },
            )
        now = (
            "; ".join(f"{_describe_ref(base, o)}: {why}" for o, why in pending[:3])
            or f"no {base.resource.plural} match {args.label_selector or '(any)'}"
        )
        if ctx.check_mode:  # nothing we did changes anything: look once, do not wait
            return Result.unknown(
                f"not {goal} now: {now}; a real run waits up to {clock.limit:g}s",
                data={"objects": [strip(o) for o in objs]},
            )
        if now != last:
            ctx.output(now)
            last = now
        if not clock.wait(POLL):
            what = (
                str(ref)
                if ref is not None
                else f"{base.resource.plural} in {base.namespace}"
                + (f" matching {args.label_selector}" if args.label_selector else "")
            )
            return _timed_out(
                f"timed out after {clock.elapsed():.0f}s waiting for {what}: {goal}; now {now}",
                data={"objects": [strip(o) for o in objs]},
            )


def _verdict(obj: Mapping[str, Any], args: WaitArgs) -> tuple[bool, str]:
    if args.deleted:
        return False, "still exists" + (
            " (terminating)" if _meta(obj).get("deletionTimestamp") else ""
        )
    if args.condition:
        return condition_met(obj, args.condition)
    return field_met(obj, args.field or "", args.value)


def _describe_ref(base: Ref, obj: Mapping[str, Any]) -> str:
    return f"{base.resource.label} {_key(obj)}"


# --------------------------------------------------------------------------- inventory


def _group(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def k8s_inventory(
    kubeconfig: str | None,
    context: str | None = None,
    nodes: bool = True,
    pods_selector: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Nodes and pods as an Ansible `--list` inventory (JSON shape).

    Nodes always when `nodes`; pods when `pods_selector` is given ("" = every pod) or a
    `namespace` is. Hosts carry `k8s_kind`, `k8s_name`, `k8s_namespace`, `k8s_labels`,
    `k8s_kubeconfig`/`k8s_context` (so k8s actions on them reach the same cluster) and
    `ansible_host` (node InternalIP, pod IP). Groups: `k8s_nodes`, `k8s_pods`,
    `k8s_nodes_ready`/`k8s_nodes_not_ready`/`k8s_nodes_cordoned`, `namespace_<ns>`,
    `app_<app.kubernetes.io/name or app>`, `zone_<zone>`, `pods_on_<node>`.
    """
    from types import SimpleNamespace

    conn = SimpleNamespace(kubeconfig=kubeconfig, context=context, as_user=None, as_groups=None)
    cluster = clusters.get(settings_for(conn, {}))
    node_list: list[dict[str, Any]] = []
    pod_list: list[dict[str, Any]] = []
    if nodes:
        node_list = cluster.request("GET", "/api/v1/nodes").get("items") or []
    if pods_selector is not None or namespace is not None:
        path = cluster.resource("pods").path(namespace)
        pod_list = (
            cluster.request("GET", path, query={"labelSelector": pods_selector or None}).get(
                "items"
            )
            or []
        )
    return inventory_from(
        node_list,
        pod_list,
        {"k8s_kubeconfig": cluster.settings.kubeconfig, "k8s_context": cluster.context},
    )


@plugin.inventory("k8s")
def k8s_inventory_source(query: dict[str, list[str]]) -> dict[str, Any]:
    """`-i 'k8s://?context=prod&pods=app=web&namespace=shop'`: nodes and pods as hosts.

    Query keys: `kubeconfig` (default $KUBECONFIG, ~/.kube/config, in-cluster), `context`,
    `nodes=0` to leave the nodes out, `pods` (a label selector; `*` for every pod) and
    `namespace` (only that namespace's pods; alone, all of them)."""

    def one(key: str) -> str | None:
        values = query.get(key) or []
        return values[-1] if values else None

    pods = one("pods")
    return k8s_inventory(
        one("kubeconfig"),
        context=one("context"),
        nodes=(one("nodes") or "1").lower() not in ("0", "false", "no"),
        pods_selector="" if pods == "*" else pods,
        namespace=one("namespace"),
    )


def inventory_from(
    node_list: Sequence[Mapping[str, Any]],
    pod_list: Sequence[Mapping[str, Any]],
    common: Mapping[str, Any],
) -> dict[str, Any]:
    """The `--list` document for these nodes and pods (pure: unit-tested without a cluster)."""
    groups: dict[str, list[str]] = {"k8s_nodes": [], "k8s_pods": []}
    hostvars: dict[str, dict[str, Any]] = {}

    def add(group: str, host: str) -> None:
        members = groups.setdefault(_group(group), [])
        if host not in members:
            members.append(host)

    zones: dict[str, str] = {}
    for node in node_list:
        meta, st = _meta(node), node.get("status") or {}
        name, labels = meta["name"], dict(meta.get("labels") or {})
        ip = next(
            (a["address"] for a in st.get("addresses") or [] if a.get("type") == "InternalIP"), None
        )
        ready = _conditions(node).get("Ready", {}).get("status") == "True"
        cordoned = bool((node.get("spec") or {}).get("unschedulable"))
        zone = labels.get("topology.kubernetes.io/zone")
        hostvars[name] = {
            k: v
            for k, v in {
                **common,
                "k8s_kind": "node",
                "k8s_name": name,
                "k8s_node": name,
                "k8s_labels": labels,
                "k8s_ready": ready,
                "k8s_unschedulable": cordoned,
                "k8s_zone": zone,
                "ansible_host": ip,
            }.items()
            if v is not None
        }
        add("k8s_nodes", name)
        add("k8s_nodes_ready" if ready else "k8s_nodes_not_ready", name)
        if cordoned:
            add("k8s_nodes_cordoned", name)
        if zone:
            zones[name] = zone
            add(f"zone_{zone}", name)
    for pod in pod_list:
        meta, spec, st = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
        labels = dict(meta.get("labels") or {})
        host = f"{meta['namespace']}/{meta['name']}"
        on = spec.get("nodeName")
        app = labels.get("app.kubernetes.io/name") or labels.get("app")
        owner = _owner(pod) or {}
        hostvars[host] = {
            k: v
            for k, v in {
                **common,
                "k8s_kind": "pod",
                "k8s_name": meta["name"],
                "k8s_namespace": meta["namespace"],
                "k8s_labels": labels,
                "k8s_node": on,
                "k8s_phase": st.get("phase"),
                "k8s_ready": _pod_ready(pod),
                "k8s_owner": f"{owner['kind']}/{owner['name']}" if owner else None,
                "ansible_host": st.get("podIP"),
            }.items()
            if v is not None
        }
        add("k8s_pods", host)
        add(f"namespace_{meta['namespace']}", host)
        if app:
            add(f"app_{app}", host)
        if on:
            add(f"pods_on_{on}", host)
            if on in zones:
                add(f"zone_{zones[on]}", host)
    doc: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    doc["all"] = {"children": sorted(["ungrouped", *groups])}
    for name, members in sorted(groups.items()):
        doc[name] = {"hosts": members}
    doc["ungrouped"] = {"hosts": []}
    return doc


# --------------------------------------------------------------------------- more actions
# Action families in their own modules register on this plugin when it is imported
# (logs, exec, revisions, taints, Services); they import what they share from here.
from opsbook_plugins import (  # noqa: E402,F401  (registration side effect)
    k8s_exec,
    k8s_placement,
    k8s_logs,
    k8s_rollout,
    k8s_service,
    k8s_taint,
    k8s_target,
)
