"""What every ssh action shares: the `ssh` connection factory (the connection modules are
imported on first use: paramiko takes a tenth of a second to import), the arguments' base
model, `_as_result` (exceptions of a run become failed, timed-out or cancelled results, with
secrets redacted), and running a command on the host's connection (`_run`, and `_check` for
a helper command whose failure fails the step with `_StepFailed`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsbook.errors import OpsbookError
from opsbook.plugin import (
    ActionContext,
    CommandResult,
    HostInfo,
    Result,
    Status,
    telling_line,
)
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from opsbook_plugins.ssh.connection import SSHConnection

from opsbook_plugins.ssh._plugin import plugin


@plugin.connection("ssh")
def ssh_connection(host: HostInfo) -> SSHConnection:
    """Build the (lazily connecting) SSH connection for a host from its inventory vars."""
    from opsbook_plugins.ssh.connection import SSHConnection
    from opsbook_plugins.ssh.settings import settings_from_vars

    return SSHConnection(settings_from_vars(host.name, host.vars))


# -- shared plumbing ---------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def _redact(ctx: ActionContext, text: str) -> str:
    return ctx.secrets.redact(text) if ctx.secrets is not None and text else text


def _as_result(
    fn: Callable[[ActionContext, Any], Result],
) -> Callable[[ActionContext, Any], Result]:
    """Turn connection failures into Result values, and redact secrets from what is returned."""

    @functools.wraps(fn)
    def wrapper(ctx: ActionContext, args: Any) -> Result:
        try:
            result = fn(ctx, args)
        except TimeoutError as exc:
            result = _partial(Status.TIMED_OUT, str(exc), getattr(exc, "partial", None))
        except (OpsbookError, OSError) as exc:
            if ctx.cancelled.is_set():
                result = _partial(
                    Status.TIMED_OUT, f"cancelled: {exc}", getattr(exc, "partial", None)
                )
            else:
                result = _partial(Status.FAILED, _message(ctx, exc), getattr(exc, "partial", None))
        except Exception as exc:
            if not type(exc).__module__.startswith("paramiko"):
                raise
            result = Result.failed(f"{ctx.host.name}: ssh error: {exc or type(exc).__name__}")
        result.stdout = _redact(ctx, result.stdout)
        result.stderr = _redact(ctx, result.stderr)
        result.msg = _redact(ctx, result.msg)
        if result.diff:
            result.diff = _redact(ctx, result.diff)
        return result

    return wrapper


def _message(ctx: ActionContext, exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text if ctx.host.name in text else f"{ctx.host.name}: {text}"


def _partial(status: Status, msg: str, partial: CommandResult | None) -> Result:
    if partial is None:
        return Result(status=status, msg=msg)
    return Result(
        status=status,
        msg=msg,
        rc=None,
        stdout=partial.stdout,
        stderr=partial.stderr,
        changed=True,
        duration=partial.duration,
    )


def _run(
    ctx: ActionContext,
    command: str | Sequence[str],
    *,
    stdin: bytes | None = None,
    become: bool = True,
    stream: bool = True,
) -> CommandResult:
    """Run on the node's connection with the step's timeout, cancel event and become."""
    on_output = (lambda line: ctx.output(_redact(ctx, line))) if stream and ctx.wants_output else None
    return ctx.connection().run(
        command,
        stdin=stdin,
        timeout=ctx.timeout,
        cancel=ctx.cancelled,
        become=ctx.become if become else None,
        on_output=on_output,
    )


def _check(ctx: ActionContext, command: str | Sequence[str], what: str, **kw: Any) -> CommandResult:
    """Run a helper command that must succeed (rc 0)."""
    res = _run(ctx, command, stream=False, **kw)
    if res.rc != 0:
        raise _StepFailed(
            f"{what} failed on {ctx.host.name} (rc={res.rc}): "
            f"{telling_line(res.stderr or res.stdout)}"
        )
    return res


class _StepFailed(OpsbookError):
    """Internal: a helper command failed; becomes a failed Result with this message."""
