"""The k8s plugin's pure pieces: settings, resource names, rollout and drain logic, text."""

from __future__ import annotations

import datetime as dt
import sys
import types

import pytest
from opsbook.plugin import Result
from opsbook.registry import Registry
from opsbook_plugins import kubernetes as k
from opsbook_plugins.kubernetes import connection as api
from opsbook_plugins.kubernetes import discovery, errors
from opsbook_plugins.kubernetes.drain import _drain_inverse
from opsbook_plugins.kubernetes.nodes import _node_inverse
from opsbook_plugins.kubernetes.objects import _pod_problem
from opsbook_plugins.kubernetes.scale import _scale_inverse
from pydantic import ValidationError

# --------------------------------------------------------------------------- registration


def test_actions_declare_check_idempotence_inverse_and_mutation():
    registry = Registry.from_entry_points()
    assert "k8s" not in registry.broken
    spec = {
        name: registry.action(f"k8s.{name}")
        for name in (
            "rollout_restart",
            "rollout_status",
            "scale",
            "cordon",
            "uncordon",
            "drain",
            "delete",
            "apply",
            "patch",
            "get",
            "events",
            "describe",
            "wait",
        )
    }
    assert all(spec.values())
    assert all(s.supports_check for s in spec.values())  # dry runs or read-only
    for name in ("scale", "cordon", "uncordon", "drain"):
        assert spec[name].inverse is not None and spec[name].idempotent
    for name in ("drain", "cordon", "delete", "scale", "rollout_restart"):
        assert spec[name].mutates
    for name in ("get", "events", "describe", "wait", "rollout_status", "apply"):
        assert spec[name].idempotent and spec[name].inverse is None
    assert spec["drain"].doc.startswith("Cordon a node, then evict its pods")
    assert registry.inventory_source("k8s") is k.k8s_inventory_source  # -i k8s://?...


def test_importing_the_plugin_does_not_import_the_kubernetes_client():
    code = "import sys, opsbook_plugins.kubernetes; print('kubernetes' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_args_are_validated_with_readable_errors():
    registry = Registry.from_entry_points()
    with pytest.raises(ValidationError, match="exactly one of manifest"):
        registry.action("k8s.apply").parse_args({})
    with pytest.raises(ValidationError, match="exactly one of condition"):
        registry.action("k8s.wait").parse_args({"name": "x", "condition": "Ready", "deleted": True})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        registry.action("k8s.scale").parse_args({"name": "x", "replica": 2})
    assert registry.action("k8s.drain").parse_args({"timeout": "1m30s"}).timeout == 90.0
    assert registry.action("k8s.rollout_status").parse_args({"name": "w"}).timeout == 300.0
    with pytest.raises(ValidationError, match="is not a duration"):
        registry.action("k8s.wait").parse_args({"name": "x", "deleted": True, "timeout": "soon"})


# --------------------------------------------------------------------------- settings


class _Args(types.SimpleNamespace):
    kubeconfig = context = as_user = None
    as_groups: tuple[str, ...] = ()


def test_settings_arguments_beat_host_vars_beat_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {"KUBECONFIG": "/env/a.yaml:/env/b.yaml"}
    from_env = api.settings_for(_Args(), {}, env)
    assert from_env.kubeconfig == "/env/a.yaml:/env/b.yaml" and from_env.source == "KUBECONFIG"
    host = api.settings_for(
        _Args(), {"k8s_kubeconfig": "/h.yaml", "k8s_context": "prod", "k8s_as_groups": "a, b"}, env
    )
    assert (host.kubeconfig, host.context, host.as_groups) == ("/h.yaml", "prod", ("a", "b"))
    arg = api.settings_for(
        _Args(kubeconfig="/arg.yaml", context="", as_user="me"),
        {"k8s_kubeconfig": "/h.yaml", "k8s_context": "prod"},
        env,
    )
    assert (arg.kubeconfig, arg.context, arg.as_user) == ("/arg.yaml", "prod", "me")
    assert "kubeconfig /arg.yaml, context prod, as me" == arg.describe()


def test_settings_fall_back_to_home_then_in_cluster_then_explain(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(errors.ConfigError, match="no kubeconfig: pass kubeconfig:"):
        api.settings_for(_Args(), {}, {})
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(api, "IN_CLUSTER_TOKEN", str(token))
    inside = api.settings_for(_Args(), {}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert inside.kubeconfig is None and inside.describe() == "in-cluster service account"
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("{}")
    home = api.settings_for(_Args(), {}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert home.kubeconfig == str(tmp_path / ".kube" / "config")


def test_unknown_context_gets_did_you_mean(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: prod-eu, context: {cluster: c, user: u, namespace: shop}}]
current-context: prod-eu
""")
    with pytest.raises(
        errors.ConfigError, match='context "prod-us" is not in kubeconfig .*did you mean "prod-eu"'
    ):
        api.ClusterPool().get(api.Settings(str(cfg), "prod-us"))
    cluster = api.ClusterPool().get(api.Settings(str(cfg), None))
    assert (cluster.context, cluster.default_namespace) == ("prod-eu", "shop")
    assert cluster.server == "https://127.0.0.1:1"


def test_the_pool_shares_one_client_per_cluster_and_identity(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: a, context: {cluster: c, user: u}}]
current-context: a
""")
    pool = api.ClusterPool()
    one = pool.get(api.Settings(str(cfg), None))
    assert pool.get(api.Settings(str(cfg), None)) is one
    assert pool.get(api.Settings(str(cfg), None, as_user="x")) is not one
    pool.close_all()


# --------------------------------------------------------------------------- resources


def _res(group, kind, plural, short=(), namespaced=True, version="v1"):
    return discovery.Resource(group, version, kind, plural, namespaced, kind.lower(), tuple(short))


RESOURCES = [
    _res("", "Pod", "pods", ("po",)),
    _res("", "Event", "events", ("ev",)),
    _res("", "Node", "nodes", ("no",), namespaced=False),
    _res("apps", "Deployment", "deployments", ("deploy",)),
    _res("events.k8s.io", "Event", "events"),
    _res("example.com", "Deployment", "deployments"),
    _res(
        "autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", ("hpa",), version="v2"
    ),
    _res("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", ("hpa",)),
]


@pytest.mark.parametrize(
    "word, group, version",
    [
        ("deploy", "apps", "v1"),
        ("deployments", "apps", "v1"),
        ("Deployment", "apps", "v1"),
        ("deployments.example.com", "example.com", "v1"),
        ("deployment.v1.apps", "apps", "v1"),
        ("events", "", "v1"),
        ("events.events.k8s.io", "events.k8s.io", "v1"),
        ("po", "", "v1"),
        ("hpa", "autoscaling", "v2"),
        ("NODE", "", "v1"),
    ],
)
def test_resource_words_resolve_like_kubectl(word, group, version):
    found = discovery._match(RESOURCES, word, None)
    assert found is not None and (found.group, found.version) == (group, version)


def test_resource_paths_and_labels():
    dep = _res("apps", "Deployment", "deployments")
    assert dep.path("shop", "web", "scale") == "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    node = _res("", "Node", "nodes", namespaced=False)
    assert node.path("ignored", "n1") == "/api/v1/nodes/n1"
    assert (dep.qualified, node.qualified, dep.label) == ("deployments.apps", "nodes", "deployment")
    assert str(discovery.Ref(dep, "shop", "web")) == "deployment shop/web"
    assert str(discovery.Ref(node, None, "n1")) == "node n1"
    assert discovery._match(RESOURCES, "deploymnet", None) is None


def test_aggregated_discovery_is_read():
    doc = {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "apps"},
                "versions": [
                    {
                        "version": "v1",
                        "resources": [
                            {
                                "resource": "deployments",
                                "singularResource": "deployment",
                                "scope": "Namespaced",
                                "shortNames": ["deploy"],
                                "verbs": ["get", "patch"],
                                "responseKind": {
                                    "group": "apps",
                                    "version": "v1",
                                    "kind": "Deployment",
                                },
                                "subresources": [{"subresource": "scale"}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (dep,) = discovery._from_aggregated(doc)
    assert dep == discovery.Resource(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        "deployment",
        ("deploy",),
        ("get", "patch"),
        ("scale",),
    )


# --------------------------------------------------------------------------- rollouts


def _deployment(gen=2, observed=2, desired=3, **status):
    st = {
        "observedGeneration": observed,
        "replicas": desired,
        "updatedReplicas": desired,
        "readyReplicas": desired,
        "availableReplicas": desired,
    }
    st.update(status)
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": gen},
        "spec": {"replicas": desired},
        "status": st,
    }


@pytest.mark.parametrize(
    "obj, done, message",
    [
        (_deployment(), True, 'deployment "web" successfully rolled out'),
        (_deployment(gen=3), False, 'waiting for deployment "web" spec update to be observed'),
        (_deployment(updatedReplicas=1), False, "1 out of 3 new replicas have been updated"),
        (_deployment(replicas=4), False, "1 old replicas are pending termination"),
        (_deployment(availableReplicas=2), False, "2 of 3 updated replicas are available"),
    ],
)
def test_deployment_rollout_state_follows_kubectl(obj, done, message):
    state = k.rollout_state(obj)
    assert (state.done, state.message) == (done, message)


def test_progress_deadline_is_fatal_and_counts_read_well():
    obj = _deployment(
        updatedReplicas=1,
        readyReplicas=2,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    )
    state = k.rollout_state(obj)
    assert state.fatal == 'deployment "web" exceeded its progress deadline'
    assert state.counts() == "2/3 ready, 1/3 updated, 3/3 available"


def test_statefulset_and_daemonset_rollout_states():
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": 2,
            "updatedReplicas": 1,
            "currentRevision": "a",
            "updateRevision": "b",
        },
    }
    assert not k.rollout_state(sts).done and "revision b" in k.rollout_state(sts).message
    sts["status"]["currentRevision"] = "b"
    assert k.rollout_state(sts).done
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert "RollingUpdate" in k.rollout_state(sts).fatal
    ds = {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": 1},
        "spec": {},
        "status": {
            "observedGeneration": 1,
            "desiredNumberScheduled": 4,
            "updatedNumberScheduled": 4,
            "numberAvailable": 3,
            "numberReady": 3,
        },
    }
    assert k.rollout_state(ds).message == "3 of 4 updated pods are available"


@pytest.mark.parametrize(
    "kind, spec, status",
    [
        ("DaemonSet", {"replicas": 9}, {"desiredNumberScheduled": 4, "numberReady": 1,
                                        "updatedNumberScheduled": 2, "numberAvailable": 3}),
        ("StatefulSet", {"replicas": 4}, {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 3}),
        ("Deployment", {"replicas": 4}, {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 3}),
    ],
)
def test_each_kind_counts_from_its_own_status_fields(kind, spec, status):
    state = k.rollout_state({"kind": kind, "metadata": {"name": "w"}, "spec": spec, "status": status})
    assert state.counts() == "1/4 ready, 2/4 updated, 3/4 available"


def test_pod_problem_says_why_a_pod_is_not_ready():
    pending = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/4 nodes are available",
                }
            ],
        }
    }
    assert _pod_problem(pending) == "Pending: Unschedulable: 0/4 nodes are available"
    crash = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        }
    }
    assert _pod_problem(crash) == "Running: app CrashLoopBackOff"


# --------------------------------------------------------------------------- drain


def _pod(name, owner=None, volumes=(), phase="Running", mirror=False):
    meta = {"name": name, "namespace": "ns", "uid": name}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "o", "controller": True, "uid": "u"}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "x"}
    return {
        "metadata": meta,
        "spec": {"volumes": [{"name": v, "emptyDir": {}} for v in volumes]},
        "status": {"phase": phase},
    }


def test_drain_plan_filters_like_kubectl():
    pods = [
        _pod("web", "ReplicaSet"),
        _pod("agent", "DaemonSet"),
        _pod("static", mirror=True),
        _pod("bare"),
        _pod("done", phase="Succeeded"),
        _pod("scratch", "ReplicaSet", ["tmp"]),
    ]
    args = k.DrainArgs()
    plan = k.drain_plan(pods, args)
    assert [p["metadata"]["name"] for p in plan.evict] == ["web", "done"]
    assert dict(plan.skipped) == {
        "ns/agent": "DaemonSet-managed",
        "ns/static": "mirror pod (static pod of the kubelet)",
    }
    blocked = dict(plan.blocked)
    assert blocked.keys() == {"ns/bare", "ns/scratch"}
    assert (
        "set force: true" in blocked["ns/bare"] and "delete_emptydir_data" in blocked["ns/scratch"]
    )
    plan = k.drain_plan(
        pods, k.DrainArgs(force=True, delete_emptydir_data=True, ignore_daemonsets=False)
    )
    assert {p["metadata"]["name"] for p in plan.evict} == {"web", "bare", "done", "scratch"}
    assert dict(plan.blocked) == {"ns/agent": "DaemonSet-managed (set ignore_daemonsets: true)"}
    assert len(plan.warnings) == 2


def test_inverses_undo_only_what_the_action_changed():
    conn = {"context": "lab", "kubeconfig": "/k.yaml"}
    scaled = Result.ok(
        changed=True,
        data={
            "kind": "Deployment",
            "name": "web",
            "namespace": "shop",
            "previous_replicas": 2,
            "replicas": 5,
            "connection": conn,
        },
    )
    assert _scale_inverse(k.ScaleArgs(name="web", replicas=5), scaled) == (
        "k8s.scale",
        {**conn, "kind": "Deployment", "name": "web", "namespace": "shop", "replicas": 2},
    )
    same = Result.ok(changed=False, data=scaled.data)
    assert _scale_inverse(k.ScaleArgs(name="web", replicas=5), same) is None
    drained = Result.ok(changed=True, data={"node": "n1", "cordoned": True, "connection": conn})
    assert _drain_inverse(k.DrainArgs(), drained) == ("k8s.uncordon", {**conn, "node": "n1"})
    drained.data["cordoned"] = False
    assert _drain_inverse(k.DrainArgs(), drained) is None
    cordoned = Result.ok(changed=True, data={"node": "n1", "connection": conn})
    assert _node_inverse("k8s.uncordon")(k.NodeArgs(), cordoned) == (
        "k8s.uncordon",
        {**conn, "node": "n1"},
    )


# --------------------------------------------------------------------------- errors


class _Cluster:
    context = "lab"
    server = "https://127.0.0.1:6443"
    settings = api.Settings("/k.yaml", "lab")

    def resource(self, word, api_version=None):
        return discovery._match(RESOURCES, word, api_version)


def test_forbidden_message_names_verb_resource_namespace_and_user():
    from opsbook.plugin import ActionContext, HostInfo

    s = k.Session(_Cluster(), "shop", ActionContext(HostInfo("localhost", {}), "t"))  # type: ignore[arg-type]
    exc = errors.Forbidden(
        "x",
        403,
        "Forbidden",
        {
            "message": (
                'deployments.apps "web" is forbidden: User "alice" cannot patch resource '
                '"deployments/scale" in API group "apps" in the namespace "shop"'
            )
        },
    )
    ref = s.ref("deployment", "web")
    msg = str(k.explain(s, exc, "patch", ref, sub="scale"))
    assert msg.startswith(
        'forbidden: user "alice" may not patch deployments.apps/scale in namespace "shop" '
        "(kubeconfig /k.yaml, context lab)"
    )
    assert msg.endswith("kubectl --context lab auth can-i patch deployments.apps/scale -n shop")
    nodes = errors.Forbidden(
        "x",
        403,
        "Forbidden",
        {
            "message": (
                'nodes "n1" is forbidden: User "bob" cannot get resource "nodes" in API group "" at the '
                "cluster scope"
            )
        },
    )
    msg = str(k.explain(s, nodes, "get", s.ref("node", "n1")))
    assert msg.startswith('forbidden: user "bob" may not get nodes at cluster scope')


def test_a_server_error_names_the_api_server_and_stays_transient():
    from opsbook.plugin import ActionContext, HostInfo

    s = k.Session(_Cluster(), "shop", ActionContext(HostInfo("localhost", {}), "t"))  # type: ignore[arg-type]
    ref = s.ref("deployment", "web")
    down = errors.ApiError("x", 503, "ServiceUnavailable", {"message": "apiserver is shutting down"})
    err = k.explain(s, down, "get", ref)
    assert str(err) == (
        "get deployment shop/web: the API server at https://127.0.0.1:6443 answered "
        "HTTP 503 ServiceUnavailable: apiserver is shutting down"
    )
    assert err.transient
    teapot = errors.ApiError("x", 418, "Teapot", {"message": "short and stout"})
    assert str(k.explain(s, teapot, "get", ref)) == (
        "get deployment shop/web: HTTP 418 Teapot: short and stout"
    )
    assert not k.explain(s, teapot, "get", ref).transient


def test_pdb_reason_is_read_from_the_eviction_answer():
    exc = errors.Throttled(
        "x",
        429,
        "TooManyRequests",
        {
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {
                "causes": [
                    {
                        "reason": "DisruptionBudget",
                        "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                    }
                ]
            },
        },
    )
    assert k.pdb_reason(None, exc, _pod("web-1")) == (  # type: ignore[arg-type]
        "PodDisruptionBudget ns/web (The disruption budget web needs 2 healthy pods and has 2 currently)"
    )


# --------------------------------------------------------------------------- fields, text


OBJ = {
    "status": {
        "phase": "Running",
        "readyReplicas": 3,
        "conditions": [
            {"type": "Ready", "status": "True"},
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "m",
            },
        ],
    },
    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}},
    "spec": {"containers": [{"image": "a"}, {"image": "b"}]},
}


@pytest.mark.parametrize(
    "path, values",
    [
        ("status.phase", ["Running"]),
        ("{.status.phase}", ["Running"]),
        (".status.readyReplicas", [3]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        ("spec.containers[1].image", ["b"]),
        ("spec.containers[*].image", ["a", "b"]),
        ("metadata.annotations['kubectl.kubernetes.io/restartedAt']", ["now"]),
        (r"metadata.annotations.kubectl\.kubernetes\.io/restartedAt", ["now"]),
        ("status.nothing", []),
    ],
)
def test_jsonpath(path, values):
    assert k.jsonpath(OBJ, path) == values


def test_conditions_and_fields_compare_like_kubectl_wait():
    assert k.condition_met(OBJ, "ready") == (True, "Ready=True")
    assert k.condition_met(OBJ, "Available") == (
        False,
        "Available=False (MinimumReplicasUnavailable: m)",
    )
    assert k.condition_met(OBJ, "Available=false")[0]
    assert k.condition_met(OBJ, "Progressing") == (False, "no Progressing condition yet")
    assert k.field_met(OBJ, "status.readyReplicas", "3") == (True, "status.readyReplicas is 3")
    assert k.field_met(OBJ, "status.phase", None)[0]
    assert k.field_met(OBJ, "status.gone", None) == (False, "status.gone is not set")


def test_events_table_and_describe_text():
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    rows = k.event_rows(
        [
            {
                "type": "Warning",
                "reason": "BackOff",
                "count": 4,
                "lastTimestamp": "2024-05-01T11:58:00Z",
                "message": "restarting",
                "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
            }
        ]
    )
    table = k.events_table(rows, now)
    assert table.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert table.splitlines()[1].split() == [
        "2m",
        "(x4)",
        "Warning",
        "BackOff",
        "pod/web-1",
        "restarting",
    ]
    assert k.events_table([]) == "No events.\n"
    text = k.describe_text(
        {
            **_deployment(),
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"a": "b"}},
        },
        rows,
    )
    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available" in text
    assert "Labels:                 a=b" in text and "BackOff" in text


def test_manifests_accept_text_lists_and_list_kinds(tmp_path):
    two = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n"
    )
    assert [d["metadata"]["name"] for d in k.manifests(k.ApplyArgs(manifest=two))] == ["a", "b"]
    path = tmp_path / "m.yaml"
    path.write_text(two)
    assert len(k.manifests(k.ApplyArgs(src=str(path)))) == 2
    with pytest.raises(errors.K8sError, match="cannot read src /nope.yaml"):
        k.manifests(k.ApplyArgs(src="/nope.yaml"))
    with pytest.raises(errors.K8sError, match="is not valid YAML"):
        k.manifests(k.ApplyArgs(manifest="a: [b"))
    with pytest.raises(errors.K8sError, match="holds no objects"):
        k.manifests(k.ApplyArgs(manifest="---\n"))


# --------------------------------------------------------------------------- inventory


def test_inventory_document_shape():
    nodes = [
        {
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "eu-1a"}},
            "spec": {"unschedulable": True},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "False"}],
            },
        }
    ]
    pods = [
        {
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-x", "controller": True}],
            },
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "conditions": []},
        }
    ]
    doc = k.inventory_from(nodes, pods, {"k8s_context": "lab"})
    assert doc["k8s_nodes"] == {"hosts": ["n1"]} and doc["k8s_nodes_not_ready"] == {"hosts": ["n1"]}
    assert doc["k8s_nodes_cordoned"] == {"hosts": ["n1"]}
    assert doc["app_web"] == {"hosts": ["shop/web-1"]} and doc["namespace_shop"]["hosts"] == [
        "shop/web-1"
    ]
    assert doc["zone_eu_1a"] == {"hosts": ["n1", "shop/web-1"]}
    assert doc["pods_on_n1"] == {"hosts": ["shop/web-1"]}
    pod = doc["_meta"]["hostvars"]["shop/web-1"]
    assert pod == {
        "k8s_context": "lab",
        "k8s_kind": "pod",
        "k8s_name": "web-1",
        "k8s_namespace": "shop",
        "k8s_labels": {"app": "web"},
        "k8s_node": "n1",
        "k8s_phase": "Running",
        "k8s_ready": False,
        "k8s_owner": "ReplicaSet/web-x",
        "ansible_host": "10.244.0.5",
    }
    assert doc["_meta"]["hostvars"]["n1"]["ansible_host"] == "10.0.0.1"
    assert "ungrouped" in doc["all"]["children"] and "k8s_pods" in doc["all"]["children"]


@pytest.mark.parametrize(
    "name", ["x/../../namespaces/prod", "..", ".", "a%2Fb", "a?watch=1", "a#b"]
)
def test_names_that_are_not_one_path_segment_are_refused(name):
    dep = _res("apps", "Deployment", "deployments")
    with pytest.raises(errors.K8sError, match="invalid name"):
        dep.path("shop", name)
    with pytest.raises(errors.K8sError, match="invalid namespace"):
        dep.path(name, "web")
    assert dep.path("shop", "web-1.v2") == "/apis/apps/v1/namespaces/shop/deployments/web-1.v2"


# --------------------------------------------------------------------------- apply: what changed


def _applied(image="web:1", annotations=None, owned=None):
    meta = {
        "name": "web",
        "namespace": "ns",
        "resourceVersion": "7",
        "annotations": annotations or {},
    }
    if owned is not None:
        meta["managedFields"] = [
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "fieldsV1": {"f:status": {}},
            },
            {"manager": "opsbook", "operation": "Apply", "fieldsV1": owned},
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}
                    ]
                }
            },
        },
        "status": {"replicas": 2},
    }


_BODY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "app", "image": "web:1"}]}},
    },
}
_OWNED = {"f:spec": {"f:replicas": {}}}


def test_apply_change_ignores_what_controllers_write_between_read_and_apply():
    live = _applied(owned=_OWNED)
    after = _applied(annotations={"deployment.kubernetes.io/revision": "1"}, owned=_OWNED)
    after["metadata"]["resourceVersion"] = "9"
    after["status"] = {"replicas": 2, "readyReplicas": 2}
    assert not k.applied_change(live, after, _BODY)


def test_apply_change_sees_new_values_new_objects_and_dropped_fields():
    assert k.applied_change(None, _applied(), _BODY)
    assert k.applied_change(
        _applied(owned=_OWNED), _applied(image="web:2", owned=_OWNED), _BODY
    )
    # the manifest no longer sets a field opsbook owned: the apply removed it
    dropped = {"f:spec": {}}
    assert k.applied_change(_applied(owned=_OWNED), _applied(owned=dropped), _BODY)
    # first apply over an object someone else created, same values: nothing changed
    assert not k.applied_change(_applied(), _applied(owned=_OWNED), _BODY)
