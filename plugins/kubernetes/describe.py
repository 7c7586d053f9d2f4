"""k8s.get (an object or a list into `register`) and k8s.describe (kubectl-like describe
text of a workload, pod or node, with its pods and events, saved as evidence)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from opsbook.plugin import (
    ActionContext,
    HostInfo,
    Result,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import _Obj, _object, session
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.events import (
    EventsArgs,
    _own_dest,
    _safe,
    _save,
    collect_events,
    event_rows,
    events_table,
)
from opsbook_plugins.kubernetes.objects import (
    _finished,
    _meta,
    _n,
    _owner,
    _pod_problem,
    _pod_ready,
    _selector,
    strip,
)
from opsbook_plugins.kubernetes.rollout import _WORKLOADS
from pydantic import Field

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
