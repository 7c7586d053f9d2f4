"""k8s.events and k8s.describe as evidence, and k8s_inventory(), against the lab."""

from __future__ import annotations

import pytest
import yaml
from opsbook.plugin import Status
from opsbook_plugins.kubernetes import k8s_inventory

pytestmark = pytest.mark.k8s


@pytest.fixture
def shop(k8s_env):
    k8s_env.deployment("shop", replicas=2)
    yield "shop"
    k8s_env.delete_deployment("shop")


def test_events_of_a_deployment_include_its_replicasets_and_pods(act, k8s_env, shop):
    result = act("events", name=shop)
    assert result.status is Status.OK and not result.changed
    (ev,) = result.evidence
    assert ev.path == f"k8s/{k8s_env.ns}/deployment-shop.events.txt"
    text = (act.evidence / ev.path).read_text()
    assert text.startswith(f"# Events of deployment {k8s_env.ns}/shop and what it owns")
    assert "LAST SEEN" in text and "ScalingReplicaSet" in text
    objects = {row["object"].split("/")[0] for row in result.data["events"]}
    assert {"deployment", "replicaset", "pod"} <= objects
    assert any(r["reason"] == "Scheduled" for r in result.data["events"])
    own = act("events", name=shop, related=False, dest="incident/dep-events.txt")
    assert {r["object"] for r in own.data["events"]} == {"deployment/shop"}
    assert (act.evidence / "incident/dep-events.txt").exists()


def test_events_filters_since_and_type_and_whole_namespace(act, k8s_env, shop):
    everything = act("events")
    assert everything.evidence[0].path == f"k8s/{k8s_env.ns}/events.txt"
    assert everything.data["count"] >= 5
    assert act("events", since="1s", types=["Warning"]).data["count"] <= everything.data["warnings"]
    future = act("events", since="2999-01-01T00:00:00Z")
    assert future.data["count"] == 0
    assert "No events." in (act.evidence / future.evidence[0].path).read_text()
    node_events = act("events", kind="node", name="kwok-node-0")
    assert node_events.evidence[0].path == "k8s/_cluster/node-kwok-node-0.events.txt"


def test_describe_writes_kubectl_like_text_and_yaml(act, k8s_env, shop):
    result = act("describe", name=f"deployment/{shop}")
    text_ev, yaml_ev = result.evidence
    text = (act.evidence / text_ev.path).read_text()
    assert text_ev.path == f"k8s/{k8s_env.ns}/deployment-shop.describe.txt"
    assert text.startswith("Name:                   shop\nNamespace:              " + k8s_env.ns)
    assert (
        "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable"
        in text
    )
    assert "Pods:" in text and "Running" in text
    assert "Conditions:" in text and "MinimumReplicasAvailable" in text
    assert "Events:" in text and "ScalingReplicaSet" in text
    obj = yaml.safe_load((act.evidence / yaml_ev.path).read_text())
    assert obj["kind"] == "Deployment" and "managedFields" not in obj["metadata"]
    pod = k8s_env.ready_pods(shop)[0]
    pod_text = act("describe", kind="pod", name=pod.metadata.name).data["text"]
    assert f"Node:                   {pod.spec.node_name}/127.0.0.1" in pod_text
    assert "Controlled By:          ReplicaSet/shop-" in pod_text
    assert "Ready:      True" in pod_text and "Scheduled" in pod_text
    node_text = act("describe", kind="node", name=pod.spec.node_name).data["text"]
    assert "Taints:                 opsbook.dev/k8s-test=" in node_text
    assert "Non-terminated Pods:" in node_text and pod.metadata.name in node_text


def test_describe_runs_in_check_mode_too(act, k8s_env, shop):
    result = act("describe", name=shop, check=True)
    assert result.status is Status.OK and len(result.evidence) == 2


def test_inventory_lists_nodes_and_pods_with_groups_and_vars(k8s_env, shop):
    inv = k8s_inventory(
        k8s_env.kubeconfig, pods_selector="app.kubernetes.io/name=shop", namespace=k8s_env.ns
    )
    hostvars = inv["_meta"]["hostvars"]
    assert {"kwok-node-0", "kwok-node-3", *k8s_env.nodes} <= set(inv["k8s_nodes"]["hosts"])
    pods = inv["k8s_pods"]["hosts"]
    assert len(pods) == 2 and all(p.startswith(f"{k8s_env.ns}/shop-") for p in pods)
    assert sorted(inv["app_shop"]["hosts"]) == sorted(pods)
    assert sorted(inv[f"namespace_{k8s_env.ns.replace('-', '_')}"]["hosts"]) == sorted(pods)
    assert set(inv["zone_lab_zone_a"]["hosts"]) >= {"kwok-node-0", "kwok-node-1"}
    node = hostvars["kwok-node-0"]
    assert node["k8s_kind"] == "node" and node["ansible_host"] == "127.0.0.1"
    assert node["k8s_labels"]["topology.kubernetes.io/zone"] == "lab-zone-a"
    assert (
        node["k8s_kubeconfig"] == k8s_env.kubeconfig and node["k8s_context"] == "opsbook-lab-admin"
    )
    pod = hostvars[pods[0]]
    assert pod["k8s_kind"] == "pod" and pod["k8s_namespace"] == k8s_env.ns
    assert pod["k8s_node"] in k8s_env.nodes and pod["k8s_ready"] is True
    assert pod["k8s_owner"].startswith("ReplicaSet/shop-")
    assert pods[0] in inv[f"pods_on_{pod['k8s_node'].replace('-', '_')}"]["hosts"]
    assert set(inv["all"]["children"]) >= {"k8s_nodes", "k8s_pods", "app_shop", "ungrouped"}
    only_nodes = k8s_inventory(k8s_env.kubeconfig)
    assert (
        only_nodes["k8s_pods"]["hosts"] == [] and "kwok-node-2" in only_nodes["k8s_nodes"]["hosts"]
    )


def test_inventory_hosts_drive_actions_without_names(k8s_env, shop, run_book):
    """The --list document, loaded as a YAML inventory: k8s actions find their objects."""
    inv = k8s_inventory(
        k8s_env.kubeconfig, pods_selector="app.kubernetes.io/name=shop", namespace=k8s_env.ns
    )
    hostvars = inv["_meta"]["hostvars"]
    children = {
        g: {"hosts": {h: hostvars[h] for h in inv[g]["hosts"]}}
        for g in inv["all"]["children"]
        if inv[g]["hosts"]
    }
    summary, nodes, evidence = run_book(
        """
        opsbook: 1
        name: describe-from-inventory
        hosts: app_shop
        steps:
          - name: describe each pod
            k8s.describe: {}
          - name: its node
            k8s.get: {kind: node, name: "{{ k8s_node }}"}
            register: node
          - name: node is ours
            local.assert: {that: ["node.object.spec.taints[0].key == 'opsbook.dev/k8s-test'"]}
    """,
        inventory_doc={"all": {"children": children}},
    )
    assert summary.status == "succeeded", (summary.message, {k: v.msg for k, v in nodes.items()})
    files = sorted(p.name for p in evidence.rglob("*.describe.txt"))
    assert len(files) == 2 and all(f.startswith("pod-shop-") for f in files)


def test_k8s_scheme_inventory_through_the_cli(k8s_env, shop, tmp_path):
    """`-i k8s://?...`: the engine asks this plugin; actions on the hosts need no names."""
    import json
    import os
    import subprocess
    import sys

    source = (
        f"k8s://?kubeconfig={k8s_env.kubeconfig}&pods=app.kubernetes.io/name=shop"
        f"&namespace={k8s_env.ns}"
    )
    env = {
        **os.environ,
        "OPSBOOK_JOURNAL": str(tmp_path / "j.db"),
        "OPSBOOK_RUNS_DIR": str(tmp_path / "runs"),
    }
    env.pop("KUBECONFIG", None)
    listed = subprocess.run(
        [sys.executable, "-m", "opsbook", "inventory", "-i", source, "--list"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    pods = sorted(h for h in data["_meta"]["hostvars"] if h.startswith(f"{k8s_env.ns}/shop-"))
    assert len(pods) == 2 and set(k8s_env.nodes) <= set(data["_meta"]["hostvars"])
    rb = tmp_path / "rb.yaml"
    rb.write_text(
        "opsbook: 1\nname: k\nhosts: app_shop\nsteps:\n"
        "  - {name: describe, k8s.describe: {}}\n"
        "  - {name: node, k8s.get: {kind: node, name: '{{ k8s_node }}'}, register: n}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "opsbook", "run", str(rb), "-i", source, "--format", "json"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    finished = [json.loads(line) for line in run.stdout.splitlines() if '"node_finished"' in line]
    assert len(finished) == 4 and all(f["status"] == "ok" for f in finished)
    nodes_only = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsbook",
            "inventory",
            "-i",
            f"k8s://?kubeconfig={k8s_env.kubeconfig}&nodes=0&pods=*&namespace=shop",
            "--list",
        ],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )
    listing = json.loads(nodes_only.stdout)
    assert not listing.get("k8s_nodes", {}).get("hosts")
    assert any(h.startswith("shop/frontend-") for h in listing["_meta"]["hostvars"])
