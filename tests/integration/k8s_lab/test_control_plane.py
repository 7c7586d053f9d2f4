"""The lab's Kubernetes is real: upstream apiserver/controllers/scheduler with kwok nodes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from opsbook_lab import k8s
from opsbook_lab.pytest_plugin import wait_for

pytestmark = pytest.mark.k8s


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def test_server_reports_the_pinned_kubernetes_version(kube: Any, k8s_lab: k8s.K8sInfo) -> None:
    from kubernetes import client

    info = client.VersionApi(kube).get_code()
    assert info.git_version == k8s_lab.versions["KUBERNETES_VERSION"]
    assert k8s_lab.server.startswith("https://127.0.0.1:")


def test_kwok_nodes_register_and_become_ready(kube: Any) -> None:
    from kubernetes import client

    nodes = {n.metadata.name: n for n in client.CoreV1Api(kube).list_node().items}
    assert {name for name, _, _ in k8s.NODES} <= set(nodes)
    for name, zone, _ in k8s.NODES:
        node = nodes[name]
        assert _ready(node), f"{name} not Ready: {node.status.conditions}"
        assert node.metadata.labels.get("topology.kubernetes.io/zone") == zone
    zones = {n.metadata.labels.get("topology.kubernetes.io/zone") for n in nodes.values()}
    assert {"lab-zone-a", "lab-zone-b"} <= zones


def test_seeded_deployments_are_available_with_running_pods_spread(kube: Any) -> None:
    from kubernetes import client

    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    for ns, name, replicas, _, _ in k8s.DEPLOYMENTS:
        d = apps.read_namespaced_deployment(name, ns)
        assert d.status.available_replicas == replicas, (ns, name, d.status)
        available = {c.type: c.status for c in d.status.conditions}.get("Available")
        assert available == "True"
        pods = core.list_namespaced_pod(ns, label_selector=f"app.kubernetes.io/name={name}").items
        running = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
        assert len(running) >= replicas
        if replicas >= 3:
            assert len({p.spec.node_name for p in running}) >= 2, "replicas not spread"


def test_seeded_service_pdb_and_configmaps_exist(kube: Any) -> None:
    from kubernetes import client

    core, policy = client.CoreV1Api(kube), client.PolicyV1Api(kube)
    svc = core.read_namespaced_service("frontend", "shop")
    assert svc.spec.cluster_ip and svc.spec.cluster_ip.startswith("10.96.")
    pdb = policy.read_namespaced_pod_disruption_budget("frontend", "shop")
    assert pdb.spec.min_available == 2
    wait_for(
        "PDB status",
        lambda: (
            policy.read_namespaced_pod_disruption_budget("frontend", "shop").status.current_healthy
            == 3
        ),
        timeout=90,
    )
    assert core.read_namespaced_config_map("api-config", "payments").data["LOG_LEVEL"] == "info"
    # the endpointslice controller really runs: the Service has ready endpoints. It updates the
    # slices on its own, after the disruption controller counted the pods healthy (CI once read
    # 2 of 3 right after the PDB showed 3), so the slices get the same wait as the PDB.
    def ready_endpoints() -> int:
        slices = (
            client.DiscoveryV1Api(kube)
            .list_namespaced_endpoint_slice(
                "shop", label_selector="kubernetes.io/service-name=frontend"
            )
            .items
        )
        return len([e for s in slices for e in s.endpoints or [] if e.conditions.ready])

    wait_for("3 ready endpoints of Service shop/frontend", lambda: ready_endpoints() == 3, timeout=90)


def test_rollout_restart_creates_a_new_replicaset_that_becomes_available(kube: Any) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(kube)
    ns, name = "shop", "cart"
    selector = f"app.kubernetes.io/name={name}"
    before = {
        rs.metadata.labels["pod-template-hash"]
        for rs in apps.list_namespaced_replica_set(ns, label_selector=selector).items
    }
    stamp = dt.datetime.now(dt.UTC).isoformat()
    # exactly what `kubectl rollout restart` sends
    apps.patch_namespaced_deployment(
        name,
        ns,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        },
    )

    def rolled_out() -> Any:
        d = apps.read_namespaced_deployment(name, ns)
        st = d.status
        done = (
            st.observed_generation >= d.metadata.generation
            and st.updated_replicas == d.spec.replicas
            and st.available_replicas == d.spec.replicas
            and (st.replicas or 0) == d.spec.replicas
        )
        return d if done else None

    d = wait_for("rollout of shop/cart", rolled_out, timeout=120)
    rss = apps.list_namespaced_replica_set(ns, label_selector=selector).items
    new = [rs for rs in rss if rs.metadata.labels["pod-template-hash"] not in before]
    assert len(new) == 1, [rs.metadata.name for rs in rss]
    assert new[0].status.available_replicas == d.spec.replicas
    assert new[0].spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == stamp
    old = [rs for rs in rss if rs.metadata.labels["pod-template-hash"] in before]
    assert all((rs.spec.replicas or 0) == 0 for rs in old)


def test_restricted_kubeconfig_is_forbidden_outside_its_grant(kube_restricted: Any) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core, apps = client.CoreV1Api(kube_restricted), client.AppsV1Api(kube_restricted)
    # authenticated and allowed to read shop (so a 403 below is RBAC, not a broken cert)
    assert core.list_namespaced_pod("shop").items
    with pytest.raises(ApiException) as nodes:
        core.list_node()
    assert nodes.value.status == 403
    with pytest.raises(ApiException) as patch:
        apps.patch_namespaced_deployment("frontend", "shop", {"spec": {"replicas": 5}})
    assert patch.value.status == 403
    with pytest.raises(ApiException) as other_ns:
        core.list_namespaced_pod("payments")
    assert other_ns.value.status == 403


def test_up_again_reuses_the_running_control_plane(k8s_lab: k8s.K8sInfo) -> None:
    again = k8s.up(wait_workload=False)
    assert again.started is False
    assert again.server == k8s_lab.server
    assert again.pids["etcd"] == k8s_lab.pids["etcd"]
    assert k8s.status().running and k8s.status().ready


def test_restart_apiserver_comes_back_with_state_intact(kube: Any) -> None:
    from kubernetes import client

    old = k8s.status().pids["kube-apiserver"]
    info = k8s.restart_apiserver()
    assert info.pids["kube-apiserver"] != old
    assert k8s.status().ready
    d = client.AppsV1Api(kube).read_namespaced_deployment("frontend", "shop")
    assert d.spec.replicas == 3


def test_kwok_serves_container_logs_and_exec_through_the_api_server(kube: Any) -> None:
    """kubectl logs and kubectl exec of a seeded pod, answered by kwok's ClusterLogs and
    ClusterExec (the lab's kwok configuration) via the API server's kubelet proxy."""
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(kube)
    pod = core.list_namespaced_pod("shop", label_selector="app.kubernetes.io/name=cart").items[0]
    marker = f"lab log line {dt.datetime.now(dt.UTC).timestamp()}"
    with open(k8s.container_log("cart"), "a") as fh:
        fh.write(k8s.cri_line(marker))
    text = core.read_namespaced_pod_log(pod.metadata.name, "shop", container="cart", tail_lines=1)
    assert text == marker + "\n"
    previous = core.read_namespaced_pod_log(pod.metadata.name, "shop", previous=True)
    assert "panic" in previous
    out = stream(
        core.connect_get_namespaced_pod_exec,
        pod.metadata.name,
        "shop",
        command=["sh", "-c", "cat VERSION; echo $OPSBOOK_LAB"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert out == "opsbook-lab kwok container\nkwok\n"
