"""Which cluster a k8s step targets, for `opsbook plan` and the run's header: the context and
API server its connection settings resolve to, read from the kubeconfig (nothing contacted).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import yaml
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.connection import settings_for
from opsbook_plugins.kubernetes.errors import K8sError

_CONN = ("kubeconfig", "context", "as_user", "as_groups")


def _server(kubeconfig: str, context: str | None) -> tuple[str | None, str | None]:
    """(context, server) from the kubeconfig files, merged first-wins like kubectl."""
    contexts: dict[str, Any] = {}
    clusters: dict[str, Any] = {}
    current = None
    for path in kubeconfig.split(os.pathsep):
        try:
            with open(path) as fh:
                doc = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError):
            continue
        current = current or doc.get("current-context")
        for c in doc.get("contexts") or []:
            contexts.setdefault(c.get("name"), c.get("context") or {})
        for c in doc.get("clusters") or []:
            clusters.setdefault(c.get("name"), c.get("cluster") or {})
    name = context or current
    cluster = clusters.get((contexts.get(name) or {}).get("cluster"), {})
    return name, cluster.get("server")


@plugin.target
def target(action: str, args: Any, host_vars: Mapping[str, Any]) -> str | None:
    """'cluster <context> (<server>)', or why it cannot be told."""
    conn = SimpleNamespace(**{k: args.get(k) for k in _CONN}) if isinstance(args, Mapping) else None
    try:
        settings = settings_for(conn or SimpleNamespace(), host_vars)
    except K8sError as exc:
        return f"cluster: none found ({exc})"
    if settings.kubeconfig is None:
        return "cluster: in-cluster service account"
    context, server = _server(settings.kubeconfig, settings.context)
    who = f" as {settings.as_user}" if settings.as_user else ""
    return f"cluster {context or '?'} ({server or 'server unknown'}){who}"
