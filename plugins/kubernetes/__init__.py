"""k8s: Kubernetes actions for incident runbooks, through the official Python client.

Restart and watch rollouts, scale, cordon and drain nodes (evictions honour
PodDisruptionBudgets), delete stuck objects, server-side apply and patch fixes, read
objects into `register`, collect events and describe output as evidence, and wait for
conditions. Check mode (`--check`) sends every change as a server-side dry run
(`dryRun=All`): the API server validates, authorises and admits it exactly as it would the
real request, and nothing is persisted. Read-only actions run normally in check mode, except
that waits (`wait`, `rollout_status`) look once instead of waiting for what only a real run
would cause: not there yet is `unknown`, with what they saw.

Reaching the cluster works like kubectl (see `connection`): arguments
`kubeconfig`, `context`, `namespace`, `as_user`, `as_groups`, else host vars
`k8s_kubeconfig`, `k8s_context`, `k8s_namespace`, `k8s_as_user`, `k8s_as_groups`, else
`$KUBECONFIG`, `~/.kube/config`, the in-cluster service account. One API client per
(kubeconfig, context, identity) is shared by every step and thread.

Hosts from `k8s_inventory()` carry `k8s_kind`/`k8s_name`/`k8s_namespace`, so
`k8s.cordon: {}` on group `k8s_nodes`, or `k8s.describe: {}` on a pod host, need no names.

This package only declares the plugin: importing each module below registers its actions (or
the inventory source) on the one `plugin` of `_plugin.py`.

- `connection`: settings like kubectl's, one client per cluster, the pool, raw JSON requests;
- `discovery`: the resources a cluster serves, the words that name them, `Ref`;
- `errors`: the plugin's exceptions by HTTP status; `errors_explained`: `explain`, the words for
  the person on call;
- `common`: what every action shares: the arguments, constants and client pool, `Session`
  and `session()`, the object an action is about; `objects`: the clock, time in words,
  reading and comparing API objects;
- `describe`: k8s.get and k8s.describe; `events`: k8s.events and the evidence files;
- `apply`: k8s.apply, k8s.patch, k8s.delete;
- `rollout`: k8s.rollout_restart/status; `rollout_history`: k8s.rollout_history/undo/pause/resume;
- `scale`: k8s.scale; `wait`: k8s.wait;
- `nodes`: k8s.cordon/uncordon; `drain`: k8s.drain, with `placement` for where its pods went;
  `taint`: k8s.taint/untaint/taints_restore;
- `logs`: k8s.logs; `execute`: k8s.exec; `service`: k8s.wait_endpoints and k8s.http;
- `target`: which cluster a step targets, for `opsbook plan` and the run's header;
- `inventory`: the `k8s://` inventory source and `k8s_inventory()`.

The names other code reasonably uses (the session, the errors and their explanation, the
argument models, the pure readers of objects, the inventory) are re-exported here.
"""

from __future__ import annotations

from opsbook_plugins.kubernetes import (  # noqa: F401  importing them registers the actions
    apply,
    describe,
    drain,
    events,
    execute,
    inventory,
    logs,
    nodes,
    rollout,
    rollout_history,
    scale,
    service,
    taint,
    target,
    wait,
)
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.apply import (
    ApplyArgs,
    DeleteArgs,
    PatchArgs,
    applied_change,
    manifests,
)
from opsbook_plugins.kubernetes.common import Session, session
from opsbook_plugins.kubernetes.connection import Cluster, ClusterPool, Settings, settings_for
from opsbook_plugins.kubernetes.describe import DescribeArgs, GetArgs, describe_text
from opsbook_plugins.kubernetes.discovery import Ref, Resource
from opsbook_plugins.kubernetes.drain import DrainArgs, DrainPlan, drain_plan, pdb_reason
from opsbook_plugins.kubernetes.errors import (
    ApiError,
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    K8sError,
    NotFound,
    Throttled,
    Unreachable,
)
from opsbook_plugins.kubernetes.errors_explained import explain
from opsbook_plugins.kubernetes.events import EventsArgs, event_rows, events_table
from opsbook_plugins.kubernetes.inventory import inventory_from, k8s_inventory, k8s_inventory_source
from opsbook_plugins.kubernetes.nodes import NodeArgs
from opsbook_plugins.kubernetes.rollout import Rollout, rollout_state, watch_rollout
from opsbook_plugins.kubernetes.scale import ScaleArgs
from opsbook_plugins.kubernetes.wait import WaitArgs, condition_met, field_met, jsonpath

__all__ = [
    "ApiError",
    "ApplyArgs",
    "Cluster",
    "ClusterPool",
    "ConfigError",
    "Conflict",
    "DeleteArgs",
    "DescribeArgs",
    "DrainArgs",
    "DrainPlan",
    "EventsArgs",
    "Forbidden",
    "GetArgs",
    "Invalid",
    "K8sError",
    "NodeArgs",
    "NotFound",
    "PatchArgs",
    "Ref",
    "Resource",
    "Rollout",
    "ScaleArgs",
    "Session",
    "Settings",
    "Throttled",
    "Unreachable",
    "WaitArgs",
    "applied_change",
    "condition_met",
    "describe_text",
    "drain_plan",
    "event_rows",
    "events_table",
    "explain",
    "field_met",
    "inventory_from",
    "jsonpath",
    "k8s_inventory",
    "k8s_inventory_source",
    "manifests",
    "pdb_reason",
    "plugin",
    "rollout_state",
    "session",
    "settings_for",
    "watch_rollout",
]
