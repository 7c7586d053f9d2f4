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
BAD_ROLLOUT = str(RUNBOOKS / "bad-rollout.yaml")
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
    assert len(reports) == 4
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
        FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout, "force": True}
    )
    assert summary.status == "succeeded", _failures(nodes)
    assert nodes["roll-back-the-stuck-revision"].status == "skipped"
    nodes.pop("roll-back-the-stuck-revision")
    nodes.pop("precondition-the-deployment-is-failing")  # skipped: force
    assert all(rec.status == "ok" for rec in nodes.values()), _messages(nodes)
    assert (folder_logs := evidence / "k8s" / k8s_env.ns / "logs").is_dir()
    assert any(f.name.endswith(".app.log") for f in folder_logs.iterdir())
    assert (evidence / "k8s" / k8s_env.ns / "deployment-checkout.history.txt").exists()
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


def test_first_response_refuses_a_healthy_deployment(k8s_env, checkout, run_book):
    before = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    summary, nodes, _ = run_book(FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout})
    assert summary.status == "aborted"  # max_fail_percentage: 0
    status, msg = _messages(nodes)["precondition-the-deployment-is-failing"]
    assert status == "failed" and "is healthy (2/2 ready, rollout complete): nothing was changed" in msg
    after = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    assert after.metadata.generation == before.metadata.generation


def test_first_response_rolls_a_stuck_rollout_back_instead_of_restarting(
    k8s_env, checkout, run_book
):
    # revision 2 asks for nodes that do not exist: it is stuck, revision 1 still serves
    k8s_env.apps.patch_namespaced_deployment(
        checkout,
        k8s_env.ns,
        {"spec": {"template": {"spec": {"nodeSelector": {"opsbook.dev/nowhere": "true"}}}}},
    )
    summary, nodes, _ = run_book(
        FIRST_RESPONSE, {"namespace": k8s_env.ns, "deployment": checkout, "detect_timeout": "2s"}
    )
    assert summary.status == "succeeded", _failures(nodes)
    assert nodes["restart-the-deployment"].status == "skipped"
    undo = nodes["roll-back-the-stuck-revision"]
    assert undo.status == "ok" and "back from revision 2 to revision 1" in undo.msg
    dep = k8s_env.apps.read_namespaced_deployment(checkout, k8s_env.ns)
    assert dep.spec.template.spec.node_selector == k8s_env.selector
    assert RESTARTED_AT not in (dep.spec.template.metadata.annotations or {})


def test_first_response_that_cannot_recover_fails_with_counts_and_keeps_evidence(
    k8s_env, run_book
):
    # the only revision asks for nodes that do not exist: no restart can bring it back
    k8s_env.deployment(
        "stranded", replicas=2, wait=False, nodeSelector={"opsbook.dev/nowhere": "true"}
    )
    summary, nodes, evidence = run_book(
        FIRST_RESPONSE,
        {"namespace": k8s_env.ns, "deployment": "stranded", "rollout_timeout": "3s",
         "detect_timeout": "1s"},
    )
    k8s_env.delete_deployment("stranded")  # the namespace goes at the end anyway
    assert summary.status == "aborted"  # max_fail_percentage: 0
    assert nodes["restart-the-deployment"].status == "ok"  # one revision: nothing to go back to
    status, msg = _messages(nodes)["rollout-completes"]
    assert status == "timed_out"
    assert msg.startswith(
        f"rollout of deployment {k8s_env.ns}/stranded not complete after 3s: 0/2 ready"
    )
    assert "Pending: Unschedulable" in msg
    logs = nodes["logs-of-its-pods"]
    assert logs.status == "ok" and "without logs (not scheduled)" in logs.msg
    assert (evidence / "k8s" / k8s_env.ns / "deployment-stranded.events.txt").exists()
    assert "deployment-is-available" not in nodes or nodes["deployment-is-available"].status != "ok"


@pytest.fixture
def orders(k8s_env):
    k8s_env.uncordon_all()
    k8s_env.deployment("orders", replicas=3)
    yield "orders"
    k8s_env.delete_deployment("orders")
    k8s_env.uncordon_all()


def _drain_params(env, node, **extra):
    return {"node": node, **extra}


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
    assert summary.status == "aborted"  # max_fail_percentage: 0
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


def test_apply_fix_whose_scale_up_times_out_scales_back(k8s_env, billing, run_book, tmp_path):
    """Issue 29 item 1, as reported: the scale-up's wait times out on Pending pods (here the
    fix's template allows one pod per node, on three nodes), and the run's rollback scales the
    Deployment back instead of "rollbacks: none recorded"."""
    manifest = _fixed_manifest(k8s_env, tmp_path)
    import yaml

    config, body = yaml.safe_load_all(Path(manifest).read_text())
    labels = {"app.kubernetes.io/name": billing}
    body["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}}
    Path(manifest).write_text(yaml.safe_dump_all([config, body]))
    params = {"manifest": manifest, "namespace": k8s_env.ns, "deployment": billing, "replicas": 6,
              "force_conflicts": True, "rollout_timeout": "20s"}  # the fix rolls out well within it
    summary, nodes, _ = run_book(APPLY_FIX, params)
    try:
        assert summary.status == "aborted"  # max_fail_percentage: 0
        scaled = nodes["scale-up"]
        assert scaled.status == "timed_out" and scaled.changed, scaled.msg
        assert summary.rolled_back == 1
        dep = k8s_env.apps.read_namespaced_deployment(billing, k8s_env.ns)
        assert dep.spec.replicas == 1
        wait_for("billing back to one pod", lambda: len(k8s_env.pods(billing)) == 1)
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


# --------------------------------------------------------------------------- drain, honestly


def test_drain_whose_replacements_cannot_be_placed_fails_with_the_schedulers_reason(
    k8s_env, run_book
):
    """Replacements that fit no other node: the drain names them with the scheduler's
    reason, and the verification covers every workload it touched, in every namespace."""
    other_ns = f"{k8s_env.ns}-b"
    k8s_env.core.create_namespace({"metadata": {"name": other_ns}})
    node = k8s_env.nodes[0]
    k8s_env.uncordon_all()
    pin = {"kubernetes.io/hostname": node}
    try:
        k8s_env.deployment("pinned", replicas=1, nodeSelector={**k8s_env.selector, **pin})
        body = k8s_env.deployment_body("elsewhere", replicas=1)
        body["metadata"]["namespace"] = other_ns
        body["spec"]["template"]["spec"]["nodeSelector"] = {**k8s_env.selector, **pin}
        k8s_env.apps.create_namespaced_deployment(other_ns, body)
        wait_for(
            "elsewhere Available",
            lambda: (k8s_env.apps.read_namespaced_deployment("elsewhere", other_ns).status.available_replicas or 0) == 1,
            60,
        )
        summary, nodes, _ = run_book(DRAIN, {"node": node, "drain_timeout": "30s", "verify_timeout": "3s"})
        assert summary.status == "aborted"  # max_fail_percentage: 0
        status, msg = _messages(nodes)["drain-the-node"]
        assert status == "failed"
        assert "but the scheduler cannot place 2 replacements" in msg
        assert "Unschedulable: 0/" in msg and "node(s) didn't match Pod's node affinity/selector" in msg or "were unschedulable" in msg, msg
        drained = nodes["drain-the-node"].registered
        assert {(w["namespace"], w["name"]) for w in drained["workloads"]} == {
            (k8s_env.ns, "pinned"),
            (other_ns, "elsewhere"),
        }
        assert all(w["kind"] == "Deployment" for w in drained["workloads"])
        assert k8s_env.node(node).spec.unschedulable  # the failing node stays cordoned
    finally:
        k8s_env.delete_deployment("pinned")
        k8s_env.core.delete_namespace(other_ns)
        k8s_env.uncordon_all()


def test_drain_verification_covers_every_touched_workload_in_every_namespace(
    k8s_env, orders, run_book
):
    node = k8s_env.ready_pods(orders)[0].spec.node_name
    summary, nodes, _ = run_book(DRAIN, _drain_params(k8s_env, node))
    assert summary.status == "succeeded", _failures(nodes)
    verified = [n for sid, n in nodes.items() if sid.startswith("every-workload-the-drain-touched")]
    assert verified and all(n.status == "ok" for n in verified)
    assert nodes["drain-the-node"].registered["workloads"] == [
        {"kind": "Deployment", "name": "orders", "namespace": k8s_env.ns}
    ]


# --------------------------------------------------------------------------- bad rollout


@pytest.fixture
def storefront(k8s_env):
    k8s_env.deployment("storefront", replicas=2)
    k8s_env.core.create_namespaced_service(
        k8s_env.ns,
        {
            "metadata": {"name": "storefront"},
            "spec": {
                "selector": {"app.kubernetes.io/name": "storefront"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    yield "storefront"
    k8s_env.delete_deployment("storefront")
    k8s_env.core.delete_namespaced_service("storefront", k8s_env.ns)


def _push_bad_revision(env, name):
    env.apps.patch_namespaced_deployment(
        name,
        env.ns,
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "release 2 (bad)"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "app", "image": "registry.lab/app:2"}],
                        "nodeSelector": {"opsbook.dev/nowhere": "true"},
                    }
                }
            },
        },
    )


def test_bad_rollout_detects_keeps_evidence_undoes_and_verifies_endpoints(
    k8s_env, storefront, run_book
):
    _push_bad_revision(k8s_env, storefront)
    params = {"namespace": k8s_env.ns, "deployment": storefront, "detect_timeout": "3s"}
    summary, nodes, evidence = run_book(BAD_ROLLOUT, params)
    assert summary.status == "succeeded", _failures(nodes)
    folder = evidence / "k8s" / k8s_env.ns
    history = (folder / "deployment-storefront.history.txt").read_text()
    assert "release 2 (bad)" in history
    logs = nodes["logs-of-its-pods"].registered
    assert logs["count"] == 2 and len(logs["unscheduled"]) == 1  # the stuck new pod has none
    assert "Unschedulable" in logs["unscheduled"][0]["reason"]
    undo = nodes["undo-the-rollout"]
    assert "back from revision 2 to revision 1" in undo.msg
    dep = k8s_env.apps.read_namespaced_deployment(storefront, k8s_env.ns)
    assert dep.spec.template.spec.containers[0].image == "registry.lab/app:1"
    endpoints = nodes["the-service-has-its-endpoints-back"].registered
    assert endpoints["ready"] == 2


def test_bad_rollout_refuses_a_rollout_that_completes(k8s_env, storefront, run_book):
    params = {"namespace": k8s_env.ns, "deployment": storefront, "detect_timeout": "5s"}
    summary, nodes, _ = run_book(BAD_ROLLOUT, params)
    assert summary.status == "aborted"  # max_fail_percentage: 0
    status, msg = _messages(nodes)["precondition-the-rollout-is-stuck"]
    assert status == "failed" and "not a bad rollout, nothing was changed" in msg
    assert "undo-the-rollout" not in nodes or nodes["undo-the-rollout"].status != "ok"


def test_bad_rollout_in_check_mode_shows_the_target_and_changes_nothing(
    k8s_env, storefront, run_book
):
    _push_bad_revision(k8s_env, storefront)
    params = {"namespace": k8s_env.ns, "deployment": storefront, "detect_timeout": "3s"}
    summary, nodes, _ = run_book(BAD_ROLLOUT, params, check=True, diff=True)
    undo = nodes["undo-the-rollout"]
    assert undo.msg.startswith(f"would roll deployment {k8s_env.ns}/storefront back from revision 2 to revision 1")
    dep = k8s_env.apps.read_namespaced_deployment(storefront, k8s_env.ns)
    assert dep.spec.template.spec.containers[0].image == "registry.lab/app:2"
