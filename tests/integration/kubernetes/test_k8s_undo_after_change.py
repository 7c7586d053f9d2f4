"""A Kubernetes change that then fails its own wait keeps its rollback (issue 29 item 1).

Each test: a real change on the lab's control plane, then a failure or a timeout after it; the
run ends failed, its rollback ran, and the object read back from the API server is where it
was before the run."""

from __future__ import annotations

import pytest
from k8s_testlib import TAINT, wait_for

pytestmark = pytest.mark.k8s


def _rollbacks(journal_path, run_id):
    from opsbook.journal import Journal

    journal = Journal(journal_path)
    try:
        return [(r["action"], r["status"]) for r in journal.rollbacks(run_id)]
    finally:
        journal.close()


@pytest.fixture
def nodes(k8s_env):
    k8s_env.uncordon_all()
    yield k8s_env.nodes
    k8s_env.uncordon_all()


@pytest.fixture
def spread(k8s_env, nodes):
    """Three replicas, at most one per node (required anti-affinity), on our three nodes:
    a fourth replica has nowhere to go (Pending, Unschedulable)."""
    labels = {"app.kubernetes.io/name": "spread"}
    k8s_env.deployment("spread", replicas=3, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}})
    yield "spread"
    k8s_env.delete_deployment("spread")


def test_scale_whose_wait_times_out_is_scaled_back(k8s_env, spread, run_book, tmp_path):
    summary, nodes, _ = run_book(f"""
        opsbook: 1
        name: scale-up
        steps:
          - name: scale up
            k8s.scale: {{name: {spread}, namespace: {k8s_env.ns}, replicas: 6, wait: true, timeout: 4s}}
        """)
    assert summary.status == "failed"
    scaled = nodes["scale-up"]
    assert scaled.status == "timed_out" and scaled.changed, scaled.msg
    assert scaled.msg.startswith(f"scaled deployment {k8s_env.ns}/{spread} from 3 to 6 replicas; rollout")
    assert "Unschedulable" in scaled.msg
    assert summary.rolled_back == 1
    assert _rollbacks(tmp_path / "journal.db", summary.run_id) == [("k8s.scale", "done")]
    dep = k8s_env.apps.read_namespaced_deployment(spread, k8s_env.ns)
    assert dep.spec.replicas == 3
    wait_for("the extra pods gone", lambda: len(k8s_env.pods(spread)) == 3)


def test_scale_cut_by_the_steps_timeout_is_scaled_back(k8s_env, spread, run_book, tmp_path):
    """The step's `timeout:` (not the action's) ends the wait: the undo recorded before the
    wait is what rolls it back."""
    summary, nodes, _ = run_book(f"""
        opsbook: 1
        name: scale-up
        steps:
          - name: scale up
            k8s.scale: {{name: {spread}, namespace: {k8s_env.ns}, replicas: 5, wait: true}}
            timeout: 3s
        """)
    assert summary.status == "failed" and nodes["scale-up"].status == "timed_out"
    assert summary.rolled_back == 1
    assert k8s_env.apps.read_namespaced_deployment(spread, k8s_env.ns).spec.replicas == 3


def test_apply_that_fails_after_changing_an_object_runs_its_rollback(k8s_env, run_book):
    k8s_env.core.create_namespaced_config_map(
        k8s_env.ns, {"metadata": {"name": "undo-cm"}, "data": {"mode": "normal"}})
    try:
        summary, nodes, _ = run_book(f"""
            opsbook: 1
            name: apply-two
            steps:
              - name: apply the fix
                k8s.apply:
                  namespace: {k8s_env.ns}
                  force_conflicts: true
                  manifest:
                    - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: undo-cm}}, data: {{mode: degraded}}}}
                    - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: other, namespace: no-such-ns-{k8s_env.tag}}}}}
                rollback:
                  k8s.apply:
                    namespace: {k8s_env.ns}
                    force_conflicts: true
                    manifest: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: undo-cm}}, data: {{mode: normal}}}}
            """)
        assert summary.status == "failed"
        applied = nodes["apply-the-fix"]
        assert applied.status == "failed" and applied.changed, applied.msg
        assert f"applied before it: configmap {k8s_env.ns}/undo-cm configured" in applied.msg
        assert summary.rolled_back == 1
        cm = k8s_env.core.read_namespaced_config_map("undo-cm", k8s_env.ns)
        assert cm.data == {"mode": "normal"}
    finally:
        k8s_env.core.delete_namespaced_config_map("undo-cm", k8s_env.ns)


def test_patch_whose_rollout_fails_is_patched_back(k8s_env, nodes, run_book):
    k8s_env.deployment("patched", replicas=1)
    try:
        summary, steps, _ = run_book(f"""
            opsbook: 1
            name: patch-then-wait
            steps:
              - name: pin to new nodes
                k8s.patch:
                  kind: deployment
                  name: patched
                  namespace: {k8s_env.ns}
                  type: merge
                  patch: {{spec: {{template: {{spec: {{nodeSelector: {{"opsbook.dev/nowhere": "true"}}}}}}}}}}
                rollback:
                  k8s.patch:
                    kind: deployment
                    name: patched
                    namespace: {k8s_env.ns}
                    type: merge
                    patch: {{spec: {{template: {{spec: {{nodeSelector: {{"opsbook.dev/nowhere": null, "{TAINT}": "{k8s_env.tag}"}}}}}}}}}}
              - name: it rolls out
                k8s.rollout_status: {{name: patched, namespace: {k8s_env.ns}, timeout: 3s}}
            """)
        assert summary.status == "failed" and steps["it-rolls-out"].status == "timed_out"
        assert summary.rolled_back == 1
        dep = k8s_env.apps.read_namespaced_deployment("patched", k8s_env.ns)
        assert dep.spec.template.spec.node_selector == k8s_env.selector
        k8s_env.wait_available("patched", 1)
    finally:
        k8s_env.delete_deployment("patched")


@pytest.fixture
def bare_pod(k8s_env, nodes):
    """A pod no controller would recreate, on nodes[0]: a drain without force refuses it."""
    k8s_env.core.create_namespaced_pod(k8s_env.ns, {
        "metadata": {"name": "bare"},
        "spec": {"nodeName": nodes[0], "containers": [{"name": "app", "image": "registry.lab/app:1"}],
                 "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                 "terminationGracePeriodSeconds": 0}})
    yield nodes[0]
    k8s_env.core.delete_namespaced_pod("bare", k8s_env.ns, grace_period_seconds=0)


def test_a_drain_refused_after_cordoning_is_uncordoned(k8s_env, bare_pod, run_book, tmp_path):
    node = bare_pod
    summary, nodes, _ = run_book(f"""
        opsbook: 1
        name: drain
        steps:
          - name: drain it
            k8s.drain: {{node: {node}, timeout: 30s}}
        """)
    assert summary.status == "failed"
    drained = nodes["drain-it"]
    assert drained.status == "failed" and drained.changed
    assert "no controller would recreate it" in drained.msg
    assert _rollbacks(tmp_path / "journal.db", summary.run_id) == [("k8s.uncordon", "done")]
    assert not k8s_env.node(node).spec.unschedulable


def test_a_drain_timed_out_by_a_budget_is_uncordoned(k8s_env, nodes, run_book):
    k8s_env.deployment("guarded", replicas=2, pdb_min=2)
    try:
        wait_for("the budget sees 2 healthy", lambda: k8s_env.policy.read_namespaced_pod_disruption_budget(
            "guarded", k8s_env.ns).status.current_healthy == 2)
        node = k8s_env.ready_pods("guarded")[0].spec.node_name
        summary, steps, _ = run_book(f"""
            opsbook: 1
            name: drain
            steps:
              - name: drain it
                k8s.drain: {{node: {node}, timeout: 3s}}
            """)
        assert summary.status == "failed"
        drained = steps["drain-it"]
        assert drained.status == "timed_out" and "blocked by PodDisruptionBudget" in drained.msg
        assert summary.rolled_back == 1
        assert not k8s_env.node(node).spec.unschedulable
        assert len(k8s_env.ready_pods("guarded")) == 2
    finally:
        k8s_env.delete_deployment("guarded")
