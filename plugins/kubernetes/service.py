"""A Service from inside the cluster: k8s.wait_endpoints and k8s.http.

`wait_endpoints` polls the Service's EndpointSlices (label kubernetes.io/service-name) until
at least `min_ready` endpoints are ready — what a Service actually routes to, not what its
Deployment claims. `http` is an L7 check through the API server's service proxy
(`/api/v1/namespaces/<ns>/services/<scheme>:<name>:<port>/proxy/<path>`): the request
reaches a ready endpoint from inside the cluster network, so it needs no port-forward and no
route to pod IPs, only RBAC `get` on `services/proxy`.
"""

from __future__ import annotations

from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.kubernetes._plugin import plugin
from opsbook_plugins.kubernetes.common import DEFAULT_WAIT, POLL, _Ns, session
from opsbook_plugins.kubernetes.discovery import _segment
from opsbook_plugins.kubernetes.errors import K8sError
from opsbook_plugins.kubernetes.objects import Clock, _n, _timed_out
from pydantic import Field

BODY_CAP = 64 * 1024  # bytes of a proxied answer kept


class EndpointsArgs(_Ns):
    """A Service whose ready endpoints to wait for."""

    service: str = Field(description="the Service's name")
    min_ready: int = Field(1, ge=0, description="ready endpoints needed")
    port: str | int | None = Field(None, description="only endpoints serving this port (name or number)")
    timeout: Seconds = Field(DEFAULT_WAIT, description="give up after this long")


def endpoint_counts(s: Any, namespace: str, service: str, port: str | int | None) -> dict[str, Any]:
    """Ready and not-ready endpoint addresses of a Service, from its EndpointSlices."""
    slices = s.list(
        s.ref("endpointslices", None, namespace),
        label_selector=f"kubernetes.io/service-name={service}",
    )
    ready: list[str] = []
    not_ready: list[str] = []
    for sl in slices:
        ports = sl.get("ports") or []
        if port is not None and not any(
            p.get("name") == port or p.get("port") == port or str(p.get("port")) == str(port)
            for p in ports
        ):
            continue
        for ep in sl.get("endpoints") or []:
            target = ep.get("targetRef") or {}
            label = target.get("name") or ",".join(ep.get("addresses") or [])
            cond = ep.get("conditions") or {}
            (ready if cond.get("ready") is not False else not_ready).append(label)
    return {"ready": len(ready), "not_ready": len(not_ready), "ready_endpoints": sorted(ready),
            "not_ready_endpoints": sorted(not_ready), "slices": len(slices)}


@plugin.action(check=True, idempotent=True, observes=True)
def wait_endpoints(ctx: ActionContext, args: EndpointsArgs) -> Result:
    """Wait until a Service has at least `min_ready` ready endpoints (from its EndpointSlices)."""
    s = session(ctx, args)
    svc_ref = s.ref("services", args.service)
    s.get(svc_ref)  # a missing Service is an error with a did-you-mean, not a long wait
    clock = Clock(ctx, args.timeout)
    last = ""
    while True:
        counts = clock.poll(lambda: endpoint_counts(s, svc_ref.namespace, args.service, args.port))
        data = {"service": args.service, "namespace": svc_ref.namespace, **counts,
                "seconds": round(clock.elapsed(), 1)}
        seen = f"{counts['ready']} ready, {counts['not_ready']} not ready"
        if counts["ready"] >= args.min_ready:
            return Result.ok(data=data, msg=f"service {svc_ref.namespace}/{args.service}: {seen}")
        if ctx.check_mode:
            return Result.unknown(
                f"service {svc_ref.namespace}/{args.service} has {seen} now (needs "
                f"{args.min_ready}); a real run waits up to {clock.limit:g}s",
                data=data,
            )
        if seen != last:
            ctx.output(f"service {svc_ref.namespace}/{args.service}: {seen}, waiting for {args.min_ready}")
            last = seen
        if not clock.wait(POLL):
            names = ", ".join(counts["not_ready_endpoints"][:5])
            why = f" (not ready: {names})" if names else (
                " (no EndpointSlice: does the Service select any pod?)" if not counts["slices"] else ""
            )
            return _timed_out(
                f"service {svc_ref.namespace}/{args.service} has {_n(counts['ready'], 'ready endpoint')}"
                f" after {clock.elapsed():.0f}s, needs {args.min_ready}{why}",
                data=data,
            )


class HttpArgs(_Ns):
    """An HTTP GET to a Service through the API server's service proxy."""

    service: str = Field(description="the Service's name")
    port: str | int | None = Field(None, description="the Service port (name or number; default its first)")
    path: str = Field("/", description="request path, e.g. /healthz")
    scheme: Literal["http", "https"] = "http"
    status: list[int] = Field(default_factory=lambda: [200], description="statuses that pass")
    contains: str | None = Field(None, description="text the body must contain")
    timeout: Seconds = Field(10.0, description="the request's timeout")


@plugin.action(check=True, idempotent=True, observes=True)
def http(ctx: ActionContext, args: HttpArgs) -> Result:
    """L7 check of an in-cluster Service via the API server's service proxy (status, body text)."""
    s = session(ctx, args)
    ref = s.ref("services", args.service)
    svc = s.get(ref)
    ports = (svc.get("spec") or {}).get("ports") or []
    if not ports:
        raise K8sError(f"service {ref.namespace}/{args.service} has no ports")
    port = args.port if args.port is not None else (ports[0].get("name") or ports[0].get("port"))
    if not any(p.get("name") == port or str(p.get("port")) == str(port) for p in ports):
        shown = ", ".join(str(p.get("name") or p.get("port")) for p in ports)
        raise K8sError(f"service {ref.namespace}/{args.service} has no port {port}; ports: {shown}")
    target = f"{args.scheme}:{_segment(args.service, 'name')}:{port}"
    path = args.path if args.path.startswith("/") else "/" + args.path
    url = f"{ref.resource.path(ref.namespace)}/{target}/proxy{path}"
    status, body, cut = s.cluster.raw(url, timeout=min(args.timeout, ctx.deadline_left(args.timeout)), limit=BODY_CAP)
    where = f"service {ref.namespace}/{args.service}:{port}{path} (via the API server's proxy)"
    data = {"url": url, "http_status": status, "body": body, "truncated": cut}
    if status in args.status and (args.contains is None or args.contains in body):
        return Result.ok(data=data, msg=f"{where}: HTTP {status}")
    if status in args.status:
        return Result.failed(f"{where}: HTTP {status} but the body lacks {args.contains!r}", data=data)
    first = body.strip().splitlines()[0][:200] if body.strip() else ""
    if (status in (502, 503) and "no endpoints available" in body) or (
        status == 404 and f'services \\"{args.service}\\" not found' in body
    ):
        # the Service exists (read above): the proxy found no ready endpoint to send to
        hint = "; the Service has no ready endpoint to proxy to (see k8s.wait_endpoints)"
    elif status == 403:
        hint = "; needs RBAC get on services/proxy in this namespace"
    else:
        hint = ""
    return Result.failed(f"{where}: HTTP {status}, expected {args.status}: {first}{hint}", data=data)
