"""Ansible's text-editing semantics as pure functions: lineinfile, blockinfile, replace.

Each function takes a file's current text (None: the file does not exist) and the
module's arguments and returns an `Edit`: the new text, whether it changed and Ansible's
message. They follow ansible-core's modules (2.19) rule for rule -- where regexp,
insertafter/insertbefore, firstmatch, backrefs, markers and before/after put things -- so
that a playbook's task gives the same file under opsbook; the differential suite
(tests/differential/cases/file_editing.yaml) holds them to it. Reading and writing the
file (check mode, diff, backup, validate) is opsbook_plugins.ssh.edit's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NL = "\n"  # the target's line separator (Ansible uses the managed host's os.linesep)


class EditError(ValueError):
    """The arguments cannot be applied to this file (Ansible fails the task)."""


@dataclass
class Edit:
    """The outcome of an edit: `text` is None when the file is (and stays) missing."""

    text: str | None
    changed: bool
    msg: str
    data: dict[str, Any] = field(default_factory=dict)


def _compile(pattern: str, what: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise EditError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None


def lineinfile(text: str | None, path: str, *, line: str | None = None, regexp: str | None = None,
               search_string: str | None = None, state: str = "present", insertafter: str | None = None,
               insertbefore: str | None = None, backrefs: bool = False, firstmatch: bool = False,
               create: bool = False) -> Edit:
    """Ensure a line is in the file (or, state absent, that no matching line is)."""
    if state == "absent":
        if (regexp, search_string, line) == (None, None, None):
            raise EditError("one of line, search_string, or regexp is required with state=absent")
        if text is None:
            return Edit(None, False, "file not present", {"found": 0})
        return _line_absent(text, line, regexp, search_string)
    if backrefs and regexp is None:
        raise EditError("regexp is required with backrefs=true")
    if line is None:
        raise EditError("line is required with state=present")
    if text is None and not create:
        raise EditError(f"Destination {path} does not exist !")
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    lines = (text or "").splitlines(keepends=True)
    before = "".join(lines)
    msg = _line_present(lines, line, regexp, search_string, insertafter, insertbefore, backrefs, firstmatch)
    after = "".join(lines)
    if text is None:  # created: Ansible writes the file even when nothing was added
        return Edit(after, True, msg or "file created")
    return Edit(after, after != before, msg if after != before else "")


def _line_absent(text: str, line: str | None, regexp: str | None, search_string: str | None) -> Edit:
    pattern = _compile(regexp, "regexp") if regexp is not None else None
    kept, found = [], 0
    for cur in text.splitlines(keepends=True):
        if pattern is not None:
            hit = bool(pattern.search(cur))
        elif search_string is not None:
            hit = search_string in cur
        else:
            hit = line == cur.rstrip("\r\n")
        if hit:
            found += 1
        else:
            kept.append(cur)
    return Edit("".join(kept), found > 0, f"{found} line(s) removed" if found else "", {"found": found})


def _line_present(lines: list[str], line: str, regexp: str | None, search_string: str | None,
                  insertafter: str | None, insertbefore: str | None, backrefs: bool, firstmatch: bool) -> str:
    """Edit `lines` in place as Ansible's lineinfile `present`; return its message."""
    pattern = _compile(regexp, "regexp") if regexp is not None else None
    if insertafter not in (None, "BOF", "EOF"):
        anchor = _compile(insertafter, "insertafter")  # type: ignore[arg-type]
    elif insertbefore not in (None, "BOF"):
        anchor = _compile(insertbefore, "insertbefore")  # type: ignore[arg-type]
    else:
        anchor = None
    found, where = -1, -1  # the matching line; the line the anchor puts the new line at
    match: Any = None
    # A regexp/search_string match replaces that line; insertafter/before count only without one.
    if pattern is not None or search_string is not None:
        for number, cur in enumerate(lines):
            hit: Any = pattern.search(cur) if pattern is not None else (search_string in cur or None)  # type: ignore[operator]
            if hit:
                found, match = number, hit
                if firstmatch:
                    break
    if not match:
        for number, cur in enumerate(lines):
            if line == cur.rstrip("\r\n"):
                found = number
            elif anchor is not None and anchor.search(cur):
                where = number + 1 if insertafter else number
                if firstmatch:
                    break
    if found != -1:
        new = match.expand(line) if backrefs and match is not None and pattern is not None else line
        if not new.endswith(NL):
            new += NL
        if lines[found] != new:  # also when only its line ending differs
            lines[found] = new
            return "line replaced"
        return ""
    if backrefs:
        return ""  # never write a line whose backrefs had nothing to expand from
    if insertbefore == "BOF" or insertafter == "BOF":
        lines.insert(0, line + NL)
        return "line added"
    if insertafter == "EOF" or where == -1:
        if lines and lines[-1][-1:] not in ("\n", "\r"):
            lines.append(NL)
        lines.append(line + NL)
        return "line added"
    if insertafter:
        if len(lines) == where:
            if lines[where - 1].rstrip("\r\n") != line:
                lines.append(line + NL)
                return "line added"
            return ""
        if line != lines[where].rstrip("\r\n"):
            lines.insert(where, line + NL)
            return "line added"
        return ""
    lines.insert(where, line + NL)
    return "line added"


def blockinfile(text: str | None, path: str, *, block: str = "", state: str = "present",
                marker: str = "# {mark} ANSIBLE MANAGED BLOCK", marker_begin: str = "BEGIN",
                marker_end: str = "END", insertafter: str | None = None, insertbefore: str | None = None,
                create: bool = False, append_newline: bool = False, prepend_newline: bool = False) -> Edit:
    """Ensure a marked block of lines is in the file (or, state absent, is not)."""
    present = state == "present"
    if text is None:
        if not present:
            return Edit(None, False, f"File {path} not present")
        if not create:
            raise EditError(f"Path {path} does not exist !")
    lines = (text or "").splitlines(keepends=True)
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    if insertafter not in (None, "EOF"):
        anchor = _compile(insertafter, "insertafter")  # type: ignore[arg-type]
    elif insertbefore not in (None, "BOF"):
        anchor = _compile(insertbefore, "insertbefore")  # type: ignore[arg-type]
    else:
        anchor = None
    begin = marker.replace("{mark}", marker_begin) + NL
    end = marker.replace("{mark}", marker_end) + NL
    wanted: list[str] = []
    if present and block:
        body = block if block.endswith(NL) else block + NL
        wanted = [begin, *body.splitlines(keepends=True), end]
    n0 = n1 = None
    for number, cur in enumerate(lines):
        if cur == begin:
            n0 = number
        if cur == end:
            n1 = number
    if n0 is None or n1 is None:
        n0 = _block_anchor(lines, text or "", anchor, insertafter, insertbefore)
    elif n0 < n1:
        del lines[n0:n1 + 1]
    else:
        del lines[n1:n0 + 1]
        n0 = n1
    if n0 > 0 and not lines[n0 - 1].endswith(NL):
        lines[n0 - 1] += NL
    if prepend_newline and present and n0 != 0 and lines[n0 - 1] != NL:
        lines[n0:n0] = [NL]
        n0 += 1
    lines[n0:n0] = wanted
    after_block = n0 + len(wanted)
    if append_newline and present and after_block < len(lines) and lines[after_block] != NL:
        lines[after_block:after_block] = [NL]
    result = "".join(lines)
    if text == result:
        return Edit(result, False, "")
    if text is None:
        return Edit(result, True, "File created")
    return Edit(result, True, "Block inserted" if wanted else "Block removed")


def _block_anchor(lines: list[str], original: str, anchor: re.Pattern[str] | None,
                  insertafter: str | None, insertbefore: str | None) -> int:
    """Where a block without both markers in the file goes (Ansible's rules)."""
    if anchor is None:
        return 0 if insertbefore is not None else len(lines)  # BOF / EOF
    at: int | None = None
    if anchor.flags & re.MULTILINE:
        found = anchor.search(original)
        if found:
            at = original.count(NL, 0, found.end() if insertafter else found.start())
    else:
        for number, cur in enumerate(lines):
            if anchor.search(cur):
                at = number
    if at is None:
        return len(lines)
    return at + 1 if insertafter is not None else at


def replace(text: str | None, path: str, *, regexp: str, replace: str = "", after: str | None = None,
            before: str | None = None) -> Edit:
    """Replace every match of a multiline regexp (optionally only between after/before)."""
    if text is None:
        raise EditError(f"Path {path} does not exist !")
    pattern = ""
    if after and before:
        pattern = f"{after}(?P<subsection>.*?){before}"
    elif after:
        pattern = f"{after}(?P<subsection>.*)"
    elif before:
        pattern = f"(?P<subsection>.*){before}"
    section, span = text, (0, len(text))
    if pattern:
        found = _compile(pattern, "after/before", re.DOTALL).search(text)
        if not found:
            return Edit(text, False, f"Pattern for before/after params did not match the given file: {pattern}")
        section, span = found.group("subsection"), (found.start("subsection"), found.end("subsection"))
    try:
        new, count = _compile(regexp, "regexp", re.MULTILINE).subn(replace, section)
    except re.error as exc:
        raise EditError(f"Unable to process replace due to error: {exc}") from None
    if count == 0 or new == section:
        return Edit(text, False, "")
    return Edit(text[:span[0]] + new + text[span[1]:], True, f"{count} replacements made")
