"""The runbooks in runbooks/kubernetes/, end to end through the real executor and the lab."""

from __future__ import annotations

from pathlib import Path

import pytest
from k8s_testlib import wait_for
from opsbook.check import check_files
from opsbook.registry import Registry

pytestmark = pytest.mark.k8s

RUNBOOKS = Path(__file__).resolve().parents[3] / "runbooks" / "kubernetes"
FIRST_RESPONSE = str(RUNBOOKS / "first-response-deployment.yaml")
DRAIN = str(RUNBOOKS / "drain-node.yaml")
APPLY_FIX = str(RUNBOOKS / "apply-fix.yaml")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _messages(nodes):
    return {step: (rec.status, rec.msg) for step, rec in nodes.items()}


def _failures(nodes):
    return "; ".join(
        f"{step}: {rec.status}: {rec.msg}" for step, rec in nodes.items() if rec.status != "ok"
    )


def test_every_kubernetes_runbook_passes_opsbook_check():
    reports = check_files([str(RUNBOOKS)], Registry.from_entry_points(), [])
    assert len(reports) == 3
    for report in reports:
        assert report.ok, (report.path, [str(d) for d in report.diagnostics])


@pytest.fixture
def checkout(k8s_env):
    k8s_env.deployment("checkout", replicas=2)
    yield "checkout"
    k8s_env.delete_deployment("checkout")


def test_first_response_collects_evidence_restarts_and_verifies(k8s_env, checkout, run_book):
    before = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    summary, nodes, evidence = run_book(
        FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout}
    )
    assert summary.status == "succeeded", _failures(nodes)
    assert all(rec.status == "ok" for rec in nodes.values()), _messages(nodes)
    folder = evidence / "k8s" / k8s_env.ns
    describe = (folder / "deployment-checkout.describe.txt").read_text()
    assert "Replicas:               2 desired" in describe  # the state before the restart
    assert "ScalingReplicaSet" in (folder / "deployment-checkout.events.txt").read_text()
    assert (folder / "deployment-checkout.yaml").exists()
    after = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    assert RESTARTED_AT in after.spec.template.metadata.annotations
    assert after.metadata.generation > before.metadata.generation
    rollout = nodes["rollout-completes"].registered
    assert rollout["ready"] == rollout["desired"] == 2 and rollout["new_replicaset"]
    assert nodes["restart-the-deployment"].changed


def test_first_response_in_check_mode_changes_nothing(k8s_env, checkout, run_book):
    summary, nodes, evidence = run_book(
        FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout}, check=True
    )
    assert summary.status == "succeeded", _failures(nodes)
    assert nodes["restart-the-deployment"].msg.startswith("would restart deployment")
    after = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    assert RESTARTED_AT not in (after.spec.template.metadata.annotations or {})
    assert (evidence / "k8s" / k8s_env.ns / "deployment-checkout.describe.txt").exists()


def test_first_response_that_cannot_recover_fails_with_counts_and_keeps_evidence(
    k8s_env, checkout, run_book
):
    # the pod template asks for nodes that do not exist: no restart can bring it back
    k8s_env.apps.patch_namespaced_deployment(
        checkout,
        k8s_env.ns,
        {"spec": {"template": {"spec": {"nodeSelector": {"opsbook.dev/nowhere": "true"}}}}},
    )
    summary, nodes, evidence = run_book(
        FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout, "rollout_timeout": "3s"}
    )
    assert summary.status == "failed"
    status, msg = _messages(nodes)["rollout-completes"]
    assert status == "timed_out"
    assert msg.startswith(
        f"rollout of deployment {k8s_env.ns}/checkout not complete after 3s: 2/2 ready"
    )
    assert "Pending: Unschedulable" in msg
    assert (evidence / "k8s" / k8s_env.ns / "deployment-checkout.events.txt").exists()
    assert "deployment-is-available" not in nodes or nodes["deployment-is-available"].status != "ok"


@pytest.fixture
def orders(k8s_env):
    k8s_env.uncordon_all()
    k8s_env.deployment("orders", replicas=3)
    yield "orders"
    k8s_env.delete_deployment("orders")
    k8s_env.uncordon_all()


def _drain_params(env, node, **extra):
    return {"node": node, "namespace": env.ns, "selector": "app.kubernetes.io/name=orders", **extra}


def test_drain_node_moves_the_workload_and_verifies_it(k8s_env, orders, run_book):
    node = k8s_env.ready_pods(orders)[0].spec.node_name
    summary, nodes, evidence = run_book(DRAIN, _drain_params(k8s_env, node))
    assert summary.status == "succeeded", _failures(nodes)
    assert k8s_env.node(node).spec.unschedulable
    pods = k8s_env.ready_pods(orders)
    assert len(pods) == 3 and all(p.spec.node_name != node for p in pods)
    assert nodes["drain-the-node"].registered["evicted"]
    text = (evidence / "k8s" / "_cluster" / f"node-{node}.describe.txt").read_text()
    assert f"Name:                   {node}" in text and "orders-" in text  # pods before the drain


def test_drain_node_in_check_mode_leaves_the_node_alone(k8s_env, orders, run_book):
    node = k8s_env.ready_pods(orders)[0].spec.node_name
    uids = {p.metadata.uid for p in k8s_env.pods(orders)}
    summary, nodes, _ = run_book(DRAIN, _drain_params(k8s_env, node), check=True)
    assert summary.status == "succeeded", _failures(nodes)
    assert nodes["cordon-the-node"].msg == f"would cordon node {node}"
    assert nodes["drain-the-node"].msg.startswith("would evict 1 pod ")
    assert not k8s_env.node(node).spec.unschedulable
    assert {p.metadata.uid for p in k8s_env.pods(orders)} == uids


def test_drain_node_blocked_by_a_budget_fails_naming_it_and_keeps_the_node_cordoned(
    k8s_env, orders, run_book
):
    k8s_env.policy.create_namespaced_pod_disruption_budget(
        k8s_env.ns,
        {
            "metadata": {"name": "orders"},
            "spec": {
                "minAvailable": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": orders}},
            },
        },
    )
    wait_for(
        "PDB sees 3 healthy",
        lambda: (
            k8s_env.policy.read_namespaced_pod_disruption_budget(
                "orders", k8s_env.ns
            ).status.current_healthy
            == 3
        ),
    )
    node = k8s_env.ready_pods(orders)[0].spec.node_name
    summary, nodes, _ = run_book(DRAIN, _drain_params(k8s_env, node, drain_timeout="3s"))
    assert summary.status == "failed"
    status, msg = _messages(nodes)["drain-the-node"]
    assert status == "timed_out"
    assert f"blocked by PodDisruptionBudget {k8s_env.ns}/orders" in msg
    assert summary.rolled_back >= 1  # the no-op rollback of the cordon ran ...
    assert k8s_env.node(node).spec.unschedulable  # ... and the failing node stays cordoned
    assert len(k8s_env.ready_pods(orders)) == 3


@pytest.fixture
def billing(k8s_env):
    k8s_env.deployment("billing", replicas=1)
    yield "billing"
    k8s_env.delete_deployment("billing")


def _fixed_manifest(env, tmp_path, image="registry.lab/billing:2"):
    body = env.deployment_body("billing", replicas=1)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = image
    body["metadata"].pop("namespace")
    import yaml

    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "billing-config"},
        "data": {"RETRIES": "5"},
    }
    path = tmp_path / "billing-fix.yaml"
    path.write_text(yaml.safe_dump_all([config, body]))
    return str(path)


def test_apply_fix_dry_runs_applies_and_scales_up(k8s_env, billing, run_book, tmp_path):
    manifest = _fixed_manifest(k8s_env, tmp_path)
    params = {
        "manifest": manifest,
        "namespace": k8s_env.ns,
        "deployment": billing,
        "replicas": 3,
        "force_conflicts": True,
    }
    summary, nodes, _ = run_book(APPLY_FIX, params)
    try:
        assert summary.status == "succeeded", _failures(nodes)
        preview = nodes["server-side-dry-run-of-the-fix"]
        assert not preview.changed and preview.registered["would_change"]
        assert "+      - image: registry.lab/billing:2" in preview.registered["diff"]
        assert nodes["apply-the-fix"].registered["created"] == 1  # the ConfigMap
        dep = k8s_env.apps.read_namespaced_deployment(billing, k8s_env.ns)
        assert dep.spec.template.spec.containers[0].image == "registry.lab/billing:2"
        assert dep.spec.replicas == 3 and dep.status.available_replicas == 3
        assert nodes["scale-up"].registered["previous_replicas"] == 1
    finally:
        k8s_env.core.delete_namespaced_config_map("billing-config", k8s_env.ns)


def test_apply_fix_in_check_mode_is_all_dry_runs(k8s_env, billing, run_book, tmp_path):
    manifest = _fixed_manifest(k8s_env, tmp_path)
    params = {
        "manifest": manifest,
        "namespace": k8s_env.ns,
        "deployment": billing,
        "replicas": 3,
        "force_conflicts": True,
    }
    summary, nodes, _ = run_book(APPLY_FIX, params, check=True, diff=True)
    assert nodes["apply-the-fix"].msg.startswith("server-side dry run: configmap")
    assert nodes["apply-the-fix"].changed
    assert nodes["scale-up"].msg.startswith(
        f"would scale deployment {k8s_env.ns}/billing from 1 to 3"
    )
    dep = k8s_env.apps.read_namespaced_deployment(billing, k8s_env.ns)
    assert (
        dep.spec.replicas == 1
        and dep.spec.template.spec.containers[0].image == "registry.lab/app:1"
    )
    assert billing not in {
        c.metadata.name for c in k8s_env.core.list_namespaced_config_map(k8s_env.ns).items
    }
    # check mode does not wait for what only the real run would cause: the verification
    # after the fix and the scale-up it did not make is unknown, not tried (opsbook.dryrun)
    assert summary.status == "succeeded", _failures(nodes)
    wait = nodes["the-new-capacity-is-available"]
    assert wait.status == "unknown" and wait.msg.startswith(
        'not run: it observes what "apply the fix", "scale up" would change'
    )
