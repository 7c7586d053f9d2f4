"""Ansible's variable precedence for one host, as `ansible-inventory --list` computes it.

Lowest to highest (later replaces earlier, whole values, no deep merge):

1. inventory vars of group `all`
2. inventory vars of the host's other groups, sorted by (depth, ansible_group_priority, name)
3. `group_vars/all*` files, per inventory source in `-i` order
4. `group_vars/GROUP*` files, per source, and within a source by the same group order
5. inventory vars of the host (`host:port` and inline `key=value`)
6. `host_vars/HOST*` files, per source

So a group_vars file of a parent group beats an inventory var of a child group, and a later
source's group_vars beat an earlier source's, whatever the groups: that is what Ansible does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsbook.errors import Position
from opsbook.inventory._varsfiles import VarsFile

Definition = tuple[str, str, Any]  # (variable, where it was set, value)
Setting = tuple[str, Any, Position | None]  # (variable, value, where in the inventory)


@dataclass(frozen=True, slots=True)
class Layers:
    """The variables one group or host defines: in the inventory, and per source in files.

    `label` names the entity in `var_sources` ("group web", "host web1").
    """

    label: str = ""
    inventory: tuple[Setting, ...] = ()
    files: tuple[tuple[VarsFile, ...], ...] = ()

    def inventory_dict(self) -> dict[str, Any]:
        return {key: value for key, value, _ in self.inventory}

    def inventory_definitions(self) -> Iterator[Definition]:
        for key, value, position in self.inventory:
            if position is None:
                yield (key, self.label, value)
            else:
                yield (key, f"{self.label} ({position.file}:{position.line})", value)

    def file_dicts(self, source: int) -> Iterator[Mapping[str, Any]]:
        if source < len(self.files):
            for item in self.files[source]:
                yield item.data


EMPTY = Layers()


@dataclass(frozen=True, slots=True)
class Precedence:
    """Everything needed to compute a host's variables: layers of groups, and source count."""

    groups: Mapping[str, Layers]
    sources: int

    def group_part(self, sorted_groups: Sequence[str]) -> dict[str, Any]:
        """Steps 1-4 for a host in `sorted_groups` (without `all`), merged."""
        merged: dict[str, Any] = {}
        everyone = self.groups.get("all", EMPTY)
        merged.update(everyone.inventory_dict())
        for name in sorted_groups:
            merged.update(self.groups[name].inventory_dict())
        for source in range(self.sources):
            for data in everyone.file_dicts(source):
                merged.update(data)
        for source in range(self.sources):
            for name in sorted_groups:
                for data in self.groups[name].file_dicts(source):
                    merged.update(data)
        return merged

    def host_vars(self, base: Mapping[str, Any], host: Layers) -> dict[str, Any]:
        """Steps 5-6 on top of the merged group part."""
        merged = dict(base)
        merged.update(host.inventory_dict())
        for source in range(self.sources):
            for data in host.file_dicts(source):
                merged.update(data)
        return merged

    def definitions(self, sorted_groups: Sequence[str], host: Layers) -> list[Definition]:
        """Every definition that reaches the host, lowest precedence first."""
        found: list[Definition] = []
        everyone = self.groups.get("all", EMPTY)
        found.extend(everyone.inventory_definitions())
        for name in sorted_groups:
            found.extend(self.groups[name].inventory_definitions())
        for source in range(self.sources):
            found.extend(_file_definitions(everyone, source))
        for source in range(self.sources):
            for name in sorted_groups:
                found.extend(_file_definitions(self.groups[name], source))
        found.extend(host.inventory_definitions())
        for source in range(self.sources):
            found.extend(_file_definitions(host, source))
        return found


def _file_definitions(layers: Layers, source: int) -> Iterator[Definition]:
    if source < len(layers.files):
        for item in layers.files[source]:
            for key, value in item.data.items():
                yield (key, item.where, value)


def group_display_vars(layers: Layers, priority: int) -> dict[str, Any]:
    """A group's own variables as `ansible-inventory --graph --vars` shows them."""
    merged = layers.inventory_dict()
    for source in range(len(layers.files)):
        for data in layers.file_dicts(source):
            merged.update(data)
    if priority != 1:
        merged["ansible_group_priority"] = priority
    return merged
