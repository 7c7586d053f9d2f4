"""docker.logs: a container's logs, streamed within a size limit into the evidence folder,
with the time window (`_when` reads "15m" ago or a timestamp; docker.events uses it too).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from opsbook.model import parse_duration
from opsbook.plugin import ActionContext, Evidence, HostInfo, Result, Status, evidence_file
from opsbook.transfer import DEFAULT_MAX_SIZE, Transfer, TransferCut, TransferTooLarge
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import DockerError
from opsbook_plugins.docker.target import _api_call, _guarded, container_name_for, target_for
from pydantic import BaseModel, ByteSize, ConfigDict, Field


class LogsArgs(BaseModel):
    """Arguments of docker.logs."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    lines: int | None = Field(
        200, ge=1, description="Keep the last N lines (null: everything the daemon has)."
    )
    since: str | None = Field(
        None, description="Only lines after this: a duration ago (15m) or a timestamp."
    )
    until: str | None = Field(None, description="Only lines before this (duration ago or time).")
    timestamps: bool = Field(True, description="Prefix every line with its timestamp.")
    dest: str | None = Field(
        None,
        description="Evidence file, relative to the run's evidence folder (default: "
        "<host>/docker/<container>.log); a folder (ending with /) gets <dest>/<host>/docker/<container>.log.",
    )
    max_size: ByteSize = Field(
        ByteSize(DEFAULT_MAX_SIZE),
        description="Refuse logs larger than this (bytes, or 500MiB, 2GiB); nothing is kept.",
    )


_STDOUT_CAP = 64 * 1024


def _when(value: str | None, now: float) -> datetime | None:
    """'15m' (ago), an epoch number or an ISO timestamp -> aware datetime."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d{9,}(\.\d+)?", text):  # epoch seconds
        return datetime.fromtimestamp(float(text), tz=UTC)
    try:
        return datetime.fromtimestamp(now - parse_duration(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DockerError(
            f'"{value}" is neither a duration ago (15m, 2h) nor a timestamp (2024-05-01T10:00:00Z)'
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _logs_name(container: str) -> str:
    return f"docker/{container}.log"


def _logs_file(args: LogsArgs, host: HostInfo) -> list[str]:
    return [evidence_file(args.dest, host.name, _logs_name(container_name_for(host, args.container)))]


@plugin.action(check=True, idempotent=True, evidence=_logs_file)
@_guarded
def logs(ctx: ActionContext, args: LogsArgs) -> Result:
    """Collect a container's recent log lines into the evidence folder."""
    target = target_for(ctx, args.container)
    obj = target.container()
    now = time.time()
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": args.timestamps}
    kwargs["tail"] = args.lines if args.lines is not None else "all"
    since, until = _when(args.since, now), _when(args.until, now)
    # Epoch floats, not datetimes: the SDK would round a datetime down to whole seconds.
    if since is not None:
        kwargs["since"] = since.timestamp()
    if until is not None:
        kwargs["until"] = until.timestamp()
    kwargs["stream"], kwargs["follow"] = True, False  # the SDK follows a stream unless told not to
    transfer = Transfer(f"the log of {target.name}", int(args.max_size), ctx.timeout, ctx.cancelled)
    with tempfile.TemporaryFile(prefix="opsbook-logs-") as spool:  # streamed: never held whole
        try:
            count = _api_call(target.daemon, lambda: _stream_logs(obj.logs(**kwargs), spool, transfer))
        except TransferTooLarge as exc:
            return Result.failed(str(exc))
        except TransferCut as exc:
            return Result(status=Status.TIMED_OUT, msg=str(exc))
        data: dict[str, Any] = {"container": target.name, "lines": count, "bytes": transfer.size}
        spool.seek(max(0, transfer.size - _STDOUT_CAP))
        stdout = spool.read().decode(errors="replace")
        if ctx.evidence_dir is None:
            return Result.ok(
                msg=f"{count} lines from {target.name} (no evidence folder)", stdout=stdout, data=data
            )
        relative = ctx.evidence_file(args.dest, _logs_name(target.name))
        spool.seek(0)
        ctx.write_evidence(relative, spool)
    data["path"] = relative
    evidence = Evidence(
        path=relative,
        source=f"docker logs {target.name} ({target.daemon.base_url})",
        description=_logs_description(args, count),
    )
    return Result.ok(
        msg=f"saved {count} log lines of {target.name} to {relative}",
        stdout=stdout,
        data=data,
        evidence=[evidence],
    )


def _stream_logs(stream: Iterator[bytes], spool: Any, transfer: Transfer) -> int:
    """Copy a `logs(stream=True)` answer into `spool` within `transfer`; the number of lines."""
    lines, last = 0, b""
    try:
        for chunk in stream:
            if not chunk:
                continue
            transfer.add(chunk)
            spool.write(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return lines + (1 if last and last != b"\n" else 0)


def _logs_description(args: LogsArgs, count: int) -> str:
    parts = [f"{count} lines"]
    if args.lines is not None:
        parts.append(f"last {args.lines}")
    if args.since:
        parts.append(f"since {args.since}")
    if args.until:
        parts.append(f"until {args.until}")
    return "container logs, " + ", ".join(parts)
