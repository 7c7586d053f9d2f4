"""svcadm: a sample third-party opsbook plugin. A service's state is one word in a file on
the host (`<state_dir>/<service>`), read and written through the host's connection, so
that the same actions work on the controller, over SSH and in containers.

The actions cover the kinds the plugin contract covers: a read-only status (check mode), a
change with an inverse, a wait with a timeout that observes cancellation, and a change
followed by a wait that declares its change first (`ctx.changed`), so its undo survives the
wait's failure.
"""

from __future__ import annotations

import shlex
import time
from typing import Any, Literal

from opsbook.plugin import ActionContext, Plugin, Result, Status
from pydantic import BaseModel, ConfigDict, Field

plugin = Plugin("svcadm", "Sample plugin: a service's state kept in a file on the host.")

State = Literal["online", "offline", "maintenance"]


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="The service's name.")
    state_dir: str = Field("/var/lib/svcadm", description="Where the state files are on the host.")


def _path(args: Target) -> str:
    return f"{args.state_dir.rstrip('/')}/{args.service}"


def read_state(ctx: ActionContext, args: Target) -> str:
    done = ctx.connection().run(["cat", _path(args)])
    if done.rc != 0:
        return "unknown"
    return done.stdout.strip() or "unknown"


@plugin.action(check=True, idempotent=True, data=["state"])
def status(ctx: ActionContext, args: Target) -> Result:
    """Read a service's state (online, offline, maintenance, unknown)."""
    state = read_state(ctx, args)
    return Result.ok(msg=f"{args.service} is {state}", data={"state": state})


class SetArgs(Target):
    state: State = Field(description="The state to put the service in.")


def _set_inverse(args: SetArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    before = result.data.get("before")
    if not result.changed or before not in ("online", "offline", "maintenance"):
        return None
    return "svcadm.set", {"service": args.service, "state_dir": args.state_dir, "state": before}


@plugin.action(check=True, idempotent=True, mutates=True, inverse=_set_inverse, inverse_actions=["svcadm.set"],
               data=["before", "state"])
def set(ctx: ActionContext, args: SetArgs) -> Result:  # noqa: A001 - the action's name
    """Put a service in a state; the rollback puts the previous state back."""
    before = read_state(ctx, args)
    data = {"before": before, "state": args.state}
    if before == args.state:
        return Result.ok(msg=f"{args.service} is already {before}", data=data)
    if ctx.check_mode:
        return Result.ok(changed=True, msg=f"would set {args.service} {before} -> {args.state}", data=data,
                         diff=f"{args.service}: {before} -> {args.state}" if ctx.diff_mode else None)
    path = _path(args)
    line = f"mkdir -p {shlex.quote(args.state_dir)} && printf '%s\\n' {shlex.quote(args.state)} > {shlex.quote(path)}"
    done = ctx.connection().run(line)
    if done.rc != 0:
        return Result.failed(f"could not write {path}: {done.stderr.strip()}", data=data)
    return Result.ok(changed=True, msg=f"set {args.service} {before} -> {args.state}", data=data,
                     diff=f"{args.service}: {before} -> {args.state}" if ctx.diff_mode else None)


class WaitArgs(Target):
    state: State = Field("online", description="The state to wait for.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait at most.")
    interval: float = Field(0.5, gt=0, description="Seconds between reads.")


@plugin.action(check=True, idempotent=True, data=["state", "waited"])
def wait(ctx: ActionContext, args: WaitArgs) -> Result:
    """Wait until a service is in a state; ends at once when the run is stopped."""
    started = time.monotonic()
    limit = min(args.timeout, ctx.timeout) if ctx.timeout is not None else args.timeout
    while True:
        state = read_state(ctx, args)
        waited = round(time.monotonic() - started, 3)
        if state == args.state:
            return Result.ok(msg=f"{args.service} is {state} after {waited:.1f}s",
                             data={"state": state, "waited": waited})
        if waited >= limit:
            return Result.failed(f"{args.service} is {state}, not {args.state}, after {limit:g}s",
                                 data={"state": state, "waited": waited})
        if ctx.cancelled.wait(min(args.interval, max(0.0, limit - waited))):  # a stop ends the wait
            return Result.failed(f"stopped while waiting for {args.service}", data={"state": state, "waited": waited})


class SetWaitArgs(SetArgs):
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the service to come back at most.")
    interval: float = Field(0.5, gt=0, description="Seconds between reads.")
    ignore_stop: bool = Field(False, description="Keep waiting after the run stops it (a plugin bug the "
                                                 "step's timeout abandons).")


@plugin.action(check=True, idempotent=True, mutates=True, inverse=_set_inverse, data=["before", "state", "waited"])
def set_then_wait(ctx: ActionContext, args: SetWaitArgs) -> Result:
    """Put a service in a state, then wait until its file says `online` (nothing in this sample
    makes it so unless the state is online: a change, then a wait that fails). The change is
    declared with ctx.changed before the wait, so its undo survives a failed wait, a timeout
    that abandons the action and a crash; it waits also when the state was set already (a
    resumed run waits again)."""
    done = set(ctx, args)
    if done.status is not Status.OK or ctx.check_mode:
        return done
    if done.changed:
        ctx.changed(**done.data)  # the inverse's data, recorded before waiting
    started = time.monotonic()
    while True:
        state = read_state(ctx, args)
        waited = round(time.monotonic() - started, 3)
        data = {**done.data, "waited": waited}
        if state == "online":
            return Result.ok(changed=done.changed, msg=f"{args.service} is online after {waited:.1f}s", data=data)
        if waited >= args.timeout:
            return Result.failed(f"{done.msg}, but it is {state}, not online, after {args.timeout:g}s",
                                 changed=done.changed, data=data)
        if args.ignore_stop:
            time.sleep(args.interval)
        elif ctx.cancelled.wait(args.interval):
            return Result.failed(f"stopped while waiting for {args.service}", changed=done.changed, data=data)


# -- on purpose: what a plugin's bugs look like to opsbook (the plugin-contract tests) ---------


def _broken_inverse(args: SetArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    raise RuntimeError("the previous state was not kept")


@plugin.action(check=True, mutates=True, inverse=_broken_inverse, inverse_actions=["svcadm.set"])
def set_without_undo(ctx: ActionContext, args: SetArgs) -> Result:
    """Like set, but its inverse raises (a plugin bug the contract must make loud)."""
    return set(ctx, args)


@plugin.action(check=True)
def crash(ctx: ActionContext, args: Target) -> Result:
    """Raises KeyError (a plugin bug whose traceback its author needs)."""
    table: dict[str, str] = {}
    return Result.ok(msg=table[args.service])


@plugin.action(check=True)
def returns_dict(ctx: ActionContext, args: Target) -> Result:
    """Returns a dict instead of a Result (a plugin bug opsbook must name)."""
    return {"ok": True}  # type: ignore[return-value]


def _missing_inverse(args: SetArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    return "svcadm_extras.restore", {"service": args.service}  # a plugin that is not installed


@plugin.action(check=True, mutates=True, inverse=_missing_inverse, inverse_actions=["svcadm_extras.restore"])
def set_with_missing_undo(ctx: ActionContext, args: SetArgs) -> Result:
    """Like set, but its inverse names an action nobody installed."""
    return set(ctx, args)


class StubbornArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(30.0, gt=0, le=120, description="How long to sleep, cancelled or not.")
    marker: str | None = Field(None, description="A file written when the sleep is over (the test sees the "
                                                 "abandoned thread finish, or not).")


@plugin.action(mutates=True)
def stubborn(ctx: ActionContext, args: StubbornArgs) -> Result:
    """Sleeps, deaf to ctx.cancelled (a plugin bug: the run abandons it after the grace period).

    time.sleep, where ctx.sleep would return as soon as the node is cancelled: a run must
    not wait for such an action (docs/plugins.md, "Cancellation")."""
    time.sleep(args.seconds)
    if args.marker:
        with open(args.marker, "w", encoding="utf-8") as out:
            out.write("slept\n")
    return Result.ok(changed=True, msg=f"slept {args.seconds:g}s")
