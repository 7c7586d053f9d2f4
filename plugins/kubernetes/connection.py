"""How the k8s plugin reaches a cluster: settings like kubectl's, one client per cluster,
raw JSON requests (API discovery is in `discovery`, the errors in `errors`).

Settings, first match wins (action argument, then host var, then kubectl's own default):

* kubeconfig: ``kubeconfig:`` / ``k8s_kubeconfig`` / ``$KUBECONFIG`` (``a:b`` merged like
  kubectl) / ``~/.kube/config``; with none of them, the in-cluster service account when
  opsbook runs in a pod;
* context: ``context:`` / ``k8s_context`` / the kubeconfig's current-context;
* namespace: ``namespace:`` / ``k8s_namespace`` / the context's namespace / ``default``;
* impersonation: ``as_user:``/``as_groups:`` / ``k8s_as_user``/``k8s_as_groups``.

Objects travel as the API's own JSON (camelCase, like ``kubectl get -o json``), so a runbook
reads ``dep.object.status.availableReplicas`` exactly as the documentation spells it.
The ``kubernetes`` client is imported inside functions: opsbook starts without it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsbook_plugins.kubernetes.discovery import Resource, _discover, _match
from opsbook_plugins.kubernetes.errors import (
    _BY_STATUS,
    ApiError,
    ConfigError,
    K8sError,
    Unreachable,
    did_you_mean,
)

REQUEST_TIMEOUT = 30.0  # seconds for one API request when the step allows longer
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How to reach one cluster as one identity: the key of the client pool."""

    kubeconfig: str | None  # None: in-cluster service account
    context: str | None  # None: the kubeconfig's current-context
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    source: str = ""  # where the kubeconfig came from, for messages

    def describe(self) -> str:
        where = (
            "in-cluster service account"
            if self.kubeconfig is None
            else f"kubeconfig {self.kubeconfig}"
        )
        ctx = f", context {self.context}" if self.context else ""
        who = f", as {self.as_user}" if self.as_user else ""
        return where + ctx + who


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, "", [], ()):
            return value
    return None


def settings_for(
    args: Any, host_vars: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Settings:
    """Connection settings from an action's arguments, then host vars, then kubectl's defaults."""
    env = os.environ if env is None else env
    given = _first(getattr(args, "kubeconfig", None), host_vars.get("k8s_kubeconfig"))
    if given:
        source = "argument/host var"
        path = _expand_paths(str(given))
    elif env.get("KUBECONFIG"):
        source, path = "KUBECONFIG", _expand_paths(env["KUBECONFIG"])
    elif os.path.exists(os.path.expanduser("~/.kube/config")):
        source, path = "~/.kube/config", os.path.expanduser("~/.kube/config")
    elif env.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
        source, path = "in-cluster", None
    else:
        raise ConfigError(
            "no kubeconfig: pass kubeconfig: (or host var k8s_kubeconfig), set KUBECONFIG, "
            "or create ~/.kube/config; not running inside a pod either"
        )
    groups = _first(getattr(args, "as_groups", None), host_vars.get("k8s_as_groups")) or ()
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    return Settings(
        kubeconfig=path,
        context=_first(getattr(args, "context", None), host_vars.get("k8s_context")),
        as_user=_first(getattr(args, "as_user", None), host_vars.get("k8s_as_user")),
        as_groups=tuple(str(g) for g in groups),
        source=source,
    )


def _expand_paths(value: str) -> str:
    parts = [os.path.abspath(os.path.expanduser(p)) for p in value.split(os.pathsep) if p]
    return os.pathsep.join(parts)



# --------------------------------------------------------------------------- one cluster


@dataclass
class Cluster:
    """One API client (and its discovery) for one Settings; shared by every thread."""

    settings: Settings
    api: Any  # kubernetes.client.ApiClient
    server: str
    context: str
    default_namespace: str
    _resources: list[Resource] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- requests ----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """One API request; the decoded JSON answer, or ApiError/Unreachable."""
        import urllib3

        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        method, url, hdrs, body, _ = self.api.param_serialize(
            method.upper(),
            path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        hdrs = self._impersonate(hdrs)
        budget = REQUEST_TIMEOUT if timeout is None else max(1.0, min(timeout, REQUEST_TIMEOUT))
        try:
            resp = self.api.call_api(method, url, hdrs, body, None, _request_timeout=budget)
            data = resp.read()
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(self._unreachable(exc)) from None
        except Exception as exc:  # ApiException(status=0) for TLS errors
            if getattr(exc, "status", None) == 0:
                raise Unreachable(
                    f"cannot talk to the Kubernetes API at {self.server} "
                    f"({self.settings.describe()}): {_short(exc)}"
                ) from None
            raise
        text = data.decode("utf-8", errors="replace") if data else ""
        if 200 <= resp.status < 300:
            return json.loads(text) if text else {}
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = {"message": text.strip()[:300]}
        cls = _BY_STATUS.get(resp.status, ApiError)
        message = str(decoded.get("message") or resp.reason or f"HTTP {resp.status}")
        raise cls(message, resp.status, str(decoded.get("reason") or resp.reason or ""), decoded)

    def raw(
        self,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        accept: str = "*/*",
        timeout: float | None = None,
        limit: int = 1 << 20,
    ) -> tuple[int, str, bool]:
        """A GET whose answer is not JSON (pod logs, a service proxy's page): (HTTP status,
        text, cut), whatever the status; the text is cut at ``limit`` bytes."""
        import urllib3

        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        method, url, hdrs, _, _ = self.api.param_serialize(
            "GET", path, query_params=params, header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        hdrs = self._impersonate(hdrs)
        budget = REQUEST_TIMEOUT if timeout is None else max(1.0, min(timeout, REQUEST_TIMEOUT))
        try:
            resp = self.api.call_api(method, url, hdrs, None, None, _request_timeout=budget)
            raw = resp.read() or b""
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(self._unreachable(exc)) from None
        except Exception as exc:
            if getattr(exc, "status", None) == 0:
                raise Unreachable(
                    f"cannot talk to the Kubernetes API at {self.server} "
                    f"({self.settings.describe()}): {_short(exc)}"
                ) from None
            raise
        cut = len(raw) > limit
        return resp.status, raw[:limit].decode("utf-8", errors="replace"), cut

    def _impersonate(self, headers: dict[str, str]) -> Any:
        s = self.settings
        if not (s.as_user or s.as_groups):
            return headers
        from urllib3 import HTTPHeaderDict

        out = HTTPHeaderDict(headers)
        if s.as_user:
            out["Impersonate-User"] = s.as_user
        for group in s.as_groups:  # one header per group: a comma would make one group
            out.add("Impersonate-Group", group)
        return out

    def _unreachable(self, exc: Exception) -> str:
        return (
            f"cannot reach the Kubernetes API at {self.server} ({self.settings.describe()}): "
            f"{_short(exc)}"
        )

    # -- discovery ---------------------------------------------------------------------
    def resources(self) -> list[Resource]:
        """Every resource type the server serves (preferred versions first); cached."""
        with self._lock:
            if self._resources is None:
                self._resources = _discover(self)
            return self._resources

    def forget_discovery(self) -> None:
        with self._lock:
            self._resources = None

    def resource(self, word: str, api_version: str | None = None) -> Resource:
        """`deployment`, `deploy`, `deployments.apps`, `Deployment`, `deployment.v1.apps`."""
        found = _match(self.resources(), word, api_version)
        if found is None:  # a CRD installed a moment ago: look again once
            self.forget_discovery()
            found = _match(self.resources(), word, api_version)
        if found is None:
            known = {w for r in self.resources() for w in r.words()}
            where = f" in {api_version}" if api_version else ""
            raise K8sError(
                f'unknown resource type "{word}"{where} on {self.server}'
                f"{did_you_mean(word.lower(), known)}"
            )
        return found

    def resource_for(self, api_version: str, kind: str) -> Resource:
        """The resource of a manifest's apiVersion + kind."""
        group, _, version = api_version.rpartition("/")
        for res in self.resources():
            if res.kind == kind and res.group == group and res.version == version:
                return res
        self.forget_discovery()
        for res in self.resources():
            if res.kind == kind and res.group == group and res.version == version:
                return res
        kinds = {r.kind for r in self.resources() if r.group == group}
        raise K8sError(
            f"{self.server} does not serve kind {kind} in {api_version}{did_you_mean(kind, kinds)}"
        )



# --------------------------------------------------------------------------- the pool


class ClusterPool:
    """One Cluster per (kubeconfig, context, identity), created on first use, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clusters: dict[tuple[Any, ...], Cluster] = {}

    def get(self, settings: Settings) -> Cluster:
        key = (
            settings.kubeconfig,
            settings.context,
            settings.as_user,
            settings.as_groups,
            _mtimes(settings.kubeconfig),
        )
        with self._lock:
            cluster = self._clusters.get(key)
            if cluster is None:
                cluster = _open(settings)
                self._clusters[key] = cluster
            return cluster

    def close_all(self) -> None:
        with self._lock:
            clusters, self._clusters = list(self._clusters.values()), {}
        for cluster in clusters:
            cluster.api.close()


def _mtimes(paths: str | None) -> tuple[int, ...]:
    """A kubeconfig edited (rotated certificate, new token) is read again."""
    if not paths:
        return ()
    out = []
    for p in paths.split(os.pathsep):
        try:
            out.append(os.stat(p).st_mtime_ns)
        except OSError:
            out.append(0)
    return tuple(out)


def contexts_of(kubeconfig: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(contexts, current) of a kubeconfig (merged like kubectl when it is `a:b`)."""
    from kubernetes import config

    missing = [p for p in kubeconfig.split(os.pathsep) if not os.path.exists(p)]
    if len(missing) == len(kubeconfig.split(os.pathsep)):
        raise ConfigError(f"kubeconfig {kubeconfig} does not exist")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except config.ConfigException as exc:
        if "current-context" in str(exc):
            return _contexts_without_current(kubeconfig)
        raise ConfigError(f"kubeconfig {kubeconfig}: {exc}") from None
    return contexts or [], current


def _contexts_without_current(kubeconfig: str) -> tuple[list[dict[str, Any]], None]:
    import yaml

    contexts: list[dict[str, Any]] = []
    for path in kubeconfig.split(os.pathsep):
        try:
            with open(path) as fh:
                doc = yaml.safe_load(fh) or {}
        except OSError:
            continue
        contexts += [c for c in doc.get("contexts") or [] if isinstance(c, dict)]
    return contexts, None


def _open(settings: Settings) -> Cluster:
    try:
        from kubernetes import client, config
    except ImportError:
        raise ConfigError(
            "the k8s plugin needs the kubernetes client: pip install 'opsbook[kubernetes]'"
        ) from None
    import urllib3

    cfg = client.Configuration()
    context: str | None
    if settings.kubeconfig is None:
        config.load_incluster_config(client_configuration=cfg)
        context, namespace = "in-cluster", _read(IN_CLUSTER_NAMESPACE) or "default"
    else:
        contexts, current = contexts_of(settings.kubeconfig)
        names = [c.get("name", "") for c in contexts]
        context = settings.context or (current or {}).get("name")
        if not context:
            raise ConfigError(
                f"kubeconfig {settings.kubeconfig} has no current-context; "
                f"pass context: (one of {', '.join(names) or 'none'})"
            )
        if context not in names:
            raise ConfigError(
                f'context "{context}" is not in kubeconfig {settings.kubeconfig}'
                f"{did_you_mean(context, names)}; contexts: {', '.join(names) or 'none'}"
            )
        entry = next(c for c in contexts if c.get("name") == context)
        namespace = (entry.get("context") or {}).get("namespace") or "default"
        try:
            config.load_kube_config(
                config_file=settings.kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
        except (config.ConfigException, OSError, ValueError) as exc:
            raise ConfigError(
                f"kubeconfig {settings.kubeconfig}, context {context}: {exc}"
            ) from None
    # Connection refused while an API server restarts: retry for a few seconds. Nothing
    # was sent, so this is safe for every verb; read errors are not retried.
    cfg.retries = urllib3.Retry(
        total=5, connect=5, read=0, status=0, other=0, backoff_factor=0.3, raise_on_status=False
    )
    api = client.ApiClient(cfg)
    api.user_agent = "opsbook"
    return Cluster(settings, api, cfg.host, context, namespace)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    for pattern in (
        r"\[Errno -?\d+\] [^')\"]+",
        r"Connection refused",
        r"timed out",
        r"certificate verify failed[^')\"]*",
        r"Name or service not known",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return text[:200]
