"""ssh.lineinfile, ssh.blockinfile, ssh.replace, and the guarded write behind `backup:`/`validate:`.

The edits read the file from the host, apply Ansible's rules on the controller
(opsbook_plugins.ssh.textedit) and install the result through ssh.copy's path (`_install`):
so check mode, `--diff`, mode/owner/group and the rollback (the previous content, or the
backup) work as for ssh.copy. `guarded_write` is how any of them puts a file in place
when `validate:` or `backup:` is given: the new content goes to a temporary file beside
the destination, the validate command runs on that file (`%s`), and only when it passes
is the old file copied to the backup (DEST.PID.YYYY-MM-DD@HH:MM:SS~, Ansible's name) and
the new one moved over it. A config that fails validation is never put in place.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.ssh import textedit
from opsbook_plugins.ssh._plugin import plugin
from opsbook_plugins.ssh.common import _Args, _as_result, _run, _StepFailed
from opsbook_plugins.ssh.transfer import (
    DIFF_LIMIT,
    _file_inverse,
    _install,
    _old_text,
    _parse_mode,
    _remote_file,
)
from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

VALIDATE_FAILED_RC = 86  # the guarded write's exit status when the validate command refused the file
_GUARDED_SCRIPT = r"""
set -e
if [ "$4" = 1 ]; then mkdir -p -- "$(dirname -- "$1")"; fi
t=$(mktemp "$(dirname -- "$1")/.opsbook.XXXXXXXX")
trap 'rm -f "$t" "$t.out" "$t.err"' EXIT
cat >"$t"
if [ -n "$2" ]; then chmod "$2" "$t"
elif [ -e "$1" ]; then
  chmod "$(stat -c %a -- "$1")" "$t"; chown "$(stat -c %u:%g -- "$1")" "$t" 2>/dev/null || :
else chmod 644 "$t"; fi
if [ "$3" = 1 ] && [ -e "$1" ]; then
  b="$1.$$.$(date +%Y-%m-%d@%H:%M:%S)~"
  cp -p -- "$1" "$b"
  printf 'BACKUP %s\n' "$b"
fi
if [ -n "$5" ]; then
  set +e
  eval "$5" </dev/null >"$t.out" 2>"$t.err"; rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then printf 'VALIDATE %s\n' "$rc"; cat "$t.out"; cat "$t.err" >&2; exit 86; fi
fi
mv -f -- "$t" "$1"
trap - EXIT
"""


def validate_command(template: str) -> str:
    """A validate template ('nginx -t -c %s') as shell text running on "$t" (the new file).

    The template is split like Ansible's (shlex, no shell: pipes and $VARS are plain words);
    every `%s` in a word becomes the temporary file's path.
    """
    words = []
    for word in shlex.split(template):
        words.append('"$t"'.join(shlex.quote(part) if part else "" for part in word.split("%s")))
    return " ".join(words)


def check_validate(value: str | None) -> str | None:
    """The `validate:` argument: a command with %s where the file's path goes."""
    if value is not None and "%s" not in value:
        raise ValueError(f"validate must contain %s (where the new file's path goes): {value}")
    if value is not None:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"validate is not a valid command line: {exc}") from None
    return value


def guarded_write(ctx: ActionContext, data: bytes, dest: str, mode: str | None, *,
                  validate: str | None, backup: bool, create_dirs: bool = False) -> dict[str, Any] | Result:
    """Write `data` to `dest` through a validated temporary file: {"backup_file": path} when
    a backup was made, or the failed Result when the validate command refused the file.

    As in Ansible, the backup is made before the validation (a refused file leaves the
    backup and the old file, never the new one)."""
    res = _run(ctx, ["sh", "-c", _GUARDED_SCRIPT, "sh", dest, mode or "", "1" if backup else "",
                     "1" if create_dirs else "", validate_command(validate) if validate else ""],
               stdin=data, stream=False)
    found = re.search(r"^BACKUP (.+)$", res.stdout, re.MULTILINE)
    made = {"backup_file": found.group(1)} if found else {}
    refused = re.search(r"^VALIDATE (\d+)\n", res.stdout, re.MULTILINE)
    if res.rc == VALIDATE_FAILED_RC and refused:
        stdout = res.stdout[refused.end():]
        said = (res.stderr.strip() or stdout.strip()).splitlines()
        return Result.failed(f"{dest}: validate failed (rc {refused.group(1)})"
                             + (f": {said[-1]}" if said else "") + f"; {dest} was left as it was",
                             rc=int(refused.group(1)), stdout=stdout, stderr=res.stderr,
                             data={**made, "exit_status": int(refused.group(1))})
    if res.rc != 0:
        raise _StepFailed(f"writing {dest} failed on {ctx.host.name} (rc={res.rc}): "
                          + (res.stderr.strip().splitlines() or ["no output"])[-1])
    return made


# -- the editing actions ---------------------------------------------------------------------


class _EditArgs(_Args):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

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

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> str | None:
        return _parse_mode(value)

    @field_validator("validate_")
    @classmethod
    def _validate(cls, value: str | None) -> str | None:
        return check_validate(value)


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
