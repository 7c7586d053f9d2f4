"""pytest fixture ``k8s_lab``: the real Kubernetes control plane of the lab.

Register it with ``pytest_plugins = ["opsbook_lab.k8s_pytest"]`` (root conftest) or
import ``k8s_lab`` into a conftest. Session scoped: it builds the binaries if they
are missing and building is allowed (``CI`` set, or ``OPSBOOK_LAB_INSTALL=1``),
otherwise skips with the reason; starts (or reuses) the control plane, from empty
etcd data when it has to start it; and stops it at the end only if it started it
(with pytest-xdist: the last worker using it stops it).

The first build takes a long time on 2 cores (see lab/k8s/README.md); run
``lab/k8s/build.sh`` before pytest in CI so per-test timeouts do not cover it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from opsbook_lab import k8s
from opsbook_lab.pytest_plugin import _truthy, skip_or_fail_in_ci


def _may_build() -> bool:
    return _truthy(os.environ.get("CI")) or os.environ.get("OPSBOOK_LAB_INSTALL") == "1"


def kubernetes_client() -> Any:
    """The official `kubernetes` package, for tests that check the cluster behind the plugin's
    back; skips without it (fails in CI, where tests/run installs opsbook[kubernetes])."""
    try:
        import kubernetes
    except ImportError:
        skip_or_fail_in_ci(
            "the kubernetes client is not installed: pip install -e '.[kubernetes]'",
            "the kubernetes client is not installed, though tests/run installs .[kubernetes]",
        )
    return kubernetes


@pytest.fixture(scope="session")
def k8s_lab() -> Iterator[k8s.K8sInfo]:
    """Start (or reuse) the lab control plane with its seeded workload; yield K8sInfo."""
    if not k8s.binaries_present():
        if not _may_build():
            pytest.skip(
                "k8s lab binaries not built: run lab/k8s/build.sh "
                "(or set OPSBOOK_LAB_INSTALL=1 to build them here, 7-13 min on 2 cores; CI should run it before pytest)"
            )
        k8s.build()
    with k8s.session(fresh=True) as info:
        yield info
