"""Fixtures of the k8s plugin's tests against the lab's real control plane (see k8s_testlib)."""

from __future__ import annotations

import importlib.util
import secrets
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from opsbook.plugin import ActionContext, HostInfo, Result
from opsbook.registry import Registry
from opsbook_lab.k8s_pytest import kubernetes_client


def _load_testlib():
    """k8s_testlib, importable by the test modules whatever pytest's import mode."""
    name = "k8s_testlib"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_lib = _load_testlib()
Env, _node_body, wait_for = _lib.Env, _lib._node_body, _lib.wait_for


@pytest.fixture(scope="session")
def k8s_env(k8s_lab: Any) -> Iterator[Env]:
    """Our namespace and three tainted kwok nodes on the lab cluster (removed at the end)."""
    kubernetes = kubernetes_client()
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    cfg = client.Configuration()
    kubernetes.config.load_kube_config(str(k8s_lab.kubeconfig), client_configuration=cfg)
    # other tests restart the API server now and then: setup calls ride it out
    cfg.retries = urllib3.Retry(total=8, connect=8, read=0, status=0, backoff_factor=0.5)
    api = client.ApiClient(cfg)
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    tag = secrets.token_hex(3)
    ns = f"opsbook-k8s-{tag}"
    nodes = [f"opsbook-k8s-{tag}-n{i}" for i in range(3)]
    core.create_namespace({"metadata": {"name": ns, "labels": {"opsbook.dev/test": tag}}})
    for name in nodes:
        core.create_node(_node_body(name, tag))

    def nodes_ready() -> bool:
        for name in nodes:
            conds = core.read_node(name).status.conditions or []
            if not any(c.type == "Ready" and c.status == "True" for c in conds):
                return False
        return True

    wait_for("our kwok nodes Ready", nodes_ready, 60)
    env = Env(
        str(k8s_lab.kubeconfig),
        str(k8s_lab.restricted_kubeconfig),
        k8s_lab.server,
        tag,
        ns,
        nodes,
        api,
        core,
        apps,
        policy,
    )
    try:
        yield env
    finally:
        for call in [lambda: core.delete_namespace(ns)] + [
            (lambda n=n: core.delete_node(n)) for n in nodes
        ]:
            try:
                call()
            except ApiException:
                pass
        api.close()


# --------------------------------------------------------------------------- calling actions


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.from_entry_points()


@dataclass
class Act:
    """Calls a k8s action the way the executor does: parsed args, an ActionContext."""

    registry: Registry
    env: Env
    evidence: Path

    def __call__(
        self,
        action: str,
        *,
        check: bool = False,
        diff: bool = False,
        host_vars: dict[str, Any] | None = None,
        step_timeout: float | None = None,
        host: str = "localhost",
        output: Callable[[str], None] | None = None,
        **args: Any,
    ) -> Result:
        spec = self.registry.action(f"k8s.{action}")
        assert spec is not None, action
        vars_ = {"k8s_kubeconfig": self.env.kubeconfig, "k8s_namespace": self.env.ns}
        vars_.update(host_vars or {})
        ctx = ActionContext(
            host=HostInfo(host, vars_),
            step_name=action,
            check_mode=check,
            diff_mode=diff,
            timeout=step_timeout,
            evidence_dir=self.evidence,
            _output=output,
        )
        return spec.fn(ctx, spec.parse_args(args))

    def inverse(
        self, action: str, result: Result, **args: Any
    ) -> tuple[str, dict[str, Any]] | None:
        spec = self.registry.action(f"k8s.{action}")
        assert spec is not None and spec.inverse is not None
        return spec.inverse(spec.parse_args(args), result)


@pytest.fixture
def act(registry: Registry, k8s_env: Env, tmp_path: Path) -> Act:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    return Act(registry, k8s_env, evidence)


@pytest.fixture
def raises_k8s():
    """The message of an action call that must raise the plugin's K8sError."""
    from opsbook_plugins.kubernetes.errors import K8sError

    def run(call: Callable[[], Any]) -> str:
        with pytest.raises(K8sError) as info:
            call()
        return str(info.value)

    return run


# --------------------------------------------------------------------------- whole runbooks


@pytest.fixture
def run_book(registry: Registry, k8s_env: Env, tmp_path: Path, monkeypatch):
    """run_book(path_or_yaml, params, **RunOptions) -> (summary, nodes by step id, evidence)."""
    from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal
    from opsbook.load import RunbookLoader

    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    journal = Journal(tmp_path / "journal.db")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "k8s_kubeconfig": k8s_env.kubeconfig,
                        }
                    }
                }
            }
        )
    )
    counter = iter(range(1000))

    def run(
        runbook: str,
        params: dict[str, Any] | None = None,
        inventory_doc: dict | None = None,
        approver: Any = "yes",
        **options: Any,
    ):
        """Approval gates are answered yes (as --yes does) unless an approver is given."""
        from opsbook.approve import auto_approver
        path = runbook
        if "\n" in runbook:
            path = str(tmp_path / f"rb{next(counter)}.yaml")
            Path(path).write_text(textwrap.dedent(runbook).lstrip())
        inv = inventory
        if inventory_doc is not None:
            inv = tmp_path / f"inventory{next(counter)}.yaml"
            inv.write_text(yaml.safe_dump(inventory_doc))
        rb = RunbookLoader(registry).load_file(path)
        plan = make_plan(rb, load_inventory_sources([str(inv)]), params or {})
        evidence = tmp_path / f"evidence{next(counter)}"
        request = RunRequest(
            inventory_sources=[str(inv)],
            given_params=params or {},
            options=RunOptions(evidence_dir=evidence, **options),
            approver=auto_approver() if approver == "yes" else approver,
        )
        summary = start_run(plan, registry, journal, request)
        nodes = {rec.step_id: rec for rec in journal.nodes(summary.run_id).values()}
        return summary, nodes, evidence

    yield run
    journal.close()
