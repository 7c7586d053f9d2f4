"""Helpers of the k8s plugin's tests against the lab's real control plane.

Every test works in its own corner of the shared cluster, so tests of other areas (and
other runs) running at the same time are not disturbed and do not disturb us:

* a namespace ``opsbook-k8s-<tag>`` (deleted at the end);
* three kwok nodes ``opsbook-k8s-<tag>-n0..n2``, tainted ``opsbook.dev/k8s-test=<tag>``
  so that only our pods (which tolerate the taint and select the nodes) land there; the
  drain and cordon tests use only these nodes.

Setup and assertions use the official client directly (not the plugin under test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsbook.plugin import Result
from opsbook_lab.pytest_plugin import wait_for

TAINT = "opsbook.dev/k8s-test"


@dataclass
class Env:
    """Our namespace and nodes on the lab cluster, with official API clients."""

    kubeconfig: str
    restricted: str
    server: str
    tag: str
    ns: str
    nodes: list[str]
    api: Any  # kubernetes.client.ApiClient (admin)
    core: Any
    apps: Any
    policy: Any
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def selector(self) -> dict[str, str]:
        return {TAINT: self.tag}

    # -- workloads -----------------------------------------------------------------------
    def deployment_body(self, name: str, replicas: int = 2, **template: Any) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": name, "opsbook.dev/test": self.tag}
        spec = {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.lab/app:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
            "nodeSelector": dict(self.selector),
            "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                }
            ],
        }
        spec.update(template)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.ns, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
        }

    def deployment(
        self,
        name: str,
        replicas: int = 2,
        pdb_min: int | None = None,
        wait: bool = True,
        **template: Any,
    ) -> dict[str, Any]:
        body = self.deployment_body(name, replicas, **template)
        self.apps.create_namespaced_deployment(self.ns, body)
        if pdb_min is not None:
            self.policy.create_namespaced_pod_disruption_budget(
                self.ns,
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": name, "namespace": self.ns},
                    "spec": {
                        "minAvailable": pdb_min,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    },
                },
            )
        if wait:
            self.wait_available(name, replicas)
        return body

    def wait_available(self, name: str, replicas: int, timeout: float = 60.0) -> None:
        def ready() -> bool:
            d = self.apps.read_namespaced_deployment(name, self.ns)
            st = d.status
            return bool(
                (st.observed_generation or 0) >= d.metadata.generation
                and (st.available_replicas or 0) == replicas
                and (st.updated_replicas or 0) == replicas
                and (st.replicas or 0) == replicas
            )

        wait_for(f"deployment {self.ns}/{name} Available with {replicas} replicas", ready, timeout)
        if replicas:  # and the PDB controller has seen the pods
            wait_for(
                f"pods of {name} ready", lambda: len(self.ready_pods(name)) == replicas, timeout
            )

    def pods(self, name: str) -> list[Any]:
        return self.core.list_namespaced_pod(
            self.ns, label_selector=f"app.kubernetes.io/name={name}"
        ).items

    def ready_pods(self, name: str) -> list[Any]:
        return [
            p
            for p in self.pods(name)
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]

    def node(self, name: str) -> Any:
        return self.core.read_node(name)

    def uncordon_all(self) -> None:
        for node in self.nodes:
            self.core.patch_node(node, {"spec": {"unschedulable": None}})

    def delete_deployment(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        for call in (
            lambda: self.apps.delete_namespaced_deployment(name, self.ns),
            lambda: self.policy.delete_namespaced_pod_disruption_budget(name, self.ns),
        ):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _node_body(name: str, tag: str) -> dict[str, Any]:
    """A kwok node of one test, tainted so that only that test's pods land on it."""
    from opsbook_lab.k8s import kwok_node

    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "type": "kwok",
        TAINT: tag,
        "topology.kubernetes.io/zone": "opsbook-test-zone",
    }
    return kwok_node(name, labels, [{"key": TAINT, "value": tag, "effect": "NoSchedule"}])


def fails(result: Result) -> str:
    """The message of a result that must have failed (for asserting on its wording)."""
    from opsbook.plugin import Status

    assert result.status in (Status.FAILED, Status.TIMED_OUT), (result.status, result.msg)
    return result.msg
