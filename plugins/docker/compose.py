"""Compose projects without the compose binary: docker.service acts on the containers of a
project's service, found by the labels compose puts on them (`com.docker.compose.project`,
`com.docker.compose.service`, `com.docker.compose.container-number`).

Restart, stop and start act on every container of the service; `recreated` recreates them
one at a time, each waiting healthy before the next (a rolling recreate: a container that
does not come up stops the roll, and the old one is back); `scale` adds containers made
from a member's configuration or removes the highest-numbered ones. The inverse puts the
previous state, image or count back.

This module registers its action on the docker plugin (the package's `__init__` imports it).
"""

from __future__ import annotations

from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.container import wait_healthy
from opsbook_plugins.docker.daemons import DockerError
from opsbook_plugins.docker.recreate import RecreateArgs, create, recreate, spec_of
from opsbook_plugins.docker.target import (
    Target,
    _api_call,
    _guarded,
    _time_left,
    target_for,
)
from pydantic import BaseModel, ConfigDict, Field

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"


class ServiceArgs(BaseModel):
    """Arguments of docker.service."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    project: str = Field(description="The compose project (label com.docker.compose.project).")
    service: str = Field(description="The service (label com.docker.compose.service).")
    state: Literal["started", "stopped", "restarted", "recreated"] | None = Field(
        None, description="started/stopped/restarted: every container; recreated: one at a time, each "
        "healthy before the next.")
    image: str | None = Field(None, description="With state: recreated, a new image (or `previous`).")
    scale: int | None = Field(None, ge=0, description="The number of containers the service should have.")
    wait_healthy: bool = Field(True, description="Wait until each started or new container is healthy.")
    timeout: Seconds | None = Field(None, description="How long each wait lasts (default 60s).")
    stop_timeout: Seconds = Field(10.0, description="Grace before SIGKILL when stopping.")


def members(target: Target, project: str, service: str) -> list[dict[str, Any]]:
    """The service's containers (running or not), by container number."""
    listed = _api_call(target.daemon, lambda: target.client.api.containers(
        all=True, filters={"label": [f"{PROJECT}={project}", f"{SERVICE}={service}"]}))
    return sorted(listed, key=lambda c: int((c.get("Labels") or {}).get(NUMBER) or 0))


def _names(listed: list[dict[str, Any]]) -> list[str]:
    return [str(c["Names"][0]).lstrip("/") for c in listed]


def _service_inverse(args: ServiceArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    if not result.changed:
        return None
    back: dict[str, Any] = {"project": args.project, "service": args.service}
    if args.scale is not None and result.data.get("scaled_from") is not None:
        back["scale"] = result.data["scaled_from"]
    if args.state == "stopped":
        back["state"] = "started"
    elif args.state == "started" and result.data.get("started"):
        back["state"] = "stopped"
    elif args.state == "recreated" and args.image:
        back.update(state="recreated", image=result.data.get("previous_image_id"))
    return ("docker.service", back) if len(back) > 2 else None


@plugin.action(check=True, idempotent=False, inverse=_service_inverse, inverse_actions=["docker.service"], mutates=True,
               data=["project", "service", "containers", "scaled_from", "scaled_to", "started", "stopped", "restarted",
                     "recreated", "previous_image_id"])
@_guarded
def service(ctx: ActionContext, args: ServiceArgs) -> Result:
    """Restart, stop, start, recreate (rolling, one at a time) or scale a compose service's
    containers, found by their compose labels; no compose binary needed."""
    if args.state is None and args.scale is None:
        raise DockerError("say what to do: state (started, stopped, restarted, recreated) and/or scale")
    target = target_for(ctx, None)
    listed = members(target, args.project, args.service)
    if not listed:
        raise DockerError(f"no container of service {args.service} in compose project {args.project} on "
                          f"{target.daemon.base_url} (labels {PROJECT}, {SERVICE})")
    names = _names(listed)
    # every declared key is always there (check mode too), so a later step reads them alike
    data: dict[str, Any] = {"project": args.project, "service": args.service, "containers": names,
                            "scaled_from": None, "scaled_to": None, "started": [], "stopped": [], "restarted": [],
                            "recreated": [],
                            "previous_image_id": None}
    said: list[str] = []
    changed = False
    if args.scale is not None and args.scale != len(listed):
        data["scaled_from"], data["scaled_to"] = len(listed), args.scale
        said.append(f"scale {len(listed)} -> {args.scale}")
        if not ctx.check_mode:
            _scale(ctx, target, listed, args)
        changed = True
        listed = members(target, args.project, args.service) if not ctx.check_mode else listed
    if args.state in ("started", "stopped", "restarted"):
        verbs = {"started": "start", "stopped": "stop", "restarted": "restart"}
        todo = [c for c in listed if args.state == "restarted"
                or (args.state == "started") != (_status_of(c) in ("running", "restarting"))]
        if todo:
            said.append(f"{verbs[args.state]} {', '.join(_names(todo))}")
            data[args.state] = _names(todo)
            changed = True
            if not ctx.check_mode:
                for c in todo:
                    _act(ctx, target, c["Id"], verbs[args.state], args)
    elif args.state == "recreated":
        said.append(f"recreate {', '.join(_names(listed))} one at a time")
        changed = True
        if ctx.check_mode:
            data["recreated"] = _names(listed)  # what a real run would recreate
        else:
            done: list[str] = []
            for name in _names(listed):
                one = recreate(ctx, RecreateArgs(container=name, image=args.image, wait_healthy=args.wait_healthy,
                                                 timeout=args.timeout, stop_timeout=args.stop_timeout))
                if one.failed_:
                    data["recreated"] = done
                    return Result.failed(f"{args.service}: recreated {len(done)} of {len(listed)}; stopped at "
                                         f"{name}: {one.msg}", changed=bool(done), data=data)
                done.append(name)
                data.setdefault("previous_image_id", (one.data.get("undo") or {}).get("image"))
            data["recreated"] = done
    verb = "would " if ctx.check_mode else ""
    msg = f"{args.project}/{args.service}: {verb}{'; '.join(said)}" if said else \
        f"{args.project}/{args.service} is already as asked ({len(listed)} containers)"
    return Result.ok(changed=changed, msg=msg, data=data)


def _status_of(listed: dict[str, Any]) -> str:
    return str(listed.get("State") or "")


def _act(ctx: ActionContext, target: Target, cid: str, verb: str, args: ServiceArgs) -> None:
    api = target.client.api
    grace = int(max(0.0, min(args.stop_timeout, _time_left(ctx, None, args.stop_timeout))))
    call = {"start": lambda: api.start(cid), "stop": lambda: api.stop(cid, timeout=grace),
            "restart": lambda: api.restart(cid, timeout=grace)}[verb]
    _api_call(target.daemon, call)
    if verb != "stop" and args.wait_healthy:
        name = str(api.inspect_container(cid)["Name"]).lstrip("/")
        waited = wait_healthy(ctx, Target(target.daemon, target.client, name), _time_left(ctx, args.timeout))
        if waited.failed_:
            raise DockerError(waited.msg)


def _scale(ctx: ActionContext, target: Target, listed: list[dict[str, Any]], args: ServiceArgs) -> None:
    """Out: new containers from the highest-numbered member's configuration; in: remove the
    highest-numbered ones."""
    api = target.client.api
    assert args.scale is not None
    if args.scale < len(listed):
        for c in reversed(listed[args.scale:]):
            _api_call(target.daemon, lambda cid=c["Id"]: api.remove_container(cid, force=True))
        return
    model = api.inspect_container(listed[-1]["Id"])
    top = max(int((c.get("Labels") or {}).get(NUMBER) or 0) for c in listed)
    for number in range(top + 1, top + 1 + args.scale - len(listed)):
        spec = spec_of(model)
        original = model.get("HostConfig") or {}
        spec.host_config["Binds"] = original.get("Binds")  # a copy gets fresh anonymous volumes,
        spec.host_config["Mounts"] = original.get("Mounts")  # never the model's own
        spec.name = f"{args.project}-{args.service}-{number}"
        spec.labels[NUMBER] = str(number)
        spec.config.pop("hostname", None)
        for network in spec.networks.values():
            network["ipv4_address"] = None  # a copy never takes the model's static address
        if spec.host_config.get("PortBindings"):  # a fixed host port cannot be bound twice
            spec.host_config["PortBindings"] = {p: [{**b, "HostPort": ""} for b in binds]
                                                for p, binds in spec.host_config["PortBindings"].items()}
        created = create(target, spec)
        _api_call(target.daemon, lambda cid=created: api.start(cid))
        if args.wait_healthy:
            waited = wait_healthy(ctx, Target(target.daemon, target.client, spec.name), _time_left(ctx, args.timeout))
            if waited.failed_:
                raise DockerError(f"the new container {spec.name} did not come up: {waited.msg}")
