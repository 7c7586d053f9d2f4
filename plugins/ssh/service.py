"""ssh.service: start, stop, restart or reload a service through systemd, else `service`,
else /etc/init.d (found by one probe on the host), with check mode, a wait for the new
state and the inverse that the rollback runs."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from opsbook.plugin import (
    ActionContext,
    Result,
    arg_in,
    telling_line,
)
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _check, _run, _StepFailed
from pydantic import Field, field_validator

# -- ssh.service -------------------------------------------------------------------------


class ServiceArgs(_Args):
    """Start, stop, restart or reload a service (systemd, else `service`, else /etc/init.d)."""

    name: str = Field(description="service name, e.g. nginx")
    state: Literal["started", "stopped", "restarted", "reloaded"]
    verify_timeout: float = Field(10, description="seconds to wait for the status to follow")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9@._:+-]+", name) or name.startswith("-"):
            raise ValueError(f"invalid service name {name!r}")
        return name


def _service_inverse(args: ServiceArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    """started <-> stopped, but only when this step really changed the state."""
    if not result.changed or args.state not in ("started", "stopped"):
        return None
    other = "stopped" if args.state == "started" else "started"
    return "ssh.service", {"name": args.name, "state": other}


_MANAGER_SCRIPT = r"""
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd
elif command -v service >/dev/null 2>&1; then echo service
elif [ -x "/etc/init.d/$1" ]; then echo initd
else echo none; fi
"""


def _service_argv(manager: str, name: str, verb: str) -> list[str]:
    if manager == "systemd":
        return (
            ["systemctl", "is-active", "--quiet", name]
            if verb == "status"
            else ["systemctl", verb, name]
        )
    if manager == "service":
        return ["service", name, verb]
    return [f"/etc/init.d/{name}", verb]


def _service_running(ctx: ActionContext, manager: str, name: str) -> bool:
    res = _run(ctx, _service_argv(manager, name, "status"), stream=False)
    if res.rc == 0:
        return True
    unknown = (
        res.rc == 4
        or "unrecognized service" in res.stderr
        or (manager == "systemd" and "could not be found" in res.stderr)
    )
    if unknown:
        raise _StepFailed(f"service {name} is not installed on {ctx.host.name} ({manager})")
    return False


@plugin.action(check=True, idempotent=True, mutates=True, inverse=_service_inverse, inverse_actions=["ssh.service"],
               disrupts=arg_in("state", ("stopped", "restarted")))
@_as_result
def service(ctx: ActionContext, args: ServiceArgs) -> Result:
    """Bring a service to a state; changed only when it had to act. Check mode reads status."""
    manager = _check(
        ctx,
        ["sh", "-c", _MANAGER_SCRIPT, "sh", args.name],
        "detecting the service manager",
        become=False,
    ).stdout.strip()
    if manager == "none":
        return Result.failed(
            f"no service manager on {ctx.host.name} and no /etc/init.d/{args.name}"
        )
    running = _service_running(ctx, manager, args.name)
    verb = {
        "started": None if running else "start",
        "stopped": "stop" if running else None,
        "restarted": "restart",
        "reloaded": "reload" if running else "start",
    }[args.state]
    info = {"manager": manager, "was_running": running}
    if verb is None:
        return Result.ok(msg=f"{args.name} already {args.state}", data={**info, "running": running})
    if ctx.check_mode:
        return Result.ok(
            changed=True, msg=f"would {verb} {args.name} (running: {running})", data=info
        )
    res = _run(ctx, _service_argv(manager, args.name, verb))
    if res.rc != 0:
        return Result.failed(
            f"{verb} {args.name} failed on {ctx.host.name} (rc={res.rc}): "
            f"{telling_line(res.stderr or res.stdout)}",
            rc=res.rc,
            stdout=res.stdout,
            stderr=res.stderr,
            changed=True,
            data=info,
        )
    want = args.state != "stopped"
    now = _wait_status(ctx, manager, args.name, want, args.verify_timeout)
    if now != want:
        return Result.failed(
            f"{args.name} is {'running' if now else 'not running'} after {verb}",
            rc=res.rc,
            stdout=res.stdout,
            stderr=res.stderr,
            changed=True,
            data=info,
        )
    return Result.ok(
        changed=True,
        rc=res.rc,
        stdout=res.stdout,
        stderr=res.stderr,
        msg=f"{verb} {args.name}",
        data={**info, "running": now},
    )


def _wait_status(ctx: ActionContext, manager: str, name: str, want: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        now = _service_running(ctx, manager, name)
        if now == want or time.monotonic() >= deadline or ctx.cancelled.wait(0.2):
            return now
