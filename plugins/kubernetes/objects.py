"""Object helpers shared by the action modules: the clock that bounds a wait, durations and
ages in words, and reading API objects (metadata, conditions, owners, pod readiness and
problems, label selectors) and comparing them (what an apply changed, a diff)."""

from __future__ import annotations

import datetime as dt
import difflib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opsbook.plugin import (
    ActionContext,
    Result,
    Status,
)
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, FIELD_MANAGER, POLL
from opsbook_plugins.kubernetes.errors import K8sError

T = TypeVar("T")


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
