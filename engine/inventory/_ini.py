"""Ansible's INI inventory format, read line by line with positions for every problem.

What Ansible really does (checked against ansible-core, not only its docs): values of
inline host variables *and* of `[group:vars]` lines go through `ast.literal_eval`, so
`x=23` is an int and `x=True` a bool in both places; anything literal_eval refuses stays
the string as written (a `:vars` value keeps everything after the first `=`, comments
included, while host lines are split like a shell line where `#` starts a comment).
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import Position, did_you_mean
from opsbook.inventory._address import RangeError, expand_ranges, split_host_and_port
from opsbook.inventory._builder import UNGROUPED, Builder, LoopError
from opsbook.inventory._errors import Problems

_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?\Z")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?\Z")
_KINDS = ("hosts", "children", "vars")
_COMMENT = ("#", ";")
_PLAIN = re.compile(r"[^'\"\\]*\Z")  # no quotes or backslashes: shlex would only split
_BLANKS = re.compile(r"[ \t\r\n]+")  # shlex's whitespace, narrower than str.split's
# Values whose literal_eval result is known without calling it (it costs ~20us a value):
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NOT_LITERAL = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+){2,})\Z")
_CONSTANTS = {"True": True, "False": False, "None": None}


@dataclass
class _Pending:
    """A group used before it is declared: `[g:vars]` or a child in `[p:children]`."""

    kind: str  # "vars" | "children"
    position: Position
    parents: list[tuple[str, Position]] = field(default_factory=list)


class _IniReader:
    def __init__(self, path: str, builder: Builder, problems: Problems) -> None:
        self.path = path
        self.builder = builder
        self.problems = problems
        self.pending: dict[str, _Pending] = {}
        self.group = UNGROUPED
        self.kind = "hosts"

    def read(self, lines: list[str]) -> None:
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line[0] in _COMMENT:
                continue
            column = len(raw) - len(raw.lstrip()) + 1
            here = Position(self.path, number, column)
            if self._section(line, here):
                continue
            if self.kind == "hosts":
                self._hosts_line(raw, line, here)
            elif self.kind == "vars":
                self._vars_line(line, here)
            elif self.kind == "children":
                self._child_line(line, here)
            # kind "skip": the lines of a section whose header was wrong
        self._report_pending()

    def _section(self, line: str, here: Position) -> bool:
        found = _SECTION.match(line)
        if found is None:
            if line.startswith("[") and (line.endswith("]") or re.match(r"\[[^\]]*\]\s", line)):
                self.problems.add(
                    f"invalid section header {line!r}",
                    here,
                    "expected [group], [group:vars] or [group:children], with no spaces "
                    "inside the brackets and only a '#' comment after them",
                )
                self.kind = "skip"
                return True
            return False
        name, kind = found.group(1), found.group(2) or "hosts"
        if kind not in _KINDS:
            column = here.column + line.index(":") + 1
            self.problems.add(
                f'unknown section kind "{kind}" in [{name}:{kind}]'
                + did_you_mean(kind, ("vars", "children")),
                Position(self.path, here.line, column),
                f"expected [{name}], [{name}:vars] or [{name}:children]",
            )
            self.kind = "skip"
            return True
        self._declare(name, kind, here)
        self.group, self.kind = name, kind
        return True

    def _declare(self, name: str, kind: str, here: Position) -> None:
        if name not in self.builder.groups:
            # [g:vars] alone does not declare g: Ansible requires [g] or [g:children]
            if kind == "vars" and name not in self.pending:
                self.pending[name] = _Pending("vars", here)
            self.builder.add_group(name, here)
        waiting = self.pending.get(name)
        if waiting is not None and kind != "vars":
            if waiting.kind == "children":
                self._attach_pending(name)
            else:
                del self.pending[name]

    def _attach_pending(self, name: str) -> None:
        waiting = self.pending.pop(name)
        for parent, position in waiting.parents:
            self._add_child(parent, name, position)
            again = self.pending.get(parent)
            if again is not None and again.kind == "children":
                self._attach_pending(parent)

    def _add_child(self, parent: str, child: str, here: Position) -> None:
        try:
            self.builder.add_child(parent, child)
        except LoopError as exc:
            self.problems.add(str(exc), here, f"remove {child} from [{parent}:children]")

    def _hosts_line(self, raw: str, line: str, here: Position) -> None:
        try:
            tokens = _split_host_line(line)
        except ValueError as exc:
            self.problems.add(
                f"cannot read host line: {str(exc).lower()}",
                here,
                'close the quote, or escape it: name="it\'s" or name=\'say "hi"\'',
            )
            return
        if not tokens or not tokens[0]:
            self.problems.add("expected a host name at the start of the line", here)
            return
        names = self._host_names(tokens[0], here)
        if names is None:
            return
        host_names, port = names
        assignments = self._assignments(raw, tokens[1:], here)
        for name in host_names:
            self.builder.add_host(name, self.group, port, here)
            for key, value in assignments:
                self.builder.set_variable(name, key, value, here)

    def _host_names(self, token: str, here: Position) -> tuple[list[str], int | None] | None:
        pattern, port = split_host_and_port(token)
        if token.endswith(":") and port is None:
            self.problems.add(
                f'invalid host "{token}": a ":" after a host name must be followed by a port',
                here,
                "write host:2222, or remove the trailing ':'",
            )
            return None
        try:
            names = expand_ranges(pattern)
        except RangeError as exc:
            self.problems.add(f'invalid host range in "{token}": {exc}', here)
            return None
        if "---" in (name.strip() for name in names):
            self.problems.add(
                '"---" is not a host name',
                here,
                "this looks like a YAML file: give it a .yml or .yaml extension",
            )
            return None
        return names, port

    def _assignments(self, raw: str, tokens: list[str], here: Position) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        offset = here.column - 1
        for token in tokens:
            key, sep, text = token.partition("=")
            at = raw.find(key if key else "=", offset)
            offset = at + 1 if at >= 0 else offset
            where = Position(self.path, here.line, at + 1 if at >= 0 else here.column)
            if not sep:
                hint = (
                    "on a host line only '#' starts a comment"
                    if token.startswith(";")
                    else 'quote values that contain spaces: key="two words"'
                )
                self.problems.add(
                    f'expected key=value after the host name, found "{token}"', where, hint
                )
                break  # one complaint per line: the rest is likely the same mistake
            elif not key:
                self.problems.add(f'missing variable name before "={text}"', where)
            else:
                value = self._value(text, where)
                found.append((key, value))
        return found

    def _vars_line(self, line: str, here: Position) -> None:
        key, sep, text = line.partition("=")
        key = key.strip()
        if not sep or not key:
            self.problems.add(f'expected "key=value" in [{self.group}:vars], found "{line}"', here)
            return
        value = self._value(text.strip(), here)
        self._set_group_var(key, value, here)

    def _set_group_var(self, key: str, value: Any, here: Position) -> None:
        try:
            self.builder.set_variable(self.group, key, value, here)
        except (TypeError, ValueError):
            self.problems.add(
                f"ansible_group_priority must be a whole number, found {value!r}", here
            )

    def _child_line(self, line: str, here: Position) -> None:
        found = _GROUP_NAME.match(line)
        if found is None:
            self.problems.add(
                f'expected a group name in [{self.group}:children], found "{line}"',
                here,
                "one group name per line, without spaces or ':'",
            )
            return
        child = found.group(1)
        if child in self.builder.groups:
            self._add_child(self.group, child, here)
            return
        waiting = self.pending.get(child)
        if waiting is None:
            self.pending[child] = _Pending("children", here, [(self.group, here)])
        else:
            waiting.parents.append((self.group, here))

    def _report_pending(self) -> None:
        for name, waiting in self.pending.items():
            known = [group for group in self.builder.groups if group != name]
            if waiting.kind == "vars":
                self.problems.add(
                    f"[{name}:vars] sets variables of an undefined group"
                    + did_you_mean(name, known),
                    waiting.position,
                    f"declare the group with a [{name}] or [{name}:children] section "
                    "(or in an inventory source read before this one)",
                )
            else:
                parent = waiting.parents[-1][0]
                self.problems.add(
                    f'[{parent}:children] includes undefined group "{name}"'
                    + did_you_mean(name, known),
                    waiting.position,
                    f"declare it with a [{name}] or [{name}:children] section",
                )

    def _value(self, text: str, here: Position) -> Any:
        if _INT.match(text):
            return int(text)
        if _NOT_LITERAL.match(text):
            return _CONSTANTS.get(text, text)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        except Exception as exc:  # noqa: BLE001 - e.g. {[1]: 2}; Ansible fails here too
            self.problems.add(f"cannot evaluate value {text!r}: {exc}", here, "quote it")
            return text
        return _coerce(value)


def _split_host_line(line: str) -> list[str]:
    """shlex.split(line, comments=True), without shlex's cost on the usual plain lines."""
    if _PLAIN.match(line):
        return [token for token in _BLANKS.split(line.partition("#")[0]) if token]
    return shlex.split(line, comments=True)


def _coerce(value: Any) -> Any:
    """Turn what literal_eval returns into the types Ansible keeps (no tuples, bytes...)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_coerce(item) for item in value]
    if isinstance(value, dict):
        return {key: _coerce(item) for key, item in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def decode_ini(data: bytes, path: str, problems: Problems) -> list[str] | None:
    """Lines of an INI file; like Ansible, bytes that are not UTF-8 are allowed only in comments."""
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if raw[:1] in (b"#", b";"):
            lines.append("")
            continue
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.add(
                f"line is not UTF-8 text ({exc.reason})", Position(path, number, exc.start + 1)
            )
            return None
    return lines


def parse_ini(lines: list[str], path: str, builder: Builder, problems: Problems) -> None:
    """Add the groups, hosts and variables of an INI inventory to `builder`."""
    _IniReader(path, builder, problems).read(lines)
