"""`ansible-inventory --list` and `--graph` output, reproduced from an Inventory."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsbook.errors import PatternError, did_you_mean

if TYPE_CHECKING:
    from opsbook.inventory.model import Group, Inventory


def to_json_data(value: Any) -> Any:
    """The value json.loads would give back after Ansible's encoder wrote `value`."""
    if isinstance(value, Mapping):
        return {_json_key(key): to_json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_data(item) for item in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        if math.isnan(key):
            return "NaN"
        if math.isinf(key):
            return "Infinity" if key > 0 else "-Infinity"
        return repr(key)
    return str(key)


def ansible_list(inventory: Inventory) -> dict[str, Any]:
    """Exactly the JSON `ansible-inventory -i SRC --list` prints, as Python data."""
    available = set(inventory.hosts)
    seen: set[str] = set()
    result: dict[str, Any] = {}

    def visit(group: Group) -> dict[str, Any]:
        out: dict[str, Any] = {}
        entry: dict[str, Any] = {}
        if group.name != "all":
            hosts = [name for name in group.hosts if name in available]
            if hosts:
                entry["hosts"] = hosts
        children: list[str] = []
        for child in group.children:
            children.append(child)
            if child not in seen:
                out.update(visit(inventory.groups[child]))
                seen.add(child)
        if children:
            entry["children"] = children
        if entry:
            return {group.name: entry, **out}
        return out

    result.update(visit(inventory.groups["all"]))
    hostvars = {
        name: to_json_data(host.vars) for name, host in inventory.hosts.items() if host.vars
    }
    result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
    return result


def _line(text: str, depth: int) -> str:
    return "  |" * depth + "--" + text if depth else text


def _show_vars(values: Mapping[str, Any], depth: int) -> list[str]:
    return [_line(f"{{{key} = {value}}}", depth) for key, value in sorted(values.items())]


def ansible_graph(inventory: Inventory, vars: bool = False, group: str = "all") -> str:
    """The text `ansible-inventory --graph [--vars] [GROUP]` prints (no final newline)."""
    if group not in inventory.groups:
        raise PatternError(f'unknown group "{group}"' + did_you_mean(group, inventory.groups), None)
    start, with_vars = group, vars
    lines: list[str] = []

    def visit(group: Group, depth: int) -> None:
        lines.append(_line(f"@{group.name}:", depth))
        for child in group.children:
            visit(inventory.groups[child], depth + 1)
        if group.name != "all":
            for name in group.hosts:
                lines.append(_line(name, depth + 1))
                if with_vars:
                    lines.extend(_show_vars(inventory.hosts[name].vars, depth + 2))
        if with_vars:
            lines.extend(_show_vars(group.vars, depth + 1))

    visit(inventory.groups[start], 0)
    return "\n".join(lines)
