"""API discovery: the resources a cluster serves (aggregated discovery, else the legacy
group documents), matching the words a runbook uses (`deploy`, `deployments.apps`) to them,
and `Ref`, one object's API path with every path segment checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the connection imports discovery
    from opsbook_plugins.kubernetes.connection import Cluster
from opsbook_plugins.kubernetes.errors import ApiError, K8sError

_AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
)


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """One API resource type as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def label(self) -> str:
        """kubectl's name for the type: `deployment`, `poddisruptionbudget`."""
        return self.singular or self.kind.lower()

    @property
    def qualified(self) -> str:
        """RBAC's name: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{_segment(namespace, 'namespace')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{_segment(name, 'name')}"
            if sub:
                base += f"/{_segment(sub, 'subresource')}"
        return base

    def words(self) -> set[str]:
        return {self.plural, self.kind.lower(), self.label, *self.short_names}


_GROUP_PRIORITY = ("", "apps", "batch", "autoscaling", "policy", "networking.k8s.io")


def _rank(res: Resource) -> tuple[int, int]:
    pri = _GROUP_PRIORITY.index(res.group) if res.group in _GROUP_PRIORITY else len(_GROUP_PRIORITY)
    return (pri, 0 if res.group != "events.k8s.io" else 1)


@dataclass(frozen=True)
class Ref:
    """An object (or, without name, a collection) on one cluster."""

    resource: Resource
    namespace: str | None
    name: str | None = None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.resource.namespaced and self.namespace else ""
        return f"{self.resource.label} {where}{self.name or '*'}"

    def path(self, sub: str | None = None) -> str:
        return self.resource.path(
            self.namespace if self.resource.namespaced else None, self.name, sub
        )


def _segment(value: str, what: str) -> str:
    """A name as one URL path segment. Kubernetes's own rule (IsValidPathSegmentName), plus
    ? and #: a templated name like "x/../../namespaces/prod" must not address another object
    (the HTTP client resolves dot segments before sending)."""
    if value in (".", "..") or any(c in value for c in "/%?#"):
        raise K8sError(
            f'invalid {what} "{value}": a Kubernetes {what} cannot be "." or "..", '
            'nor contain "/", "%", "?" or "#"'
        )
    return value



def _match(resources: list[Resource], word: str, api_version: str | None) -> Resource | None:
    text = word.strip()
    group = None
    if "." in text:  # deployments.apps, deployment.v1.apps
        head, _, rest = text.partition(".")
        version, _, maybe_group = rest.partition(".")
        if maybe_group and re.fullmatch(r"v\d+((alpha|beta)\d+)?", version):
            text, group, api_version = head, maybe_group, f"{maybe_group}/{version}"
        else:
            text, group = head, rest
    low = text.lower()
    cands = [r for r in resources if low in r.words()]
    if text != low:  # a Kind as written in manifests wins over a plural/short name
        exact = [r for r in cands if r.kind == text]
        cands = exact or cands
    if group is not None:
        cands = [r for r in cands if r.group == group]
    if api_version:
        cands = [r for r in cands if r.api_version == api_version]
    if not cands:
        return None
    return min(cands, key=_rank)


def _discover(cluster: Cluster) -> list[Resource]:
    out: list[Resource] = []
    for prefix in ("/api", "/apis"):
        doc = cluster.request("GET", prefix, accept=_AGGREGATED)
        if doc.get("kind") == "APIGroupDiscoveryList":
            out += _from_aggregated(doc)
        else:
            out += _legacy(cluster, prefix, doc)
    return out


def _from_aggregated(doc: Mapping[str, Any]) -> list[Resource]:
    out = []
    for item in doc.get("items") or []:
        group = (item.get("metadata") or {}).get("name", "")
        for ver in item.get("versions") or []:  # the preferred version comes first
            for res in ver.get("resources") or []:
                rk = res.get("responseKind") or {}
                out.append(
                    Resource(
                        group=group,
                        version=ver["version"],
                        kind=rk.get("kind", ""),
                        plural=res["resource"],
                        namespaced=res.get("scope") == "Namespaced",
                        singular=res.get("singularResource", ""),
                        short_names=tuple(res.get("shortNames") or ()),
                        verbs=tuple(res.get("verbs") or ()),
                        subresources=tuple(
                            s.get("subresource", "") for s in res.get("subresources") or ()
                        ),
                    )
                )
    return out


def _legacy(cluster: Cluster, prefix: str, doc: Mapping[str, Any]) -> list[Resource]:
    """Discovery for API servers older than 1.27: one request per group version."""
    versions: list[tuple[str, str]] = []
    if prefix == "/api":
        versions = [("", v) for v in doc.get("versions") or ["v1"]]
    else:
        for group in doc.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version")
            names = [v["version"] for v in group.get("versions") or []]
            ordered = [preferred] + [n for n in names if n != preferred] if preferred else names
            versions += [(group["name"], v) for v in ordered]
    out = []
    for group, version in versions:
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        try:
            listing = cluster.request("GET", path)
        except ApiError:
            continue
        subs: dict[str, list[str]] = {}
        for res in listing.get("resources") or []:
            if "/" in res["name"]:
                parent, _, sub = res["name"].partition("/")
                subs.setdefault(parent, []).append(sub)
        for res in listing.get("resources") or []:
            if "/" in res["name"]:
                continue
            out.append(
                Resource(
                    group=group,
                    version=version,
                    kind=res.get("kind", ""),
                    plural=res["name"],
                    namespaced=bool(res.get("namespaced")),
                    singular=res.get("singularName", ""),
                    short_names=tuple(res.get("shortNames") or ()),
                    verbs=tuple(res.get("verbs") or ()),
                    subresources=tuple(subs.get(res["name"], ())),
                )
            )
    return out
