"""Ansible's YAML inventory format: `group: {hosts: {...}, vars: {...}, children: {...}}`.

Where Ansible only warns and drops data (an unknown key such as `host:` in a group, a
group that is a list), opsbook refuses with the position and what was expected: a
runbook must not run against half an inventory because of a typo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsbook.errors import Position, did_you_mean
from opsbook.inventory._address import RangeError, expand_ranges, split_host_and_port
from opsbook.inventory._builder import Builder, LoopError
from opsbook.inventory._errors import Problems
from opsbook.yamlsrc import PosDict

_SECTIONS = ("hosts", "vars", "children")


def type_name(value: Any) -> str:
    """How a YAML value's type is named in messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _key_pos(data: Any, key: Any, fallback: Position) -> Position:
    if isinstance(data, PosDict):
        return data.key_pos.get(key, data.pos)
    return fallback


class _YamlReader:
    def __init__(self, path: str, builder: Builder, problems: Problems) -> None:
        self.path = path
        self.builder = builder
        self.problems = problems

    def read(self, data: Mapping[Any, Any]) -> None:
        top = Position(self.path, 1, 1)
        for name, value in data.items():
            self._group(name, value, _key_pos(data, name, top))

    def _group(self, name: Any, data: Any, here: Position) -> str | None:
        if not isinstance(name, str) or not name:
            self.problems.add(
                f"group name must be a non-empty string, found {name!r}",
                here,
                "quote group names that YAML would read as numbers, booleans or null",
            )
            return None
        if data is not None and not isinstance(data, Mapping):
            self.problems.add(
                f'group "{name}" must be a mapping with "hosts", "vars" or "children", '
                f"found {type_name(data)}",
                here,
            )
            return None
        self.builder.add_group(name, here)
        if data is None:
            return name
        for key, value in data.items():
            key_here = _key_pos(data, key, here)
            if key not in _SECTIONS:
                self.problems.add(
                    f'unknown key "{key}" in group "{name}"' + did_you_mean(str(key), _SECTIONS),
                    key_here,
                    'expected "hosts", "vars" or "children"',
                )
                continue
            section = self._section(name, key, value, key_here)
            if section is None:
                continue
            if key == "vars":
                self._vars(name, section, key_here)
            elif key == "children":
                self._children(name, section, key_here)
            else:
                self._hosts(name, section, key_here)
        return name

    def _section(
        self, group: str, key: str, value: Any, here: Position
    ) -> Mapping[Any, Any] | None:
        if value is None:
            return None
        if isinstance(value, str):  # Ansible accepts "hosts: web1" for one entry
            return {value: None}
        if not isinstance(value, Mapping):
            hint = ""
            if isinstance(value, list):
                item = "host" if key == "hosts" else "group" if key == "children" else "var"
                hint = f'write each {item} as a key ("name:" on its own line), not as "- name"'
            self.problems.add(
                f'"{key}" of group "{group}" must be a mapping, found {type_name(value)}',
                here,
                hint,
            )
            return None
        return value

    def _vars(self, owner: str, data: Mapping[Any, Any], here: Position) -> None:
        """Variables of a group or a host (`owner`), each where its key is written."""
        for key, value in data.items():
            key_here = _key_pos(data, key, here)
            if not isinstance(key, str):
                self.problems.add(f"variable name must be a string, found {key!r}", key_here)
                continue
            try:
                self.builder.set_variable(owner, key, value, key_here)
            except (TypeError, ValueError):
                self.problems.add(
                    f"ansible_group_priority must be a whole number, found {value!r}", key_here
                )

    def _children(self, group: str, data: Mapping[Any, Any], here: Position) -> None:
        for name, value in data.items():
            key_here = _key_pos(data, name, here)
            child = self._group(name, value, key_here)
            if child is None:
                continue
            try:
                self.builder.add_child(group, child)
            except LoopError as exc:
                self.problems.add(str(exc), key_here)

    def _hosts(self, group: str, data: Mapping[Any, Any], here: Position) -> None:
        for pattern, host_vars in data.items():
            key_here = _key_pos(data, pattern, here)
            if not isinstance(pattern, str) or not pattern:
                self.problems.add(
                    f"host name must be a non-empty string, found {pattern!r}",
                    key_here,
                    "quote host names that YAML reads as numbers or booleans",
                )
                continue
            if host_vars and not isinstance(host_vars, Mapping):
                self.problems.add(
                    f'variables of host "{pattern}" must be a mapping, '
                    f"found {type_name(host_vars)}",
                    key_here,
                )
                continue
            name, port = split_host_and_port(pattern)
            try:
                names = expand_ranges(name)
            except RangeError as exc:
                self.problems.add(f'invalid host range in "{pattern}": {exc}', key_here)
                continue
            for host in names:
                self.builder.add_host(host, group, port, key_here)
                self._vars(host, host_vars or {}, key_here)


def parse_yaml(data: Mapping[Any, Any], path: str, builder: Builder, problems: Problems) -> None:
    """Add the groups, hosts and variables of a YAML inventory (a mapping) to `builder`."""
    _YamlReader(path, builder, problems).read(data)
