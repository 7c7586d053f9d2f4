"""The loaded inventory: hosts, groups, effective variables and host-pattern matching."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from types import MappingProxyType
from typing import Any

from opsbook.errors import Diagnostic, PatternError, Position, did_you_mean
from opsbook.inventory import _patterns
from opsbook.inventory._builder import ALL, LOCALHOST_NAMES
from opsbook.inventory._vars import EMPTY, Layers, Precedence

IMPLICIT = "implicit localhost"


@dataclass(frozen=True, slots=True, eq=False)
class Host:
    """One inventory host with its effective variables (Ansible precedence applied).

    `vars` is what `ansible-inventory --list` shows for the host (no magic variables such
    as inventory_hostname); `groups` is Ansible's `group_names`: sorted, without `all`.
    `implicit` marks the implicit localhost, which no group (not even `all`) contains.
    """

    name: str
    vars: Mapping[str, Any]
    groups: tuple[str, ...] = ()
    position: Position | None = None
    implicit: bool = False

    def __repr__(self) -> str:
        return f"Host({self.name!r})"


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """One group: its own variables, direct hosts and child groups, in Ansible's order."""

    name: str
    vars: Mapping[str, Any]
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    depth: int = 0
    priority: int = 1
    position: Position | None = None

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


@dataclass(frozen=True)
class InventoryData:
    """What the loader hands to Inventory; not for callers."""

    groups: Mapping[str, Group]
    hosts: Mapping[str, Host]  # creation order, as Ansible's inventory.hosts
    host_layers: Mapping[str, Layers]
    host_groups: Mapping[str, tuple[str, ...]]  # precedence order, without all
    precedence: Precedence
    implicit_layers: Mapping[str, Layers] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()


class Inventory:
    """Hosts and groups read from Ansible inventories, with Ansible's patterns and precedence.

    Build one with `load_inventory([...])` (`load_inventory([])` when no inventory is
    given: only the implicit localhost); `ansible_list`/`ansible_graph` render it. Read-only: `hosts` (in the order `all` lists them) and `groups` (in the
    order they were declared) are mappings; `sources` are the `-i` arguments; `warnings`
    are Diagnostics for what Ansible would warn about but still accepts. Variable values
    are shared between hosts: treat them as read-only too. Pattern results are cached.
    """

    def __init__(self, data: InventoryData) -> None:
        self._data = data
        self._group_hosts: dict[str, tuple[str, ...]] = {}
        self._terms: dict[str, tuple[tuple[str, ...], bool]] = {}
        self._matches: dict[str, tuple[Host, ...]] = {}
        self._implicit: dict[str, Host] = {}
        self._localhost = next((name for name in data.hosts if name in LOCALHOST_NAMES), None)
        self.groups: Mapping[str, Group] = MappingProxyType(dict(data.groups))
        ordered = self._hosts_of(ALL)
        self.hosts: Mapping[str, Host] = MappingProxyType({n: data.hosts[n] for n in ordered})
        self.sources = data.sources
        self.warnings = data.warnings

    def __repr__(self) -> str:
        return f"<Inventory {len(self.hosts)} hosts, {len(self.groups)} groups>"

    # -- hosts -------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        """The host called `name` (or the implicit localhost); PatternError when unknown."""
        found = self._data.hosts.get(name) or self._implicit_host(name)
        if found is None:
            raise PatternError(
                f'unknown host "{name}"' + did_you_mean(name, self._data.hosts),
                None,
                self._known_hint(name),
            )
        return found

    def _implicit_host(self, name: str) -> Host | None:
        """Ansible's get_host for a localhost name missing from the inventory.

        Like Ansible, an inventory host named localhost, 127.0.0.1 or ::1 (the first one
        defined) stands in for all three; otherwise an implicit host is made, which is
        in no group and has ansible_connection=local.
        """
        if name not in LOCALHOST_NAMES or name in self._data.hosts:
            return None
        if self._localhost is not None:
            return self._data.hosts[self._localhost]
        if name not in self._implicit:
            layers = self._localhost_layers(name)
            base = self._data.precedence.group_part(())
            merged = self._data.precedence.host_vars(base, layers)
            self._implicit[name] = Host(name, MappingProxyType(merged), (), None, True)
        return self._implicit[name]

    def _localhost_layers(self, name: str) -> Layers:
        files = self._data.implicit_layers.get(name, EMPTY).files
        own = (
            ("ansible_python_interpreter", sys.executable, None),
            ("ansible_connection", "local", None),
        )
        return Layers(IMPLICIT, own, files)

    def var_sources(self, host: str) -> list[tuple[str, str, Any]]:
        """Every definition of a variable that reaches `host`: (var, where, value).

        Lowest precedence first, so for each variable the last entry is its effective
        value; `where` is a vars file path or e.g. "group web (inv.ini:7)".
        """
        found = self.host(host)
        if found.implicit:
            return self._data.precedence.definitions((), self._localhost_layers(found.name))
        groups = self._data.host_groups[found.name]
        return self._data.precedence.definitions(groups, self._data.host_layers[found.name])

    # -- patterns ----------------------------------------------------------------------

    def match(self, pattern: str, position: Position | None = None) -> list[Host]:
        """Hosts matching an Ansible host pattern, in Ansible's order.

        Raises PatternError (at `position`, where the pattern was written) when the
        pattern is empty or malformed, or when one of its terms matches no host or group.
        A pattern whose terms all exist may still select no host (`web:&db`): that is [].
        """
        cached = self._matches.get(pattern)
        if cached is None:
            cached = self._matches[pattern] = self._evaluate(pattern, position)
        return list(cached)

    def _evaluate(self, pattern: str, position: Position | None) -> tuple[Host, ...]:
        terms = _patterns.split_pattern(pattern)
        if not terms:
            raise PatternError("empty host pattern", position, 'use "all" for every host')
        selected: list[Host] = []
        unknown: list[str] = []
        for term in _patterns.order_terms(terms):
            exact = self._data.hosts.get(term)
            if exact is not None:
                selected.append(exact)
                continue
            names, known = self._term(term, position)
            if not known:
                unknown.append(term.lstrip("&!"))
            selected = self._combine(selected, term[0], names)
        if unknown:
            raise self._no_match(pattern, unknown, position)
        return tuple(dict.fromkeys(selected))  # one Host object per name: dedupe by identity

    def _combine(self, selected: list[Host], op: str, names: tuple[str, ...]) -> list[Host]:
        if op == "!":
            drop = set(names)
            return [host for host in selected if host.name not in drop]
        if op == "&":
            keep = set(names)
            return [host for host in selected if host.name in keep]
        present = {host.name for host in selected}
        selected.extend(self._lookup(name) for name in names if name not in present)
        return selected

    def _lookup(self, name: str) -> Host:
        found = self._data.hosts.get(name) or self._implicit_host(name)
        assert found is not None  # names come from this inventory
        return found

    def _term(self, term: str, position: Position | None) -> tuple[tuple[str, ...], bool]:
        """Host names of one term (without &/!) and whether it named anything known."""
        body = term[1:] if term[0] in "&!" else term
        cached = self._terms.get(body)
        if cached is None:
            cached = self._terms[body] = self._term_uncached(body, position)
        return cached

    def _term_uncached(self, body: str, position: Position | None) -> tuple[tuple[str, ...], bool]:
        expr, subscript = _patterns.split_subscript(body)
        names, known = self._enumerate(expr, position)
        try:
            picked = _patterns.apply_subscript(names, subscript)
        except IndexError:
            raise PatternError(
                f'host pattern "{body}": index out of range, "{expr}" has {len(names)} hosts',
                position,
                f"indexes go from 0 to {len(names) - 1} (or -1 for the last)",
            ) from None
        if names and not picked:
            raise PatternError(
                f'host pattern "{body}" selects no host: "{expr}" has {len(names)} hosts',
                position,
                f"ranges are inclusive and start at 0: {expr}[0:{len(names) - 1}]",
            )
        return tuple(picked), known

    def _enumerate(self, expr: str, position: Position | None) -> tuple[list[str], bool]:
        literal = _patterns.is_literal(expr)
        regex = None if literal else self._compile(expr, position)
        if regex is None:
            groups = [expr] if expr in self.groups else []
        else:
            groups = [name for name in self.groups if regex.match(name)]
        found: list[str] = []
        for group in groups:
            found.extend(self._hosts_of(group))
        if not groups or _patterns.searches_hosts(expr):
            if regex is None:
                found.extend([expr] if expr in self._data.hosts else [])
            else:
                found.extend(name for name in self._data.hosts if regex.match(name))
        if not found:
            stand_in = self._implicit_host(expr)
            if stand_in is not None:
                found.append(stand_in.name)
        return found, bool(found or groups)

    @staticmethod
    def _compile(expr: str, position: Position | None) -> re.Pattern[str]:
        try:
            return _patterns.compile_term(expr)
        except re.error as exc:
            raise PatternError(
                f'invalid regular expression in host pattern "{expr}": {exc}', position
            ) from None

    def _hosts_of(self, group: str) -> tuple[str, ...]:
        """All hosts of a group and its descendants, in Ansible's order (breadth first)."""
        cached = self._group_hosts.get(group)
        if cached is not None:
            return cached
        groups = self._data.groups
        ordered = [group]
        seen = {group}
        level = [group]
        while level:
            below: list[str] = []
            for name in level:
                for child in groups[name].children:
                    if child not in seen:
                        seen.add(child)
                        below.append(child)
            ordered.extend(below)
            level = below
        hosts: dict[str, None] = {}
        for name in ordered:
            for host in groups[name].hosts:
                hosts.setdefault(host)
        result = self._group_hosts[group] = tuple(hosts)
        return result

    def _no_match(
        self, pattern: str, unknown: list[str], position: Position | None
    ) -> PatternError:
        term = unknown[0]
        quoted = ", ".join(f'"{name}"' for name in unknown)
        what = "matches" if len(unknown) == 1 else "match"
        subject = f'"{pattern}"' if unknown == [pattern] else f'"{pattern}": {quoted}'
        return PatternError(
            f"host pattern {subject} {what} no host or group" + did_you_mean(term, self._names()),
            position,
            self._known_hint(term),
            unmatched=tuple(unknown),
        )

    def _names(self) -> list[str]:
        return [*self.groups, *self._data.hosts]

    def _known_hint(self, word: str) -> str:
        close = get_close_matches(word, sorted(set(self._names())), n=5, cutoff=0.5)
        if close:
            return "close names: " + ", ".join(close)
        groups = [name for name in self.groups if name not in ("all", "ungrouped")]
        if groups:
            shown = ", ".join(groups[:10]) + (", ..." if len(groups) > 10 else "")
            return f"groups: {shown}"
        if set(self._data.hosts) <= {"localhost"}:
            return "no inventory was given (-i): only localhost is known; pass -i with the inventory of these hosts"
        return "the inventory has no groups besides all and ungrouped"

    def hosts_of(self, group: str) -> list[Host]:
        """Hosts of `group` and of all groups below it, in Ansible's order."""
        if group not in self.groups:
            raise PatternError(f'unknown group "{group}"' + did_you_mean(group, self.groups), None)
        return [self._data.hosts[name] for name in self._hosts_of(group)]
