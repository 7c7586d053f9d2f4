"""k8s.events: an object's events (and its pods' and ReplicaSets'), as a table saved as
evidence; the evidence helpers (`_save`, `_safe`, `_own_dest`) the other actions that write
files share."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from opsbook.model import parse_duration
from opsbook.plugin import (
    ActionContext,
    Evidence,
    HostInfo,
    Result,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import Session, _Obj, _object, session
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.objects import _ago, _meta, _n, _now, _owner, _selector, _ts
from pydantic import Field

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
