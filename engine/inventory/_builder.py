"""The mutable inventory that parsers fill in, with Ansible's rules for adding things.

Parsers call `add_group`, `add_host`, `add_child` and `set_variable` in file order; the
order of those calls is what Ansible's output orders follow, so the builder keeps every
list in insertion order. `reconcile` then applies the rules Ansible applies after all
sources are read (parentless groups go under `all`, hosts without a group go to
`ungrouped`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import Position

ALL = "all"
UNGROUPED = "ungrouped"
LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")


class LoopError(ValueError):
    """Adding a child group would make the group graph cyclic (or a group its own child)."""


@dataclass
class GroupData:
    """One group while the inventory is being read."""

    name: str
    position: Position | None
    vars: dict[str, Any] = field(default_factory=dict)
    var_where: dict[str, Position | None] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    host_set: set[str] = field(default_factory=set)
    priority: int = 1


@dataclass
class HostData:
    """One host while the inventory is being read."""

    name: str
    position: Position | None
    vars: dict[str, Any] = field(default_factory=dict)
    var_where: dict[str, Position | None] = field(default_factory=dict)
    direct_groups: list[str] = field(default_factory=list)


class Builder:
    """Groups and hosts in the order Ansible would create them."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupData] = {}
        self.hosts: dict[str, HostData] = {}
        self.warnings: list[tuple[str, Position | None]] = []
        self.add_group(ALL, None)
        self.add_group(UNGROUPED, None)
        self.add_child(ALL, UNGROUPED)

    def add_group(self, name: str, position: Position | None) -> GroupData:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = GroupData(name, position)
        elif group.position is None:
            group.position = position  # all/ungrouped: where the user first wrote them
        return group

    def add_host(
        self, name: str, group: str | None, port: int | None, position: Position | None
    ) -> HostData:
        """Add (or find) a host; a port counts only where the host is first seen."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostData(name, position)
            if port is not None:
                host.vars["ansible_port"] = port
                host.var_where["ansible_port"] = position
        if group is not None:
            self.add_member(group, name)
        return host

    def add_member(self, group: str, host: str) -> None:
        data = self.groups[group]
        if host not in data.host_set:
            data.hosts.append(host)
            data.host_set.add(host)
            self.hosts[host].direct_groups.append(group)

    def remove_member(self, group: str, host: str) -> None:
        data = self.groups[group]
        if host in data.host_set:
            data.hosts.remove(host)
            data.host_set.discard(host)
            self.hosts[host].direct_groups.remove(group)

    def add_child(self, parent: str, child: str) -> None:
        """Make `child` a child group of `parent`; raise LoopError for a cycle."""
        if parent == child:
            raise LoopError(f'group "{child}" cannot be a child of itself')
        upper = self.groups[parent]
        if child in upper.children:
            return
        if child in self.ancestors(parent):
            raise LoopError(
                f'making "{child}" a child of "{parent}" creates a loop: '
                f'"{parent}" is already below "{child}"'
            )
        upper.children.append(child)
        lower = self.groups[child]
        if parent not in lower.parents:
            lower.parents.append(parent)

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.groups[current].parents)
        return seen

    def set_variable(self, entity: str, key: str, value: Any, where: Position | None) -> None:
        """Set a variable on a group or host; like Ansible, a group of that name wins."""
        target: GroupData | HostData
        if entity in self.groups:
            target = self.groups[entity]
            if key == "ansible_group_priority":
                target.priority = int(value)
                return
        else:
            target = self.hosts[entity]
        target.vars[key] = value
        target.var_where[key] = where

    def reconcile(self) -> None:
        """Ansible's after-parse rules: attach parentless groups, fill `ungrouped`."""
        for name, group in self.groups.items():
            if name != ALL and not group.parents:
                self.add_child(ALL, name)
        ancestors: dict[str, set[str]] = {}
        for host in self.hosts.values():
            groups: set[str] = set()
            for direct in host.direct_groups:
                if direct not in ancestors:
                    ancestors[direct] = self.ancestors(direct)
                groups.add(direct)
                groups |= ancestors[direct]
            if UNGROUPED in groups:
                if groups - {ALL, UNGROUPED}:
                    self.remove_member(UNGROUPED, host.name)
            elif not groups - {ALL}:
                self.add_member(UNGROUPED, host.name)
        for name in self.groups.keys() & self.hosts.keys():
            self.warnings.append(
                (f'"{name}" is both a group and a host name', self.groups[name].position)
            )
