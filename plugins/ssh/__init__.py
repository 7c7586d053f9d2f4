"""ssh: run commands, copy files, manage services on hosts over SSH (paramiko).

Provides the `ssh` connection (`ansible_connection: ssh`, the default) and actions that
work over any Connection: the same `ssh.copy` copies into a container when the host says
`ansible_connection: docker`. Connection details live in `opsbook_plugins.ssh.connection`
(imported on first use: paramiko takes a tenth of a second to import).

Host variables the connection reads (Ansible's names, then opsbook's own):

    ansible_host, ansible_port, ansible_user      where and as whom (else ~/.ssh/config)
    ansible_ssh_private_key_file                  key file (then -i / IdentityFile, agent,
                                                  ~/.ssh/id_*), ansible_password last
    ansible_ssh_common_args, ansible_ssh_extra_args
                                                  -o ProxyJump=/-J, ProxyCommand, Port, User,
                                                  IdentityFile, UserKnownHostsFile,
                                                  StrictHostKeyChecking, ConnectTimeout,
                                                  ServerAliveInterval, IdentitiesOnly, -F
    ansible_become_password                       sudo password (never logged)
    ansible_ssh_timeout                           connect/auth timeout (default 10s)
    opsbook_host_key_policy                       strict (default) | accept-new | off
    opsbook_known_hosts                           known_hosts file (~/.ssh/known_hosts)
    opsbook_ssh_config                            ssh config file (~/.ssh/config)
    opsbook_ssh_max_sessions                      concurrent commands per host (8)
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opsbook.errors import OpsbookError
from opsbook.plugin import (
    arg_in,
    command_disrupts,
    ActionContext,
    CommandResult,
    DEFAULT_MAX_SIZE,
    Evidence,
    HostInfo,
    Plugin,
    Result,
    Status,
    Transfer,
    telling_line,
    evidence_file,
)
from opsbook.transfer import get_within
from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from opsbook_plugins.ssh.connection import SSHConnection

plugin = Plugin("ssh", "Run commands, copy files and manage services on hosts over SSH.")

DIFF_LIMIT = 1024 * 1024  # files larger than this are compared by checksum only
ROLLBACK_LIMIT = 64 * 1024  # older contents up to this size are kept for the rollback
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@plugin.connection("ssh")
def ssh_connection(host: HostInfo) -> SSHConnection:
    """Build the (lazily connecting) SSH connection for a host from its inventory vars."""
    from opsbook_plugins.ssh.connection import SSHConnection, settings_from_vars

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


# What the command actions add to their registered value (declared: `check` knows the rest
# is a typo).
_COMMAND_DATA = ("cmd", "stdout_bytes", "stderr_bytes", "skipped_reason")


_CHDIR_RC = 97  # with _CHDIR_MARK as the last line of stderr: `cd` failed, nothing ran
_CHDIR_MARK = "opsbook: cannot enter the chdir folder"


def _chdir_failed(res: CommandResult, chdir: str | None) -> bool:
    lines = res.stderr.strip().splitlines()
    return bool(chdir) and res.rc == _CHDIR_RC and bool(lines) and lines[-1].strip() == _CHDIR_MARK


def _command_result(res: CommandResult, ok_rc: Sequence[int], cmd: Any, chdir: str | None = None) -> Result:
    if _chdir_failed(res, chdir):
        reason = res.stderr.strip().splitlines()[0] if res.stderr.strip() else ""
        return Result.failed(f"chdir {chdir}: the folder does not exist or cannot be entered; "
                             f"the command did not run" + (f" ({reason})" if reason != _CHDIR_MARK else ""),
                             changed=False, rc=res.rc, stderr=res.stderr, data={"cmd": cmd})
    data: dict[str, Any] = {"cmd": cmd}
    if hasattr(res, "stdout_bytes"):
        data["stdout_bytes"] = res.stdout_bytes  # type: ignore[attr-defined]
        data["stderr_bytes"] = res.stderr_bytes  # type: ignore[attr-defined]
    ok = res.rc in ok_rc
    how = "was killed by a signal (no exit status)" if res.rc == -1 else f"exited with rc={res.rc}"
    msg = (
        ""
        if ok
        else f"command {how}" + (f": {telling_line(res.stderr)}" if telling_line(res.stderr) else "")
    )
    return Result(
        status=Status.OK if ok else Status.FAILED,
        changed=True,
        rc=res.rc,
        stdout=res.stdout,
        stderr=res.stderr,
        msg=msg,
        data=data,
        duration=res.duration,
    )


def _prefix(chdir: str | None, env: Mapping[str, str]) -> str:
    """Shell lines that enter `chdir` and export `env` (every value quoted)."""
    lines = []
    if chdir:
        lines.append(f"cd -- {shlex.quote(chdir)} || {{ echo '{_CHDIR_MARK}' >&2; exit {_CHDIR_RC}; }}")
    for name, value in env.items():
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return "".join(line + "\n" for line in lines)


def _guard(ctx: ActionContext, creates: str | None, removes: str | None, chdir: str | None = None) -> str | None:
    """Ansible's creates/removes: a reason to skip, or None (checked as the become user; a
    relative path is in `chdir`, as Ansible enters it first)."""

    def where(path: str) -> str:
        return posixpath.join(chdir, path) if chdir and not path.startswith(("/", "~")) else path

    if creates and _run(ctx, ["test", "-e", where(creates)], stream=False).rc == 0:
        return f"{creates} exists"
    if removes and _run(ctx, ["test", "-e", where(removes)], stream=False).rc != 0:
        return f"{removes} does not exist"
    return None


class _CommandArgs(_Args):
    chdir: str | None = Field(None, description="directory to run in")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables to set")
    stdin: str | None = Field(None, description="text fed to the command's standard input")
    creates: str | None = Field(None, description="skip when this remote path exists")
    removes: str | None = Field(None, description="skip unless this remote path exists")
    ok_rc: list[int] = Field(
        default_factory=lambda: [0], description="exit codes that mean success"
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [name for name in env if not _ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {', '.join(bad)}")
        return env


def _skip_or_check(ctx: ActionContext, args: _CommandArgs, what: str) -> Result | None:
    skip = _guard(ctx, args.creates, args.removes, args.chdir)
    if skip:
        # registered as Ansible's command module does: rc 0 and a stdout that says why
        return Result.ok(changed=False, rc=0, stdout=f"skipped, since {skip}", msg=f"skipped: {skip}",
                         data={"skipped_reason": skip})
    if ctx.check_mode:
        return Result.unknown(f"would run: {what}", changed=True)
    return None


# -- ssh.command / ssh.shell / ssh.script ------------------------------------------------


class CommandArgs(_CommandArgs):
    """Run a program without a shell: a list is the argv, a string is split like a shell would."""

    cmd: str | list[str] = Field(
        description="argv list, or a string split like a shell would (each {{ }} value one word)"
    )

    @field_validator("cmd")
    @classmethod
    def _not_empty(cls, cmd: str | list[str]) -> str | list[str]:
        if not (_split(cmd) if isinstance(cmd, str) else cmd):
            raise ValueError("cmd is empty")
        return cmd

    def argv(self) -> list[str]:
        return list(_split(self.cmd)) if isinstance(self.cmd, str) else list(self.cmd)


@functools.lru_cache(maxsize=1024)  # a step runs the same command line on every host
def _split(cmd: str) -> tuple[str, ...]:
    return tuple(shlex.split(cmd))


@plugin.action(scalar="cmd", check=True, data=_COMMAND_DATA, argv=["cmd"], mutates=True,
               disrupts=command_disrupts("cmd"))
@_as_result
def command(ctx: ActionContext, args: CommandArgs) -> Result:
    """Run a program (argv, no shell expansion) on the host; non-zero rc fails unless in ok_rc."""
    argv = args.argv()
    shown = shlex.join(argv)
    early = _skip_or_check(ctx, args, shown)
    if early is not None:
        return early
    prefix = _prefix(args.chdir, args.env)
    cmd: str | list[str] = prefix + "exec " + shown if prefix else argv
    res = _run(ctx, cmd, stdin=args.stdin.encode() if args.stdin is not None else None)
    return _command_result(res, args.ok_rc, argv, args.chdir)


class ShellArgs(_CommandArgs):
    """Run a shell command line; values templated into it with {{ }} are shell-quoted."""

    cmd: str = Field(description="shell command line")
    executable: str | None = Field(
        None, description="shell to run it with, e.g. /bin/bash (default: the login shell)"
    )


@plugin.action(scalar="cmd", check=True, data=_COMMAND_DATA, shell=["cmd"], mutates=True,
               disrupts=command_disrupts("cmd"))
@_as_result
def shell(ctx: ActionContext, args: ShellArgs) -> Result:
    """Run a shell command line on the host; non-zero rc fails unless in ok_rc."""
    early = _skip_or_check(ctx, args, args.cmd)
    if early is not None:
        return early
    body = (
        args.cmd
        if args.executable is None
        else f"{shlex.quote(args.executable)} -c {shlex.quote(args.cmd)}"
    )
    res = _run(
        ctx,
        _prefix(args.chdir, args.env) + body,
        stdin=args.stdin.encode() if args.stdin is not None else None,
    )
    return _command_result(res, args.ok_rc, args.cmd, args.chdir)


class ScriptArgs(_CommandArgs):
    """Upload a local script to a temporary file on the host and run it with arguments."""

    path: str = Field(description="local script file")
    args: list[str] = Field(default_factory=list, description="arguments passed to the script")
    executable: str | None = Field(None, description="interpreter, e.g. /bin/bash or python3")


@plugin.action(scalar="path", check=True, data=_COMMAND_DATA, mutates=True)
@_as_result
def script(ctx: ActionContext, args: ScriptArgs) -> Result:
    """Run a local script on the host (uploaded to a temporary file, removed afterwards)."""
    local = ctx.local_path(args.path)
    if not local.is_file():
        return Result.failed(f"script {args.path} does not exist on the controller")
    body = local.read_bytes()
    early = _skip_or_check(ctx, args, shlex.join([args.path, *args.args]))
    if early is not None:
        return early
    conn = ctx.connection()
    remote = _check(
        ctx, ["mktemp", "-t", "opsbook-script.XXXXXXXX"], "creating a temporary file", become=False
    ).stdout.strip()
    try:
        # A non-root become user must be able to read it; root reads anything.
        shared = ctx.become is not None and ctx.become.user != "root"
        conn.put(body, remote, 0o755 if shared else 0o700)
        argv = ([args.executable] if args.executable else []) + [remote, *args.args]
        prefix = _prefix(args.chdir, args.env)
        res = _run(
            ctx,
            prefix + "exec " + shlex.join(argv) if prefix else argv,
            stdin=args.stdin.encode() if args.stdin is not None else None,
        )
    finally:
        try:
            _run(ctx, ["rm", "-f", "--", remote], become=False, stream=False)
        except Exception:  # cleanup is best effort; the result says what happened
            pass
    return _command_result(res, args.ok_rc, [args.path, *args.args], args.chdir)


# -- ssh.copy / ssh.template -------------------------------------------------------------


def _parse_mode(value: str | int | None) -> str | None:
    """'0644', '644' or a YAML octal int (0644 -> 420) -> '644'."""
    if value is None:
        return None
    if isinstance(value, int):
        if not 0 <= value <= 0o7777:
            raise ValueError(f"mode {value} is not a permission mode; quote it: mode: '0644'")
        return format(value, "o")
    text = str(value).strip()
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise ValueError(f"mode {value!r} must be octal digits such as '0644'")
    return format(int(text, 8), "o")


class _FileArgs(_Args):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    dest: str = Field(description="remote path")
    mode: str | None = Field(None, description="permissions, octal string such as '0644'")
    owner: str | None = Field(None, description="owner user (needs become unless it is you)")
    group: str | None = Field(None, description="owner group")
    backup: bool = Field(False, description="keep the old file as DEST.PID.DATE@TIME~ before replacing it")
    validate_: str | None = Field(None, alias="validate",
                                  description="command that must accept the new file (%s) before it is put in place")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> str | None:
        return _parse_mode(value)

    @field_validator("validate_")
    @classmethod
    def _validate(cls, value: str | None) -> str | None:
        from opsbook_plugins.ssh.edit import check_validate

        return check_validate(value)


class CopyArgs(_FileArgs):
    """Write a file on the host from inline `content` or a local `src` file, atomically."""

    content: str | None = Field(None, description="the file's text")
    src: str | None = Field(None, description="local file to copy")

    @model_validator(mode="after")
    def _one_source(self) -> CopyArgs:
        if (self.content is None) == (self.src is None):
            raise ValueError("give exactly one of content or src")
        return self


_STAT_SCRIPT = r"""
if [ -d "$1" ]; then echo DIR; exit 0; fi
if [ ! -e "$1" ]; then echo MISSING; exit 0; fi
sum=$(sha256sum -- "$1" 2>/dev/null) || sum=$(openssl dgst -sha256 -r -- "$1") || exit 3
echo "FILE ${sum%% *} $(stat -c '%a %U %G %u %g %s' -- "$1")"
"""


class _RemoteFile:
    """What is at a remote path now: missing, a directory, or a file with checksum and owner."""

    def __init__(self, line: str) -> None:
        fields = line.split()
        self.kind = fields[0] if fields else "MISSING"
        self.sha = fields[1] if self.kind == "FILE" else None
        info: list[str | None] = list(fields[2:7]) if self.kind == "FILE" else [None] * 5
        self.mode, self.owner, self.group, self.uid, self.gid = info
        self.size = int(fields[7]) if self.kind == "FILE" else 0


def _remote_file(ctx: ActionContext, path: str) -> _RemoteFile:
    res = _check(ctx, ["sh", "-c", _STAT_SCRIPT, "sh", path], f"reading {path}")
    return _RemoteFile(res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "")


def _old_text(ctx: ActionContext, path: str, old: _RemoteFile, limit: int) -> str | None:
    """The current text of a file up to `limit` bytes; "" when missing; None if binary/larger."""
    if old.kind != "FILE":
        return ""
    if old.size > limit:
        return None
    text = _check(ctx, ["cat", "--", path], f"reading {path}").stdout
    return None if "\ufffd" in text else text  # undecodable bytes: a binary file


def _diff(path: str, before: str | None, new: bytes) -> str:
    if before is None or len(new) > DIFF_LIMIT:
        return (
            f"--- {path} (before)\n+++ {path} (after)\n"
            "@@ binary or too large to diff; checksum changed @@\n"
        )
    try:
        after = new.decode()
    except UnicodeDecodeError:
        return f"Binary files {path} (before) and {path} (after) differ\n"
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"{path} (before)",
        f"{path} (after)",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


_PUT_SCRIPT = r"""
set -e
t=$(mktemp "$(dirname -- "$1")/.opsbook.XXXXXXXX")
trap 'rm -f "$t"' EXIT
cat >"$t"
if [ -n "$2" ]; then chmod "$2" "$t"
elif [ -e "$1" ]; then
  chmod "$(stat -c %a -- "$1")" "$t"; chown "$(stat -c %u:%g -- "$1")" "$t" 2>/dev/null || :
else chmod 644 "$t"; fi
mv -f -- "$t" "$1"
trap - EXIT
"""


def _write(ctx: ActionContext, data: bytes, dest: str, mode: str | None) -> None:
    """Atomic write: SFTP/put as the login user, or a temp file + mv under sudo with become."""
    if ctx.become is None:
        ctx.connection().put(data, dest, int(mode, 8) if mode else None)
    else:
        _check(
            ctx, ["sh", "-c", _PUT_SCRIPT, "sh", dest, mode or ""], f"writing {dest}", stdin=data
        )


def _changes(args: _FileArgs, old: _RemoteFile, sha: str) -> list[str]:
    """What differs between the file on the host and what the step wants."""
    owner = (args.owner is not None and args.owner not in (old.owner, old.uid)) or (
        args.group is not None and args.group not in (old.group, old.gid)
    )
    flags = {
        "content": old.sha != sha,
        "mode": args.mode is not None and old.mode != args.mode,
        "owner": owner,
    }
    return [name for name, differs in flags.items() if differs]


def _previous(old: _RemoteFile, text: str | None, what: list[str]) -> dict[str, Any] | None:
    """How the file was before, for the rollback (None: cannot be restored from the journal)."""
    if old.kind == "MISSING":
        return {"absent": True}
    if text is None and "content" in what:
        return None
    prev: dict[str, Any] = {"content": text, "mode": old.mode}
    if "owner" in what:
        prev.update(owner=old.owner, group=old.group)
    return prev


def _install(ctx: ActionContext, args: Any, data: bytes, source: str, create_dirs: bool = False) -> Result:
    """Make `args.dest` hold `data` with the wanted mode/owner; changed only if it differed.

    `args` is a _FileArgs or the editing actions' arguments (dest, mode, owner, group,
    backup, validate); with backup/validate the write is opsbook_plugins.ssh.edit's guarded one.
    """
    dest = args.dest
    old = _remote_file(ctx, dest)
    if old.kind == "DIR":
        if not source:
            return Result.failed(f"{dest} is a directory on {ctx.host.name}")
        dest = posixpath.join(dest, posixpath.basename(source))
        old = _remote_file(ctx, dest)
    sha = hashlib.sha256(data).hexdigest()
    what = _changes(args, old, sha)
    info: dict[str, Any] = {"dest": dest, "checksum": sha, "size": len(data), "changes": what}
    if not what:
        return Result.ok(data=info, msg=f"{dest}: unchanged")
    # The old text feeds the diff and, when we really write, the rollback.
    text = None
    if not ctx.check_mode or (ctx.diff_mode and "content" in what):
        text = _old_text(ctx, dest, old, DIFF_LIMIT if ctx.diff_mode else ROLLBACK_LIMIT)
    diff = _diff(dest, text, data) if ctx.diff_mode and "content" in what else None
    summary = f"({', '.join(what)})"
    if ctx.check_mode:
        return Result.ok(changed=True, diff=diff, data=info, msg=f"{dest}: would change {summary}")
    if text is not None and len(text.encode()) > ROLLBACK_LIMIT:
        text = None
    info["previous"] = _previous(old, text, what)
    if "content" in what and (args.validate_ or args.backup or create_dirs):
        from opsbook_plugins.ssh.edit import guarded_write

        written = guarded_write(ctx, data, dest, args.mode, validate=args.validate_, backup=args.backup,
                                create_dirs=create_dirs)
        if isinstance(written, Result):  # the validate command refused it: not put in place
            written.msg = _message(ctx, OpsbookError(written.msg))
            return written
        info.update(written)
        ctx.changed(**info)  # in place: its undo is recorded before the chown below may fail
    elif "content" in what:
        _write(ctx, data, dest, args.mode)
        ctx.changed(**info)
    elif "mode" in what:
        _check(ctx, ["chmod", args.mode or "", "--", dest], f"chmod {dest}")
    if "owner" in what:
        spec = (args.owner or "") + (f":{args.group}" if args.group else "")
        _check(ctx, ["chown", spec, "--", dest], f"chown {dest}")
    return Result.ok(changed=True, diff=diff, data=info, msg=f"{dest}: changed {summary}")


def _file_inverse(args: _FileArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    """Put the file back as it was: from its backup (`backup: true`), its old content (up to
    64 KiB of text), or remove it."""
    prev = result.data.get("previous")
    if not result.changed or not prev:
        return None
    dest = result.data["dest"]
    if result.data.get("backup_file"):
        return "ssh.command", {"cmd": ["cp", "-p", "--", result.data["backup_file"], dest]}
    if prev.get("absent"):
        return "ssh.command", {"cmd": ["rm", "-f", "--", dest]}
    if prev.get("content") is None:
        return None
    restore = {"dest": dest, "content": prev["content"], "mode": prev.get("mode")}
    restore.update({k: prev[k] for k in ("owner", "group") if prev.get(k)})
    return "ssh.copy", restore


@plugin.action(check=True, idempotent=True, inverse=_file_inverse, inverse_actions=["ssh.command", "ssh.copy"], mutates=True)
@_as_result
def copy(ctx: ActionContext, args: CopyArgs) -> Result:
    """Copy inline content or a local file to the host (atomic; changed only when it differs)."""
    if args.src is not None:
        local = ctx.local_path(args.src)
        if not local.is_file():
            return Result.failed(f"src {args.src} does not exist on the controller")
        return _install(ctx, args, local.read_bytes(), local.name)
    return _install(ctx, args, (args.content or "").encode(), "")


class TemplateArgs(_FileArgs):
    """Render a local Jinja2 template (sandboxed) with the host's variables and write it."""

    src: str = Field(description="local template file")
    vars: dict[str, Any] = Field(
        default_factory=dict, description="extra variables for the template"
    )


def render_template(source: str, context: Mapping[str, Any]) -> str:
    """Render with the engine's sandboxed environment (StrictUndefined)."""
    try:
        from opsbook.template import render
    except ImportError:  # an engine without the template module
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        return env.from_string(source).render(dict(context))
    value = render(source, context)
    return value if isinstance(value, str) else str(value)


@plugin.action(check=True, idempotent=True, inverse=_file_inverse, inverse_actions=["ssh.command", "ssh.copy"], mutates=True)
@_as_result
def template(ctx: ActionContext, args: TemplateArgs) -> Result:
    """Render a local Jinja2 template with host vars + `vars` and install it on the host."""
    local = ctx.local_path(args.src)
    if not local.is_file():
        return Result.failed(f"template {args.src} does not exist on the controller")
    context = {**ctx.host.vars, "inventory_hostname": ctx.host.name, **ctx.variables, **args.vars}
    try:
        text = render_template(local.read_text(), context)
    except OpsbookError as exc:
        return Result.failed(f"template {args.src}: {getattr(exc, 'message', exc)}")
    except Exception as exc:  # jinja2 errors from the fallback environment
        return Result.failed(f"template {args.src}: {type(exc).__name__}: {exc}")
    return _install(ctx, args, text.encode(), "")


# -- ssh.fetch ---------------------------------------------------------------------------


class FetchArgs(_Args):
    """Download a remote file into the run's evidence folder."""

    src: str = Field(description="remote file")
    dest: str | None = Field(
        None,
        description="path inside the evidence folder (default: <host>/<src>); a folder "
        "(ending with /, or one that exists) gets <dest>/<host>/<src>, as Ansible's fetch",
    )
    flat: bool = Field(
        False,
        description="Ansible's flat: a dest ending with / gets <dest>/<basename of src>, "
        "without the host (two hosts writing one file are refused)",
    )
    description: str = Field("", description="what this evidence is")
    fail_on_missing: bool = True
    max_size: ByteSize = Field(
        ByteSize(DEFAULT_MAX_SIZE),
        description="refuse a larger file (bytes, or 500MiB, 2GiB); the copy also stops at the "
        "step's timeout and when the run is stopped, and leaves no partial file",
    )


# One byte more than max_size is copied, so that a larger file is refused, not cut.
_FETCH_SCRIPT = 'head -c "$3" -- "$1" >"$2/data" && chmod 644 "$2/data"'


def fetch_dest(args: FetchArgs, host: str, is_dir: Any = None) -> str:
    """Where ssh.fetch puts `src` of `host`, relative to the evidence folder (Ansible's
    layout: `<dest>/<host>/<src>`, or with `flat` `<dest><basename>` / `dest`)."""
    if args.flat and args.dest:
        if args.dest.endswith("/"):
            return args.dest + posixpath.basename(args.src)
        if is_dir is not None and is_dir(args.dest):
            raise _StepFailed(
                f'dest "{args.dest}" is an existing folder; end it with / to fetch into it'
            )
        return args.dest
    return evidence_file(args.dest, host, args.src, is_dir)


def _fetched(args: FetchArgs, host: HostInfo) -> list[str]:
    return [fetch_dest(args, host.name)]


@plugin.action(scalar="src", check=True, idempotent=True, evidence=_fetched,
               data=("dest", "path", "size", "checksum"))
@_as_result
def fetch(ctx: ActionContext, args: FetchArgs) -> Result:
    """Collect a remote file as evidence (path checked to stay inside the evidence folder)."""
    try:
        rel = fetch_dest(args, ctx.host.name, ctx.evidence_is_folder)
        local = ctx.evidence_path(rel)
    except OpsbookError as exc:
        return Result.failed(getattr(exc, "message", str(exc)))
    readable = _run(ctx, ["test", "-r", args.src], stream=False).rc == 0
    if not readable:
        msg = f"{args.src} does not exist or is not readable on {ctx.host.name}"
        return Result.failed(msg) if args.fail_on_missing else Result.ok(msg=msg)
    if ctx.check_mode:
        return Result.ok(msg=f"would fetch {args.src} to {rel}")
    local.parent.mkdir(parents=True, exist_ok=True)
    transfer = Transfer(f"{ctx.host.name}:{args.src}", int(args.max_size), ctx.timeout, ctx.cancelled)
    size = _download(ctx, args.src, local, transfer)
    sha = transfer.hexdigest()  # hashed while copying: the file is never read whole
    evidence = Evidence(
        path=rel, source=f"{ctx.host.name}:{args.src}", description=args.description
    )
    return Result.ok(
        msg=f"fetched {args.src} ({size} bytes) to {rel}",
        evidence=[evidence],
        data={"dest": str(local), "path": rel, "size": size, "checksum": sha},
    )


def _download(ctx: ActionContext, src: str, local: Path, transfer: Transfer) -> int:
    conn = ctx.connection()
    if ctx.become is None:
        return get_within(conn, src, local, transfer)
    # Files only the become user can read: copy into a folder of ours under sudo first.
    folder = _check(
        ctx,
        ["mktemp", "-d", "-t", "opsbook-fetch.XXXXXXXX"],
        "creating a temporary folder",
        become=False,
    ).stdout.strip()
    try:
        limit = str((transfer.max_size or DEFAULT_MAX_SIZE) + 1)
        _check(ctx, ["sh", "-c", _FETCH_SCRIPT, "sh", src, folder, limit], f"reading {src}")
        return get_within(conn, f"{folder}/data", local, transfer)
    finally:
        _run(ctx, ["rm", "-rf", "--", folder], become=False, stream=False)


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


from opsbook_plugins.ssh import collect as _ssh_collect  # noqa: E402,F401 - registers ssh.collect on this plugin

# ssh.lineinfile, ssh.blockinfile and ssh.replace live in their own module; importing it
# registers them on this plugin.
from opsbook_plugins.ssh import edit as _ssh_edit  # noqa: E402,F401
from opsbook_plugins.ssh import facts as _ssh_facts  # noqa: E402,F401 - ssh.setup (facts)

# Ansible's modules these actions implement: an Ansible-style task (`template:`, `shell:`)
# in a runbook, an included file or a role runs through them unchanged.
for _module in ("command", "shell", "script", "copy", "template", "fetch", "service", "wait_for",
                "lineinfile", "blockinfile", "replace", "setup"):
    plugin.ansible_module(_module, _module)
plugin.ansible_module("gather_facts", "setup")
