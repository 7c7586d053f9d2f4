"""Putting a file in place on the host: the one write behind ssh.copy, ssh.template and the
editing actions (ssh.lineinfile, ssh.blockinfile, ssh.replace), and the arguments they share.

`_WriteArgs` is the base of their argument models: it checks `mode` ('0644', 644 or a YAML
octal int) and `validate` (a command with `%s`) alike for all of them. `write_file` puts new
content at the destination: over the connection's `put` (SFTP as the login user) when nothing
more is asked, else through a shell script: the content goes to a temporary file beside the
destination, the validate command runs on that file (`%s`), and only when it passes is the old
file copied to the backup (DEST.PID.YYYY-MM-DD@HH:MM:SS~, Ansible's name) and the new one moved
over it. A config that fails validation is never put in place. Under become the script runs
under sudo, so a file only root may write is written the same way.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from opsbook.plugin import ActionContext, Result, telling_line
from opsbook_plugins.ssh.common import _Args, _run, _StepFailed
from pydantic import ConfigDict, field_validator

VALIDATE_FAILED_RC = 86  # the script's exit status when the validate command refused the file
_WRITE_SCRIPT = r"""
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


class _WriteArgs(_Args):
    """The base of the arguments of an action that writes a file: each declares its own path,
    `mode`, `owner`, `group`, `backup` and `validate_` (alias `validate`), in its own order
    and words, and this model checks `mode` and `validate` the same way for all of them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    @field_validator("mode", mode="before", check_fields=False)
    @classmethod
    def _mode(cls, value: Any) -> str | None:
        return _parse_mode(value)

    @field_validator("validate_", check_fields=False)
    @classmethod
    def _validate(cls, value: str | None) -> str | None:
        return check_validate(value)


def validate_command(template: str) -> str:
    """A validate template ('nginx -t -c %s') as shell text running on "$t" (the new file).

    The template is split like Ansible's (shlex, no shell: pipes and $VARS are plain words);
    every `%s` in a word becomes the temporary file's path.
    """
    words = []
    for word in shlex.split(template):
        words.append('"$t"'.join(shlex.quote(part) if part else "" for part in word.split("%s")))
    return " ".join(words)


def write_file(ctx: ActionContext, data: bytes, dest: str, mode: str | None, *,
               validate: str | None = None, backup: bool = False,
               create_dirs: bool = False) -> dict[str, Any] | Result:
    """Put `data` at `dest` atomically: {"backup_file": path} when a backup was made ({}
    otherwise), or the failed Result when the validate command refused the file.

    As in Ansible, the backup is made before the validation (a refused file leaves the
    backup and the old file, never the new one)."""
    if ctx.become is None and not (validate or backup or create_dirs):
        ctx.connection().put(data, dest, int(mode, 8) if mode else None)
        return {}
    res = _run(ctx, ["sh", "-c", _WRITE_SCRIPT, "sh", dest, mode or "", "1" if backup else "",
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
                          + (telling_line(res.stderr) or "no output"))
    return made
