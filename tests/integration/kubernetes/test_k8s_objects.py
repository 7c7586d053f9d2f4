"""k8s.get/apply/patch/delete/wait and the errors an on-call engineer reads, against the lab."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from k8s_testlib import fails
from opsbook.plugin import Status

pytestmark = pytest.mark.k8s


@pytest.fixture
def web(k8s_env):
    k8s_env.deployment("shop-web", replicas=2)
    yield "shop-web"
    k8s_env.delete_deployment("shop-web")


# --------------------------------------------------------------------------- get


def test_get_registers_the_object_as_the_api_spells_it(act, web):
    result = act("get", kind="deployment", name=web)
    assert result.status is Status.OK and not result.changed
    dep = result.data["object"]
    assert dep["status"]["availableReplicas"] == 2  # camelCase, as in the docs
    assert dep["kind"] == "Deployment" and result.data["found"] and result.data["count"] == 1
    assert "managedFields" not in dep["metadata"]


def test_get_lists_by_label_selector_and_across_namespaces(act, k8s_env, web):
    pods = act("get", kind="pods", label_selector=f"app.kubernetes.io/name={web}")
    assert pods.data["count"] == 2 and all(p["kind"] == "Pod" for p in pods.data["objects"])
    assert all(n.startswith(f"{web}-") for n in pods.data["names"])
    everywhere = act("get", kind="deploy", all_namespaces=True)
    namespaces = {d["metadata"]["namespace"] for d in everywhere.data["objects"]}
    assert {"shop", "payments", k8s_env.ns} <= namespaces
    nodes = act("get", kind="nodes", label_selector="type=kwok")
    assert {"kwok-node-0", *k8s_env.nodes} <= set(nodes.data["names"])


def test_missing_object_lists_what_exists_with_did_you_mean(act, raises_k8s):
    msg = raises_k8s(lambda: act("get", kind="deployment", name="web9", namespace="shop"))
    assert msg == "deployment shop/web9 not found; deployments in shop: cart, frontend"
    msg = raises_k8s(lambda: act("get", kind="deployment", name="frontnd", namespace="shop"))
    assert msg.endswith('deployments in shop: cart, frontend (did you mean "frontend"?)')
    absent = act("get", kind="deployment", name="web9", namespace="shop", missing_ok=True)
    assert absent.status is Status.OK and absent.data["found"] is False


def test_missing_namespace_and_unknown_kind_are_named(act, raises_k8s):
    msg = raises_k8s(lambda: act("get", kind="deployment", name="frontend", namespace="shopp"))
    assert msg.startswith(
        'namespace "shopp" not found (looking for deployment shopp/frontend); namespaces: '
    )
    assert msg.endswith('(did you mean "shop"?)')
    msg = raises_k8s(lambda: act("get", kind="deploymnet", name="frontend", namespace="shop"))
    assert (
        msg.startswith('unknown resource type "deploymnet"')
        and '(did you mean "deployment"?)' in msg
    )


# --------------------------------------------------------------------------- RBAC, identity, reachability


def test_forbidden_names_verb_resource_namespace_and_user(act, k8s_env, raises_k8s):
    restricted = {"k8s_kubeconfig": k8s_env.restricted}
    msg = raises_k8s(
        lambda: act(
            "get", kind="deployment", name="api", namespace="payments", host_vars=restricted
        )
    )
    assert msg.startswith(
        'forbidden: user "opsbook-restricted" may not get deployments.apps in namespace "payments"'
    )
    assert "kubectl --context" in msg and "auth can-i get deployments.apps -n payments" in msg
    for check in (True, False):  # a server-side dry run is authorised like the real thing
        msg = raises_k8s(
            lambda check=check: act(
                "scale",
                name="frontend",
                namespace="shop",
                replicas=5,
                host_vars=restricted,
                check=check,
            )
        )
        assert msg.startswith(
            'forbidden: user "opsbook-restricted" may not patch '
            'deployments.apps/scale in namespace "shop"'
        )
    assert k8s_env.apps.read_namespaced_deployment("frontend", "shop").spec.replicas == 3
    msg = raises_k8s(lambda: act("cordon", node="kwok-node-0", host_vars=restricted))
    assert msg.startswith('forbidden: user "opsbook-restricted" may not get nodes at cluster scope')
    # reading shop is allowed
    assert act(
        "get", kind="deployment", name="frontend", namespace="shop", host_vars=restricted
    ).data["found"]


def test_impersonation_is_checked_by_the_api_server(act, k8s_env, raises_k8s):
    msg = raises_k8s(
        lambda: act(
            "get", kind="deployment", name="api", namespace="payments", as_user="opsbook-restricted"
        )
    )
    assert msg.startswith('forbidden: user "opsbook-restricted" may not get deployments.apps')
    assert ", as opsbook-restricted" in msg
    # several groups travel as several headers: system:masters (the second) grants everything
    result = act(
        "get",
        kind="deployment",
        name="api",
        namespace="payments",
        host_vars={"k8s_as_user": "someone", "k8s_as_groups": "opsbook:restricted,system:masters"},
    )
    assert result.data["found"]


def test_in_cluster_service_account_when_running_in_a_pod(
    act, k8s_env, tmp_path, monkeypatch, raises_k8s
):
    """No kubeconfig anywhere, but a pod's service account files and environment."""
    import kubernetes.config.incluster_config as incluster
    from kubernetes import client
    from opsbook_plugins.kubernetes import common as plugin
    from opsbook_plugins.kubernetes import connection as kubernetes_api

    k8s_env.core.create_namespaced_service_account(k8s_env.ns, {"metadata": {"name": "runner"}})
    client.RbacAuthorizationV1Api(k8s_env.api).create_namespaced_role_binding(
        k8s_env.ns,
        {
            "metadata": {"name": "runner-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": k8s_env.ns}],
        },
    )
    token = k8s_env.core.create_namespaced_service_account_token(
        "runner", k8s_env.ns, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    secrets = tmp_path / "serviceaccount"
    secrets.mkdir()
    (secrets / "token").write_text(token)
    (secrets / "namespace").write_text(k8s_env.ns)
    ca = yaml.safe_load(Path(k8s_env.kubeconfig).read_text())["clusters"][0]["cluster"]
    import base64

    (secrets / "ca.crt").write_bytes(base64.b64decode(ca["certificate-authority-data"]))
    host, port = k8s_env.server.removeprefix("https://").split(":")
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(secrets / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(secrets / "ca.crt"))
    monkeypatch.setattr(kubernetes_api, "IN_CLUSTER_TOKEN", str(secrets / "token"))
    monkeypatch.setattr(kubernetes_api, "IN_CLUSTER_NAMESPACE", str(secrets / "namespace"))
    monkeypatch.setattr(plugin, "clusters", kubernetes_api.ClusterPool())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    pod_vars = {"k8s_kubeconfig": None, "k8s_namespace": None}
    result = act("get", kind="configmap", name="kube-root-ca.crt", host_vars=pod_vars)
    assert result.data["object"]["metadata"]["namespace"] == k8s_env.ns  # the pod's namespace
    msg = raises_k8s(lambda: act("cordon", node="kwok-node-0", host_vars=pod_vars))
    assert msg.startswith(
        f'forbidden: user "system:serviceaccount:{k8s_env.ns}:runner" may not get '
        "nodes at cluster scope (in-cluster service account)"
    )


def test_unreachable_api_and_bad_kubeconfig_say_where_they_looked(
    act, k8s_env, tmp_path, raises_k8s
):
    doc = yaml.safe_load(Path(k8s_env.kubeconfig).read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump(doc))
    msg = raises_k8s(lambda: act("get", kind="nodes", host_vars={"k8s_kubeconfig": str(dead)}))
    assert msg.startswith(
        f"cannot reach the Kubernetes API at https://127.0.0.1:9 (kubeconfig {dead}"
    )
    assert "Connection refused" in msg
    msg = raises_k8s(
        lambda: act("get", kind="nodes", host_vars={"k8s_kubeconfig": str(tmp_path / "nope")})
    )
    assert msg == f"kubeconfig {tmp_path / 'nope'} does not exist"
    msg = raises_k8s(lambda: act("get", kind="nodes", context="opsbook-lab-admn"))
    assert msg.startswith('context "opsbook-lab-admn" is not in kubeconfig')
    assert '(did you mean "opsbook-lab-admin"?)' in msg


# --------------------------------------------------------------------------- apply / patch


def _manifest(env, replicas=1, image="registry.lab/fix:1", level="info"):
    return textwrap.dedent(f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: fix-config}}
        data: {{LOG_LEVEL: {level}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: fix}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app.kubernetes.io/name: fix}}}}
          template:
            metadata: {{labels: {{app.kubernetes.io/name: fix}}}}
            spec:
              nodeSelector: {{opsbook.dev/k8s-test: "{env.tag}"}}
              tolerations: [{{key: opsbook.dev/k8s-test, operator: Exists, effect: NoSchedule}}]
              containers: [{{name: app, image: "{image}"}}]
    """)


def test_apply_creates_then_is_unchanged_then_configures(act, k8s_env, tmp_path):
    try:
        first = act("apply", manifest=_manifest(k8s_env))
        assert first.status is Status.OK and first.changed, first.msg
        assert first.data["created"] == 2
        assert (
            first.msg
            == f"configmap {k8s_env.ns}/fix-config created, deployment {k8s_env.ns}/fix created"
        )
        dep = k8s_env.apps.read_namespaced_deployment("fix", k8s_env.ns)
        assert any(
            m.manager == "opsbook" and m.operation == "Apply" for m in dep.metadata.managed_fields
        )
        again = act("apply", manifest=_manifest(k8s_env))
        assert not again.changed and again.data["unchanged"] == 2
        src = tmp_path / "fix.yaml"
        src.write_text(_manifest(k8s_env, level="debug"))
        third = act("apply", src=str(src))
        assert third.changed and third.data["configured"] == 1 and third.data["unchanged"] == 1
        cm = k8s_env.core.read_namespaced_config_map("fix-config", k8s_env.ns)
        assert cm.data["LOG_LEVEL"] == "debug"
    finally:
        k8s_env.delete_deployment("fix")
        k8s_env.core.delete_namespaced_config_map("fix-config", k8s_env.ns)


def test_apply_check_mode_and_dry_run_diff_against_the_live_object(act, k8s_env):
    act("apply", manifest=_manifest(k8s_env))
    try:
        checked = act(
            "apply", manifest=_manifest(k8s_env, image="registry.lab/fix:2"), check=True, diff=True
        )
        assert checked.status is Status.OK and checked.changed
        assert (
            checked.msg.startswith("server-side dry run: ")
            and "fix would be configured" in checked.msg
        )
        assert "-      - image: registry.lab/fix:1" in checked.diff
        assert "+      - image: registry.lab/fix:2" in checked.diff
        live = k8s_env.apps.read_namespaced_deployment("fix", k8s_env.ns)
        assert live.spec.template.spec.containers[0].image == "registry.lab/fix:1"
        preview = act(
            "apply", manifest=_manifest(k8s_env, image="registry.lab/fix:2"), dry_run=True
        )
        assert not preview.changed and preview.data["would_change"]  # a preview changes nothing
        assert "registry.lab/fix:2" in preview.data["diff"]
        after = k8s_env.apps.read_namespaced_deployment("fix", k8s_env.ns)
        assert after.spec.template.spec.containers[0].image == "registry.lab/fix:1"
        assert after.metadata.generation == live.metadata.generation
    finally:
        k8s_env.delete_deployment("fix")
        k8s_env.core.delete_namespaced_config_map("fix-config", k8s_env.ns)


def test_apply_conflict_with_another_manager_and_an_invalid_manifest(act, k8s_env, raises_k8s):
    k8s_env.core.create_namespaced_config_map(
        k8s_env.ns, {"metadata": {"name": "owned"}, "data": {"LOG_LEVEL": "warn"}}
    )
    try:
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owned"},
            "data": {"LOG_LEVEL": "debug"},
        }
        msg = raises_k8s(lambda: act("apply", manifest=cm))
        assert msg.startswith(f"configmap {k8s_env.ns}/owned: Apply failed with 1 conflict")
        assert "set force_conflicts: true on k8s.apply to take them over" in msg
        forced = act("apply", manifest=cm, force_conflicts=True)
        assert forced.changed and forced.data["configured"] == 1
        bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
        msg = raises_k8s(lambda: act("apply", manifest=bad))
        assert msg.startswith(f"configmap {k8s_env.ns}/Bad_Name was rejected by the API: ")
        msg = raises_k8s(
            lambda: act(
                "apply",
                manifest={"apiVersion": "v1", "kind": "ConfigMapp", "metadata": {"name": "x"}},
            )
        )
        assert (
            "does not serve kind ConfigMapp in v1" in msg and '(did you mean "ConfigMap"?)' in msg
        )
        msg = raises_k8s(lambda: act("apply", manifest="kind: ConfigMap\nmetadata: {}\n"))
        assert msg == "manifest: document 1 (ConfigMap) has no apiVersion, metadata.name"
    finally:
        k8s_env.core.delete_namespaced_config_map("owned", k8s_env.ns)


def test_patch_strategic_merge_and_json_with_check_and_diff(act, k8s_env, web, raises_k8s):
    checked = act(
        "patch",
        kind="deployment",
        name=web,
        check=True,
        diff=True,
        patch={"spec": {"template": {"metadata": {"labels": {"tier": "gold"}}}}},
    )
    assert checked.changed and checked.msg == f"would patch deployment {k8s_env.ns}/{web}"
    assert "+        tier: gold" in checked.diff
    assert (
        "tier"
        not in k8s_env.apps.read_namespaced_deployment(
            web, k8s_env.ns
        ).spec.template.metadata.labels
    )
    merged = act(
        "patch",
        kind="configmap",
        name="kube-root-ca.crt",
        type="merge",
        patch='{"metadata": {"labels": {"seen-by": "opsbook"}}}',
    )
    assert merged.changed and merged.data["object"]["metadata"]["labels"]["seen-by"] == "opsbook"
    same = act(
        "patch",
        kind="configmap",
        name="kube-root-ca.crt",
        type="merge",
        patch={"metadata": {"labels": {"seen-by": "opsbook"}}},
    )
    assert not same.changed and same.msg.startswith("patch changed nothing on")
    jsonp = act(
        "patch",
        kind="deployment",
        name=web,
        type="json",
        patch=[{"op": "replace", "path": "/spec/replicas", "value": 3}],
    )
    assert (
        jsonp.changed
        and k8s_env.apps.read_namespaced_deployment(web, k8s_env.ns).spec.replicas == 3
    )
    msg = raises_k8s(lambda: act("patch", kind="deployment", name=web, type="json", patch={"a": 1}))
    assert msg.startswith("a json patch is a list of operations")


# --------------------------------------------------------------------------- delete


def test_delete_a_stuck_pod_waits_until_it_is_gone(act, k8s_env, web):
    pod = k8s_env.ready_pods(web)[0].metadata.name
    checked = act("delete", name=pod, check=True)
    assert checked.changed and checked.msg.startswith(f"would delete pod {k8s_env.ns}/{pod}")
    assert k8s_env.core.read_namespaced_pod(pod, k8s_env.ns).metadata.deletion_timestamp is None
    result = act("delete", kind="pod", name=pod, grace_period=1, timeout=30)
    assert result.status is Status.OK and result.changed, result.msg
    assert result.data["deleted"] == [f"{k8s_env.ns}/{pod}"]
    assert pod not in {p.metadata.name for p in k8s_env.pods(web)}
    k8s_env.wait_available(web, 2)  # the ReplicaSet replaced it


def test_delete_missing_object_and_by_label_selector(act, k8s_env, web, raises_k8s):
    msg = raises_k8s(lambda: act("delete", name="nope-123"))
    assert msg.startswith(f"pod {k8s_env.ns}/nope-123 not found; pods in {k8s_env.ns}: {web}-")
    gone = act("delete", name="nope-123", missing_ok=True)
    assert gone.status is Status.OK and not gone.changed
    result = act("delete", kind="pods", label_selector=f"app.kubernetes.io/name={web}", force=True)
    assert result.status is Status.OK and result.data["count"] == 2, result.msg
    k8s_env.wait_available(web, 2)


def test_delete_times_out_on_a_finalizer_and_says_so(act, k8s_env):
    k8s_env.core.create_namespaced_config_map(
        k8s_env.ns, {"metadata": {"name": "held", "finalizers": ["opsbook.dev/hold"]}}
    )
    try:
        result = act("delete", kind="configmap", name="held", timeout=1)
        msg = fails(result)
        assert result.status is Status.TIMED_OUT
        assert msg.startswith("deletion requested but still there after 1s: ")
        assert "(finalizers: opsbook.dev/hold)" in msg
    finally:
        k8s_env.core.patch_namespaced_config_map(
            "held", k8s_env.ns, {"metadata": {"finalizers": None}}
        )


# --------------------------------------------------------------------------- wait


def test_wait_for_conditions_fields_and_deletion(act, k8s_env, web):
    ok = act("wait", kind="deployment", name=web, condition="Available", timeout=10)
    assert ok.status is Status.OK and ok.data["object"]["metadata"]["name"] == web
    pods = act(
        "wait",
        kind="pods",
        label_selector=f"app.kubernetes.io/name={web}",
        field="{.status.phase}",
        value="Running",
        timeout=10,
    )
    assert pods.status is Status.OK and len(pods.data["objects"]) == 2
    ready = act(
        "wait",
        kind="pods",
        label_selector=f"app.kubernetes.io/name={web}",
        field='.status.conditions[?(@.type=="Ready")].status',
        value=True,
        timeout=10,
    )
    assert ready.status is Status.OK, ready.msg
    replicas = act(
        "wait", kind="deployment", name=web, field="status.readyReplicas", value=2, timeout=10
    )
    assert replicas.status is Status.OK, replicas.msg
    k8s_env.apps.delete_namespaced_deployment(web, k8s_env.ns)
    gone = act("wait", kind="deployment", name=web, deleted=True, timeout=10)
    assert gone.status is Status.OK and gone.msg.startswith(
        f"deployment {k8s_env.ns}/{web}: deletion"
    )


def test_wait_times_out_with_what_it_saw(act, k8s_env, web):
    result = act("wait", kind="deployment", name=web, condition="Available=False", timeout=1)
    msg = fails(result)
    assert result.status is Status.TIMED_OUT
    assert msg.startswith(
        f"timed out after 1s waiting for deployment {k8s_env.ns}/{web}: "
        "condition Available=False; now deployment "
    )
    assert "Available=True (MinimumReplicasAvailable" in msg
    none = act(
        "wait",
        kind="pods",
        label_selector="app.kubernetes.io/name=ghost",
        condition="Ready",
        timeout=1,
    )
    assert "no pods match app.kubernetes.io/name=ghost" in fails(none)


def test_wait_step_timeout_is_honoured(act, web):
    result = act("wait", kind="deployment", name=web, condition="Available=False", step_timeout=1.5)
    assert result.status is Status.TIMED_OUT and "condition Available=False" in result.msg
