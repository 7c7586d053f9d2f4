"""k8s.rollout_restart, k8s.rollout_status and k8s.scale against the lab's control plane."""

from __future__ import annotations

import time

import pytest
from k8s_testlib import fails, wait_for
from opsbook.plugin import Status

pytestmark = pytest.mark.k8s

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _template_annotations(env, name):
    d = env.apps.read_namespaced_deployment(name, env.ns)
    return d.spec.template.metadata.annotations or {}


def _replicasets(env, name):
    return {
        rs.metadata.name
        for rs in env.apps.list_namespaced_replica_set(
            env.ns, label_selector=f"app.kubernetes.io/name={name}"
        ).items
    }


@pytest.fixture
def web(k8s_env):
    k8s_env.deployment("web", replicas=2)
    yield "web"
    k8s_env.delete_deployment("web")


def test_rollout_restart_rolls_a_new_replicaset_out_like_kubectl(act, k8s_env, web):
    before = _replicasets(k8s_env, web)
    restarted = act("rollout_restart", name=web)
    assert restarted.status is Status.OK and restarted.changed, restarted.msg
    stamp = restarted.data["restarted_at"]
    assert _template_annotations(k8s_env, web)[RESTARTED_AT] == stamp
    status = act("rollout_status", name=web, timeout=60)
    assert status.status is Status.OK, status.msg
    assert status.data["ready"] == status.data["desired"] == 2
    assert status.data["updated"] == 2 and status.data["available"] == 2
    new = status.data["new_replicaset"]
    assert new and new not in before and new in _replicasets(k8s_env, web)
    assert f"deployment {k8s_env.ns}/web rolled out: 2/2 ready" in status.msg


def test_rollout_restart_in_check_mode_is_a_server_side_dry_run(act, k8s_env, web):
    generation = k8s_env.apps.read_namespaced_deployment(web, k8s_env.ns).metadata.generation
    result = act("rollout_restart", name=f"deployment/{web}", check=True)
    assert result.status is Status.OK and result.changed
    assert result.msg.startswith(f"would restart deployment {k8s_env.ns}/web (2 replicas)")
    assert RESTARTED_AT not in _template_annotations(k8s_env, web)
    assert (
        k8s_env.apps.read_namespaced_deployment(web, k8s_env.ns).metadata.generation == generation
    )


def test_rollout_restart_refuses_a_paused_deployment(act, k8s_env, web, raises_k8s):
    k8s_env.apps.patch_namespaced_deployment(web, k8s_env.ns, {"spec": {"paused": True}})
    msg = raises_k8s(lambda: act("rollout_restart", name=web))
    assert "is paused" in msg and "kubectl rollout resume deployment/web" in msg
    k8s_env.apps.patch_namespaced_deployment(web, k8s_env.ns, {"spec": {"paused": False}})


def test_rollout_restart_of_something_that_does_not_roll_out(act, k8s_env, raises_k8s):
    msg = raises_k8s(lambda: act("rollout_restart", kind="configmap", name="kube-root-ca.crt"))
    assert "deployments, statefulsets and daemonsets, not configmaps" in msg


def test_rollout_that_never_completes_times_out_naming_ready_and_desired(act, k8s_env, web):
    # the new pods can be scheduled nowhere: the old ones stay, the rollout never finishes
    k8s_env.apps.patch_namespaced_deployment(
        web,
        k8s_env.ns,
        {"spec": {"template": {"spec": {"nodeSelector": {"opsbook.dev/nowhere": "true"}}}}},
    )
    result = act("rollout_status", name=web, timeout=3)
    assert result.status is Status.TIMED_OUT
    msg = fails(result)
    assert msg.startswith(f"rollout of deployment {k8s_env.ns}/web not complete after 3s: ")
    assert "2/2 ready, 1/2 updated, 2/2 available" in msg
    assert "1 out of 2 new replicas have been updated" in msg
    assert "pods not ready: web-" in msg and "Pending: Unschedulable" in msg
    assert result.data["ready"] == 2 and result.data["desired"] == 2
    assert len(result.data["pods_not_ready"]) == 1


def test_rollout_status_respects_the_step_timeout_and_keeps_its_message(act, k8s_env, web):
    k8s_env.apps.patch_namespaced_deployment(
        web,
        k8s_env.ns,
        {"spec": {"template": {"spec": {"nodeSelector": {"opsbook.dev/nowhere": "true"}}}}},
    )
    # the action's own default is 5 minutes; the step only grants 2 seconds: the action
    # gives up just before the step's deadline, so its message (not a bare "timed out") shows
    start = time.monotonic()
    result = act("rollout_status", name=web, step_timeout=2.0)
    assert time.monotonic() - start < 2.0
    assert result.status is Status.TIMED_OUT
    assert "2/2 ready, 1/2 updated" in result.msg


def test_rollout_status_of_a_statefulset_and_a_missing_object(act, k8s_env, raises_k8s):
    body = k8s_env.deployment_body("db", replicas=1)
    body["kind"] = "StatefulSet"
    body["spec"].pop("strategy")
    body["spec"]["serviceName"] = "db"
    k8s_env.apps.create_namespaced_stateful_set(k8s_env.ns, body)
    try:
        result = act("rollout_status", kind="statefulset", name="db", timeout=60)
        assert result.status is Status.OK, result.msg
        assert "rolled out: 1/1 ready" in result.msg
        msg = raises_k8s(lambda: act("rollout_status", kind="sts", name="dbb", timeout=5))
    finally:
        k8s_env.apps.delete_namespaced_stateful_set("db", k8s_env.ns)
    assert (
        msg
        == f'statefulset {k8s_env.ns}/dbb not found; statefulsets in {k8s_env.ns}: db (did you mean "db"?)'
    )


def test_scale_up_and_back_with_the_recorded_inverse(act, k8s_env, web):
    up = act("scale", name=web, replicas=3, wait=True, timeout=60)
    assert up.status is Status.OK and up.changed, up.msg
    assert up.data["previous_replicas"] == 2 and up.data["replicas"] == 3
    assert f"scaled deployment {k8s_env.ns}/web from 2 to 3 replicas" in up.msg
    assert len(k8s_env.ready_pods(web)) == 3
    action, args = act.inverse("scale", up, name=web, replicas=3)
    assert action == "k8s.scale" and args["replicas"] == 2 and args["name"] == web
    assert args["namespace"] == k8s_env.ns and args["kubeconfig"] == k8s_env.kubeconfig
    back = act(action.split(".")[1], **args)
    assert back.status is Status.OK and back.changed
    wait_for(
        "back to 2",
        lambda: k8s_env.apps.read_namespaced_deployment_scale(web, k8s_env.ns).spec.replicas == 2,
    )
    again = act("scale", name=web, replicas=2)
    assert not again.changed and again.msg.endswith("already has 2 replicas")
    assert act.inverse("scale", again, name=web, replicas=2) is None


def test_scale_in_check_mode_asks_the_api_and_changes_nothing(act, k8s_env, web):
    result = act("scale", name=web, replicas=5, check=True)
    assert result.status is Status.OK and result.changed
    assert result.msg.startswith("would scale")
    assert k8s_env.apps.read_namespaced_deployment(web, k8s_env.ns).spec.replicas == 2
    with pytest.raises(Exception, match="greater than or equal to 0"):
        act("scale", name=web, replicas=-1)


@pytest.mark.slow
def test_rollout_status_rides_out_an_api_server_restart(act, k8s_env, web):
    """Control planes blip during incidents: polling asks again instead of failing."""
    import threading

    from opsbook_lab import k8s

    nowhere = {"spec": {"template": {"spec": {"nodeSelector": {"opsbook.dev/nowhere": "true"}}}}}
    k8s_env.apps.patch_namespaced_deployment(web, k8s_env.ns, nowhere)
    outcome = {}
    watcher = threading.Thread(
        target=lambda: outcome.update(result=act("rollout_status", name=web, timeout=120))
    )
    watcher.start()
    time.sleep(1.0)
    k8s.restart_apiserver(down_for=1.0)
    back = {"spec": {"template": {"spec": {"nodeSelector": None}}}}
    k8s_env.apps.patch_namespaced_deployment(web, k8s_env.ns, back)
    watcher.join(150)
    result = outcome["result"]
    assert result.status is Status.OK, result.msg
    assert result.data["ready"] == 2
