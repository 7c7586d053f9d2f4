"""Host state: what each host has become during a run, and the views templates read.

Owns, per host: whether it failed, the blocks that failed on it, its registered results,
its facts, the handlers notified on it, and (check mode) the names whose value a dry run
could not know; the inventory's `HostInfo` of each host; and the `hostvars` view.
Written only by the executor when a node's outcome is folded in (under its run-state
lock); read by node runs through `view`, `alive` and `hostvars`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsbook.plugin import HostInfo


@dataclass
class HostState:
    failed: bool = False
    registered: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    notified: dict[str, int] = field(default_factory=dict)  # handler name -> stamp (opsbook.flow)
    notify_seq: int = 0
    handled: dict[str, int] = field(default_factory=dict)  # handler id -> stamp when it last ran
    ended: bool = False  # meta: end_host
    failed_blocks: set[str] = field(default_factory=set)
    # check mode: registered result or fact whose value check mode could not know -> the step
    unknown: dict[str, str] = field(default_factory=dict)


_NO_STATE = HostState()  # read-only stand-in for a host nothing has happened to yet


class HostStates:
    """Every host's state of one run."""

    def __init__(self, inventory: Any) -> None:
        self._inventory = inventory
        self._states: dict[str, HostState] = {}
        self._info: dict[str, HostInfo] = {}
        self.hostvars = HostVars(self)

    def view(self, host: str) -> HostState:
        """A host's state to read (a shared empty one when nothing happened to it yet)."""
        return self._states.get(host, _NO_STATE)

    def state(self, host: str) -> HostState:
        """A host's state to change (run-state lock held)."""
        state = self._states.get(host)
        if state is None:
            state = self._states[host] = HostState()
        return state

    def all(self) -> list[HostState]:
        return list(self._states.values())

    def any_failed(self) -> bool:
        return any(state.failed for state in self._states.values())

    def alive(self, hosts: Iterable[str]) -> list[str]:
        """`hosts` without those that failed."""
        return [h for h in hosts if not self.view(h).failed]

    def info(self, name: str) -> HostInfo:
        """The inventory's view of a host (variables, connection), made once per host."""
        info = self._info.get(name)
        if info is None:
            info = self._info[name] = HostInfo(name, dict(self._inventory.host(name).vars))
        return info

    def hosts(self) -> list[str]:
        return list(self._inventory.hosts)

    def record(self, host: str, register: str | None, registered: dict[str, Any] | None,
               facts: Mapping[str, Any], unknown_by: str | None, unknown_facts: Iterable[str]) -> None:
        """A node's register and facts land on `host` (run-state lock held). `unknown_by`
        names the step when check mode could not know them (then `unknown_facts` too)."""
        target = self.state(host)
        if register and registered is not None:
            target.registered[register] = registered
            mark_known(target, (register,), unknown_by)
        if facts:
            target.facts.update(facts)
            mark_known(target, facts, None)
        if unknown_by is not None:
            mark_known(target, unknown_facts, unknown_by)


def mark_known(state: HostState, names: Iterable[str], unknown_by: str | None) -> None:
    """Names now holding a value check mode knows (None), or one it cannot know."""
    for name in names:
        if unknown_by is None:
            state.unknown.pop(name, None)
        else:
            state.unknown[name] = unknown_by


class HostVars(Mapping[str, Any]):
    """`hostvars[name]`: another host's variables, facts and registered results."""

    def __init__(self, states: HostStates) -> None:
        self._states = states

    def __getitem__(self, name: str) -> Any:
        host = self._states.info(name)
        state = self._states.view(name)
        return {**host.vars, "inventory_hostname": name, **state.facts, **state.registered}

    def __iter__(self) -> Iterator[str]:
        return iter(self._states.hosts())

    def __len__(self) -> int:
        return len(self._states.hosts())
