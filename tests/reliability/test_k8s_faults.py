"""Kubernetes faults through whole runs: the API server restarts in the middle of a rollout
watch and a read, a conflicting patch (409), evictions refused by a PodDisruptionBudget (429).

Everything happens in a namespace and on kwok nodes of our own (tainted, so only our pods land
there), on the lab's control plane (fixture ``k8s_lab``). The API server restart is the lab's
own fault helper (`opsbook_lab.k8s.restart_apiserver`, by PID); it is back before the test ends.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from opsbook_lab.k8s_pytest import kubernetes_client
from relkit import Trigger

pytestmark = pytest.mark.k8s

_LIB = Path(__file__).resolve().parents[1] / "integration" / "kubernetes" / "k8s_testlib.py"


def _testlib() -> Any:
    name = "opsbook_rel_k8s_testlib"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _LIB)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def kenv(k8s_lab: Any):
    """A namespace and two tainted kwok nodes of our own (removed at the end)."""
    lib = _testlib()
    kubernetes = kubernetes_client()
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = kubernetes.config.new_client_from_config(config_file=str(k8s_lab.kubeconfig))
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    tag = "rel" + secrets.token_hex(3)
    ns = f"opsbook-rel-{tag}"
    nodes = [f"opsbook-rel-{tag}-n{i}" for i in range(2)]
    core.create_namespace({"metadata": {"name": ns, "labels": {"opsbook.dev/test": tag}}})
    for name in nodes:
        core.create_node(lib._node_body(name, tag))

    def ready() -> bool:
        for name in nodes:
            conds = core.read_node(name).status.conditions or []
            if not any(c.type == "Ready" and c.status == "True" for c in conds):
                return False
        return True

    lib.wait_for("our kwok nodes Ready", ready, 60)
    env = lib.Env(str(k8s_lab.kubeconfig), str(k8s_lab.restricted_kubeconfig), k8s_lab.server, tag, ns,
                  nodes, api, core, apps, policy)
    try:
        yield env
    finally:
        for call in [lambda: core.delete_namespace(ns)] + [(lambda n=n: core.delete_node(n)) for n in nodes]:
            try:
                call()
            except ApiException:
                pass
        api.close()


def _inventory(kenv: Any) -> str:
    return f"""
        [cluster]
        lab ansible_connection=local k8s_kubeconfig={kenv.kubeconfig} k8s_namespace={kenv.ns}
        """


def _restart_apiserver(down_for: float) -> None:
    from opsbook_lab import k8s

    k8s.restart_apiserver(down_for=down_for)


@pytest.mark.slow
def test_apiserver_restart_during_rollout_status_and_get_is_retried(kenv, book):
    kenv.deployment("rolling", replicas=2)
    try:
        b = book("""
            opsbook: 1
            name: apiserver-restart
            hosts: cluster
            steps:
              - name: restart the app
                k8s.rollout_restart: {kind: deployment, name: rolling}
              - name: wait for the rollout
                k8s.rollout_status: {kind: deployment, name: rolling, timeout: 60s}
                retries: 15
                delay: 2s
              - name: read it
                needs: [restart the app]
                k8s.get: {kind: deployment, name: rolling}
                register: dep
                retries: 15
                delay: 2s
            """, inventory=_inventory(kenv),
            # 12 s down: longer than the client's own connect retries (~9 s), so the step's
            # retries are what carries the run through.
            on=[Trigger("node_finished", lambda: _restart_apiserver(12), step="restart the app")])
        b.check_triggers()
        assert b.summary.status == "succeeded", (b.summary, {k: v.msg for k, v in b.nodes().items()})
        status = b.node("wait-for-the-rollout", "lab")
        read = b.node("read-it", "lab")
        assert status.registered["done"] is True and status.registered["ready"] == 2
        assert read.registered["object"]["metadata"]["name"] == "rolling"
        assert max(status.attempts, read.attempts) >= 2, "the outage must have been retried"
        failures = [line for line in b.output("lab") if line.startswith("attempt ")]

        def names_the_server(line: str) -> bool:
            return kenv.server.removeprefix("https://") in line or "API server" in line

        # The read ran into the outage: its failures name the API server. The controllers'
        # watches come back with a back-off of their own (client-go: up to a minute), so a
        # rollout wait may also run out while the update is not yet observed; it says so.
        assert any(names_the_server(line) for line in failures), failures
        assert all(names_the_server(line) or "spec update to be observed" in line
                   for line in failures), failures
    finally:
        kenv.delete_deployment("rolling")


def _stale_patch(kenv: Any, book: Any, name: str) -> Any:
    kenv.deployment(name, replicas=1)
    live = kenv.apps.read_namespaced_deployment(name, kenv.ns)
    stale = str(int(live.metadata.resource_version) - 1)
    b = book(f"""
        opsbook: 1
        name: conflict
        hosts: cluster
        steps:
          - name: scale with a stale version
            k8s.patch:
              kind: deployment
              name: {name}
              type: merge
              patch: {{metadata: {{resourceVersion: "{stale}"}}, spec: {{replicas: 2}}}}
            retries: 2
            delay: 0.2s
        """, inventory=_inventory(kenv))
    return b.node("scale-with-a-stale-version", "lab")


def test_conflicting_patch_is_a_409_named_and_retried_as_configured(kenv, book):
    try:
        node = _stale_patch(kenv, book, "stale-web")
        assert node.status == "failed" and node.attempts == 3
        assert node.msg.startswith(f"patch deployment {kenv.ns}/stale-web: HTTP 409 Conflict: "), node.msg
        assert "the object has been modified" in node.msg
        assert kenv.apps.read_namespaced_deployment("stale-web", kenv.ns).spec.replicas == 1
    finally:
        kenv.delete_deployment("stale-web")


def test_optimistic_lock_409_is_not_explained_as_a_field_manager_conflict(kenv, book):
    try:
        node = _stale_patch(kenv, book, "conflict-monitor")
        assert node.status == "failed"
        assert "field manager" not in node.msg and "force" not in node.msg, node.msg
    finally:
        kenv.delete_deployment("conflict-monitor")


def _apply_conflict(kenv: Any, book: Any, name: str) -> Any:
    import json

    body = kenv.deployment_body(name, replicas=1)
    kenv.apps.patch_namespaced_deployment(name, kenv.ns, body, field_manager="someone-else",
                                          _content_type="application/apply-patch+yaml")
    body["spec"]["replicas"] = 2
    b = book(f"""
        opsbook: 1
        name: apply-conflict
        hosts: cluster
        steps:
          - name: apply ours
            k8s.apply:
              manifest: {json.dumps(body)}
        """, inventory=_inventory(kenv))
    return b.node("apply-ours", "lab")


def test_server_side_apply_conflict_names_the_other_manager(kenv, book):
    try:
        node = _apply_conflict(kenv, book, "owned")
        assert node.status == "failed"
        assert f"deployment {kenv.ns}/owned" in node.msg and "someone-else" in node.msg, node.msg
        assert kenv.apps.read_namespaced_deployment("owned", kenv.ns).spec.replicas == 1
    finally:
        kenv.delete_deployment("owned")


def test_server_side_apply_conflict_hint_names_the_real_argument(kenv, book):
    try:
        node = _apply_conflict(kenv, book, "owned-hint")
        assert "force_conflicts: true" in node.msg, node.msg
    finally:
        kenv.delete_deployment("owned-hint")


def test_pdb_refusing_evictions_times_the_drain_out_and_rollback_uncordons(kenv, book):
    lib = _testlib()
    kenv.deployment("guarded", replicas=2, pdb_min=2)
    try:
        lib.wait_for("PDB status", lambda: kenv.policy.read_namespaced_pod_disruption_budget(
            "guarded", kenv.ns).status.current_healthy == 2)
        node = next(p.spec.node_name for p in kenv.ready_pods("guarded"))
        b = book(f"""
            opsbook: 1
            name: drain-blocked
            hosts: cluster
            steps:
              - name: cordon
                k8s.cordon: {{node: {node}}}
              - name: drain
                k8s.drain: {{node: {node}, timeout: 4s}}
            """, inventory=_inventory(kenv))
        drain = b.node("drain", "lab")
        assert drain.status == "timed_out"
        assert f"blocked by PodDisruptionBudget {kenv.ns}/guarded" in drain.msg
        assert f"node {node} stays cordoned" in drain.msg
        assert any("refused" in line and "PodDisruptionBudget" in line for line in b.output("lab"))
        # The run failed, so the cordon step's recorded inverse ran: the node takes pods again.
        assert b.summary.status == "failed"
        assert [(r["action"], r["status"]) for r in b.rollbacks()] == [("k8s.uncordon", "done")]
        assert not kenv.node(node).spec.unschedulable
        assert len(kenv.ready_pods("guarded")) == 2
    finally:
        kenv.delete_deployment("guarded")
        kenv.uncordon_all()


def test_apiserver_down_for_good_fails_with_the_server_named(kenv, book, tmp_path):
    """No retries configured and nothing listening: a clear failure, quickly, not a hang."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "dead.yaml"
    text = Path(kenv.kubeconfig).read_text()
    import re

    kubeconfig.write_text(re.sub(r"server: https://127\.0\.0\.1:\d+", f"server: https://127.0.0.1:{port}", text))
    b = book(f"""
        opsbook: 1
        name: apiserver-gone
        hosts: cluster
        steps:
          - name: read
            k8s.get: {{kind: deployment, name: anything, kubeconfig: {kubeconfig}}}
        """, inventory=_inventory(kenv))
    node = b.node("read", "lab")
    assert node.status == "failed"
    assert f"127.0.0.1:{port}" in node.msg and "refused" in node.msg.lower(), node.msg
    assert node.finished - node.started < 20
