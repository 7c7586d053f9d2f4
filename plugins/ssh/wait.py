"""ssh.wait_for: poll the host until a port listens (or, with `host`, accepts a connection
from it), a path exists or a process runs -- or the opposite -- within the action's `timeout`."""

from __future__ import annotations

import time
from typing import Literal

from opsbook.plugin import (
    ActionContext,
    Result,
    Status,
)
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _run
from pydantic import Field, model_validator

# -- ssh.wait_for ------------------------------------------------------------------------


class WaitForArgs(_Args):
    """Wait until a port listens (or answers), a path exists or a process runs, or the opposite."""

    port: int | None = Field(None, ge=1, le=65535, description="TCP port listening on the host")
    host: str | None = Field(
        None, description="connect to this address from the host instead of checking for a listener"
    )
    path: str | None = Field(None, description="remote path that must exist")
    process: str | None = Field(None, description="regex matched against process command lines")
    state: Literal["started", "stopped", "present", "absent"] = "started"
    timeout: float = Field(300, ge=0, description="seconds before giving up")
    delay: float = Field(0, ge=0, description="seconds to wait before the first check")
    sleep: float = Field(1, gt=0, description="seconds between checks")

    @model_validator(mode="after")
    def _one_target(self) -> WaitForArgs:
        given = [n for n in ("port", "path", "process") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of port, path or process")
        if self.host is not None and self.port is None:
            raise ValueError("host needs port")
        return self

    def describe(self) -> str:
        if self.port is not None:
            return f"port {self.host + ':' if self.host else ''}{self.port}"
        return f"path {self.path}" if self.path is not None else f"process /{self.process}/"


_LISTEN_SCRIPT = r"""
p=$(printf '%04X' "$1")
grep -Eq "^ *[0-9]+: [0-9A-F]+:$p [0-9A-F]+:0000 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
"""
_CONNECT_SCRIPT = r"""
if command -v nc >/dev/null 2>&1; then exec nc -z -w 2 "$1" "$2"; fi
exec timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2"
"""
# The pattern comes on stdin, so no process command line (ours included) contains it.
_PROCESS_SCRIPT = r"""
IFS= read -r pat
if command -v pgrep >/dev/null 2>&1; then exec pgrep -f -- "$pat" >/dev/null; fi
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -Eq -- "$pat" && exit 0
done
exit 1
"""


def _probe(ctx: ActionContext, args: WaitForArgs) -> bool:
    if args.port is not None and args.host is not None:
        res = _run(
            ctx,
            ["sh", "-c", _CONNECT_SCRIPT, "sh", args.host, str(args.port)],
            become=False,
            stream=False,
        )
    elif args.port is not None:
        res = _run(
            ctx, ["sh", "-c", _LISTEN_SCRIPT, "sh", str(args.port)], become=False, stream=False
        )
    elif args.path is not None:
        res = _run(ctx, ["test", "-e", args.path], stream=False)
    else:
        res = _run(
            ctx,
            ["sh", "-c", _PROCESS_SCRIPT],
            stdin=(args.process or "").encode() + b"\n",
            become=False,
            stream=False,
        )
    return res.rc == 0


@plugin.action(check=True, idempotent=True, observes=True)
@_as_result
def wait_for(ctx: ActionContext, args: WaitForArgs) -> Result:
    """Poll the host until the condition holds; fails after `timeout` seconds."""
    want = args.state in ("started", "present")
    what = f"{args.describe()} to be {args.state}"
    start = time.monotonic()
    if ctx.check_mode:
        if _probe(ctx, args) == want:
            return Result.ok(msg=f"{args.describe()} is {args.state}")
        return Result.unknown(f"would wait up to {args.timeout:g}s for {what}")
    if args.delay and ctx.cancelled.wait(args.delay):
        return Result(status=Status.TIMED_OUT, msg=f"cancelled while waiting for {what}")
    limit = args.timeout if ctx.timeout is None else min(args.timeout, ctx.timeout)
    deadline = start + limit
    attempts = 0
    while True:
        attempts += 1
        if _probe(ctx, args) == want:
            took = time.monotonic() - start
            return Result.ok(
                msg=f"{args.describe()} is {args.state} after {took:.1f}s",
                data={"elapsed": took, "checks": attempts},
            )
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if ctx.cancelled.wait(min(args.sleep, left)):
            return Result(status=Status.TIMED_OUT, msg=f"cancelled while waiting for {what}")
    return Result.failed(
        f"timed out after {limit:g}s waiting for {what} on {ctx.host.name}",
        data={"elapsed": time.monotonic() - start, "checks": attempts},
    )
