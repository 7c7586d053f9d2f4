"""k8s.logs: container logs of a pod, or of every pod of a workload, as evidence and data.

The logs come from the kubelet through the API server (`GET .../pods/<pod>/log`, what
`kubectl logs` reads): `container`, `previous`, `since`, `tail` and a size cap (`limit_bytes`,
sent to the kubelet as limitBytes, so a chatty container cannot fill the evidence folder).
One evidence file per pod and container; `register` gets every file's lines and path.
Read-only: it runs in check mode as in a real run.
"""

from __future__ import annotations

from typing import Any

from opsbook.model import parse_duration
from opsbook.plugin import ActionContext, Result
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import _Obj, _object, session
from opsbook_plugins.kubernetes.errors import _BY_STATUS, ApiError, K8sError
from opsbook_plugins.kubernetes.events import _safe, _save
from opsbook_plugins.kubernetes.objects import _n, _now, _selector
from opsbook_plugins.kubernetes.rollout import _WORKLOADS
from pydantic import Field

MAX_PODS = 10  # pods of a workload whose logs are collected, at most (newest first)
TEXT_CAP = 64 * 1024  # characters of log text kept in `register` (the files keep all)


class LogsArgs(_Obj):
    """Logs of a pod (kind: defaults to pod) or of every pod of a Deployment/StatefulSet/DaemonSet."""

    container: str | None = Field(
        None, description="one container (default: every container of the pod)"
    )
    previous: bool = Field(
        False, description="the previous, crashed instance of the container (kubectl logs -p)"
    )
    since: str | None = Field(None, description="only lines newer than this (15m, 1h)")
    tail: int | None = Field(None, ge=0, description="only the last N lines")
    limit_bytes: int = Field(
        1 << 20, ge=1, description="at most this many bytes per container (default 1 MiB)"
    )
    timestamps: bool = Field(False, description="prefix each line with its RFC3339 time")
    max_pods: int = Field(MAX_PODS, ge=1, description="a workload's pods read, at most")
    dest: str | None = Field(
        None,
        description="evidence folder, relative to the run's (default: k8s/<namespace>/logs/); "
        "files are <pod>.<container>[.previous].log",
    )


def _pods(s: Any, args: LogsArgs) -> tuple[str, list[dict[str, Any]]]:
    """(what the logs are of, the pods): the pod itself, or a workload's pods."""
    ref = _object(s, args, "pod")
    if ref.resource.kind == "Pod":
        return str(ref), [s.get(ref)]
    if ref.resource.kind not in _WORKLOADS and ref.resource.kind not in ("ReplicaSet", "Job"):
        raise K8sError(
            f"logs come from pods or from workloads (deployment, statefulset, daemonset, "
            f"replicaset, job), not {ref.resource.plural}"
        )
    obj = s.get(ref)
    pods = s.list(s.ref("pods", None, ref.namespace), label_selector=_selector(obj))
    if not pods:
        raise K8sError(f"{ref} has no pods (selector {_selector(obj)}): no logs to read")
    pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    return str(ref), pods[: args.max_pods]


def _unscheduled(pod: dict[str, Any]) -> str:
    """Why a pod has no node: the scheduler's PodScheduled condition, as kubectl shows it."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") != "True":
            return f"not scheduled: {cond.get('reason') or '?'}: {cond.get('message') or ''}".strip()
    return "not scheduled yet"


def _containers(pod: dict[str, Any], wanted: str | None) -> list[str]:
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted is None:
        return names
    if wanted not in names:
        from opsbook_plugins.kubernetes.errors import did_you_mean

        meta = pod.get("metadata") or {}
        raise K8sError(
            f'pod {meta.get("namespace")}/{meta.get("name")} has no container "{wanted}"'
            f"{did_you_mean(wanted, names)}; containers: {', '.join(names)}"
        )
    return [wanted]


def read_log(
    s: Any, pod: dict[str, Any], container: str, args: LogsArgs, timeout: float | None = None
) -> tuple[str, bool]:
    """One container's log text (and whether the size cap cut it), via the API server."""
    meta = pod.get("metadata") or {}
    ref = s.ref("pods", meta.get("name"), meta.get("namespace"))
    since = int(parse_duration(args.since)) if args.since else None
    query = {
        "container": container,
        "previous": "true" if args.previous else None,
        "sinceSeconds": max(1, since) if since is not None else None,
        "tailLines": args.tail,
        "limitBytes": args.limit_bytes,
        "timestamps": "true" if args.timestamps else None,
    }
    status, text, _ = s.cluster.raw(ref.path("log"), query=query, timeout=timeout)
    if status != 200:
        import json

        try:
            body = json.loads(text)
        except ValueError:
            body = {"message": text.strip()[:300]}
        message = str(body.get("message") or f"HTTP {status}")
        cls = _BY_STATUS.get(status, ApiError)
        exc = cls(message, status, str(body.get("reason") or ""), body)
        if args.previous and status in (400, 404) and "previous" in message:
            raise K8sError(
                f"{ref}, container {container}: no previous instance to read "
                f"(it has not restarted): {message}"
            )
        from opsbook_plugins.kubernetes.errors_explained import explain

        raise explain(s, exc, "get", ref, sub="log")
    return text, len(text.encode()) >= args.limit_bytes


@plugin.action(check=True, idempotent=True, observes=True)
def logs(ctx: ActionContext, args: LogsArgs) -> Result:
    """Save container logs (a pod's, or every pod of a workload) as evidence; `register` gets the lines."""
    s = session(ctx, args)
    what, pods = _pods(s, args)
    folder = (args.dest or f"k8s/{_safe(s.namespace)}/logs").rstrip("/")
    collected: list[dict[str, Any]] = []
    evidence = []
    skipped: list[dict[str, Any]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not (pod.get("spec") or {}).get("nodeName"):
            # no kubelet has it: nothing to read, and an SRE should know why
            why = _unscheduled(pod)
            skipped.append({"pod": meta.get("name"), "namespace": meta.get("namespace"), "reason": why})
            ctx.output(f"pod {meta.get('name')}: no logs, {why}")
            continue
        for container in _containers(pod, args.container):
            text, cut = read_log(s, pod, container, args, ctx.deadline_left())
            name = f"{_safe(meta.get('name'))}.{_safe(container)}{'.previous' if args.previous else ''}.log"
            header = (
                f"# logs of pod {meta.get('namespace')}/{meta.get('name')}, container {container}"
                f"{' (previous instance)' if args.previous else ''}"
                f"{f', since {args.since}' if args.since else ''}"
                f"{f', last {args.tail} lines' if args.tail is not None else ''}, cluster "
                f"{s.label}, collected {_now().isoformat(timespec='seconds')}"
                f"{f'; cut at {args.limit_bytes} bytes' if cut else ''}\n"
            )
            ev = _save(
                ctx,
                f"{folder}/{name}",
                header + text,
                f"k8s {s.cluster.context}: logs of {meta.get('name')}/{container}",
                f"logs of {meta.get('name')}/{container}",
            )
            evidence.append(ev)
            lines = text.splitlines()
            collected.append(
                {
                    "pod": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "container": container,
                    "previous": args.previous,
                    "lines": lines,
                    "bytes": len(text.encode()),
                    "truncated": cut,
                    "path": ev.path,
                }
            )
    text = "".join(
        f"==> {c['pod']}/{c['container']} <==\n" + "\n".join(c["lines"]) + "\n" for c in collected
    )
    total = sum(len(c["lines"]) for c in collected)
    cut = [f"{c['pod']}/{c['container']}" for c in collected if c["truncated"]]
    note = f"; cut at {args.limit_bytes} bytes: {', '.join(cut)}" if cut else ""
    if skipped:
        note += f"; {_n(len(skipped), 'pod')} without logs (not scheduled): " + ", ".join(
            f"{p['pod']} ({p['reason']})" for p in skipped[:3]
        )
    return Result.ok(
        evidence=evidence,
        stdout=text[:TEXT_CAP],
        msg=f"saved logs of {what}: {_n(len(collected), 'container')}, {_n(total, 'line')} "
        f"in {folder}/{note}",
        data={
            "logs": collected,
            "count": len(collected),
            "lines": total,
            "folder": folder,
            "unscheduled": skipped,
        },
    )
