"""k8s.wait: poll an object until a condition, a JSONPath field value, or its deletion, with
a deadline; the small JSONPath reader it uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsbook.plugin import (
    ActionContext,
    Result,
    Seconds,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, POLL, _Obj, _object, session
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.objects import Clock, _key, _meta, _timed_out, strip
from pydantic import Field, model_validator

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
