"""The `k8s://` inventory source and `k8s_inventory()`: hosts for a cluster's nodes,
workloads and pods, grouped, carrying the `k8s_kind`/`k8s_name`/`k8s_namespace` vars the
actions read when no name is given."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import clusters
from opsbook_plugins.kubernetes.connection import settings_for
from opsbook_plugins.kubernetes.objects import _conditions, _meta, _owner, _pod_ready

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
