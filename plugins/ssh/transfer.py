"""File transfer: ssh.copy and ssh.template (the remote file read, compared and diffed,
written atomically with its mode and owner, the previous content kept for the rollback) and
ssh.fetch (a host's file copied into the run's evidence folder, bounded by `max_size`, the
step's timeout and the run's stop). The bytes travel through the host's connection
(`put`/`get`; over SSH, `sftp.SFTPFiles`)."""

from __future__ import annotations

import difflib
import hashlib
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsbook.errors import OpsbookError
from opsbook.plugin import (
    DEFAULT_MAX_SIZE,
    ActionContext,
    Evidence,
    HostInfo,
    Result,
    Transfer,
    evidence_file,
)
from opsbook.transfer import get_within
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _check, _message, _run, _StepFailed
from opsbook_plugins.ssh.filewrite import _WriteArgs, write_file
from pydantic import ByteSize, Field, model_validator

DIFF_LIMIT = 1024 * 1024  # files larger than this are compared by checksum only
ROLLBACK_LIMIT = 64 * 1024  # older contents up to this size are kept for the rollback


# -- ssh.copy / ssh.template -------------------------------------------------------------


class _FileArgs(_WriteArgs):
    dest: str = Field(description="remote path")
    mode: str | None = Field(None, description="permissions, octal string such as '0644'")
    owner: str | None = Field(None, description="owner user (needs become unless it is you)")
    group: str | None = Field(None, description="owner group")
    backup: bool = Field(False, description="keep the old file as DEST.PID.DATE@TIME~ before replacing it")
    validate_: str | None = Field(None, alias="validate",
                                  description="command that must accept the new file (%s) before it is put in place")


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
    backup, validate); the content is put in place by `filewrite.write_file`.
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
    if "content" in what:
        written = write_file(ctx, data, dest, args.mode, validate=args.validate_, backup=args.backup,
                             create_dirs=create_dirs)
        if isinstance(written, Result):  # the validate command refused it: not put in place
            written.msg = _message(ctx, OpsbookError(written.msg))
            return written
        info.update(written)
        ctx.changed(**info)  # in place: its undo is recorded before the chown below may fail
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
        local = ctx.local_path(args.src, "files")
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
    local = ctx.local_path(args.src, "templates")
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
