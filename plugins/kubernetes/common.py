"""What every k8s action shares, one action's view of a cluster: the plugin's constants, the
shared client pool, the arguments every action shares (connection, namespace, object), the
`Session` whose requests turn API errors into on-call words (`session()` builds it), and which
object an action is about (arguments, else the `k8s_*` vars of an inventory host)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.plugin import (
    ActionContext,
)
from opsbook_plugins.kubernetes.connection import Cluster, ClusterPool, settings_for
from opsbook_plugins.kubernetes.discovery import Ref
from opsbook_plugins.kubernetes.errors import ApiError, K8sError, NotFound
from opsbook_plugins.kubernetes.errors_explained import explain
from pydantic import BaseModel, ConfigDict, Field

FIELD_MANAGER = "opsbook"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DEFAULT_WAIT = 300.0  # seconds an action waits when neither it nor its step says
POLL = 1.0  # seconds between polls while waiting
EVICT_RETRY = 2.0  # seconds between eviction attempts a PodDisruptionBudget refused
LATE_LOOKS = 3  # rounds of late arrivals a drain evicts before it calls them coming back ...
LATE_FOR = 10.0  # ... and seconds since the drain began: a scheduler under load sees a cordon late
SETTLE = 15.0  # seconds a drain waits, at most, for the scheduler to place the replacements
_REPLACING = ("ReplicaSet", "StatefulSet", "ReplicationController")  # kinds that replace a pod

clusters = ClusterPool()

# --------------------------------------------------------------------------- durations

# Durations: the engine's parser and argument type (30, "30s", "1m30s", "500ms").


# --------------------------------------------------------------------------- arguments


class _Conn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    kubeconfig: str | None = Field(
        None,
        description="kubeconfig path (a:b merged); default host var k8s_kubeconfig, "
        "$KUBECONFIG, ~/.kube/config, in-cluster",
    )
    context: str | None = Field(
        None,
        description="kubeconfig context; default host var k8s_context, then the current-context",
    )
    as_user: str | None = Field(None, description="impersonate this user (host var k8s_as_user)")
    as_groups: list[str] = Field(
        default_factory=list, description="impersonate these groups (host var k8s_as_groups)"
    )


class _Ns(_Conn):
    namespace: str | None = Field(
        None,
        description="default host var k8s_namespace, then the context's namespace, then default",
    )


class _Obj(_Ns):
    kind: str | None = Field(
        None,
        description="resource type as kubectl takes it: deployment, "
        "deploy, pods, poddisruptionbudgets.policy, ...",
    )
    name: str | None = Field(None, description="object name; `kind/name` also works")
    api_version: str | None = Field(None, description="pin a group/version, e.g. apps/v1")


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """One action's view of a cluster: the shared client plus this host's namespace."""

    cluster: Cluster
    namespace: str
    ctx: ActionContext

    @property
    def label(self) -> str:
        return f"{self.cluster.context} ({self.cluster.server})"

    def connection_args(self) -> dict[str, Any]:
        """Arguments that reach this same cluster as this same identity (for inverses)."""
        s = self.cluster.settings
        out: dict[str, Any] = {"context": self.cluster.context}
        if s.kubeconfig:
            out["kubeconfig"] = s.kubeconfig
        if s.as_user:
            out["as_user"] = s.as_user
        if s.as_groups:
            out["as_groups"] = list(s.as_groups)
        return out

    # -- references --------------------------------------------------------------------
    def ref(
        self,
        kind: str,
        name: str | None,
        namespace: str | None = None,
        api_version: str | None = None,
    ) -> Ref:
        res = self.cluster.resource(kind, api_version)
        return Ref(res, (namespace or self.namespace) if res.namespaced else None, name)

    # -- requests with on-call errors --------------------------------------------------
    def call(self, verb: str, ref: Ref, method: str, path: str, **kw: Any) -> Any:
        try:
            return self.cluster.request(method, path, **kw)
        except ApiError as exc:
            raise explain(self, exc, verb, ref, sub=_sub_of(path, ref)) from None

    def get(self, ref: Ref, sub: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.call("get", ref, "GET", ref.path(sub), timeout=timeout)

    def get_or_none(self, ref: Ref, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            return self.cluster.request("GET", ref.path(), timeout=timeout)
        except NotFound:
            return None
        except ApiError as exc:
            raise explain(self, exc, "get", ref) from None

    def list(
        self,
        ref: Ref,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        all_namespaces: bool = False,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        path = ref.resource.path(None if all_namespaces else ref.namespace)
        items: list[dict[str, Any]] = []
        token = None
        while True:
            query = {
                "labelSelector": label_selector or None,
                "fieldSelector": field_selector or None,
                "limit": 500,
                "continue": token,
            }
            page = self.call(
                "list",
                Ref(ref.resource, None if all_namespaces else ref.namespace),
                "GET",
                path,
                query=query,
                timeout=timeout,
            )
            kind = ref.resource.kind
            for item in page.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", ref.resource.api_version)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch(
        self,
        ref: Ref,
        body: Any,
        patch_type: str = "strategic",
        *,
        sub: str | None = None,
        dry_run: bool = False,
        verb: str = "patch",
    ) -> dict[str, Any]:
        content = PATCH_TYPES[patch_type]
        query = {"dryRun": "All" if dry_run else None, "fieldManager": FIELD_MANAGER}
        return self.call(
            verb,
            ref,
            "PATCH",
            ref.path(sub),
            body=body,
            content_type=content,
            query=query,
        )


PATCH_TYPES = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


def _delete_body(options: Mapping[str, Any], dry_run: bool) -> dict[str, Any]:
    body = {"kind": "DeleteOptions", "apiVersion": "v1", **options}
    if dry_run:
        body["dryRun"] = ["All"]
    return body


def _sub_of(path: str, ref: Ref) -> str | None:
    base = ref.path()
    return path[len(base) + 1 :] if ref.name and path.startswith(base + "/") else None


def session(ctx: ActionContext, args: _Conn) -> Session:
    """The cluster (from the pool) and namespace an action works on."""
    host_vars = ctx.host.vars
    cluster = clusters.get(settings_for(args, host_vars))
    namespace = (
        getattr(args, "namespace", None)
        or host_vars.get("k8s_namespace")
        or cluster.default_namespace
    )
    return Session(cluster, str(namespace), ctx)


def _object(s: Session, args: _Obj, default_kind: str | None) -> Ref:
    """The object an action is about: args, else the k8s_* vars of an inventory host."""
    host = s.ctx.host.vars
    kind, name = args.kind, args.name
    if name and "/" in name and not kind:  # kubectl's deployment/web
        kind, _, name = name.partition("/")
    if (
        not name
        and host.get("k8s_name")
        and (not kind or _same_kind(s, kind, host.get("k8s_kind")))
    ):
        name, kind = str(host["k8s_name"]), kind or str(host.get("k8s_kind") or "")
    kind = kind or default_kind
    if not kind:
        raise K8sError("which kind of object? pass kind: (deployment, pod, node, ...)")
    if not name:
        raise K8sError(f"which {kind}? pass name: (or run on a host from the k8s inventory)")
    return s.ref(kind, name, api_version=args.api_version)


def _same_kind(s: Session, kind: str, host_kind: Any) -> bool:
    if not host_kind:
        return False
    try:
        return s.cluster.resource(kind) == s.cluster.resource(str(host_kind))
    except K8sError:
        return False
