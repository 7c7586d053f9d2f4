"""Pure pieces of the k8s actions for a bad rollout (exec's exit status, revisions, taint
rollbacks, what `check` counts); the actions themselves run against the lab in
tests/integration/kubernetes/test_k8s_first_response.py."""

from __future__ import annotations

from opsbook.plugin import Result
from opsbook_plugins.kubernetes.execute import exit_code
from opsbook_plugins.kubernetes.rollout_history import _same_template, _template_of, history_table
from opsbook_plugins.kubernetes.taint import _inverse


def test_exit_code_of_the_exec_status_channel():
    assert exit_code({"status": "Success"}) == (0, "")
    kubelet = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
    }
    assert exit_code(kubelet) == (7, "")
    kwok = {
        "status": "Failure",
        "reason": "InternalError",
        "message": "Internal error occurred: error executing command in container: "
        "cmd wait: sh -c exit 3: exit status 3",
    }
    assert exit_code(kwok) == (3, "")
    assert exit_code({"status": "Failure", "message": 'container "x" not found'}) == (
        None,
        'container "x" not found',
    )


def test_a_revisions_template_drops_the_pod_template_hash_before_comparing():
    rs = {"spec": {"template": {"metadata": {"labels": {"app": "a", "pod-template-hash": "h1"}},
                                "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}
    template = _template_of(rs)
    assert template["metadata"]["labels"] == {"app": "a"}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "h1"  # a copy
    assert _same_template({"metadata": {"labels": {"app": "a"}},
                           "spec": {"containers": [{"name": "a", "image": "a:1"}]}}, template)
    assert not _same_template({"metadata": {"labels": {"app": "a"}},
                               "spec": {"containers": [{"name": "a", "image": "a:2"}]}}, template)


def test_history_table_marks_the_current_revision():
    rows = [
        {"revision": 1, "template_hash": "h1", "ready": 0, "replicas": 0, "current": False,
         "images": ["a:1"], "change_cause": None},
        {"revision": 2, "template_hash": "h2", "ready": 3, "replicas": 3, "current": True,
         "images": ["a:2"], "change_cause": "release 2"},
    ]
    lines = history_table(rows).splitlines()
    assert lines[1].split() == ["1", "h1", "0/0", "a:1", "<none>"]
    assert lines[2].split()[:5] == ["2", "h2", "3/3", "*", "a:2"] and lines[2].endswith("release 2")


def test_taint_rollbacks_put_back_exactly_what_was_there():
    conn = {"context": "prod", "kubeconfig": "/kc"}
    added = Result.ok(changed=True, data={"node": "n1", "connection": conn, "replaced": None,
                                          "added": {"key": "k", "value": "v", "effect": "NoSchedule"}})
    assert _inverse(None, added) == ("k8s.untaint", {**conn, "node": "n1", "key": "k", "effect": "NoSchedule"})
    revalued = Result.ok(changed=True, data={
        "node": "n1", "connection": conn, "added": {"key": "k", "value": "v2", "effect": "NoSchedule"},
        "replaced": {"key": "k", "value": "v1", "effect": "NoSchedule"}})
    assert _inverse(None, revalued) == ("k8s.taint", {**conn, "node": "n1", "key": "k", "value": "v1",
                                                      "effect": "NoSchedule", "overwrite": True})
    two = [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "value": "x", "effect": "NoExecute"}]
    removed = Result.ok(changed=True, data={"node": "n1", "connection": conn, "removed": two})
    assert _inverse(None, removed) == ("k8s.taints_restore", {**conn, "node": "n1", "taints": two})
    assert _inverse(None, Result.ok(changed=False, data={"node": "n1"})) is None
