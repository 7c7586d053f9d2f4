"""Turn what the parsers built into an immutable Inventory, with every host's variables."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opsbook.errors import Diagnostic, Position
from opsbook.inventory._builder import ALL, LOCALHOST_NAMES, Builder, GroupData, HostData
from opsbook.inventory._vars import Layers, Precedence, group_display_vars
from opsbook.inventory._varsfiles import VarsDir, VarsFile
from opsbook.inventory.model import Group, Host, Inventory, InventoryData


def _depths(groups: Mapping[str, GroupData]) -> dict[str, int]:
    """Longest path from `all` to each group, which is how Ansible counts a group's depth."""
    depth: dict[str, int] = {ALL: 0}
    for start in groups:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in depth:
                stack.pop()
                continue
            missing = [parent for parent in groups[name].parents if parent not in depth]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            depth[name] = max((depth[p] + 1 for p in groups[name].parents), default=0)
    return depth


def _files(dirs: list[VarsDir | None], kind: str, name: str) -> tuple[tuple[VarsFile, ...], ...]:
    if not any(folder and folder.listing[kind] for folder in dirs):
        return ()  # the common case for thousands of hosts: no host_vars/ anywhere
    found = tuple(folder.files(kind, name) if folder else () for folder in dirs)
    return found if any(found) else ()


def _layers(entity: GroupData | HostData, files: tuple[tuple[VarsFile, ...], ...]) -> Layers:
    label = f"group {entity.name}" if isinstance(entity, GroupData) else f"host {entity.name}"
    own = tuple((key, value, entity.var_where[key]) for key, value in entity.vars.items())
    return Layers(label, own, files)


class _Assembler:
    def __init__(self, builder: Builder, dirs: list[VarsDir | None]) -> None:
        self.builder = builder
        self.dirs = dirs
        self.depth = _depths(builder.groups)
        self.ancestors: dict[str, frozenset[str]] = {}
        self.group_layers = {
            name: _layers(group, _files(dirs, "group_vars", name))
            for name, group in builder.groups.items()
        }
        self.precedence = Precedence(self.group_layers, len(dirs))
        self.by_groups: dict[
            frozenset[str], tuple[tuple[str, ...], tuple[str, ...], Mapping[str, Any]]
        ] = {}

    def groups(self) -> dict[str, Group]:
        result: dict[str, Group] = {}
        for name, data in self.builder.groups.items():
            shown = group_display_vars(self.group_layers[name], data.priority)
            result[name] = Group(
                name=name,
                vars=MappingProxyType(shown),
                hosts=tuple(data.hosts),
                children=tuple(data.children),
                parents=tuple(data.parents),
                depth=self.depth[name],
                priority=data.priority,
                position=data.position,
            )
        return result

    def _closure(self, direct: list[str]) -> frozenset[str]:
        names: set[str] = set()
        for group in direct:
            if group not in self.ancestors:
                self.ancestors[group] = frozenset(self.builder.ancestors(group))
            names.add(group)
            names |= self.ancestors[group]
        names.discard(ALL)
        return frozenset(names)

    def _group_view(
        self, direct: list[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...], Mapping[str, Any]]:
        """(groups in precedence order, group_names, merged group vars), shared by hosts."""
        key = self._closure(direct)
        view = self.by_groups.get(key)
        if view is None:
            groups = self.builder.groups
            ordered = tuple(sorted(key, key=lambda g: (self.depth[g], groups[g].priority, g)))
            merged = self.precedence.group_part(ordered)
            view = self.by_groups[key] = (ordered, tuple(sorted(key)), MappingProxyType(merged))
        return view

    def hosts(self) -> tuple[dict[str, Host], dict[str, Layers], dict[str, tuple[str, ...]]]:
        hosts: dict[str, Host] = {}
        layers: dict[str, Layers] = {}
        ordered_groups: dict[str, tuple[str, ...]] = {}
        for name, data in self.builder.hosts.items():
            ordered, names, merged = self._group_view(data.direct_groups)
            own = _layers(data, _files(self.dirs, "host_vars", name))
            if own.inventory or own.files:
                merged = MappingProxyType(self.precedence.host_vars(merged, own))
            hosts[name] = Host(name, merged, names, data.position)
            layers[name] = own
            ordered_groups[name] = ordered
        return hosts, layers, ordered_groups

    def implicit(self) -> dict[str, Layers]:
        found: dict[str, Layers] = {}
        for name in LOCALHOST_NAMES:
            if name not in self.builder.hosts:
                files = _files(self.dirs, "host_vars", name)
                if files:
                    found[name] = Layers(f"host {name}", (), files)
        return found


def assemble(
    builder: Builder,
    dirs: list[VarsDir | None],
    sources: tuple[str, ...],
    warnings: list[tuple[str, Position | None]],
) -> Inventory:
    """The Inventory for a builder whose sources are all read (and reconciled)."""
    assembler = _Assembler(builder, dirs)
    groups = assembler.groups()
    hosts, layers, ordered_groups = assembler.hosts()
    notes = tuple(
        Diagnostic(position, message, severity="warning")
        for message, position in [*builder.warnings, *warnings]
    )
    data = InventoryData(
        groups=groups,
        hosts=hosts,
        host_layers=layers,
        host_groups=ordered_groups,
        precedence=assembler.precedence,
        implicit_layers=assembler.implicit(),
        sources=sources,
        warnings=notes,
    )
    return Inventory(data)

