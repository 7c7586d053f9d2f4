"""local: actions that run on the controller (commands, waits, assertions, HTTP, webhooks).

Also provides the `local` connection (`ansible_connection: local`), so command-style
actions of other plugins can target the controller itself.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Sequence
from pathlib import Path
from http import client as http_client
from typing import Any

from opsbook.plugin import (
    command_disrupts,
    ActionContext,
    Become,
    CommandResult,
    HostInfo,
    Plugin,
    Result,
    Status,
    command_result,
    evidence_file,
    truthy,
)
from opsbook.capture import OUTPUT_CAP, READ_SIZE, Capture, Lines
from opsbook.transfer import DEFAULT_MAX_SIZE, Transfer, TransferTooLarge, copy_stream
from opsbook_plugins.http_checks import BodyChecks, body_problem, content_data
from opsbook_plugins.http_deadline import exchange
from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

plugin = Plugin("local", "Run things on the controller: commands, waits, assertions, HTTP.")



class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# -- connection ------------------------------------------------------------------------


class LocalConnection:
    """Runs commands as subprocesses of the controller."""

    def __init__(self, host: HostInfo | None = None) -> None:
        self.host = host

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        cancel: threading.Event | None = None,
        on_output: Callable[[str], None] | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdout_to: Any = None,
    ) -> CommandResult:
        """Run a command; `stdout_to` (a file, e.g. a Transfer's sink) gets all of its
        standard output instead of the capped capture (TransferTooLarge stops the command)."""
        argv: list[str] | str = command if isinstance(command, str) else list(command)
        shell = isinstance(argv, str)
        if become is not None and become.user != _current_user():
            prefix = ["sudo", "-n", "-u", become.user, "--"]
            argv = prefix + (["/bin/sh", "-c", argv] if shell else argv)  # type: ignore[operator]
            shell = False
        if _SETPRIV:  # die with opsbook, without preexec_fn (which forces the slow fork path)
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--"] + (["/bin/sh", "-c", argv] if shell else argv)  # type: ignore[operator]
            shell = False
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, shell=shell, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                cwd=cwd, env={**os.environ, **env} if env else None,
                preexec_fn=None if _SETPRIV else _die_with_parent,
            )
        except FileNotFoundError as exc:
            if cwd is not None and exc.filename == cwd:
                return CommandResult(_NO_CHDIR, "", f"chdir {cwd}: no such folder", time.monotonic() - start)
            return CommandResult(127, "", f"command not found: {exc.filename}", time.monotonic() - start)
        except NotADirectoryError as exc:
            return CommandResult(_NO_CHDIR, "", f"chdir {exc.filename}: not a folder", time.monotonic() - start)
        except PermissionError as exc:
            return CommandResult(126, "", f"permission denied: {exc.filename}", time.monotonic() - start)
        out, err = _communicate(proc, stdin, timeout, cancel, on_output, stdout_to)
        return CommandResult(proc.returncode, out, err, time.monotonic() - start)

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        target = Path(remote_path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        if transfer is None:
            shutil.copyfile(remote_path, local_path)
            return local_path.stat().st_size
        with open(remote_path, "rb") as source:
            info = os.fstat(source.fileno())
            transfer.check(info.st_size if stat.S_ISREG(info.st_mode) else None)
            fd, temp = tempfile.mkstemp(prefix=f".{local_path.name}.", suffix=".part", dir=local_path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    size = copy_stream(source, handle, transfer)
                os.replace(temp, local_path)
            finally:
                Path(temp).unlink(missing_ok=True)
        return size

    def close(self) -> None:
        pass


_SETPRIV = shutil.which("setpriv")  # util-linux: sets PR_SET_PDEATHSIG and execs the command


def _die_with_parent() -> None:
    """Linux: the command is killed when opsbook dies, so a crashed run leaves no command
    finishing behind its back (resume decides what to re-run from the journal)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _communicate(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    timeout: float | None,
    cancel: threading.Event | None,
    on_output: Callable[[str], None] | None,
    stdout_to: Any = None,
) -> tuple[str, str]:
    """Collect output while honouring timeout and cancellation (kills the process group).
    Pipes are read in chunks, never a line at a time: a gigabyte without a newline is kept
    as its first and last OUTPUT_CAP/2 bytes with a "bytes omitted" note (opsbook.capture)."""
    captured = {"out": Capture(), "err": Capture()}
    live = Lines(on_output)

    stopped: list[BaseException] = []

    def pump(stream: Any, key: str) -> None:
        try:
            for chunk in iter(lambda: stream.read1(READ_SIZE), b""):
                if key == "out" and stdout_to is not None:
                    stdout_to.write(chunk)
                else:
                    captured[key].add(chunk)
                if key == "out":
                    live.add(chunk)
            if key == "out":
                live.flush()
        except TransferTooLarge as exc:  # the command's output passed its limit: stop it
            stopped.append(exc)
            _kill_group(proc)
        finally:
            stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for reader in readers:
        reader.start()
    if stdin and proc.stdin:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            if (cancel is not None and cancel.is_set()) or (deadline and time.monotonic() > deadline):
                _kill_group(proc)
                proc.wait()
                break
    for reader in readers:
        reader.join(timeout=2)
    if stopped:
        raise stopped[0]
    return captured["out"].text(), captured["err"].text()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group, by PID
    except ProcessLookupError:
        pass


@plugin.connection("local")
def local_connection(host: HostInfo) -> LocalConnection:
    return LocalConnection(host)


_CONTROLLER = LocalConnection()


_NO_CHDIR = 200  # the command did not start: its chdir folder is missing


def _no_chdir(args: Any) -> Result | None:
    """A missing `chdir` folder: the command cannot run, and nothing changed."""
    if args.chdir and not os.path.isdir(args.chdir):
        what = "not a folder" if os.path.exists(args.chdir) else "no such folder"
        return Result.failed(f"chdir {args.chdir}: {what} on the controller; the command did not run")
    return None


def _command_result(res: CommandResult, ok_rc: list[int], ctx: ActionContext) -> Result:
    # killed by us: the node was cancelled, or its time ran out (the command's own deadline
    # can come a moment before the step's cancellation does)
    out_of_time = res.rc == -signal.SIGKILL and ctx.timeout is not None and res.duration >= ctx.timeout
    if ctx.cancelled.is_set() or out_of_time:
        return Result(status=Status.TIMED_OUT, rc=res.rc, stdout=res.stdout, stderr=res.stderr,
                      msg="cancelled", changed=True)
    return command_result(res, ok_rc)


def _guard(args: Any) -> str | None:
    """Ansible's creates/removes (glob patterns, as in Ansible): a reason to skip, or None.
    A relative pattern is in `chdir`, which Ansible enters first."""
    chdir = getattr(args, "chdir", None)

    def where(pattern: str) -> str:
        return os.path.join(os.path.expanduser(chdir), pattern) if chdir and not os.path.isabs(pattern) else pattern

    if getattr(args, "creates", None) and glob.glob(where(args.creates)):
        return f"{args.creates} exists"
    if getattr(args, "removes", None) and not glob.glob(where(args.removes)):
        return f"{args.removes} does not exist"
    return None


def _guarded(skip: str) -> Result:
    """A command its guard skipped; registered as Ansible's command module does (rc 0)."""
    return Result(status=Status.OK, changed=False, rc=0, stdout=f"skipped, since {skip}", msg=f"skipped: {skip}")


# -- actions ---------------------------------------------------------------------------


class CommandArgs(_Args):
    """Run a program on the controller without a shell."""

    cmd: str | list[str] = Field(
        description="argv list, or a string split like a shell would (each {{ }} value one word)"
    )
    chdir: str | None = None
    env: dict[str, str] = {}
    stdin: str | None = None
    creates: str | None = Field(None, description="skip when this path (a glob pattern) exists")
    removes: str | None = Field(None, description="skip unless this path (a glob pattern) exists")
    ok_rc: list[int] = [0]


def _check(args: Any, name: str) -> Result:
    """Check mode for commands: only a creates/removes guard tells what would happen."""
    if args.creates or args.removes:
        return Result(status=Status.UNKNOWN, changed=True, msg=f"would run ({name}: guard not satisfied)")
    return Result.unknown(f"{name} cannot tell what a command would do; not run in check mode")


@plugin.action(scalar="cmd", check=True, data=(), argv=["cmd"], mutates=True, disrupts=command_disrupts("cmd"))
def command(ctx: ActionContext, args: CommandArgs) -> Result:
    """Run a program (argv, no shell) on the controller."""
    skip = _guard(args)
    if skip:
        return _guarded(skip)
    if ctx.check_mode:
        return _check(args, "local.command")
    missing = _no_chdir(args)
    if missing:
        return missing
    argv = shlex.split(args.cmd) if isinstance(args.cmd, str) else [str(a) for a in args.cmd]
    res = _CONTROLLER.run(argv, stdin=args.stdin.encode() if args.stdin else None, timeout=ctx.timeout,
                          cancel=ctx.cancelled, on_output=ctx.output, cwd=args.chdir, env=args.env or None)
    return _command_result(res, args.ok_rc, ctx)


class ShellArgs(CommandArgs):
    """Run a shell command line on the controller; templated values are quoted."""

    cmd: str = Field(description="shell command line (values in {{ }} are shell-quoted unless | raw)")
    executable: str = "/bin/sh"


@plugin.action(scalar="cmd", shell=["cmd"], check=True, data=(), mutates=True,
               disrupts=command_disrupts("cmd"))
def shell(ctx: ActionContext, args: ShellArgs) -> Result:
    """Run a shell command line on the controller."""
    skip = _guard(args)
    if skip:
        return _guarded(skip)
    if ctx.check_mode:
        return _check(args, "local.shell")
    missing = _no_chdir(args)
    if missing:
        return missing
    res = _CONTROLLER.run([args.executable, "-c", args.cmd], stdin=args.stdin.encode() if args.stdin else None,
                          timeout=ctx.timeout, cancel=ctx.cancelled, on_output=ctx.output, cwd=args.chdir,
                          env=args.env or None)
    return _command_result(res, args.ok_rc, ctx)


class ScriptArgs(_Args):
    """Run a local script file with arguments."""

    path: str
    args: list[str] = []
    interpreter: str | None = None
    ok_rc: list[int] = [0]


@plugin.action(scalar="path", data=(), mutates=True)
def script(ctx: ActionContext, args: ScriptArgs) -> Result:
    """Run a script file on the controller."""
    path = str(ctx.local_path(args.path, "files"))
    if not os.path.isfile(path):
        return Result.failed(f"script {args.path} does not exist")
    if ctx.check_mode:
        return Result.unknown("local.script is not run in check mode")
    argv = ([args.interpreter] if args.interpreter else ["/bin/sh"]) + [path] + args.args
    res = _CONTROLLER.run(argv, timeout=ctx.timeout, cancel=ctx.cancelled, on_output=ctx.output)
    return _command_result(res, args.ok_rc, ctx)


class WaitArgs(_Args):
    """Sleep, or wait until a path exists / a TCP port accepts."""

    seconds: float = 0
    path: str | None = None
    port: int | None = None
    host: str = "127.0.0.1"
    timeout: float = 300


@plugin.action(scalar="seconds", check=True, idempotent=True, data=(), observes=True)
def wait(ctx: ActionContext, args: WaitArgs) -> Result:
    """Sleep for `seconds`, or wait for a path or a port (up to `timeout`)."""
    if args.path is None and args.port is None:
        if ctx.cancelled.wait(args.seconds):
            return Result(status=Status.TIMED_OUT, msg="cancelled while waiting")
        return Result.ok(msg=f"waited {args.seconds:g}s")
    import socket

    deadline = time.monotonic() + args.timeout
    what = args.path or f"{args.host}:{args.port}"
    while not ctx.cancelled.is_set():  # checks at least once, even with timeout 0
        if args.path and os.path.exists(args.path):
            return Result.ok(msg=f"{args.path} exists")
        if args.port:
            try:
                with socket.create_connection((args.host, args.port), timeout=1):
                    return Result.ok(msg=f"{what} accepts connections")
            except OSError:
                pass
        if time.monotonic() >= deadline:
            break
        ctx.cancelled.wait(0.2)
    return Result.failed(f"gave up waiting for {what} after {args.timeout:g}s")


class AssertArgs(_Args):
    """Fail unless every condition holds (conditions are Jinja expressions)."""

    that: list[Any] | Any
    fail_msg: str | None = None
    success_msg: str | None = None


@plugin.action(scalar="that", check=True, idempotent=True, expressions=["that"], data=())
def assert_(ctx: ActionContext, args: AssertArgs) -> Result:
    """Fail unless every condition holds (bare Jinja expressions, as Ansible's assert)."""
    conditions = args.that if isinstance(args.that, list) else [args.that]
    for index, value in enumerate(conditions):
        if not truthy(value):
            return Result.failed(args.fail_msg or f"assertion {index + 1} of {len(conditions)} failed: {value!r}")
    return Result.ok(msg=args.success_msg or "all assertions passed")



class SetArgs(BaseModel):
    """Set host variables (Ansible's set_fact): any keys."""

    model_config = ConfigDict(extra="allow", defer_build=True)


@plugin.action(check=True, idempotent=True, data=["facts"])
def set(ctx: ActionContext, args: SetArgs) -> Result:
    """Set variables on the host for later steps (like set_fact; a name may be a template)."""
    from opsbook.template import is_template, render

    facts = {}
    for key, value in (args.model_extra or {}).items():
        name = str(render(key, ctx.variables)) if is_template(key) and ctx.variables is not None else key
        facts[name] = value
    return Result.ok(facts=facts, data={"facts": facts})


class NoopArgs(_Args):
    """Do nothing (plans, benchmarks, placeholders)."""


@plugin.action(check=True, idempotent=True, data=())
def noop(ctx: ActionContext, args: NoopArgs) -> Result:
    """Do nothing and succeed."""
    return Result()


class FailArgs(_Args):
    """Fail the step with a message."""

    msg: str = "failed as requested"


@plugin.action(scalar="msg", check=True, idempotent=True, data=())
def fail(ctx: ActionContext, args: FailArgs) -> Result:
    """Fail with a message."""
    return Result.failed(args.msg)


class HttpArgs(_Args, BodyChecks):
    """Make an HTTP request from the controller (answer checks: opsbook_plugins.http_checks)."""

    url: str
    method: str = "GET"
    body: Any = None
    headers: dict[str, str] = {}
    timeout: float = 10


def _http(ctx: ActionContext, url: str, method: str, body: Any, headers: dict[str, str],
          timeout: float) -> tuple[int, str, float]:
    """One request on the one HTTP path of the controller's actions (http_deadline.exchange)."""
    limit = min(timeout, ctx.timeout) if ctx.timeout else timeout
    return exchange(url, method, body, headers, limit, ctx.cancelled, OUTPUT_CAP)


@plugin.action(scalar="url", check=True, idempotent=True, data=["status", "latency_ms", "body", "json", "content"],
               mutates=lambda args: str(args.get("method", "GET")).upper() not in ("GET", "HEAD", "OPTIONS"))
def http(ctx: ActionContext, args: HttpArgs) -> Result:
    """Make an HTTP request; fail unless the status (and body, when checked) is expected."""
    if ctx.check_mode and args.method.upper() not in ("GET", "HEAD"):
        return Result.unknown(f"local.http {args.method} is not sent in check mode")
    expected = args.status or [200]
    try:
        code, text, took = _http(ctx, args.url, args.method.upper(), args.body, args.headers, args.timeout)
    except (urllib.error.URLError, OSError, http_client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return Result.failed(f"{args.method} {args.url} failed: {reason}")
    except ValueError as exc:  # urllib.parse: "Invalid IPv6 URL", "Port out of range 0-65535"
        return Result.failed(f"{args.method} {args.url}: not a valid URL: {exc}")
    data: dict[str, Any] = {"status": code, "latency_ms": round(took * 1000, 1), "body": text}
    try:
        data["json"] = json.loads(text)
    except ValueError:
        pass
    data.update(content_data(text, args.return_content))
    if code not in expected:
        return Result.failed(f"expected HTTP {'/'.join(map(str, expected))} from {args.url}, got {code}",
                             data=data, stdout=text)
    problem = body_problem(args, text)
    if problem:
        return Result.failed(f"HTTP {code} from {args.url}, but {problem}", data=data, stdout=text)
    return Result.ok(data=data, stdout=text)


class NotifyArgs(_Args):
    """POST a JSON message to a webhook (chat, paging, incident channel)."""

    url: str
    message: str
    fields: dict[str, Any] = {}
    timeout: float = 10


@plugin.action(scalar="message", data=["status"])
def notify(ctx: ActionContext, args: NotifyArgs) -> Result:
    """POST {"text": message, ...fields} to a webhook URL."""
    if ctx.check_mode:
        return Result.unknown(f"would POST to {args.url}")
    payload = {"text": args.message, "run": ctx.run_id, "step": ctx.step_name, **args.fields}
    try:
        code, text, _ = _http(ctx, args.url, "POST", payload, {}, args.timeout)
    except (urllib.error.URLError, OSError, http_client.HTTPException) as exc:
        return Result.failed(f"webhook {args.url} unreachable: {getattr(exc, 'reason', exc)}")
    except ValueError as exc:
        return Result.failed(f"webhook {args.url}: not a valid URL: {exc}")
    if code >= 300:
        return Result.failed(f"webhook {args.url} answered HTTP {code}", stdout=text)
    return Result.ok(changed=True, msg=f"posted to {args.url}", data={"status": code})


class CollectArgs(_Args):
    """Run a read-only command on the controller and keep its output as evidence."""

    cmd: str = Field(description="shell command whose output is the evidence")
    name: str = Field(description="file name, e.g. ps.txt; saved as <host>/<name> in the run's evidence folder")
    description: str = ""
    max_size: ByteSize = Field(
        ByteSize(DEFAULT_MAX_SIZE),
        description="refuse output larger than this (bytes, or 500MiB, 2GiB): the command is "
        "stopped and nothing is kept",
    )

    @field_validator("name")
    @classmethod
    def _a_file_name(cls, name: str) -> str:
        # "" or "." would be the host's evidence folder itself (templated names are checked
        # again when the evidence is written).
        if "{{" not in name and name.replace("\\", "/").split("/")[-1].strip() in ("", ".", ".."):
            raise ValueError(f'"{name}" is not a file name (e.g. ps.txt)')
        return name


def _collected(args: CollectArgs, host: HostInfo) -> list[str]:
    return [evidence_file(None, host.name, args.name)]


@plugin.action(check=True, idempotent=True, shell=["cmd"], data=["path"], evidence=_collected)
def collect(ctx: ActionContext, args: CollectArgs) -> Result:
    """Save a command's output (ps, df, free, ss, logs) into the run's evidence folder."""
    from opsbook.plugin import Evidence

    relative_name = ctx.evidence_file(None, args.name)
    ctx.evidence_path(relative_name)  # refused before the command runs when it cannot be written
    transfer = Transfer(f"the output of {args.cmd!r}", int(args.max_size))
    # spooled to a file, not memory: evidence may be large (up to max_size)
    with tempfile.TemporaryFile(prefix="opsbook-collect-") as spool:
        try:
            res = _CONTROLLER.run(["/bin/sh", "-c", args.cmd], timeout=ctx.timeout, cancel=ctx.cancelled,
                                  stdout_to=transfer.sink(spool))
        except TransferTooLarge as exc:
            return Result.failed(f"{exc}; the command was stopped")
        if res.stderr:
            spool.write(f"\n--- stderr ---\n{res.stderr}".encode())
        spool.seek(0)
        # checked again and written without following links: one planted while the command ran
        # (the command may take seconds) must not redirect the write
        target = ctx.write_evidence(relative_name, spool)
    relative = str(target.relative_to(ctx.evidence_dir)) if ctx.evidence_dir else args.name
    evidence = Evidence(relative, f"controller: {args.cmd}", args.description)
    status = Status.OK if res.rc == 0 else Status.FAILED
    return Result(status=status, rc=res.rc, msg=f"saved {relative} ({transfer.size} bytes)",
                  evidence=[evidence], data={"path": str(target)})

# Ansible's modules these actions implement (see Plugin.ansible_module): they run on the
# controller in Ansible too. (Not `uri`: Ansible runs it on the target, as ssh.uri does.)
for _module, _action in (("set_fact", "set"), ("assert", "assert"), ("fail", "fail")):
    plugin.ansible_module(_module, _action)

# local.debug and local.meta live in their own module; importing it registers them here.
from opsbook_plugins import local_flow as _local_flow  # noqa: E402,F401
# local.mail, local.slack and local.mattermost live in their own module; importing it
# registers them on this plugin.
from opsbook_plugins import local_notify as _local_notify  # noqa: E402,F401
