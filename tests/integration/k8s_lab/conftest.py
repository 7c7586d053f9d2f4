"""Fixtures for the k8s lab integration tests (real control plane, see lab/k8s.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opsbook_lab.k8s_pytest import kubernetes_client as _kubernetes

# k8s_lab itself comes from opsbook_lab.k8s_pytest (tests/conftest.py), one fixture for every
# directory: a second definition here was a second session that stopped the control plane
# under the other one's feet when the directories ran in the other order.


@pytest.fixture(scope="session")
def kube(k8s_lab: Any) -> Iterator[Any]:
    """ApiClient for the lab admin (system:masters) from the generated kubeconfig."""
    kubernetes = _kubernetes()
    client = kubernetes.config.new_client_from_config(config_file=str(k8s_lab.kubeconfig))
    with client:
        yield client


@pytest.fixture(scope="session")
def kube_restricted(k8s_lab: Any) -> Iterator[Any]:
    """ApiClient for the restricted user (may only read namespace shop)."""
    kubernetes = _kubernetes()
    client = kubernetes.config.new_client_from_config(
        config_file=str(k8s_lab.restricted_kubeconfig)
    )
    with client:
        yield client
