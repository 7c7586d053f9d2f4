"""The actions a bad rollout needs, against the lab's control plane with kwok: logs and exec
through kwok's own kubelet simulation (ClusterLogs/ClusterExec served via the API server),
rollout history/undo/pause/resume, taints, a Service's ready endpoints and an L7 check
through the API server's service proxy."""

from __future__ import annotations

import pytest
from k8s_testlib import fails, wait_for
from opsbook.plugin import Status
from opsbook_lab import k8s as lab_k8s

pytestmark = pytest.mark.k8s


@pytest.fixture
def cleanup(k8s_env):
    """Delete, after the test, the Services, Endpoints and pods it created in the shared
    namespace (other tests list what is there)."""
    from kubernetes.client.exceptions import ApiException

    made: list = []
    yield made.append
    for call in reversed(made):
        try:
            call()
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def app(k8s_env):
    k8s_env.deployment("app", replicas=2)
    yield "app"
    k8s_env.delete_deployment("app")


# --------------------------------------------------------------------------- logs


def test_logs_of_a_workload_come_from_kwok_through_the_api_server(act, k8s_env, app):
    line = f"request failed: upstream timeout tag={k8s_env.tag}"
    with open(lab_k8s.container_log("app"), "a") as fh:
        fh.write(lab_k8s.cri_line(line, stream="stderr"))
    got = act("logs", kind="deployment", name=app, tail=5)
    assert got.status is Status.OK, got.msg
    assert got.data["count"] == 2  # both pods, one container each
    for entry in got.data["logs"]:
        assert entry["container"] == "app" and line in entry["lines"]
        saved = (act.evidence / entry["path"]).read_text()
        assert line in saved and saved.startswith(f"# logs of pod {k8s_env.ns}/")
    assert "2 containers" in got.msg


def test_logs_previous_tail_and_size_cap(act, k8s_env, app):
    pod = k8s_env.ready_pods(app)[0].metadata.name
    prev = act("logs", name=pod, previous=True)
    assert any("panic" in ln for ln in prev.data["logs"][0]["lines"]), prev.data
    assert prev.data["logs"][0]["path"].endswith(".app.previous.log")
    one = act("logs", name=pod, tail=1)
    assert len(one.data["logs"][0]["lines"]) == 1
    capped = act("logs", name=pod, limit_bytes=10)
    assert capped.data["logs"][0]["truncated"] and capped.data["logs"][0]["bytes"] <= 10
    assert "cut at 10 bytes" in capped.msg


def test_logs_of_a_missing_container_says_which_exist(act, raises_k8s, k8s_env, app):
    pod = k8s_env.ready_pods(app)[0].metadata.name
    msg = raises_k8s(lambda: act("logs", name=pod, container="ap"))
    assert 'has no container "ap" (did you mean "app"?)' in msg


# --------------------------------------------------------------------------- exec


def test_exec_runs_argv_through_kwok_exec_with_rc_stdout_stderr(act, k8s_env, app):
    pod = k8s_env.ready_pods(app)[0].metadata.name
    ok = act("exec", name=pod, cmd=["cat", "VERSION"])
    assert ok.status is Status.OK and ok.rc == 0, ok.msg
    assert ok.stdout == "opsbook-lab kwok container\n"
    bad = act("exec", name=pod, cmd=["sh", "-c", "echo half; echo broken >&2; exit 3"])
    assert fails(bad).endswith("rc=3: broken")
    assert (bad.rc, bad.stdout, bad.stderr) == (3, "half\n", "broken\n")
    allowed = act("exec", kind="deployment", name=app, cmd="sh -c 'exit 3'", ok_rc=[0, 3])
    assert allowed.status is Status.OK and allowed.rc == 3
    reg = bad.registered()
    assert reg["rc"] == 3 and reg["stdout_lines"] == ["half"]


def test_exec_in_check_mode_runs_nothing(act, k8s_env, app, tmp_path):
    pod = k8s_env.ready_pods(app)[0].metadata.name
    marker = tmp_path / "ran"
    got = act("exec", name=pod, cmd=["touch", str(marker)], check=True)
    assert got.status is Status.UNKNOWN and "would run in pod" in got.msg
    assert not marker.exists()


# --------------------------------------------------------------------------- revisions


def _bad_rollout(env, name):
    """A new revision whose pods cannot be scheduled (no node matches): stuck, old pods serve."""
    env.apps.patch_namespaced_deployment(
        name,
        env.ns,
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "image app:2"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "app", "image": "registry.lab/app:2"}],
                        "nodeSelector": {"opsbook.dev/no-such-node": "x"},
                    }
                }
            },
        },
    )

    def stuck() -> bool:
        d = env.apps.read_namespaced_deployment(name, env.ns)
        return d.metadata.annotations.get("deployment.kubernetes.io/revision") == "2" and any(
            p.status.phase == "Pending" for p in env.pods(name)
        )

    wait_for("revision 2 stuck Pending", stuck, 60)


def test_history_then_undo_back_to_the_good_revision_with_rollback(act, k8s_env, app):
    _bad_rollout(k8s_env, app)
    hist = act("rollout_history", name=app)
    revs = {r["revision"]: r for r in hist.data["revisions"]}
    assert set(revs) == {1, 2} and revs[2]["current"] and hist.data["current"] == 2
    assert revs[2]["change_cause"] == "image app:2" and revs[2]["images"] == ["registry.lab/app:2"]
    assert revs[1]["template_hash"] and revs[1]["template_hash"] != revs[2]["template_hash"]
    assert "image app:2" in (act.evidence / hist.data["path"]).read_text()

    dry = act("rollout_undo", name=app, check=True)
    assert dry.status is Status.OK and "revision 2 to revision 1" in dry.msg
    changed = [ln for ln in dry.diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert any(ln.startswith("-") and "registry.lab/app:2" in ln for ln in changed), dry.diff
    assert any(ln.startswith("+") and "registry.lab/app:1" in ln for ln in changed), dry.diff
    d = k8s_env.apps.read_namespaced_deployment(app, k8s_env.ns)
    assert d.spec.template.spec.containers[0].image == "registry.lab/app:2"  # dry run only

    undone = act("rollout_undo", name=app, wait=True, timeout=60)
    assert undone.status is Status.OK and undone.changed, undone.msg
    assert "rolled out" in undone.msg
    d = k8s_env.apps.read_namespaced_deployment(app, k8s_env.ns)
    assert d.spec.template.spec.containers[0].image == "registry.lab/app:1"
    assert d.spec.template.spec.node_selector == k8s_env.selector
    assert act.inverse("rollout_undo", undone, name=app) == (
        "k8s.rollout_undo",
        {
            "context": "opsbook-lab-admin",
            "kubeconfig": k8s_env.kubeconfig,
            "kind": "deployment",
            "name": app,
            "namespace": k8s_env.ns,
            "to_revision": 2,
        },
    )


def test_undo_refuses_the_template_already_running(act, k8s_env, app):
    _bad_rollout(k8s_env, app)
    refused = act("rollout_undo", name=app, to_revision=2)
    assert "revision 2 has the template already running" in fails(refused)
    assert not refused.changed


def test_undo_of_a_missing_revision_lists_the_revisions(act, raises_k8s, k8s_env, app):
    msg = raises_k8s(lambda: act("rollout_undo", name=app))
    assert "no revision before the current one (1)" in msg and "revisions: 1" in msg
    msg = raises_k8s(lambda: act("rollout_undo", name=app, to_revision=7))
    assert "has no revision 7; revisions: 1" in msg


def test_pause_and_resume_are_each_others_rollback(act, k8s_env, app):
    paused = act("rollout_pause", name=app)
    assert paused.changed and k8s_env.apps.read_namespaced_deployment(app, k8s_env.ns).spec.paused
    action, args = act.inverse("rollout_pause", paused, name=app)
    assert action == "k8s.rollout_resume" and args["name"] == app
    assert not act("rollout_pause", name=app).changed
    assert "is paused: resume it first" in str(
        pytest.raises(Exception, act, "rollout_undo", name=app).value
    )
    resumed = act("rollout_resume", name=app)
    assert resumed.changed and not k8s_env.apps.read_namespaced_deployment(app, k8s_env.ns).spec.paused


# --------------------------------------------------------------------------- taints


def test_taint_and_untaint_with_rollback(act, k8s_env):
    node = k8s_env.nodes[2]

    def taints():
        return [(t.key, t.value, t.effect) for t in (k8s_env.node(node).spec.taints or [])]

    before = taints()
    dry = act("taint", node=node, key="maintenance", value="disk", check=True)
    assert dry.changed and taints() == before
    added = act("taint", node=node, key="maintenance", value="disk", effect="NoExecute")
    assert added.changed and ("maintenance", "disk", "NoExecute") in taints()
    assert not act("taint", node=node, key="maintenance", value="disk", effect="NoExecute").changed
    msg = str(pytest.raises(Exception, act, "taint", node=node, key="maintenance", value="net",
                            effect="NoExecute").value)
    assert "pass overwrite: true" in msg
    action, args = act.inverse("taint", added, node=node, key="maintenance")
    assert (action, args["key"], args["effect"]) == ("k8s.untaint", "maintenance", "NoExecute")
    removed = act(action.split(".")[1], **{k: v for k, v in args.items() if k != "context"})
    assert removed.changed and taints() == before
    back = act.inverse("untaint", removed, node=node, key="maintenance")
    assert back[0] == "k8s.taint" and back[1]["value"] == "disk"


# --------------------------------------------------------------------------- services


def test_wait_endpoints_counts_ready_endpoints_of_the_service(act, k8s_env, app, cleanup):
    cleanup(lambda: k8s_env.core.delete_namespaced_service(app, k8s_env.ns))
    k8s_env.core.create_namespaced_service(
        k8s_env.ns,
        {
            "metadata": {"name": app},
            "spec": {
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    got = act("wait_endpoints", service=app, min_ready=2, timeout=60)
    assert got.status is Status.OK and got.data["ready"] == 2, got.msg
    short = act("wait_endpoints", service=app, min_ready=3, timeout=2)
    assert short.status is Status.TIMED_OUT
    assert "has 2 ready endpoints after" in short.msg and "needs 3" in short.msg
    dry = act("wait_endpoints", service=app, min_ready=3, check=True)
    assert dry.status is Status.UNKNOWN and "a real run waits" in dry.msg


def test_http_without_endpoints_reports_the_proxy_answer(act, k8s_env, cleanup):
    cleanup(lambda: k8s_env.core.delete_namespaced_service("nobody", k8s_env.ns))
    k8s_env.core.create_namespaced_service(
        k8s_env.ns,
        {"metadata": {"name": "nobody"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
    )
    got = act("http", service="nobody", path="/healthz")
    # the API server answers 404 'services "nobody" not found' when it has no endpoint
    assert got.data["http_status"] == 404
    assert "the Service has no ready endpoint to proxy to" in fails(got)


@pytest.mark.lab
def test_http_through_the_service_proxy_reaches_a_real_server(act, k8s_env, lab_info, cleanup):
    """kwok pods cannot serve HTTP (their IPs exist only on paper), and the API server only
    proxies to an endpoint that is a pod with that IP. So a pod object stands for the lab's
    real nginx web1: bound to a node no kubelet (nor kwok) runs, its status says Running at
    web1's address, and the Service's endpoint points at it. The API server's proxy then
    sends the request to nginx."""
    web1 = lab_info.hosts["web1"].lab_ip
    ns = k8s_env.ns
    cleanup(lambda: k8s_env.core.delete_namespaced_pod("lab-web1", ns, grace_period_seconds=0))
    cleanup(lambda: k8s_env.core.delete_namespaced_service("lab-web", ns))
    cleanup(lambda: k8s_env.core.delete_namespaced_endpoints("lab-web", ns))
    k8s_env.core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "lab-web1", "labels": {"app": "lab-web"}},
            "spec": {
                "nodeName": f"opsbook-no-kubelet-{k8s_env.tag}",
                "containers": [{"name": "nginx", "image": "nginx"}],
            },
        },
    )
    k8s_env.core.patch_namespaced_pod_status(
        "lab-web1",
        ns,
        {
            "status": {
                "phase": "Running",
                "podIP": web1,
                "podIPs": [{"ip": web1}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )
    k8s_env.core.create_namespaced_service(
        ns, {"metadata": {"name": "lab-web"}, "spec": {"ports": [{"name": "http", "port": 8080}]}}
    )
    # the API server's proxy reads the Endpoints; the mirroring controller makes the slice
    k8s_env.core.create_namespaced_endpoints(
        ns,
        {
            "metadata": {"name": "lab-web"},
            "subsets": [
                {
                    "addresses": [
                        {"ip": web1, "targetRef": {"kind": "Pod", "name": "lab-web1", "namespace": ns}}
                    ],
                    "ports": [{"name": "http", "port": 8080}],
                }
            ],
        },
    )
    assert act("wait_endpoints", service="lab-web", timeout=30).data["ready_endpoints"] == ["lab-web1"]
    ok = act("http", service="lab-web", path="/healthz")
    assert ok.status is Status.OK, ok.msg
    assert ok.data["http_status"] == 200
    wrong = act("http", service="lab-web", path="/healthz", contains="no-such-text")
    assert "the body lacks 'no-such-text'" in fails(wrong)
