"""ssh.lineinfile, ssh.blockinfile, ssh.replace: Ansible's editing modules.

The edits read the file from the host, apply Ansible's rules on the controller
(opsbook_plugins.ssh.textedit) and install the result through ssh.copy's path (`_install`,
which writes with `filewrite.write_file`): so check mode, `--diff`, mode/owner/group,
`backup:`/`validate:` and the rollback (the previous content, or the backup) work as for
ssh.copy.
"""

from __future__ import annotations

from collections.abc import Callable

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.ssh import textedit
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _as_result
from opsbook_plugins.ssh.filewrite import _WriteArgs
from opsbook_plugins.ssh.transfer import (
    DIFF_LIMIT,
    _file_inverse,
    _install,
    _old_text,
    _remote_file,
)
from pydantic import AliasChoices, Field, model_validator


class _EditArgs(_WriteArgs):
    path: str = Field(validation_alias=AliasChoices("path", "dest", "destfile", "name"),
                      description="remote file (Ansible's aliases dest, destfile, name work too)")
    mode: str | None = Field(None, description="permissions, octal string such as '0644'")
    owner: str | None = Field(None, description="owner user (needs become unless it is you)")
    group: str | None = Field(None, description="owner group")
    backup: bool = Field(False, description="keep the old file as PATH.PID.DATE@TIME~ before changing it")
    validate_: str | None = Field(None, alias="validate",
                                  description="command that must accept the new file (%s) before it is put in place")

    @property
    def dest(self) -> str:
        return self.path


class LineinfileArgs(_EditArgs):
    """Ansible's lineinfile arguments."""

    line: str | None = Field(None, validation_alias=AliasChoices("line", "value"), description="the line to have in the file")
    regexp: str | None = Field(None, validation_alias=AliasChoices("regexp", "regex"), description="the line to replace (or, state absent, to remove)")
    search_string: str | None = Field(None, description="a literal string instead of regexp")
    state: str = Field("present", pattern="^(present|absent)$", description="present | absent")
    insertafter: str | None = Field(None, description="regexp of the line to insert after, or EOF (the default)")
    insertbefore: str | None = Field(None, description="regexp of the line to insert before, or BOF")
    backrefs: bool = Field(False, description="expand \\1 from regexp into line; no match: change nothing")
    firstmatch: bool = Field(False, description="use the first line insertafter/insertbefore match, not the last")
    create: bool = Field(False, description="create the file when it is missing")

    @model_validator(mode="after")
    def _exclusive(self) -> LineinfileArgs:
        for a, b in (("insertbefore", "insertafter"), ("regexp", "search_string"), ("backrefs", "search_string")):
            if getattr(self, a) and getattr(self, b) is not None:
                raise ValueError(f"parameters are mutually exclusive: {a}|{b}")
        return self


class BlockinfileArgs(_EditArgs):
    """Ansible's blockinfile arguments."""

    block: str = Field("", validation_alias=AliasChoices("block", "content"), description="the lines between the markers")
    state: str = Field("present", pattern="^(present|absent)$", description="present | absent")
    marker: str = Field("# {mark} ANSIBLE MANAGED BLOCK", description="marker line template; {mark} is marker_begin/marker_end")
    marker_begin: str = Field("BEGIN", description="{mark} of the first marker")
    marker_end: str = Field("END", description="{mark} of the last marker")
    insertafter: str | None = Field(None, description="regexp of the line to insert after, or EOF (the default)")
    insertbefore: str | None = Field(None, description="regexp of the line to insert before, or BOF")
    create: bool = Field(False, description="create the file when it is missing")
    append_newline: bool = Field(False, description="a blank line after the block")
    prepend_newline: bool = Field(False, description="a blank line before the block")

    @model_validator(mode="after")
    def _exclusive(self) -> BlockinfileArgs:
        if self.insertbefore is not None and self.insertafter is not None:
            raise ValueError("parameters are mutually exclusive: insertbefore|insertafter")
        return self


class ReplaceArgs(_EditArgs):
    """Ansible's replace arguments."""

    regexp: str = Field(description="Python regular expression, MULTILINE (^ and $ match at each line)")
    replace: str = Field("", description="replacement; \\1 and \\g<name> refer to groups")
    after: str | None = Field(None, description="only replace after the first match of this")
    before: str | None = Field(None, description="only replace before the last match of this")


def _edit(ctx: ActionContext, args: _EditArgs, apply: Callable[[str | None], textedit.Edit],
          backup_key: str = "backup_file") -> Result:
    old = _remote_file(ctx, args.path)
    if old.kind == "DIR":
        return Result.failed(f"Path {args.path} is a directory !", rc=256)
    text = _old_text(ctx, args.path, old, DIFF_LIMIT) if old.kind == "FILE" else None
    if old.kind == "FILE" and text is None:
        return Result.failed(f"{args.path} is binary or larger than {DIFF_LIMIT // (1024 * 1024)} MiB; "
                             "opsbook edits text files only")
    try:
        edit = apply(text)
    except textedit.EditError as exc:
        return Result.failed(str(exc), rc=257 if "does not exist" in str(exc) else 1)
    if edit.text is None:  # missing and staying missing
        return Result.ok(msg=edit.msg, data=edit.data)
    result = _install(ctx, args, edit.text.encode(), "", create_dirs=getattr(args, "create", False))
    if result.changed and edit.changed:
        result.msg = f"{args.path}: {'would change: ' if ctx.check_mode else ''}{edit.msg}"
    result.data.update(edit.data)
    if backup_key != "backup_file" and "backup_file" in result.data:
        result.data[backup_key] = result.data["backup_file"]
    return result


@plugin.action(check=True, idempotent=True, inverse=_file_inverse, inverse_actions=["ssh.command", "ssh.copy"])
@_as_result
def lineinfile(ctx: ActionContext, args: LineinfileArgs) -> Result:
    """Ensure one line is in a file (replacing the line regexp matches), or is not (state absent)."""
    options = args.model_dump(include={"line", "regexp", "search_string", "state", "insertafter",
                                       "insertbefore", "backrefs", "firstmatch", "create"})
    return _edit(ctx, args, lambda text: textedit.lineinfile(text, args.path, **options), backup_key="backup")


@plugin.action(check=True, idempotent=True, inverse=_file_inverse, inverse_actions=["ssh.command", "ssh.copy"])
@_as_result
def blockinfile(ctx: ActionContext, args: BlockinfileArgs) -> Result:
    """Ensure a block of lines between two marker lines is in a file, or is not (state absent)."""
    options = args.model_dump(include={"block", "state", "marker", "marker_begin", "marker_end", "insertafter",
                                       "insertbefore", "create", "append_newline", "prepend_newline"})
    return _edit(ctx, args, lambda text: textedit.blockinfile(text, args.path, **options))


@plugin.action(check=True, idempotent=True, inverse=_file_inverse, inverse_actions=["ssh.command", "ssh.copy"])
@_as_result
def replace(ctx: ActionContext, args: ReplaceArgs) -> Result:
    """Replace every match of a regular expression in a file (optionally between after/before)."""
    options = args.model_dump(include={"regexp", "replace", "after", "before"})
    result = _edit(ctx, args, lambda text: textedit.replace(text, args.path, **options))
    if not result.failed_:
        result.rc = 0  # Ansible's replace registers rc 0
    return result
