"""ssh.command, ssh.shell and ssh.script: a command line (as argv, or through the shell) or a
controller-side script run on the host, with `chdir`, `env`, `creates`/`removes` guards and
check mode; how a `cd` that failed is told apart from the command's own exit status, and
what the command actions add to their registered value."""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from opsbook.plugin import (
    ActionContext,
    CommandResult,
    Result,
    command_disrupts,
    command_result,
)
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _check, _run
from pydantic import Field, field_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



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
    exited = "was killed by a signal (no exit status)" if res.rc == -1 else ""
    return command_result(res, ok_rc, exited=exited, data=data, duration=res.duration)


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
    local = ctx.local_path(args.path, "files")
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
