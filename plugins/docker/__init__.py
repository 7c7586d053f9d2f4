"""Docker: containers, exec, logs, facts, networks and limits; a `docker` connection; an inventory.

Daemon selection, first match wins (the same for actions, the connection and the inventory):

1. host var ``docker_host`` (``unix:///...``, ``tcp://host:2376``, ``ssh://user@host``);
2. host var ``ansible_docker_host`` (Ansible's docker connection variable);
3. ``-H``/``--host`` inside host var ``ansible_docker_extra_args``;
4. the ``DOCKER_HOST`` environment variable;
5. the local socket ``unix:///var/run/docker.sock``.

TLS comes from host vars ``docker_tls_verify`` / ``docker_cert_path`` (or ``--tlsverify``,
``--tlscacert``, ``--tlscert``, ``--tlskey`` in ``ansible_docker_extra_args``), else from
``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``. One API client per daemon is kept and reused by
every step and host that talks to that daemon.

The container an action works on is its ``name:``/``container:`` argument, else host var
``docker_container`` (or ``container``), else the host's ``ansible_host`` when it is a
docker-connection host, else the inventory name.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import queue
import re
import shlex
import socket
import struct
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from opsbook.errors import InventoryError, OpsbookError
from opsbook.capture import Capture, Lines
from opsbook.model import parse_duration
from opsbook.transfer import DEFAULT_MAX_SIZE, Transfer, TransferCut, TransferTooLarge, copy_stream
from opsbook.plugin import (
    arg_in,
    ActionContext,
    Become,
    CommandResult,
    Evidence,
    HostInfo,
    Plugin,
    Result,
    Seconds,
    Status,
    telling_line,
    evidence_file,
    truthy,
)
from pydantic import BaseModel, ByteSize, ConfigDict, Field

plugin = Plugin("docker", "Docker containers: state, exec, logs, facts, networks, limits.")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60.0  # seconds, when neither the step nor the action says
_POLL = 0.25  # seconds between state polls (wait_healthy)
_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a timed-out exec


# --------------------------------------------------------------------------- errors


class DockerError(OpsbookError):
    """Something about Docker went wrong; the message is written for the person on call."""


class DaemonUnreachable(DockerError, ConnectionError):
    """The Docker daemon does not answer at the address we were given."""


class ContainerNotFound(DockerError):
    """No container of that name on the daemon."""


# --------------------------------------------------------------------------- durations


# Durations: the engine's parser and argument type (30, "30s", "1m30s", "500ms").



def _fmt_s(seconds: float) -> str:
    return f"{seconds:g} s"


# --------------------------------------------------------------------------- daemons


@dataclass(frozen=True)
class Daemon:
    """How to reach one Docker daemon; the key of the client pool."""

    base_url: str
    source: str  # why this address, for error messages
    tls_verify: bool = False
    cert_path: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT  # seconds one API request may take (host var docker_timeout)

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_verify or self.cert_path or self.client_cert or self.ca_cert)


def _extra_args(host_vars: Mapping[str, Any]) -> dict[str, str | bool]:
    """The daemon options found in `ansible_docker_extra_args` (docker CLI flags)."""
    raw = host_vars.get("ansible_docker_extra_args") or ""
    words = shlex.split(raw) if isinstance(raw, str) else [str(w) for w in raw]
    found: dict[str, str | bool] = {}
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, inline = word.partition("=")
        if flag in ("-H", "--host", "--tlscacert", "--tlscert", "--tlskey"):
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else "")
            found["host" if flag in ("-H", "--host") else flag.lstrip("-")] = value
            i += 1 if eq else 2
            continue
        if flag in ("--tlsverify", "--tls"):
            found["tlsverify"] = inline.lower() not in ("false", "0") if eq else True
        i += 1
    return found



def daemon_for(host_vars: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Daemon:
    """Where the Docker daemon for a host is, from its vars, then the environment."""
    env = os.environ if env is None else env
    extra = _extra_args(host_vars)
    if host_vars.get("docker_host"):
        url, source = str(host_vars["docker_host"]), "host var docker_host"
    elif host_vars.get("ansible_docker_host"):
        url, source = str(host_vars["ansible_docker_host"]), "host var ansible_docker_host"
    elif extra.get("host"):
        url, source = str(extra["host"]), "-H in ansible_docker_extra_args"
    elif env.get("DOCKER_HOST"):
        url, source = env["DOCKER_HOST"], f"DOCKER_HOST={env['DOCKER_HOST']}"
    else:
        url, source = DEFAULT_SOCKET, "the default socket; DOCKER_HOST is not set"
    if source.startswith(("host var", "-H")):
        source += f"; DOCKER_HOST={env.get('DOCKER_HOST') or '(not set)'}"
    verify = host_vars.get("docker_tls_verify", extra.get("tlsverify"))
    if verify is None:
        env_verify = env.get("DOCKER_TLS_VERIFY")
        verify = env_verify is not None and env_verify != ""
    cert_path = host_vars.get("docker_cert_path") or env.get("DOCKER_CERT_PATH") or None
    return Daemon(
        base_url=_normalise_url(url),
        source=source,
        tls_verify=truthy(verify),
        cert_path=str(cert_path) if cert_path else None,
        ca_cert=_opt_str(extra.get("tlscacert")),
        client_cert=_opt_str(extra.get("tlscert")),
        client_key=_opt_str(extra.get("tlskey")),
        timeout=float(parse_duration(host_vars.get("docker_timeout") or DEFAULT_TIMEOUT)),
    )


def _opt_str(value: Any) -> str | None:
    return str(value) if value else None


def _normalise_url(url: str) -> str:
    url = url.strip()
    if url.startswith("/"):  # a bare socket path
        return "unix://" + url
    return url


def _tls_config(daemon: Daemon) -> Any:
    from docker.tls import TLSConfig

    cert_dir = daemon.cert_path or os.path.join(os.path.expanduser("~"), ".docker")
    ca = daemon.ca_cert or os.path.join(cert_dir, "ca.pem")
    cert = daemon.client_cert or os.path.join(cert_dir, "cert.pem")
    key = daemon.client_key or os.path.join(cert_dir, "key.pem")
    client_cert = (cert, key) if os.path.exists(cert) and os.path.exists(key) else None
    return TLSConfig(
        client_cert=client_cert,
        ca_cert=ca if daemon.tls_verify and os.path.exists(ca) else None,
        verify=daemon.tls_verify,
    )


def _unreachable_message(daemon: Daemon, exc: BaseException) -> str:
    reason = _root_reason(exc)
    path = daemon.base_url[len("unix://") :] if daemon.base_url.startswith("unix://") else ""
    if path and "Permission denied" in reason:
        return (
            f"permission denied on the Docker socket {path}: is your user in the docker group? "
            f"({daemon.source})"
        )
    return (
        f"cannot reach the Docker daemon at {daemon.base_url}: is dockerd running? "
        f"({daemon.source}; {reason})"
    )


def _hung_message(daemon: Daemon) -> str:
    return (
        f"the Docker daemon at {daemon.base_url} accepted the connection but did not answer "
        f"within {daemon.timeout:g} s: is it overloaded or hung? ({daemon.source})"
    )


def _caused_by_read_timeout(exc: BaseException) -> bool:
    import requests.exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.ReadTimeout) or "Read timed out" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _root_reason(exc: BaseException) -> str:
    """The innermost cause of a chained requests/urllib3 error, in one short phrase."""
    seen: set[int] = set()
    current: BaseException | None = exc
    last = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    text = str(last) or type(last).__name__
    for pattern in (r"\[Errno \d+\] [^')\"]+", r"Connection refused", r"timed out"):
        match = re.search(pattern, str(exc)) or re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return text[:200]


class ClientPool:
    """One docker API client per daemon, created on first use and shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Daemon, Any] = {}

    def get(self, daemon: Daemon) -> Any:
        with self._lock:
            client = self._clients.get(daemon)
            if client is None:
                client = self._open(daemon)
                self._clients[daemon] = client
            return client

    def forget(self, daemon: Daemon) -> None:
        """Drop a client (after the daemon went away) so the next use reconnects."""
        with self._lock:
            client = self._clients.pop(daemon, None)
        if client is not None:
            client.close()

    def close_all(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    @staticmethod
    def _open(daemon: Daemon) -> Any:
        import docker

        kwargs: dict[str, Any] = {"base_url": daemon.base_url, "timeout": daemon.timeout}
        if daemon.uses_tls:
            kwargs["tls"] = _tls_config(daemon)
        try:
            # version="auto" asks the daemon at once: an unreachable daemon fails here.
            return docker.DockerClient(version="auto", **kwargs)
        except Exception as exc:  # docker.errors.DockerException wraps requests' errors
            if _caused_by_read_timeout(exc):
                raise DockerError(_hung_message(daemon)) from exc
            raise DaemonUnreachable(_unreachable_message(daemon, exc)) from exc


# The engine has no per-run resource hook for plugins yet; the pool lives with the plugin
# module so that every step and host talking to one daemon shares one client.
clients = ClientPool()


# --------------------------------------------------------------------------- containers


def container_name_for(host: HostInfo, explicit: str | None = None) -> str:
    """The container an action means: the argument, docker_container/container, ansible_host, name."""
    if explicit:
        return explicit
    for var in ("docker_container", "container"):
        if host.vars.get(var):
            return str(host.vars[var])
    if host.connection_kind == "docker":
        return host.address
    return host.name


def _api_call(daemon: Daemon, fn: Callable[[], Any]) -> Any:
    """Run a docker SDK call; a vanished or hung daemon becomes a DockerError people can read."""
    import docker.errors
    import requests.exceptions

    try:
        return fn()
    except requests.exceptions.ReadTimeout as exc:
        raise DockerError(_hung_message(daemon)) from exc
    except requests.exceptions.ConnectionError as exc:
        clients.forget(daemon)
        raise DaemonUnreachable(_unreachable_message(daemon, exc)) from exc
    except docker.errors.APIError:
        raise
    except docker.errors.DockerException as exc:
        raise DockerError(f"Docker at {daemon.base_url}: {exc}") from exc


def _container_names(client: Any, daemon: Daemon) -> list[str]:
    listed = _api_call(daemon, lambda: client.api.containers(all=True))
    names = [n.lstrip("/") for c in listed for n in c.get("Names", [])[:1]]
    return sorted(names)


def missing_container_message(client: Any, daemon: Daemon, name: str) -> str:
    names = _container_names(client, daemon)
    text = f"no container named {name} on {daemon.base_url}"
    if not names:
        return text + "; there are no containers there at all"
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    text += f"; containers there: {shown}"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        text += f' (did you mean "{close[0]}"?)'
    return text


def get_container(client: Any, daemon: Daemon, name: str) -> Any:
    """The container object, or ContainerNotFound with the names that do exist."""
    import docker.errors

    try:
        return _api_call(daemon, lambda: client.containers.get(name))
    except docker.errors.NotFound:
        raise ContainerNotFound(missing_container_message(client, daemon, name)) from None


def _status(attrs: Mapping[str, Any]) -> str:
    """docker ps's word for a container's state: running, paused, exited, created, ..."""
    state = attrs.get("State") or {}
    return str(state.get("Status") or ("running" if state.get("Running") else "exited"))


def _health(attrs: Mapping[str, Any]) -> str | None:
    health = (attrs.get("State") or {}).get("Health")
    return str(health.get("Status")) if health else None


@dataclass
class Target:
    """The daemon, client and container name one action works on."""

    daemon: Daemon
    client: Any
    name: str

    def container(self) -> Any:
        return get_container(self.client, self.daemon, self.name)

    def where(self) -> str:
        return f"{self.name} on {self.daemon.base_url}"


def target_for(ctx: ActionContext, name: str | None) -> Target:
    daemon = daemon_for(ctx.host.vars)
    return Target(daemon, clients.get(daemon), container_name_for(ctx.host, name))


def _guarded(fn: Callable[[ActionContext, Any], Result]) -> Callable[[ActionContext, Any], Result]:
    """Turn DockerError and docker API errors into failed Results (failures are values)."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx: ActionContext, args: Any) -> Result:
        import docker.errors

        try:
            return fn(ctx, args)
        except DockerError as exc:
            return Result.failed(str(exc))
        except docker.errors.APIError as exc:
            return Result.failed(f"the Docker daemon refused: {_api_error_text(exc)}")

    return wrapper


def _api_error_text(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = str(explanation or exc)
    return f"{text} (HTTP {status})" if status else text


def _time_left(ctx: ActionContext, own: float | None, default: float = DEFAULT_TIMEOUT) -> float:
    """The tighter of the action's own timeout and what the step has left."""
    limits = [t for t in (own, ctx.timeout) if t is not None]
    return max(0.0, min(limits)) if limits else default


# --------------------------------------------------------------------------- docker.container


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


@plugin.action(check=True, idempotent=False, inverse=_container_inverse, mutates=True,
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


# --------------------------------------------------------------------------- exec machinery


@dataclass
class ExecRequest:
    """One command to run in a container."""

    argv: list[str]
    stdin: bytes | None = None
    user: str = ""
    workdir: str | None = None
    env: dict[str, str] | None = None
    timeout: float | None = None
    cancel: threading.Event | None = None
    on_output: Callable[[str], None] | None = None


_PID_MARK = b"OPSBOOK-PID "
_NO_SH = re.compile(r'exec: "sh": ')


def _wrapped(argv: list[str]) -> list[str]:
    # The wrapper announces its pid on stderr before exec'ing the command, so that a timed-out
    # or cancelled command can be killed inside the container (docker has no "kill exec").
    return ["sh", "-c", 'echo "OPSBOOK-PID $$" >&2; exec "$@"', "sh", *argv]


def exec_in(target: Target, req: ExecRequest) -> CommandResult:
    """Run argv in the container; honour timeout and cancel by killing the process inside."""
    obj = target.container()
    if _status(obj.attrs) != "running":
        raise DockerError(
            f"cannot run a command in {target.where()}: it is {_status(obj.attrs)}, not running"
        )
    result, announced = _exec_once(target, req, _wrapped(req.argv))
    if not announced and result.rc in (126, 127) and _NO_SH.search(result.stdout + result.stderr):
        # No sh in this image (the wrapper never started): run the command directly, without
        # the means to kill it on timeout.
        result, _ = _exec_once(target, req, list(req.argv))
    return result


def _exec_once(target: Target, req: ExecRequest, argv: list[str]) -> tuple[CommandResult, bool]:
    """One exec; also says whether the pid-announcing wrapper ran."""
    api = target.client.api
    started = time.monotonic()
    created = _api_call(
        target.daemon,
        lambda: api.exec_create(
            target.name,
            argv,
            stdin=req.stdin is not None,
            user=req.user or "",
            environment=req.env,
            workdir=req.workdir,
        ),
    )
    exec_id = created["Id"]
    stream = _ExecStream(api, exec_id)
    try:
        if req.stdin is not None:
            stream.send_stdin(req.stdin)
        out, err, timed_out = stream.collect(req, started)
        pid, err = _strip_pid(err)
        if timed_out is not None and pid is not None:
            _kill_inside(target, pid)  # before closing: a dead command ends the stream cleanly
    finally:
        stream.close()
    if timed_out is not None:
        note = f"[opsbook] {timed_out}"
        return CommandResult(
            rc=-1,
            stdout=out.decode(errors="replace"),
            stderr=(err.decode(errors="replace") + "\n" + note) if err else note,
            duration=time.monotonic() - started,
        ), pid is not None
    info = _api_call(target.daemon, lambda: api.exec_inspect(exec_id))
    note = ""
    if info.get("Running"):
        # The output stream ended while the command still runs: the connection to the daemon
        # was cut (a dockerd restart). Wait for the real exit code, within the step's time.
        info = _await_exec(target, api, exec_id, req, started)
        note = "\n[opsbook] the output stream from the Docker daemon was cut; output may be missing"
    rc = info.get("ExitCode")
    if rc is None:
        raise DockerError(f"lost the connection to the Docker daemon at {target.daemon.base_url} while the "
                          "command ran; it may still be running in the container")
    if note and rc != 0:
        raise DockerError(f"lost the connection to the Docker daemon at {target.daemon.base_url} while the "
                          f"command ran; it then exited with {rc} (its output may be missing)")
    return CommandResult(
        rc=int(rc),
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace") + note,
        duration=time.monotonic() - started,
    ), pid is not None


def _await_exec(target: Any, api: Any, exec_id: str, req: Any, started: float) -> dict[str, Any]:
    """Poll an exec until it stops, the step's time is up or it is cancelled."""
    while True:
        info = _api_call(target.daemon, lambda: api.exec_inspect(exec_id))
        if not info.get("Running"):
            return dict(info)
        if req.timeout is not None and time.monotonic() - started >= req.timeout:
            return {}
        if req.cancel is not None:
            if req.cancel.wait(0.2):  # the node's cancel token: a signal ends the poll at once
                return {}
        else:
            time.sleep(0.2)


def _strip_pid(err: bytes) -> tuple[int | None, bytes]:
    if not err.startswith(_PID_MARK):
        return None, err
    line, _, rest = err.partition(b"\n")
    try:
        return int(line[len(_PID_MARK) :]), rest
    except ValueError:
        return None, err


def _kill_inside(target: Target, pid: int) -> None:
    """SIGTERM the timed-out command (its group if it leads one), SIGKILL after a grace."""
    script = (
        f"kill -TERM -{pid} 2>/dev/null || kill -TERM {pid} 2>/dev/null; "
        f"i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt {int(_KILL_GRACE * 10)} ]; "
        f"do sleep 0.1; i=$((i+1)); done; "
        f"kill -KILL -{pid} 2>/dev/null; kill -KILL {pid} 2>/dev/null; true"
    )
    try:
        target.client.api.exec_start(
            target.client.api.exec_create(target.name, ["sh", "-c", script])["Id"]
        )
    except Exception:  # noqa: BLE001, S110 - the container may be gone: nothing left to kill
        pass


class _ExecStream:
    """The hijacked connection of one exec: write stdin, read multiplexed stdout/stderr."""

    def __init__(self, api: Any, exec_id: str) -> None:
        self.response = api._post_json(
            api._url("/exec/{0}/start", exec_id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": False, "Detach": False},
            stream=True,
        )
        self.sock = api._get_raw_response_socket(self.response)
        # Read through the HTTP response's buffer: bytes that arrived with the upgrade
        # headers are already in it and would be lost reading the raw socket.
        fp = getattr(getattr(self.response.raw, "_fp", None), "fp", None)
        self.reader: Any = fp if fp is not None and hasattr(fp, "read") else self.sock
        self.chunks: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True, name="opsbook-docker-exec")
        self.thread.start()

    def send_stdin(self, data: bytes) -> None:
        raw = getattr(self.sock, "_sock", self.sock)
        raw.sendall(data)
        if hasattr(raw, "shutdown_write"):  # paramiko channel (ssh:// daemons)
            raw.shutdown_write()
        else:
            raw.shutdown(socket.SHUT_WR)

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            part = self.reader.read(n - len(buf))
            if not part:
                return buf
            buf += part
        return buf

    def _pump(self) -> None:
        try:
            while True:
                header = self._read_exact(8)
                if len(header) < 8:
                    break
                kind, size = header[0], struct.unpack(">I", header[4:])[0]
                payload = self._read_exact(size)
                self.chunks.put((kind, payload))
                if len(payload) < size:
                    break
        except (OSError, ValueError, AttributeError):
            pass  # closed under us after a timeout
        finally:
            self.chunks.put(None)

    def collect(self, req: ExecRequest, started: float) -> tuple[bytes, bytes, str | None]:
        """The command's output, each stream kept bounded as a local or SSH command's
        (first and last 2 MiB, "bytes omitted" note; opsbook.capture), and its end."""
        out, err = Capture(), Capture()
        lines = Lines(req.on_output)
        while True:
            if req.cancel is not None and req.cancel.is_set():
                return out.data(), err.data(), "cancelled"
            wait = _POLL
            if req.timeout is not None:
                left = req.timeout - (time.monotonic() - started)
                if left <= 0:
                    return out.data(), err.data(), f"timed out after {_fmt_s(req.timeout)}"
                wait = min(wait, left)
            try:
                item = self.chunks.get(timeout=wait)
            except queue.Empty:
                continue
            if item is None:
                lines.flush()
                return out.data(), err.data(), None
            kind, payload = item
            (err if kind == 2 else out).add(payload)
            if kind == 1:
                lines.add(payload)

    def close(self) -> None:
        # Shut the socket first: the reader thread may sit in a blocking read holding the
        # buffered reader's lock, and closing the response would wait for it.
        raw = getattr(self.sock, "_sock", self.sock)
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.thread.join(timeout=2.0)
        for closer in (getattr(self.sock, "close", None), self.response.close):
            try:
                if closer:
                    closer()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass


def _argv(command: str | Sequence[str]) -> list[str]:
    return ["sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]


# --------------------------------------------------------------------------- docker.exec


class ExecArgs(BaseModel):
    """Arguments of docker.exec."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    command: str | list[str] = Field(
        ..., description="A shell string (run with sh -c) or an argv list (no shell)."
    )
    container: str | None = Field(None, description="Container name (default: see the plugin).")
    user: str | None = Field(None, description="User to run as inside the container.")
    workdir: str | None = Field(None, description="Working directory inside the container.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    stdin: str | None = Field(None, description="Text fed to the command's standard input.")
    timeout: Seconds | None = Field(None, description="Kill the command after this long.")
    ok_rc: list[int] = Field(
        default_factory=lambda: [0], description="Exit codes that count as ok."
    )


@plugin.action(scalar="command", shell=("command",), mutates=True)
@_guarded
def exec_(ctx: ActionContext, args: ExecArgs) -> Result:
    """Run a command in a running container; non-zero rc fails unless in ok_rc."""
    target = target_for(ctx, args.container)
    user = args.user if args.user is not None else (ctx.become.user if ctx.become else "")
    req = ExecRequest(
        argv=_argv(args.command),
        stdin=args.stdin.encode() if args.stdin is not None else None,
        user=user,
        workdir=args.workdir,
        env=dict(args.env) or None,
        timeout=_time_left(ctx, args.timeout, default=0) or None,
        cancel=ctx.cancelled,
        on_output=ctx.output,
    )
    done = exec_in(target, req)
    fields = {"rc": done.rc, "stdout": done.stdout, "stderr": done.stderr, "changed": True}
    fields["data"] = {"container": target.name, "duration": round(done.duration, 3)}
    if done.rc == -1 and "[opsbook]" in done.stderr:
        reason = done.stderr.rsplit("[opsbook] ", 1)[-1]
        return Result.failed(f"command in {target.name} {reason}; it was killed", **fields)
    if done.rc not in args.ok_rc:
        told = telling_line(done.stderr)
        return Result.failed(f"command in {target.name} exited with {done.rc}" + (f": {told}" if told else ""),
                             **fields)
    return Result.ok(**fields)


# --------------------------------------------------------------------------- docker.logs


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


class _ChunkReader(io.RawIOBase):
    """A readable file over the chunks of an HTTP response (tarfile's stream mode reads it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = iter(chunks)
        self.left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.left:
            self.left = next(self.chunks, b"")
            if not self.left:
                return 0
        n = min(len(buffer), len(self.left))
        buffer[:n], self.left = self.left[:n], self.left[n:]
        return n


def _extract_bounded(stream: Iterator[bytes], local_path: Path, remote: str, name: str,
                     transfer: Transfer) -> int:
    """The one file of a `get_archive` stream, copied chunk by chunk within `transfer`."""
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as tar:
        member = next((m for m in tar if m.isfile()), None)
        if member is None:
            raise DockerError(f"{remote} in {name} is not a regular file")
        transfer.check(member.size)
        content = tar.extractfile(member)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(tmp, "xb") as handle:
                size = copy_stream(content, handle, transfer) if content is not None else 0
            os.replace(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)
    return size


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- docker.inspect


class InspectArgs(BaseModel):
    """Arguments of docker.inspect."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    missing_ok: bool = Field(
        False, description="A missing container is ok with exists: false instead of a failure."
    )
    raw: bool = Field(False, description="Also return the daemon's full inspect document.")


# What docker.inspect puts into `register` besides the common result keys (checked by
# `opsbook check`; listed with their types in docs/docker.md).
INSPECT_KEYS = ("exists", "id", "name", "image", "status", "running", "paused", "restarting", "oom_killed",
                "exit_code", "pid", "started_at", "finished_at", "health", "health_failing_streak", "health_log",
                "restart_count", "restart_policy", "resources", "networks", "ports", "labels", "raw")


def container_facts(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The facts a runbook usually needs from `docker inspect`, in a flat, stable shape."""
    state = attrs.get("State") or {}
    host_cfg = attrs.get("HostConfig") or {}
    health = state.get("Health")
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        "exists": True,
        "id": attrs.get("Id", "")[:12],
        "name": str(attrs.get("Name", "")).lstrip("/"),
        "image": (attrs.get("Config") or {}).get("Image"),
        "status": _status(attrs),
        "running": bool(state.get("Running")),
        "paused": bool(state.get("Paused")),
        "restarting": bool(state.get("Restarting")),
        "oom_killed": bool(state.get("OOMKilled")),
        "exit_code": state.get("ExitCode"),
        "pid": state.get("Pid"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "health": health.get("Status") if health else None,
        "health_failing_streak": health.get("FailingStreak") if health else None,
        "health_log": [
            {"exit_code": h.get("ExitCode"), "output": str(h.get("Output", "")).strip()}
            for h in (health.get("Log") or [])[-3:]
        ]
        if health
        else [],
        "restart_count": attrs.get("RestartCount", 0),
        "restart_policy": (host_cfg.get("RestartPolicy") or {}).get("Name") or "no",
        "resources": _resources(host_cfg),
        "networks": {
            name: {
                "ip": net.get("IPAddress") or None,
                "gateway": net.get("Gateway") or None,
                "mac": net.get("MacAddress") or None,
                "aliases": list(net.get("Aliases") or []),
            }
            for name, net in nets.items()
        },
        "ports": {
            port: [f"{b.get('HostIp')}:{b.get('HostPort')}" for b in (binds or [])]
            for port, binds in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()
        },
        "labels": dict((attrs.get("Config") or {}).get("Labels") or {}),
    }


def _resources(host_cfg: Mapping[str, Any]) -> dict[str, Any]:
    nano = host_cfg.get("NanoCpus") or 0
    quota, period = host_cfg.get("CpuQuota") or 0, host_cfg.get("CpuPeriod") or 0
    cpus = nano / 1e9 if nano else (quota / period if quota > 0 and period > 0 else None)
    return {
        "cpus": cpus,
        "nano_cpus": nano,
        "cpu_quota": quota,
        "cpu_period": period,
        "cpu_shares": host_cfg.get("CpuShares") or 0,
        "cpuset_cpus": host_cfg.get("CpusetCpus") or "",
        "memory": host_cfg.get("Memory") or 0,
        "memory_swap": host_cfg.get("MemorySwap") or 0,
        "memory_reservation": host_cfg.get("MemoryReservation") or 0,
        "pids_limit": host_cfg.get("PidsLimit") or 0,
    }


@plugin.action(check=True, idempotent=True, data=INSPECT_KEYS)
@_guarded
def inspect(ctx: ActionContext, args: InspectArgs) -> Result:
    """Read a container's state, health, restart count, resources and networks (for register)."""
    target = target_for(ctx, args.container)
    try:
        attrs = target.container().attrs
    except ContainerNotFound as exc:
        if args.missing_ok:
            return Result.ok(msg=str(exc), data={"exists": False, "name": target.name})
        raise
    facts = container_facts(attrs)
    if args.raw:
        facts["raw"] = attrs
    health = f", {facts['health']}" if facts["health"] else ""
    return Result.ok(msg=f"{target.name} is {facts['status']}{health}", data=facts)


# --------------------------------------------------------------------------- docker.network


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


@plugin.action(check=True, idempotent=True, inverse=_network_inverse, mutates=True,
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


# --------------------------------------------------------------------------- docker.update


class UpdateArgs(BaseModel):
    """Arguments of docker.update (any unset limit is left as it is)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    cpus: float | None = Field(None, ge=0, description="CPU limit in CPUs (1.5 = one and a half).")
    cpu_shares: int | None = Field(None, ge=0, description="Relative CPU weight (1024 = default).")
    memory: int | str | None = Field(None, description="Memory limit: bytes or 512m, 1g.")
    memory_swap: int | str | None = Field(
        None, description="Memory + swap limit: bytes, 1g, or -1 for unlimited swap."
    )
    memory_reservation: int | str | None = Field(None, description="Soft memory limit.")
    pids_limit: int | None = Field(None, description="Max processes (-1 or 0: unlimited).")
    force: bool = Field(False, description="Lower the memory limit even to within 10% of what the container "
                        "uses now (the kernel may OOM-kill it).")


_HEADROOM = 0.9  # a lower memory limit must stay above what the container uses / this


def _memory_refusal(target: Target, obj: Any, body: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """Why lowering the memory limit now would OOM the container, or None (also for a
    rollback: an undo that lowers a limit checks what is in use first)."""
    new = body.get("Memory")
    old = current.get("Memory") or 0
    if not new or new <= 0 or (old and new >= old):
        return None
    raw = _api_call(target.daemon, lambda: obj.stats(stream=False, one_shot=True))
    used = stats_summary(raw)["memory_usage"]
    if used < new * _HEADROOM:
        return None
    return (f"refusing to set {target.name}'s memory limit to {new / 1048576:.0f} MiB: it uses "
            f"{used / 1048576:.1f} MiB now ({used / new * 100:.0f}% of the new limit), and the kernel would "
            "OOM-kill it. Free memory first, keep a higher limit, or set force: true")


def _bytes(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) or str(value).lstrip("-").isdigit():
        return int(value)
    from docker.utils import parse_bytes

    try:
        return int(parse_bytes(str(value)))
    except Exception:  # noqa: BLE001 - the SDK raises DockerException or ValueError
        raise DockerError(f'"{value}" is not a size (examples: 512m, 1g, 1073741824)') from None


def _update_inverse(args: UpdateArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    previous = result.data.get("previous")
    if not result.changed or not previous:
        return None
    return "docker.update", {"container": result.data.get("container"), **previous}


@dataclass(frozen=True)
class _Machine:
    """What 'no limit' amounts to on this daemon's machine (docker update cannot unset one)."""

    cpus: int
    memory: int


def _machine(target: Target) -> _Machine:
    info = _api_call(target.daemon, target.client.api.info)
    return _Machine(cpus=int(info.get("NCPU") or 1), memory=int(info.get("MemTotal") or 0))


def _desired_body(
    args: UpdateArgs, current: Mapping[str, Any], machine: Callable[[], _Machine]
) -> tuple[dict[str, Any], list[str]]:
    """The daemon's update body for what the args ask (minus what is already so), and notes."""
    body: dict[str, Any] = {}
    notes: list[str] = []
    if args.cpus is not None:
        _cpu_body(args.cpus, current, machine, body, notes)
    shares = args.cpu_shares
    if shares == 0:
        shares = 1024  # 0 means "the default weight", which the daemon will not take back
    memory = _bytes(args.memory)
    if memory == 0 and (current.get("Memory") or 0) != 0:
        memory = machine().memory
        notes.append(
            f"docker cannot lift a memory limit from a running container: set it to the "
            f"machine's total memory ({memory / 2**30:.1f} GiB) instead"
        )
    for key, value in (
        ("CpuShares", shares),
        ("PidsLimit", args.pids_limit),
        ("Memory", memory),
        ("MemorySwap", _bytes(args.memory_swap)),
        ("MemoryReservation", _bytes(args.memory_reservation)),
    ):
        if value is not None and value != (current.get(key) or 0):
            body[key] = value
    if body.get("MemoryReservation") == 0:
        del body["MemoryReservation"]
        notes.append("docker cannot lift a memory reservation from a running container: left as is")
    if "Memory" in body and "MemorySwap" not in body:
        body["MemorySwap"] = _swap_for(body["Memory"], current)
        if body["MemorySwap"] == (current.get("MemorySwap") or 0):
            del body["MemorySwap"]
    return body, notes


def _cpu_body(
    cpus: float,
    current: Mapping[str, Any],
    machine: Callable[[], _Machine],
    body: dict[str, Any],
    notes: list[str],
) -> None:
    limited = (current.get("NanoCpus") or 0) or (current.get("CpuQuota") or 0) > 0
    if cpus == 0:
        if not limited:
            return
        cpus = float(machine().cpus)
        notes.append(
            f"docker cannot lift a CPU limit from a running container: set it to all {cpus:g} CPUs instead"
        )
    period = current.get("CpuPeriod") or 0
    if period > 0:
        # Created with --cpu-period/--cpu-quota: the daemon refuses NanoCpus on top of those.
        quota = round(cpus * period)
        if quota != (current.get("CpuQuota") or 0):
            body["CpuQuota"] = quota
        return
    nano = round(cpus * 1e9)
    if nano != (current.get("NanoCpus") or 0):
        body["NanoCpus"] = nano


def _swap_for(memory: int, current: Mapping[str, Any]) -> int:
    """The memory+swap limit to send with a new memory limit (the daemon insists on one)."""
    mem, swap = current.get("Memory") or 0, current.get("MemorySwap") or 0
    if swap == -1:
        return -1
    if swap > 0 and mem > 0:
        return memory + max(0, swap - mem)  # keep the same swap allowance
    return 2 * memory  # what docker gives a container created with only --memory


def _previous_args(body: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The docker.update arguments that put back what `body` is about to change."""
    prev: dict[str, Any] = {}
    if "NanoCpus" in body or "CpuQuota" in body:
        cpus = _resources(current)["cpus"]
        prev["cpus"] = cpus if cpus is not None else 0
    names = {
        "CpuShares": "cpu_shares",
        "PidsLimit": "pids_limit",
        "Memory": "memory",
        "MemorySwap": "memory_swap",
        "MemoryReservation": "memory_reservation",
    }
    for key, arg in names.items():
        if key in body:
            prev[arg] = current.get(key) or 0
    if prev.get("memory") == 0 or prev.get("memory_swap") == 0:
        prev["memory_swap"] = -1  # no memory limit before: no swap limit either
    return prev


@plugin.action(check=True, idempotent=True, inverse=_update_inverse, mutates=True)
@_guarded
def update(ctx: ActionContext, args: UpdateArgs) -> Result:
    """Change a running container's CPU and memory limits (capacity); rollback restores them."""
    target = target_for(ctx, args.container)
    obj = target.container()
    current = obj.attrs.get("HostConfig") or {}
    machine: list[_Machine] = []

    def lazy_machine() -> _Machine:
        if not machine:
            machine.append(_machine(target))
        return machine[0]

    body, notes = _desired_body(args, current, lazy_machine)
    data: dict[str, Any] = {"container": target.name, "before": _resources(current)}
    if notes:
        data["notes"] = notes
    if not body:
        data["after"] = data["before"]
        return Result.ok(msg=f"{target.name} already has these limits", data=data)
    data["previous"] = _previous_args(body, current)
    data["requested"] = dict(body)
    refusal = None if args.force else _memory_refusal(target, obj, body, current)
    if refusal:
        return Result.failed(refusal, data=data)
    tail = "".join(f"; {note}" for note in notes)
    if ctx.check_mode:
        return Result.ok(
            changed=True, msg=f"would update {target.name}: {_describe(body, current)}{tail}", data=data
        )
    _post_update(target, obj.id, body)
    data["after"] = _resources(target.container().attrs.get("HostConfig") or {})
    return Result.ok(changed=True, msg=f"updated {target.name}: {_describe(body, current)}{tail}", data=data)


def _post_update(target: Target, container_id: str, body: Mapping[str, Any]) -> None:
    api = target.client.api

    def post(part: Mapping[str, Any]) -> None:
        url = api._url("/containers/{0}/update", container_id)
        _api_call(target.daemon, lambda: api._result(api._post_json(url, data=dict(part)), True))

    if body.get("MemorySwap") == -1 and body.get("Memory", 0) > 0:
        # runc writes the memory limit before an unlimited swap limit, and the kernel refuses
        # a memory limit above the old memory+swap one: go through a finite swap limit first.
        post({**body, "MemorySwap": 2 * body["Memory"]})
        post({"MemorySwap": -1})
    else:
        post(body)


def _describe(body: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> str:
    """The change a body makes, in the words of `docker update` (cpus=1.5, Memory=256MiB): a
    CPU limit set through a quota (containers created with --cpu-period/--cpu-quota) is
    said in CPUs too, from the container's period."""
    words = []
    for key, value in body.items():
        if key == "NanoCpus":
            words.append(f"cpus={value / 1e9:g}")
        elif key == "CpuQuota":
            period = body.get("CpuPeriod") or (current or {}).get("CpuPeriod") or 0
            words.append(f"cpus={value / period:g} (quota {value}/{period})" if period > 0 and value > 0
                         else f"CpuQuota={value}")
        elif key == "CpuPeriod":
            continue
        elif key.startswith("Memory") and isinstance(value, int) and value > 0:
            words.append(f"{key}={value / 1048576:g}MiB")
        else:
            words.append(f"{key}={value}")
    return ", ".join(words)


# --------------------------------------------------------------------------- docker.stats


class StatsArgs(BaseModel):
    """Arguments of docker.stats."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    dest: str | None = Field(
        None,
        description="Evidence file, relative to the evidence folder (default: "
        "<host>/docker/<container>-stats.json); a folder (ending with /) gets <dest>/<host>/docker/<container>-stats.json.",
    )


# What docker.stats puts into `register` (see INSPECT_KEYS).
STATS_KEYS = ("read_at", "cpu_percent", "online_cpus", "memory_usage", "memory_limit", "memory_percent",
              "net_rx_bytes", "net_tx_bytes", "block_read_bytes", "block_write_bytes", "pids", "container", "path")


def stats_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """docker stats' numbers (CPU %, memory, network, block I/O, pids) from one raw sample."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    sys_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = (
        cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    )
    cpu_percent = (
        (cpu_delta / sys_delta) * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    )
    mem = raw.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    cache = stats.get("total_inactive_file", stats.get("inactive_file", stats.get("cache", 0)))
    usage = max(0, (mem.get("usage") or 0) - (cache or 0))
    limit = mem.get("limit") or 0
    nets = raw.get("networks") or {}
    blk = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "read_at": raw.get("read"),
        "cpu_percent": round(cpu_percent, 2),
        "online_cpus": online,
        "memory_usage": usage,
        "memory_limit": limit,
        "memory_percent": round(usage / limit * 100.0, 2) if limit else 0.0,
        "net_rx_bytes": sum(n.get("rx_bytes", 0) for n in nets.values()),
        "net_tx_bytes": sum(n.get("tx_bytes", 0) for n in nets.values()),
        "block_read_bytes": sum(
            b.get("value", 0) for b in blk if str(b.get("op")).lower() == "read"
        ),
        "block_write_bytes": sum(
            b.get("value", 0) for b in blk if str(b.get("op")).lower() == "write"
        ),
        "pids": (raw.get("pids_stats") or {}).get("current"),
    }


def _stats_name(container: str) -> str:
    return f"docker/{container}-stats.json"


def _stats_file(args: StatsArgs, host: HostInfo) -> list[str]:
    return [evidence_file(args.dest, host.name, _stats_name(container_name_for(host, args.container)))]


@plugin.action(check=True, idempotent=True, evidence=_stats_file, data=STATS_KEYS)
@_guarded
def stats(ctx: ActionContext, args: StatsArgs) -> Result:
    """Take one resource snapshot of a container (CPU, memory, I/O) as JSON evidence."""
    target = target_for(ctx, args.container)
    obj = target.container()
    if _status(obj.attrs) != "running":
        return Result.failed(
            f"no resource numbers for {target.where()}: it is {_status(obj.attrs)}"
        )
    raw = _api_call(target.daemon, lambda: obj.stats(stream=False))
    summary = stats_summary(raw)
    summary["container"] = target.name
    text = (
        f"{target.name}: CPU {summary['cpu_percent']:.1f}%, memory "
        f"{summary['memory_usage'] / 1048576:.1f} MiB"
        + (f" of {summary['memory_limit'] / 1048576:.0f} MiB" if summary["memory_limit"] else "")
        + f", {summary['pids']} processes"
    )
    if ctx.evidence_dir is None:
        return Result.ok(msg=text + " (no evidence folder)", data=summary)
    relative = ctx.evidence_file(args.dest, _stats_name(target.name))
    document = {"summary": summary, "raw": raw}
    _write_atomic(ctx.evidence_path(relative), json.dumps(document, indent=2, default=str).encode())
    summary["path"] = relative
    evidence = Evidence(
        path=relative,
        source=f"docker stats {target.name} ({target.daemon.base_url})",
        description=text,
    )
    return Result.ok(msg=text, data=summary, evidence=[evidence])


# --------------------------------------------------------------------------- the connection


class DockerConnection:
    """Run commands and move files in a container through the Docker API (no sshd needed)."""

    def __init__(self, daemon: Daemon, name: str, user: str = "") -> None:
        self.daemon = daemon
        self.name = name
        self.user = user
        self._target: Target | None = None

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = Target(self.daemon, clients.get(self.daemon), self.name)
        return self._target

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        cancel: threading.Event | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run a shell string (sh -c) or an argv list in the container."""
        req = ExecRequest(
            argv=_argv(command),
            stdin=stdin,
            user=become.user if become else self.user,
            timeout=timeout,
            cancel=cancel,
            on_output=on_output,
        )
        return exec_in(self.target, req)

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        """Write a file atomically: upload beside it under a temp name, then mv over it."""
        directory, _, base = remote_path.rstrip("/").rpartition("/")
        directory = directory or "/"
        tmp_name = f".{base}.opsbook-{uuid.uuid4().hex[:8]}"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(tmp_name)
            info.size = len(data)
            info.mode = mode if mode is not None else 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        obj = self.target.container()
        ok = _api_call(self.daemon, lambda: obj.put_archive(directory, archive.getvalue()))
        if not ok:
            raise DockerError(f"could not upload to {directory} in {self.name}")
        tmp_path = f"{directory.rstrip('/')}/{tmp_name}"
        done = self.run(["mv", "-f", tmp_path, remote_path], timeout=DEFAULT_TIMEOUT)
        if done.rc != 0:
            self.run(["rm", "-f", tmp_path], timeout=DEFAULT_TIMEOUT)
            raise DockerError(
                f"could not move the upload into {remote_path} in {self.name}: {done.stderr.strip()}"
            )

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Copy a file out of the container (following symlinks); return its size. With a
        `transfer`, the archive is read as a stream within its limits."""
        import docker.errors

        obj = self.target.container()
        path = remote_path
        for _ in range(8):  # follow symlink chains, within reason
            try:
                stream, stat = _api_call(self.daemon, lambda p=path: obj.get_archive(p))
            except docker.errors.NotFound:
                raise DockerError(f"no file {remote_path} in {self.name}") from None
            if not stat.get("linkTarget"):
                if transfer is not None:
                    return _extract_bounded(stream, Path(local_path), remote_path, self.name, transfer)
                return _extract_single(stream, Path(local_path), remote_path, self.name)
            for _chunk in stream:  # drain the response of the link itself
                pass
            target = stat["linkTarget"]
            path = target if target.startswith("/") else f"{path.rpartition('/')[0]}/{target}"
        raise DockerError(f"too many symlinks at {remote_path} in {self.name}")

    def close(self) -> None:
        """Nothing to close per host: the API client is shared by everything on that daemon."""
        self._target = None


def _extract_single(stream: Iterator[bytes], local_path: Path, remote: str, name: str) -> int:
    buffer = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=buffer, mode="r") as tar:
        member = next((m for m in tar if m.isfile()), None)
        if member is None:
            raise DockerError(f"{remote} in {name} is not a regular file")
        content = tar.extractfile(member)
        data = content.read() if content else b""
    _write_atomic(local_path, data)
    return len(data)


@plugin.connection("docker")
def docker_connection(host: HostInfo) -> DockerConnection:
    """Connection for `ansible_connection: docker` hosts: the container is ansible_host."""
    user = host.vars.get("ansible_docker_user") or host.vars.get("ansible_user") or ""
    return DockerConnection(daemon_for(host.vars), container_name_for(host), str(user))


# --------------------------------------------------------------------------- inventory source


def docker_inventory(
    filters: Mapping[str, Any],
    base_url: str | None = None,
    *,
    include_stopped: bool = False,
    group_label: str = "opsbook.groups",
) -> dict[str, Any]:
    """Containers matching `filters` as hosts, in Ansible's `--list` JSON shape.

    `filters` are the daemon's (``{"label": ["role=web"]}``, ``{"name": "web"}``); a label
    mapping ``{"label": {"role": "web"}}`` is accepted too. Every label becomes a host var, and
    the comma-separated value of the `group_label` label puts the host in those groups.
    """
    env_daemon = daemon_for({})
    if base_url:
        env_daemon = replace(env_daemon, base_url=_normalise_url(base_url), source="base_url given")
    try:
        client = clients.get(env_daemon)
        listed = _api_call(
            env_daemon,
            lambda: client.api.containers(all=include_stopped, filters=_filters(filters)),
        )
    except DockerError as exc:
        raise InventoryError(f"docker inventory: {exc}") from exc
    hostvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for item in sorted(listed, key=lambda c: c["Names"][0]):
        name = item["Names"][0].lstrip("/")
        labels = dict(item.get("Labels") or {})
        hostvars[name] = {
            **labels,
            "ansible_connection": "docker",
            "ansible_host": name,
            "docker_labels": labels,
            "docker_container_id": item["Id"][:12],
            "docker_image": item.get("Image"),
            "docker_status": item.get("State"),
        }
        if base_url:
            hostvars[name]["ansible_docker_host"] = env_daemon.base_url
        wanted = [g.strip() for g in str(labels.get(group_label, "")).split(",") if g.strip()]
        for group in wanted or ["ungrouped"]:
            groups.setdefault(group, []).append(name)
    document: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    document["all"] = {"children": sorted(set(groups) | {"ungrouped"})}
    document["ungrouped"] = {"hosts": []}
    for group, hosts in groups.items():
        document[group] = {"hosts": hosts}
    return document


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if isinstance(value, Mapping):
            out[key] = [
                f"{k}={v}" if v is not None and v != "" else str(k) for k, v in value.items()
            ]
        else:
            out[key] = value
    return out


@plugin.inventory("docker")
def docker_inventory_source(query: dict[str, list[str]]) -> dict[str, Any]:
    """`-i 'docker://?label=role=web&host=unix:///run/x.sock&all=1'`: containers as hosts.

    Query keys: `label` and `name` (daemon filters, repeatable), `host` (daemon URL, default
    DOCKER_HOST or the local socket), `all=1` to include stopped containers."""
    filters: dict[str, list[str]] = {key: values for key, values in query.items() if key in ("label", "name")}
    base_url = (query.get("host") or [None])[0]
    include_stopped = (query.get("all") or ["0"])[0] in ("1", "true", "yes")
    return docker_inventory(filters, base_url, include_stopped=include_stopped)


# Root-cause evidence actions (docker.events, docker.cp_out, docker.diff) live in their own
# module; importing it registers them on this plugin.
from opsbook_plugins.docker import evidence as _evidence  # noqa: E402,F401
from opsbook_plugins.docker import recreate as _recreate  # noqa: E402,F401  docker.recreate, docker.run
from opsbook_plugins.docker import compose as _compose  # noqa: E402,F401  docker.service
