"""YAML that remembers where each value came from.

`load_yaml` returns plain dicts/lists/scalars, except that mappings are `PosDict` and
sequences are `PosList`: they know the Position of themselves, of each key and of each
value, so every later stage can point at the line the user wrote. Duplicate keys, alias
bombs and absurd nesting are refused with a LoadError instead of a hang or a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml
from opsbook.errors import Diagnostic, LoadError, Position, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # libyaml's composer is several times faster; same node tree and marks
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 1_000_000  # values built, counting every expansion of an alias
MAX_EXPANDED = 16 * 1024 * 1024  # characters of scalars, counting every expansion of an alias
MAX_DEPTH = 200
MAX_BYTES = 64 * 1024 * 1024


class PosDict(dict):  # type: ignore[type-arg]
    """A dict that knows the Position of itself, of each key and of each value."""

    __slots__ = ("key_pos", "pos", "value_pos")

    def __init__(self, pos: Position) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[Any, Position] = {}
        self.value_pos: dict[Any, Position] = {}


class PosList(list):  # type: ignore[type-arg]
    """A list that knows the Position of itself and of each item."""

    __slots__ = ("item_pos", "pos")

    def __init__(self, pos: Position) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[Position] = []


def _position(filename: str, node: Node) -> Position:
    mark = node.start_mark
    return Position(filename, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node tree into Pos* containers, with limits."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.count = 0
        self.size = 0  # characters of scalar text, every alias expansion counted
        self.scalars = _Loader("")  # only its scalar constructors are used
        self.problems: list[Diagnostic] = []
        # An alias is the same node object met again: reuse what was built (as PyYAML
        # does) but count its full size (values and characters), so an alias bomb is refused
        # without expanding it: neither many small values nor one big string repeated.
        self.built: dict[int, tuple[Any, int, int]] = {}

    def build(self, node: Node, depth: int = 0) -> Any:
        seen = self.built.get(id(node))
        if seen is not None:
            self.count += seen[1]
            self.size += seen[2]
            self._check_count(node)
            return seen[0]
        before, size_before = self.count, self.size
        value = self._build(node, depth)
        if not isinstance(node, ScalarNode):  # an aliased scalar is counted again by _build
            self.built[id(node)] = (value, self.count - before, self.size - size_before)
        return value

    def _check_count(self, node: Node) -> None:
        if self.count > MAX_NODES:
            raise LoadError(
                f"document expands to more than {MAX_NODES:,} values",
                _position(self.filename, node),
                "is an alias (*name) repeated many times? YAML alias bombs are refused",
            )
        if self.size > MAX_EXPANDED:
            raise LoadError(
                f"document expands to more than {MAX_EXPANDED // (1024 * 1024)} MiB of text",
                _position(self.filename, node),
                "is an alias (*name) of a long value repeated many times? YAML alias bombs are refused",
            )

    def _build(self, node: Node, depth: int) -> Any:
        self.count += 1
        self._check_count(node)
        if depth > MAX_DEPTH:
            raise LoadError(
                f"nesting deeper than {MAX_DEPTH} levels", _position(self.filename, node)
            )
        if isinstance(node, ScalarNode):
            self.size += len(node.value)
            self._check_count(node)
            return self.scalars.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            seq = PosList(_position(self.filename, node))
            for child in node.value:
                seq.append(self.build(child, depth + 1))
                seq.item_pos.append(_position(self.filename, child))
            return seq
        if isinstance(node, MappingNode):
            return self._mapping(node, depth)
        raise LoadError(f"unsupported YAML node {node.tag}", _position(self.filename, node))

    def _mapping(self, node: MappingNode, depth: int) -> PosDict:
        mapping = PosDict(_position(self.filename, node))
        self.scalars.flatten_mapping(node)  # resolves '<<' merge keys like PyYAML does
        for key_node, value_node in node.value:
            key = self.build(key_node, depth + 1)
            if isinstance(key, (dict, list)):
                raise LoadError(
                    "a mapping key must be a plain value, found a "
                    + ("mapping" if isinstance(key, dict) else "list"),
                    _position(self.filename, key_node),
                )
            key_pos = _position(self.filename, key_node)
            if key in mapping:
                first = mapping.key_pos[key]
                self.problems.append(
                    Diagnostic(
                        key_pos,
                        f'duplicate key "{key}" (first defined at line {first.line})',
                        "YAML keeps only the last value; remove or rename one of them",
                    )
                )
            mapping[key] = self.build(value_node, depth + 1)
            mapping.key_pos[key] = key_pos
            mapping.value_pos[key] = _position(self.filename, value_node)
        return mapping


def load_yaml(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document into Pos-annotated data; raise LoadError/ValidationError."""
    if len(text) > MAX_BYTES:
        raise LoadError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", Position(filename))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename, text) from None
    except yaml.YAMLError as exc:
        raise LoadError(f"invalid YAML: {exc}", Position(filename)) from None
    except RecursionError:
        raise LoadError(f"nesting deeper than {MAX_DEPTH} levels", Position(filename)) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    builder = _Builder(filename)
    try:
        data = builder.build(node)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename, text) from None
    except RecursionError:
        raise LoadError(f"nesting deeper than {MAX_DEPTH} levels", Position(filename)) from None
    if builder.problems:
        raise ValidationError(builder.problems)
    return data


def load_yaml_file(path: str) -> Any:
    """Read and parse a YAML file, with a LoadError naming the file when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror}", Position(path)) from None
    except UnicodeDecodeError as exc:
        raise LoadError(f"file is not UTF-8 text ({exc.reason})", Position(path)) from None
    return load_yaml(text, path)


def _syntax_error(exc: yaml.MarkedYAMLError, filename: str, text: str = "") -> LoadError:
    mark = exc.problem_mark or exc.context_mark
    pos = Position(filename, mark.line + 1, mark.column + 1) if mark else Position(filename)
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    hint = ""
    if "tab" in problem:
        hint = "YAML indentation must use spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        hint = _over_indented(text, mark) or 'a value containing ": " must be quoted, e.g. cmd: "echo a: b"'
    elif "found character '%'" in problem or "found undefined tag" in problem:
        hint = "quote the value"
    elif "expected <block end>" in problem or "could not find expected ':'" in problem:
        hint = "check the indentation of this line and the one before it"
    elif "did not find expected key" in problem:
        hint = "check the indentation of this line: a key lines up with the keys beside it"
    elif "{{" in str(exc) or "found unhashable key" in problem:
        hint = 'a value starting with "{{" must be quoted: key: "{{ var }}"'
    return LoadError(f"invalid YAML: {problem}{context}", pos, hint)


_KEY_ONLY = re.compile(r"^(\s+)([^\s:#][^:#]*)$")
_KEY_LINE = re.compile(r"^(\s*)(?:- +)?([^\s:#'\"][^:#]*):(?:\s|$)")


def _over_indented(text: str, mark: Any) -> str:
    """The hint for `key: value` on a line indented deeper than the key above it, which YAML
    reads as the rest of that key's value (then trips on the colon): '' if not that case."""
    if mark is None or not text:
        return ""
    lines = text.splitlines()
    if mark.line >= len(lines):
        return ""
    line = lines[mark.line][:mark.column]
    found = _KEY_ONLY.match(line)
    if not found:
        return ""  # the colon is not the first of its line: a value holding ": "
    indent, key = len(found.group(1)), found.group(2).strip()
    for above in reversed(lines[:mark.line]):
        other = _KEY_LINE.match(above)
        if other is None:
            continue  # a blank line, a comment, or more of the value
        column = len(above) - len(above.lstrip(" -"))  # where its key starts, after any "- "
        if column >= indent:
            return ""
        return (f'"{key}:" is indented deeper than "{other.group(2).strip()}:" above it, so YAML reads it '
                f'as part of that value: indent "{key}:" like the keys beside it')
    return ""


def position_of(data: Any, path: Iterable[Any], fallback: Position | None = None) -> Position | None:
    """Best Position for the value at `path` inside Pos-annotated `data`."""
    best = getattr(data, "pos", None) or fallback
    node = data
    for part in path:
        if isinstance(node, PosDict) and part in node:
            best = node.value_pos.get(part, best)
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_pos[part]
            node = node[part]
        else:
            break
    return best


def key_position(data: Any, key: Any) -> Position | None:
    """Position of `key` itself in a PosDict (where an unknown key should be reported)."""
    if isinstance(data, PosDict):
        return data.key_pos.get(key, data.pos)
    return getattr(data, "pos", None)
