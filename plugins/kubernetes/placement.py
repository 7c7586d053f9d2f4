"""Where a drain's pods went: the workloads it touched and the replacements the scheduler
could not place (with the scheduler's own reason), for k8s.drain's result.

A pod whose PodScheduled condition is False has been seen by the scheduler and refused: it
is not placed, and the drain says so, with the reason and message the scheduler wrote
(`0/4 nodes are available: 1 node(s) were unschedulable, 3 node(s) had untolerated
taint ...`). The workloads are the pods' top-level controllers (a ReplicaSet's Deployment),
in every namespace, so a runbook can verify each of them after the drain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opsbook_plugins.kubernetes.errors import K8sError


def workloads_of(s: Any, pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The top-level controllers of the pods: {kind, name, namespace}, each once, sorted."""
    from opsbook_plugins.kubernetes.objects import _meta, _owner

    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    cache: dict[str, dict[str, Any] | None] = {}
    for pod in pods:
        owner = _owner(pod)
        if not owner:
            continue
        ns = _meta(pod).get("namespace") or ""
        kind, name = owner.get("kind", ""), owner.get("name", "")
        if kind == "ReplicaSet":
            key = f"{ns}/{name}"
            if key not in cache:
                try:
                    cache[key] = s.get_or_none(s.ref("replicasets", name, ns))
                except K8sError:
                    cache[key] = None
            parent = _owner(cache[key] or {})
            if parent and parent.get("kind") == "Deployment":
                kind, name = "Deployment", parent.get("name", "")
        seen[(ns, kind, name)] = {"kind": kind, "name": name, "namespace": ns}
    return [seen[k] for k in sorted(seen)]


def cannot_place(s: Any, owners: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Pods of these controllers that the scheduler refused (PodScheduled=False), with its reason."""
    from opsbook_plugins.kubernetes.objects import (
        _conditions,
        _finished,
        _key,
        _meta,
        _owner,
        _selector,
    )

    out: list[dict[str, Any]] = []
    for namespace, owner in owners:
        try:
            ref = s.ref(owner["kind"], owner["name"], namespace, owner.get("apiVersion"))
            found = s.get_or_none(ref)
            if found is None:
                continue
            pods = s.list(s.ref("pods", None, namespace), label_selector=_selector(found))
        except K8sError:
            continue
        for pod in pods:
            if (_owner(pod) or {}).get("uid") != owner.get("uid") or _finished(pod):
                continue
            if _meta(pod).get("deletionTimestamp") or (pod.get("spec") or {}).get("nodeName"):
                continue
            cond = _conditions(pod).get("PodScheduled", {})
            if cond.get("status") == "False":
                out.append(
                    {
                        "pod": _key(pod),
                        "owner": f"{owner['kind'].lower()} {namespace}/{owner['name']}",
                        "reason": cond.get("reason") or "Unschedulable",
                        "message": (cond.get("message") or "").strip(),
                    }
                )
    return out


def unplaced_text(items: list[dict[str, Any]], cap: int = 3) -> str:
    shown = "; ".join(f"{i['pod']} ({i['reason']}: {i['message']})" for i in items[:cap])
    more = f"; and {len(items) - cap} more" if len(items) > cap else ""
    return shown + more
