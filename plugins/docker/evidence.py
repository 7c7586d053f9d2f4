"""Docker root-cause evidence: the daemon's events, files copied out of a container, and the
changes in its writable layer (docker.events, docker.cp_out, docker.diff).

All three only read, so they run the same in check mode. What they collect goes into the
run's evidence folder (hashed and listed by `opsbook evidence` like every evidence file) and
into `register`. This module registers its actions on the docker plugin (the package's
`__init__` imports it); it owns nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from opsbook.plugin import ActionContext, Evidence, HostInfo, Result, evidence_file
from opsbook.visible import visible
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import DockerError
from opsbook_plugins.docker.logs import _when
from opsbook_plugins.docker.target import _api_call, _guarded, container_name_for, target_for
from opsbook_plugins.docker.update import _bytes
from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- docker.events

EVENT_ACTIONS = ("attach", "commit", "copy", "create", "destroy", "detach", "die", "exec_create", "exec_detach",
                 "exec_die", "exec_start", "export", "health_status", "kill", "oom", "pause", "rename", "resize",
                 "restart", "start", "stop", "top", "unpause", "update")


class EventsArgs(BaseModel):
    """Arguments of docker.events."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin). The events of "
                                  "this container only; `all: true` for every container on the daemon.")
    all: bool = Field(False, description="Every container's events, not one container's.")
    since: str = Field("1h", description="Start of the window: a duration ago (15m) or a timestamp.")
    until: str | None = Field(None, description="End of the window (duration ago or timestamp; default now).")
    actions: list[str] | None = Field(None, description="Only these event actions, e.g. [die, oom, "
                                      "health_status, restart] (default: every container event).")
    limit: int = Field(1000, ge=1, description="Keep at most the last N events.")
    dest: str | None = Field(None, description="Evidence file (default <host>/docker/<container>.events.jsonl); "
                             "a folder (ending with /) gets <dest>/<host>/docker/<container>.events.jsonl.")


def _events_name(container: str) -> str:
    return f"docker/{container}.events.jsonl"


def _events_file(args: EventsArgs, host: HostInfo) -> list[str]:
    name = "all-containers" if args.all else container_name_for(host, args.container)
    return [evidence_file(args.dest, host.name, _events_name(name))]


def event_record(raw: dict[str, Any]) -> dict[str, Any]:
    """One daemon event in a flat, stable shape (what `register` holds for each event)."""
    actor = raw.get("Actor") or {}
    attrs = dict(actor.get("Attributes") or {})
    action = str(raw.get("Action") or raw.get("status") or "")
    nanos = raw.get("timeNano") or int(float(raw.get("time") or 0) * 1e9)
    return {
        "time": round(nanos / 1e9, 6),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(nanos / 1e9)) + f".{int(nanos % 1e9) // 1000000:03d}Z",
        "action": action.split(":", 1)[0],  # "health_status: unhealthy" -> health_status
        "detail": action.split(":", 1)[1].strip() if ":" in action else "",
        "container": attrs.get("name") or "",
        "id": str(actor.get("ID") or raw.get("id") or "")[:12],
        "image": attrs.get("image") or raw.get("from") or "",
        "exit_code": int(attrs["exitCode"]) if str(attrs.get("exitCode", "")).lstrip("-").isdigit() else None,
        "signal": attrs.get("signal"),
    }


DAEMON_BUFFER = 256  # events the Docker daemon keeps in memory; a window before the oldest is lost


def _buffer_reaches(target: Any, since: float, until: float) -> float | None:
    """None when the daemon still holds every event of the window; else the time its oldest
    kept event has (the daemon answers a `since` query from a buffer of its last 256 events,
    of every container and kind, so a busy daemon's window is shorter than asked)."""
    stream = _api_call(target.daemon, lambda: target.client.api.events(since=since, until=until, decode=True))
    first, count = None, 0
    try:
        for raw in stream:
            count += 1
            if first is None:
                first = (raw.get("timeNano") or float(raw.get("time") or 0) * 1e9) / 1e9
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if count < DAEMON_BUFFER or first is None or first <= since + 1:
        return None
    return first


@plugin.action(check=True, idempotent=True, evidence=_events_file,
               data=["container", "events", "counts", "oom", "since", "until", "complete", "covers_since", "path"])
@_guarded
def events(ctx: ActionContext, args: EventsArgs) -> Result:
    """The daemon's events for a container over a time window (die, oom, health_status, restart,
    ...), as evidence and data: an OOM kill of any process in the container is an `oom` event
    even when its main process survives and `State.OOMKilled` stays false."""
    unknown = [a for a in args.actions or () if a not in EVENT_ACTIONS]
    if unknown:
        raise DockerError(f"unknown event action {unknown[0]!r}; container events are: {', '.join(EVENT_ACTIONS)}")
    target = target_for(ctx, args.container)
    now = time.time()
    since, until = _when(args.since, now), _when(args.until, now) if args.until else None
    end = until.timestamp() if until else now
    filters: dict[str, Any] = {"type": ["container"]}
    if not args.all:
        obj = target.container()  # a clear error (with the names there) for a wrong name
        filters["container"] = [obj.id]
    if args.actions:
        filters["event"] = list(args.actions)
    assert since is not None
    stream = _api_call(target.daemon, lambda: target.client.api.events(
        since=since.timestamp(), until=end, filters=filters, decode=True))
    kept: list[dict[str, Any]] = []
    try:
        for raw in stream:
            if ctx.cancelled.is_set():
                raise DockerError("stopped while reading the daemon's events")
            kept.append(event_record(raw))
            if len(kept) > args.limit:
                del kept[0]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    counts = dict(Counter(e["action"] for e in kept))
    name = "all-containers" if args.all else target.name
    covers = _buffer_reaches(target, since.timestamp(), end)
    data: dict[str, Any] = {"container": name, "events": kept, "counts": counts, "oom": counts.get("oom", 0) > 0,
                            "since": since.timestamp(), "until": end, "complete": covers is None,
                            "covers_since": since.timestamp() if covers is None else covers}
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "none"
    if covers is not None:
        summary += (f"; INCOMPLETE: the daemon keeps only its last {DAEMON_BUFFER} events, which reach back to "
                    f"{time.strftime('%H:%M:%S', time.gmtime(covers))} UTC ({end - covers:.0f}s), not to the "
                    f"window's start ({end - since.timestamp():.0f}s ago); older events are lost")
    stdout = "".join(f"{e['at']} {e['action']}{' ' + e['detail'] if e['detail'] else ''} {e['container']}"
                     f"{'' if e['exit_code'] is None else ' exit=' + str(e['exit_code'])}\n" for e in kept)
    msg = f"{len(kept)} events of {name} ({summary})"
    if ctx.evidence_dir is None:
        return Result.ok(msg=msg, stdout=visible(stdout), data=data)
    relative = ctx.evidence_file(args.dest, _events_name(name))
    ctx.write_evidence(relative, "".join(json.dumps(e, sort_keys=True) + "\n" for e in kept))
    data["path"] = relative
    return Result.ok(msg=msg + f", saved to {relative}", stdout=visible(stdout), data=data,
                     evidence=[Evidence(relative, f"docker events {name} ({target.daemon.base_url})",
                                        f"daemon events since {args.since}: {summary}")])


# --------------------------------------------------------------------------- docker.diff

_KINDS = {0: "changed", 1: "added", 2: "deleted"}
# The count of changed files is `modified`: `changed` is the flag register: sets itself.
_COUNTS = {"added": "added", "changed": "modified", "deleted": "deleted"}


class DiffArgs(BaseModel):
    """Arguments of docker.diff."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    dest: str | None = Field(None, description="Evidence file (default <host>/docker/<container>.diff.txt).")


def _diff_name(container: str) -> str:
    return f"docker/{container}.diff.txt"


def _diff_file(args: DiffArgs, host: HostInfo) -> list[str]:
    return [evidence_file(args.dest, host.name, _diff_name(container_name_for(host, args.container)))]


@plugin.action(check=True, idempotent=True, evidence=_diff_file,
               data=["container", "changes", "added", "modified", "deleted", "path"])
@_guarded
def diff(ctx: ActionContext, args: DiffArgs) -> Result:
    """The changes in a container's writable layer since it was created (`docker diff`):
    files added, changed and deleted, as evidence and data."""
    target = target_for(ctx, args.container)
    obj = target.container()
    raw = _api_call(target.daemon, obj.diff) or []
    changes = [{"path": c.get("Path", ""), "kind": _KINDS.get(c.get("Kind"), str(c.get("Kind")))} for c in raw]
    counts = {_COUNTS[kind]: sum(1 for c in changes if c["kind"] == kind) for kind in _KINDS.values()}
    text = "".join(f"{c['kind'][0].upper()} {c['path']}\n" for c in changes)
    data: dict[str, Any] = {"container": target.name, "changes": changes, **counts}
    msg = f"{target.name}: {counts['added']} added, {counts['modified']} changed, {counts['deleted']} deleted"
    if ctx.evidence_dir is None:
        return Result.ok(msg=msg, stdout=visible(text), data=data)
    relative = ctx.evidence_file(args.dest, _diff_name(target.name))
    ctx.write_evidence(relative, text)
    data["path"] = relative
    return Result.ok(msg=msg + f", saved to {relative}", stdout=visible(text[-64 * 1024:]), data=data,
                     evidence=[Evidence(relative, f"docker diff {target.name} ({target.daemon.base_url})",
                                        "changes in the container's writable layer")])


# --------------------------------------------------------------------------- docker.cp_out

DEFAULT_MAX_SIZE = 100 * 1024 * 1024
_DIR_BIT = 1 << 31  # Go's os.ModeDir in the daemon's path stat


class CpOutArgs(BaseModel):
    """Arguments of docker.cp_out."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    src: str = Field(description="Absolute path of a file or folder in the container (symlinks followed).")
    dest: str | None = Field(None, description="Evidence file (default <host>/docker/<container>/<basename>; "
                             "a folder is kept as <basename>.tar).")
    max_size: int | str = Field("100m", description="Refuse to copy more than this (bytes, or 512k, 100m, 1g).")


def _cp_name(container: str, src: str, folder: bool) -> str:
    base = src.rstrip("/").rpartition("/")[2] or "root"
    return f"docker/{container}/{base}{'.tar' if folder else ''}"


def _cp_file(args: CpOutArgs, host: HostInfo) -> list[str]:
    return [evidence_file(args.dest, host.name, _cp_name(container_name_for(host, args.container), args.src, False))]


class _Capped(io.RawIOBase):
    """The daemon's archive stream as a file, refusing to read past `cap` bytes and
    stopping when the run is stopped."""

    def __init__(self, chunks: Iterator[bytes], cap: int, ctx: ActionContext, what: str) -> None:
        self._chunks, self._cap, self._ctx, self._what = chunks, cap, ctx, what
        self._buffer = b""
        self.read_total = 0
        self._deadline = time.monotonic() + ctx.timeout if ctx.timeout is not None else None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buffer:
            if self._ctx.cancelled.is_set():
                raise DockerError(f"stopped while copying {self._what}")
            if self._deadline is not None and time.monotonic() > self._deadline:
                raise DockerError(f"timed out copying {self._what} ({self.read_total} bytes read); nothing was kept")
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.read_total += len(chunk)
            if self.read_total > self._cap:
                raise DockerError(f"{self._what} is larger than max_size ({self._cap} bytes); nothing was kept. "
                                  "Raise max_size, or copy a smaller part")
            self._buffer = chunk
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


@plugin.action(check=True, idempotent=True, evidence=_cp_file,
               data=["container", "src", "path", "size", "sha256", "folder"])
@_guarded
def cp_out(ctx: ActionContext, args: CpOutArgs) -> Result:
    """Copy a file or folder out of a container into the evidence folder (`docker cp`),
    bounded by max_size and hashed; a folder is kept as a tar archive, never unpacked."""
    import tarfile

    import docker.errors

    if not args.src.startswith("/"):
        raise DockerError(f"src must be an absolute path in the container, found {args.src!r}")
    cap = _bytes(args.max_size) or DEFAULT_MAX_SIZE
    target = target_for(ctx, args.container)
    obj = target.container()
    if ctx.evidence_dir is None:
        raise DockerError("docker.cp_out needs the run's evidence folder")
    path = args.src
    for _ in range(8):  # follow a chain of symlinks, within reason
        try:
            stream, stat = _api_call(target.daemon, lambda p=path: obj.get_archive(p, chunk_size=64 * 1024))
        except docker.errors.NotFound:
            raise DockerError(f"no file or folder {args.src} in {target.name}") from None
        if not stat.get("linkTarget"):
            break
        for _chunk in stream:  # the link's own archive
            pass
        link = stat["linkTarget"]
        path = link if link.startswith("/") else f"{path.rpartition('/')[0]}/{link}"
    else:
        raise DockerError(f"too many symlinks at {args.src} in {target.name}")
    folder = bool(int(stat.get("mode") or 0) & _DIR_BIT)
    relative = ctx.evidence_file(args.dest, _cp_name(target.name, args.src, folder))
    where = ctx.evidence_path(relative)
    source = _Capped(iter(stream), cap, ctx, f"{args.src} in {target.name}")
    digest = hashlib.sha256()
    size = 0
    from opsbook.paths import private_dir, writing

    private_dir(where.parent)
    with writing(where, binary=True) as out:
        if folder:
            while block := source.read(1024 * 1024):
                digest.update(block)
                out.write(block)
                size += len(block)
        else:
            with tarfile.open(fileobj=io.BufferedReader(source), mode="r|") as tar:
                member = next((m for m in tar if m.isfile()), None)
                if member is None:
                    raise DockerError(f"{args.src} in {target.name} is neither a regular file nor a folder")
                content = tar.extractfile(member)
                while content is not None and (block := content.read(1024 * 1024)):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
    kind = "folder (tar archive)" if folder else "file"
    data = {"container": target.name, "src": args.src, "path": relative, "size": size, "sha256": digest.hexdigest(),
            "folder": folder}
    return Result.ok(msg=f"copied {args.src} ({kind}, {size} bytes) from {target.name} to {relative}", data=data,
                     evidence=[Evidence(relative, f"{target.name}:{args.src} ({target.daemon.base_url})",
                                        f"docker cp of a {kind}")])
