"""docker.container: start, stop, restart, kill, pause, unpause or remove a container, its
plan in check mode, its inverse, and `wait_healthy` (also used by docker.recreate, docker.run
and docker.service to wait for a new container).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, Seconds, arg_in
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import _POLL, ContainerNotFound, _fmt_s
from opsbook_plugins.docker.target import (
    Target,
    _api_call,
    _guarded,
    _health,
    _status,
    _time_left,
    missing_container_message,
    target_for,
)
from pydantic import BaseModel, ConfigDict, Field

ContainerState = Literal[
    "started", "stopped", "restarted", "killed", "paused", "unpaused", "absent"
]


class ContainerArgs(BaseModel):
    """Arguments of docker.container."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str | None = Field(None, description="Container name or id (default: see the plugin).")
    state: ContainerState = Field("started", description="The state the container should be in.")
    wait_healthy: bool = Field(
        False, description="Wait until the HEALTHCHECK says healthy (or, without one, running)."
    )
    timeout: Seconds | None = Field(None, description="How long wait_healthy waits (default 60s).")
    stop_timeout: Seconds = Field(10.0, description="Grace before SIGKILL on stop/restart.")
    signal: str = Field("SIGKILL", description="Signal sent for state: killed.")


def _container_inverse(args: ContainerArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    """stopped <-> started, paused <-> unpaused; killed restarts; only when something changed."""
    if not result.changed:
        return None
    before = result.data.get("before")
    name = result.data.get("name") or args.name
    if args.state in ("stopped", "killed") and before in ("running", "restarting"):
        return "docker.container", {"name": name, "state": "started"}
    if args.state == "started" and before in ("exited", "created", "dead"):
        return "docker.container", {"name": name, "state": "stopped"}
    if args.state == "started" and before == "paused":
        return "docker.container", {"name": name, "state": "paused"}
    if args.state == "paused":
        return "docker.container", {"name": name, "state": "unpaused"}
    if args.state == "unpaused":
        return "docker.container", {"name": name, "state": "paused"}
    return None


def _plan_container(state: str, status: str | None) -> str | None:
    """The verb that takes a container from `status` to `state`, or None if it is there."""
    if status is None:
        return None if state == "absent" else "missing"
    running = status in ("running", "restarting")
    table: dict[str, str | None] = {
        "started": "unpause" if status == "paused" else (None if running else "start"),
        "stopped": "stop" if running or status == "paused" else None,
        "restarted": "restart",
        "killed": "kill" if running or status == "paused" else None,
        "paused": "pause" if running else (None if status == "paused" else "cannot-pause"),
        "unpaused": "unpause" if status == "paused" else None,
        "absent": "remove",
    }
    return table[state]


_PREDICTED = {
    "start": "running",
    "stop": "exited",
    "restart": "running",
    "kill": "exited",
    "pause": "paused",
    "unpause": "running",
    "remove": "absent",
}

_PAST = {
    "start": "started",
    "stop": "stopped",
    "restart": "restarted",
    "kill": "killed",
    "pause": "paused",
    "unpause": "unpaused",
    "remove": "removed",
}


@plugin.action(check=True, idempotent=False, inverse=_container_inverse, inverse_actions=["docker.container"], mutates=True,
               disrupts=arg_in("state", ("stopped", "restarted", "killed", "paused", "absent"), "started"))
@_guarded
def container(ctx: ActionContext, args: ContainerArgs) -> Result:
    """Start, stop, restart, kill, pause, unpause or remove a container; optionally wait healthy."""
    target = target_for(ctx, args.name)
    status = _current_status(target)
    verb = _plan_container(args.state, status)
    data: dict[str, Any] = {"name": target.name, "before": status or "absent"}
    if verb == "missing":
        return Result.failed(missing_container_message(target.client, target.daemon, target.name))
    if verb == "cannot-pause":
        return Result.failed(f"cannot pause {target.where()}: it is not running (it is {status})")
    if verb is None:
        data["after"] = data["before"]
        return _maybe_wait(
            ctx,
            args,
            target,
            Result.ok(msg=f"{target.name} is already {status or 'absent'}", data=data),
        )
    diff = f"{target.name}: {status} -> {_PREDICTED[verb]}" if ctx.diff_mode else None
    if ctx.check_mode:
        data["after"] = _PREDICTED[verb]
        msg = f"would {verb} {target.name} (it is {status})"
        return Result.ok(changed=True, msg=msg, data=data, diff=diff)
    _do(target, verb, args, ctx)
    data["after"] = "absent" if verb == "remove" else _status(target.container().attrs)
    msg = f"{_PAST[verb]} {target.name} (was {status})"
    return _maybe_wait(ctx, args, target, Result.ok(changed=True, msg=msg, data=data, diff=diff))


def _current_status(target: Target) -> str | None:
    try:
        return _status(target.container().attrs)
    except ContainerNotFound:
        return None


def _do(target: Target, verb: str, args: ContainerArgs, ctx: ActionContext) -> None:
    obj = target.container()
    grace = int(max(0.0, min(args.stop_timeout, _time_left(ctx, None, args.stop_timeout))))
    actions: dict[str, Callable[[], Any]] = {
        "start": obj.start,
        "stop": lambda: obj.stop(timeout=grace),
        "restart": lambda: obj.restart(timeout=grace),
        "kill": lambda: obj.kill(signal=args.signal),
        "pause": obj.pause,
        "unpause": obj.unpause,
        "remove": lambda: obj.remove(force=True, v=False),
    }
    _api_call(target.daemon, actions[verb])


def _maybe_wait(ctx: ActionContext, args: ContainerArgs, target: Target, result: Result) -> Result:
    if (
        not args.wait_healthy
        or ctx.check_mode
        or args.state in ("stopped", "killed", "absent", "paused")
    ):
        return result
    waited = wait_healthy(ctx, target, _time_left(ctx, args.timeout))
    result.data.update(waited.data)
    if waited.failed_:
        waited.changed = result.changed
        waited.data = result.data
        return waited
    result.msg += f"; {waited.msg}"
    return result


_SETTLE = 1.0  # seconds a container without healthcheck must stay up to count as running


def wait_healthy(ctx: ActionContext, target: Target, limit: float) -> Result:
    """Poll until healthy (HEALTHCHECK) or running for a second (no healthcheck), in `limit` s."""
    start = time.monotonic()
    up_since: tuple[str, float] | None = None  # (StartedAt, when we first saw it running)
    while True:
        attrs = target.container().attrs
        state = attrs.get("State") or {}
        health, status = _health(attrs), _status(attrs)
        now = time.monotonic()
        waited = now - start
        facts = {"health": health, "status": status, "waited_s": round(waited, 3)}
        if health == "healthy":
            return Result.ok(msg=f"{target.name} is healthy after {waited:.1f} s", data=facts)
        if health is None and status == "running":
            # A crash-looping container is "running" for an instant: it must stay up.
            if up_since is None or up_since[0] != state.get("StartedAt"):
                up_since = (str(state.get("StartedAt")), now)
            if now - up_since[1] >= min(_SETTLE, limit):
                msg = f"{target.name} is running (no healthcheck) after {waited:.1f} s"
                return Result.ok(msg=msg, data=facts)
        else:
            up_since = None
        if status in ("exited", "dead"):
            return Result.failed(
                f"{target.name} is {status} (exit code {state.get('ExitCode')}), "
                f"not running: it will not become healthy",
                data=facts,
            )
        if waited >= limit or ctx.cancelled.is_set():
            return Result.failed(_not_healthy_message(target, attrs, limit), data=facts)
        ctx.cancelled.wait(min(_POLL, max(0.0, limit - waited)))


def _not_healthy_message(target: Target, attrs: Mapping[str, Any], limit: float) -> str:
    health = (attrs.get("State") or {}).get("Health")
    if not health:
        return f"{target.name} is not running after {_fmt_s(limit)} (it is {_status(attrs)})"
    text = f"{target.name} did not become healthy within {_fmt_s(limit)} (health: {health.get('Status')}"
    log = health.get("Log") or []
    if log:
        last = log[-1]
        output = str(last.get("Output", "")).strip().replace("\n", " ")[:200]
        text += f", last check exit {last.get('ExitCode')}: {output!r}"
    return text + ")"
