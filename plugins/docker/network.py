"""docker.network: connect a container to a network (with DNS aliases) or disconnect it, with
its check mode and the inverse that puts the connection, aliases included, back.
`_user_aliases` is used by docker.recreate to keep a container's aliases.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, arg_in
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import DockerError
from opsbook_plugins.docker.target import Target, _api_call, _guarded, target_for
from pydantic import BaseModel, ConfigDict, Field


class NetworkArgs(BaseModel):
    """Arguments of docker.network."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    network: str = Field(..., description="The Docker network.")
    state: Literal["connected", "disconnected"] = Field(
        ..., description="disconnected isolates the container from the network; connected restores."
    )
    container: str | None = Field(None, description="Container name (default: see the plugin).")
    aliases: list[str] | None = Field(None, description="DNS aliases on connect.")
    ipv4_address: str | None = Field(None, description="Static address on connect.")
    force: bool = Field(False, description="Force the disconnect.")


def _network_inverse(args: NetworkArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    if not result.changed:
        return None
    back: dict[str, Any] = {"network": args.network, "container": result.data.get("container")}
    if args.state == "disconnected":
        back["state"] = "connected"
        previous = result.data.get("previous") or {}
        if previous.get("aliases"):
            back["aliases"] = previous["aliases"]
        if previous.get("ipv4_address"):
            back["ipv4_address"] = previous["ipv4_address"]
    else:
        back["state"] = "disconnected"
    return "docker.network", back


def _network(target: Target, name: str) -> Any:
    import docker.errors

    try:
        return _api_call(target.daemon, lambda: target.client.networks.get(name))
    except docker.errors.NotFound:
        names = sorted(n["Name"] for n in target.client.api.networks())
        hint = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        text = f"no network named {name} on {target.daemon.base_url}; networks there: {', '.join(names)}"
        raise DockerError(text + (f' (did you mean "{hint[0]}"?)' if hint else "")) from None


def _user_aliases(attrs: Mapping[str, Any], endpoint: Mapping[str, Any]) -> list[str]:
    """Aliases a person gave (docker adds the short id itself; giving it back is an error)."""
    short = str(attrs.get("Id", ""))[:12]
    return [a for a in (endpoint.get("Aliases") or []) if a != short]


@plugin.action(check=True, idempotent=True, inverse=_network_inverse, inverse_actions=["docker.network"], mutates=True,
               disrupts=arg_in("state", ("disconnected",), "connected"))
@_guarded
def network(ctx: ActionContext, args: NetworkArgs) -> Result:
    """Connect a container to a network or disconnect it (isolate a failing node)."""
    target = target_for(ctx, args.container)
    obj = target.container()
    net = _network(target, args.network)
    endpoints = (obj.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    endpoint = endpoints.get(net.name)
    connected = endpoint is not None
    data: dict[str, Any] = {"container": target.name, "network": net.name}
    want = args.state == "connected"
    if connected == want:
        return Result.ok(
            msg=f"{target.name} is already {args.state} {_prep(want)} {net.name}", data=data
        )
    verb = "connect" if want else "disconnect"
    if endpoint is not None:
        ipam = endpoint.get("IPAMConfig") or {}
        data["previous"] = {
            "ip": endpoint.get("IPAddress"),
            "ipv4_address": ipam.get("IPv4Address") or None,
            "aliases": _user_aliases(obj.attrs, endpoint),
        }
    if ctx.check_mode:
        return Result.ok(
            changed=True, msg=f"would {verb} {target.name} {_prep(want)} {net.name}", data=data
        )
    if want:
        kwargs: dict[str, Any] = {}
        if args.aliases:
            kwargs["aliases"] = args.aliases
        if args.ipv4_address:
            kwargs["ipv4_address"] = args.ipv4_address
        _api_call(target.daemon, lambda: net.connect(obj.id, **kwargs))
    else:
        _api_call(target.daemon, lambda: net.disconnect(obj.id, force=args.force))
    return Result.ok(
        changed=True, msg=f"{verb}ed {target.name} {_prep(want)} {net.name}", data=data
    )


def _prep(connected: bool) -> str:
    return "to" if connected else "from"
