"""The k8s plugin object itself, alone so that the package's `__init__` and every action
module can import it without importing each other: each action module registers its actions
and the inventory source on this one `plugin`."""

from __future__ import annotations

from opsbook.plugin import Plugin

plugin = Plugin(
    "k8s",
    "Kubernetes: rollouts, scaling, cordon/drain, apply/patch/delete, facts, events, waits.",
)
