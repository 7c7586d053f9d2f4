"""k8s.cordon, k8s.uncordon and k8s.drain on the test's own kwok nodes."""

from __future__ import annotations

import re
import threading
import time

import pytest
from k8s_testlib import TAINT, fails, wait_for
from opsbook.plugin import Status

pytestmark = pytest.mark.k8s


@pytest.fixture
def nodes(k8s_env):
    """Our three nodes, all schedulable again after the test."""
    k8s_env.uncordon_all()
    yield k8s_env.nodes
    k8s_env.uncordon_all()


def _unschedulable(env, node) -> bool:
    return bool(env.node(node).spec.unschedulable)


def _pods_on(env, node, name=None):
    pods = env.core.list_namespaced_pod(env.ns, field_selector=f"spec.nodeName={node}").items
    return [
        p for p in pods if name is None or p.metadata.labels.get("app.kubernetes.io/name") == name
    ]


def _replicaset(env, name):
    [rs] = env.apps.list_namespaced_replica_set(
        env.ns, label_selector=f"app.kubernetes.io/name={name}"
    ).items
    return rs.metadata.name


def _node_with_pod_of(env, name):
    pod = env.ready_pods(name)[0]
    return pod.spec.node_name


def test_cordon_and_uncordon_are_each_others_inverse(act, k8s_env, nodes):
    node = nodes[0]
    cordoned = act("cordon", node=node)
    assert cordoned.status is Status.OK and cordoned.changed, cordoned.msg
    assert cordoned.msg == f"cordoned node {node}" and _unschedulable(k8s_env, node)
    assert act.inverse("cordon", cordoned, node=node) == (
        "k8s.uncordon",
        {"node": node, "context": "opsbook-lab-admin", "kubeconfig": k8s_env.kubeconfig},
    )
    again = act("cordon", node=node)
    assert not again.changed and again.msg == f"node {node} already cordoned"
    assert act.inverse("cordon", again, node=node) is None  # it was cordoned before: keep it so
    uncordoned = act("uncordon", node=node)
    assert uncordoned.changed and not _unschedulable(k8s_env, node)
    assert act.inverse("uncordon", uncordoned, node=node)[0] == "k8s.cordon"


def test_cordon_in_check_mode_is_a_dry_run(act, k8s_env, nodes):
    result = act("cordon", node=nodes[1], check=True)
    assert result.status is Status.OK and result.changed and result.msg.startswith("would cordon")
    assert not _unschedulable(k8s_env, nodes[1])


def test_node_comes_from_the_inventory_host(act, k8s_env, nodes):
    result = act("cordon", host=nodes[2], host_vars={"k8s_kind": "node"})
    assert result.changed and _unschedulable(k8s_env, nodes[2])


def test_unknown_node_names_the_nodes_there_are(act, k8s_env, nodes, raises_k8s):
    msg = raises_k8s(lambda: act("cordon", node=nodes[0] + "x"))
    assert msg.startswith(f"node {nodes[0]}x not found; nodes: ")
    assert nodes[0] in msg and "kwok-node-0" in msg and f'(did you mean "{nodes[0]}"?)' in msg


def test_drain_evicts_workloads_which_come_back_elsewhere(act, k8s_env, nodes):
    k8s_env.deployment("api", replicas=3)
    try:
        node = _node_with_pod_of(k8s_env, "api")
        # a DaemonSet pod on the node stays (and is reported as skipped)
        ds = k8s_env.deployment_body("agent")
        ds["kind"] = "DaemonSet"
        for key in ("replicas", "strategy"):
            ds["spec"].pop(key)
        k8s_env.apps.create_namespaced_daemon_set(k8s_env.ns, ds)
        wait_for("agent on the node", lambda: _pods_on(k8s_env, node, "agent"))
        result = act("drain", node=node, timeout=60)
        assert result.status is Status.OK, result.msg
        assert result.changed and result.data["cordoned"]
        assert _unschedulable(k8s_env, node)
        evicted = result.data["evicted"]
        assert evicted and all(k.startswith(f"{k8s_env.ns}/api-") for k in evicted)
        assert any(s["why"] == "DaemonSet-managed" for s in result.data["skipped_pods"])
        assert result.msg.startswith(f"drained node {node}: evicted {len(evicted)} pod")
        assert not _pods_on(k8s_env, node, "api")
        k8s_env.wait_available("api", 3)
        assert all(p.spec.node_name != node for p in k8s_env.ready_pods("api"))
        assert act.inverse("drain", result, node=node)[0] == "k8s.uncordon"
    finally:
        k8s_env.delete_deployment("api")
        k8s_env.apps.delete_namespaced_daemon_set("agent", k8s_env.ns)


def test_drain_in_check_mode_evicts_nothing(act, k8s_env, nodes):
    k8s_env.deployment("cache", replicas=3)
    try:
        node = _node_with_pod_of(k8s_env, "cache")
        before = {p.metadata.uid for p in k8s_env.pods("cache")}
        result = act("drain", node=node, check=True)
        assert result.status is Status.OK and result.changed, result.msg
        assert result.msg.startswith("would evict ") and "after cordoning it" in result.msg
        assert "every eviction passed the dry run" in result.msg
        assert not _unschedulable(k8s_env, node)
        assert {p.metadata.uid for p in k8s_env.pods("cache")} == before
    finally:
        k8s_env.delete_deployment("cache")


def test_drain_blocked_by_a_pod_disruption_budget_names_it(act, k8s_env, nodes):
    k8s_env.deployment("payments", replicas=2, pdb_min=2)
    try:
        wait_for(
            "PDB status",
            lambda: (
                k8s_env.policy.read_namespaced_pod_disruption_budget(
                    "payments", k8s_env.ns
                ).status.current_healthy
                == 2
            ),
        )
        node = _node_with_pod_of(k8s_env, "payments")
        check = act("drain", node=node, check=True)
        assert check.status is Status.UNKNOWN
        assert f"PodDisruptionBudget {k8s_env.ns}/payments" in check.msg
        result = act("drain", node=node, timeout=3)
        msg = fails(result)
        assert result.status is Status.TIMED_OUT
        assert msg.startswith(
            f"drain of node {node} not finished after 3s: eviction of {k8s_env.ns}/payments-"
        )
        assert f"blocked by PodDisruptionBudget {k8s_env.ns}/payments" in msg
        assert "needs 2 healthy pods" in msg
        assert f"node {node} stays cordoned" in msg and "disable_eviction" in msg
        assert _unschedulable(k8s_env, node)
        assert len(k8s_env.ready_pods("payments")) == 2  # the budget held
    finally:
        k8s_env.delete_deployment("payments")


def _drain_in_background(act, node, **args):
    """k8s.drain of `node` (timeout 60 s) in a thread: (the thread, where its result lands)."""
    outcome = {}
    drainer = threading.Thread(
        target=lambda: outcome.update(result=act("drain", node=node, timeout=60, **args))
    )
    drainer.start()
    return drainer, outcome


def test_drain_also_evicts_a_pod_that_lands_on_the_node_during_it(act, k8s_env, nodes):
    """The scheduler sees a cordon a moment after the API does, so a pod can still land on the
    node while it drains (CI caught one). The drain looks again and evicts it too. Here a budget
    holds the drain while a pod is bound to the node directly, as a lagging scheduler binds it."""
    k8s_env.deployment("ledger", replicas=2, pdb_min=2)
    try:
        wait_for(
            "PDB status",
            lambda: k8s_env.policy.read_namespaced_pod_disruption_budget(
                "ledger", k8s_env.ns
            ).status.current_healthy
            == 2,
        )
        node = _node_with_pod_of(k8s_env, "ledger")
        refused = threading.Event()

        def watch(line: str) -> None:
            if line.startswith("eviction of ") and "refused" in line:
                refused.set()

        drainer, outcome = _drain_in_background(act, node, force=True, output=watch)
        try:
            assert refused.wait(30), "the budget never held the drain"
            k8s_env.core.create_namespaced_pod(
                k8s_env.ns,
                {
                    "metadata": {"name": "late", "labels": {"app.kubernetes.io/name": "late"}},
                    "spec": {
                        "nodeName": node,
                        "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "sh", "image": "busybox"}],
                    },
                },
            )
            k8s_env.policy.delete_namespaced_pod_disruption_budget("ledger", k8s_env.ns)
        finally:
            drainer.join(90)
        result = outcome["result"]
        assert result.status is Status.OK, result.msg
        late = f"{k8s_env.ns}/late"
        assert result.data["late"] == [late] and late in result.data["evicted"]
        assert late in result.data["to_evict"] and len(result.data["evicted"]) == 2
        assert f"deleting {late}: no controller will recreate it" in result.data["warnings"]
        assert result.msg.startswith(f"drained node {node}: evicted 2 pods (1 of them arrived during")
        assert not _pods_on(k8s_env, node)
    finally:
        k8s_env.delete_deployment("ledger")


LATE_SCHEDULER = "opsbook-test-late"  # a scheduler nothing runs: the test places these pods
SCHEDULER_LAG = 1.0  # seconds the test, as a lagging scheduler, waits before it places a pod


def _place_next(env, name, node, placed):
    """Bind the next unplaced pod of `name` (not in `placed`) to `node`, as a scheduler does."""
    pod = wait_for(
        f"an unplaced pod of {name}",
        lambda: next(
            (
                p.metadata.name
                for p in env.pods(name)
                if not p.spec.node_name
                and p.metadata.deletion_timestamp is None
                and p.metadata.name not in placed
            ),
            None,
        ),
    )
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    env.core.create_namespaced_pod_binding(pod, env.ns, binding, _preload_content=False)
    placed.add(pod)
    return pod


def _gone(env, name, pod) -> bool:
    return all(p.metadata.name != pod for p in env.pods(name))


@pytest.fixture
def relay(k8s_env, nodes):
    """A one-pod Deployment that only the test places (its scheduler is LATE_SCHEDULER), its
    pod placed and ready on nodes[0]: (that pod's name, the names the test has placed)."""
    k8s_env.deployment("relay", replicas=1, wait=False, schedulerName=LATE_SCHEDULER)
    try:
        placed = set()
        first = _place_next(k8s_env, "relay", nodes[0], placed)
        wait_for("relay ready on the node to drain", lambda: k8s_env.ready_pods("relay"))
        yield first, placed
    finally:
        k8s_env.delete_deployment("relay")


def test_drain_waits_until_the_replacements_are_placed_and_evicts_one_placed_on_the_node(
    act, k8s_env, nodes, relay
):
    """A scheduler that has not seen the cordon yet can place a replacement of an evicted pod
    on the node after the drain's evictions are done (CI caught one). The drain waits until
    the replacements are placed, and evicts one placed on the node. The test is that scheduler:
    its pods name a scheduler nothing runs, and it binds the first replacement to the drained
    node a moment after the evicted pod is gone, the next one elsewhere."""
    (first, placed), drained, elsewhere = relay, nodes[0], nodes[1]
    drainer, outcome = _drain_in_background(act, drained)
    try:
        wait_for(f"{first} evicted and gone", lambda: _gone(k8s_env, "relay", first))
        time.sleep(SCHEDULER_LAG)
        late = _place_next(k8s_env, "relay", drained, placed)
        moved = _place_next(k8s_env, "relay", elsewhere, placed)
    finally:
        drainer.join(90)
    result = outcome["result"]
    ns = k8s_env.ns
    assert result.status is Status.OK, result.msg
    assert result.data["evicted"] == [f"{ns}/{first}", f"{ns}/{late}"]
    assert result.data["late"] == [f"{ns}/{late}"] and "unplaced" not in result.data
    assert "evicted 2 pods (1 of them arrived during the drain)" in result.msg
    assert not _pods_on(k8s_env, drained, "relay")
    assert [p.metadata.name for p in _pods_on(k8s_env, elsewhere, "relay")] == [moved]


def test_drain_fails_naming_a_pod_that_keeps_landing_on_the_node(act, k8s_env, nodes, relay):
    """Something that places every replacement back on the node (here the test, as the
    scheduler) would keep a drain evicting forever: after 3 rounds and 10 s (a scheduler under
    load sees a cordon late: its late arrivals are evicted meanwhile) it fails, naming the pod."""
    (_, placed), drained = relay, nodes[0]
    drainer, outcome = _drain_in_background(act, drained)
    try:
        while drainer.is_alive():
            if any(not p.spec.node_name for p in k8s_env.pods("relay")):
                _place_next(k8s_env, "relay", drained, placed)
            time.sleep(0.05)
    finally:
        drainer.join(90)
    result = outcome["result"]
    assert result.status is Status.FAILED, result.msg
    rounds = len(result.data["late"])
    assert rounds >= 3 and len(result.data["evicted"]) == rounds + 1
    [blocked] = result.data["blocked"]
    assert blocked["pod"] not in result.data["evicted"]
    assert re.fullmatch(
        f"cannot finish draining node {drained}: {re.escape(blocked['pod'])}: still lands on the "
        f"node after {rounds} rounds of eviction in [0-9]+s: something places it there \\(a "
        "toleration of node.kubernetes.io/unschedulable, or a controller that sets "
        f"spec.nodeName\\); node {drained} stays cordoned",
        result.msg,
    ), result.msg
    assert _unschedulable(k8s_env, drained)


def test_drain_says_which_replacements_the_scheduler_had_not_placed(act, k8s_env, nodes, relay):
    """A replacement nothing places (its scheduler is down) cannot land on the node: the drain
    succeeds after waiting 15 s for it, and says what was still unplaced."""
    (first, _), drained = relay, nodes[0]
    result = act("drain", node=drained, timeout=60)
    ns = k8s_env.ns
    assert result.status is Status.OK, result.msg
    assert result.data["evicted"] == [f"{ns}/{first}"] and result.data["late"] == []
    [waiting] = result.data["unplaced"]
    assert waiting.startswith(f"pod {ns}/relay-") and waiting.endswith(
        ": not yet seen by the scheduler"
    )
    assert result.msg.startswith(f"drained node {drained}: evicted 1 pod in ")
    assert result.msg.endswith(f"s; after 15s the scheduler had still to place: {waiting}")


def test_drain_refuses_unmanaged_and_emptydir_pods_unless_told(act, k8s_env, nodes):
    node = nodes[0]
    tolerate = [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]
    k8s_env.core.create_namespaced_pod(
        k8s_env.ns,
        {
            "metadata": {"name": "debug-shell", "labels": {"app.kubernetes.io/name": "debug"}},
            "spec": {
                "nodeName": node,
                "tolerations": tolerate,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "sh", "image": "busybox"}],
            },
        },
    )
    scratch = k8s_env.deployment_body(
        "scratch", replicas=1, volumes=[{"name": "tmp", "emptyDir": {}}]
    )
    scratch["spec"]["template"]["spec"]["nodeName"] = node
    k8s_env.apps.create_namespaced_deployment(k8s_env.ns, scratch)
    try:
        k8s_env.wait_available("scratch", 1)
        wait_for(
            "debug pod running",
            lambda: (
                k8s_env.core.read_namespaced_pod("debug-shell", k8s_env.ns).status.phase
                == "Running"
            ),
        )
        result = act("drain", node=node, timeout=30)
        msg = fails(result)
        assert msg.startswith(f"cannot drain node {node}: ")
        assert f"{k8s_env.ns}/debug-shell: no controller would recreate it (set force: true" in msg
        assert "emptyDir volume tmp would be lost (set delete_emptydir_data: true)" in msg
        assert msg.endswith("; the node stays cordoned")
        forced = act("drain", node=node, force=True, delete_emptydir_data=True, timeout=60)
        assert forced.status is Status.OK, forced.msg
        assert f"{k8s_env.ns}/debug-shell" in forced.data["evicted"]
        assert any("no controller will recreate it" in w for w in forced.data["warnings"])
        assert not forced.data["cordoned"]  # the first attempt had cordoned it already
        # scratch's template names the node: its new pod is back there at once, and is left
        # (evicting it again would only bring it back again)
        [pinned] = [s for s in forced.data["skipped_pods"] if s["pod"].startswith(f"{k8s_env.ns}/scratch-")]
        assert pinned["why"] == (
            f"pinned to this node by the template of replicaset {k8s_env.ns}/{_replicaset(k8s_env, 'scratch')} "
            "(spec.nodeName): it would come back"
        )
        assert pinned["pod"] not in forced.data["evicted"] and not forced.data["late"]
        assert act.inverse("drain", forced, node=node) is None
    finally:
        k8s_env.delete_deployment("scratch")
