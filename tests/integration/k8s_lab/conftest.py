"""Fixtures for the k8s lab integration tests (real control plane, see lab/k8s.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from opsbook_lab import k8s_pytest

k8s_lab = k8s_pytest.k8s_lab  # the session fixture, usable in this directory


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            raise  # CI installs opsbook[kubernetes]; a skip there would hide the gap
        pytest.skip("the kubernetes client is not installed: pip install -e '.[kubernetes]'")
    return kubernetes


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
