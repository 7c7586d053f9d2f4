"""Running a command inside a container: the exec machinery (`exec_in`: the exec's streams,
its exit code, a timeout or cancel that kills the process inside, a daemon lost mid-command)
and the docker.exec action built on it. The `docker` connection runs its commands through
`exec_in` too.
"""

from __future__ import annotations

import queue
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opsbook.capture import Capture, Lines
from opsbook.plugin import ActionContext, CommandResult, Result, Seconds, command_disrupts, command_result
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import _POLL, DockerError, _fmt_s
from opsbook_plugins.docker.target import (
    Target,
    _api_call,
    _guarded,
    _status,
    _time_left,
    target_for,
)
from pydantic import BaseModel, ConfigDict, Field

_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a timed-out exec


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


@plugin.action(scalar="command", shell=("command",), mutates=True, disrupts=command_disrupts("command"))
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
    data = {"container": target.name}  # `duration` is register:'s own (the node's)
    if done.rc == -1 and "[opsbook]" in done.stderr:
        reason = done.stderr.rsplit("[opsbook] ", 1)[-1]
        return Result.failed(f"command in {target.name} {reason}; it was killed", changed=True, rc=done.rc,
                             stdout=done.stdout, stderr=done.stderr, data=data)
    return command_result(done, args.ok_rc, what=f"command in {target.name}", exited=f"exited with {done.rc}",
                          data=data)
