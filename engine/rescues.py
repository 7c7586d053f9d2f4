"""Which failures a block's `rescue:` answered, and whether the rescue then did: a failure
in a block's steps is handed to the innermost enclosing block with a rescue; once every
node of that rescue on the host has ended, the failure counts `rescued` (see
opsbook.counts) unless a step of the rescue failed there (its failure left the rescue,
to an outer block or the host) or was not run because the run stopped.

The executor calls in under its run-state lock; this keeps no lock of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsbook.compile import Node, Plan
from opsbook.counts import FAILED
from opsbook.runtypes import stopped_before


class Rescues:
    """The rescues under way per (block id, host), and the failures each one answers."""

    def __init__(self, plan: Plan, statuses: Mapping[str, str], messages: Mapping[str, str]) -> None:
        self.plan = plan
        self.blocks = {s.block_id for leaf in plan.leaves.values() for s in leaf.sections if s.part == "rescue"}
        self.statuses = statuses  # the executor's, by node id: a node has ended once it is there
        self.messages = messages
        self.pending: dict[tuple[str, str], list[str]] = {}  # (block, host) -> failed nodes it answers
        self._failed: set[tuple[str, str]] = set()  # rescues a step of which failed on the host
        self._nodes: dict[tuple[str, str], list[str]] | None = None  # (block, host) -> its rescue's nodes
        self._fresh: list[tuple[str, str]] = []  # taken over since the last ended(): settled there

    def take_over(self, block_id: str, node: Node) -> None:
        """The failure of `node` is handed to the rescue of `block_id` on its host."""
        key = (block_id, node.host or "")
        answered = self.pending.setdefault(key, [])
        if self.statuses.get(node.id) in FAILED:  # a node abandoned in doubt stays unknown
            answered.append(node.id)
        self._fresh.append(key)  # a rescue with no step on this host is settled at once

    def rescue_failed(self, block_id: str, host: str) -> None:
        """A step of the rescue of `block_id` failed on `host`: what it answered stays failed."""
        self._failed.add((block_id, host))

    def ended(self, node: Node) -> list[str]:
        """`node` ended: the failures its rescues (innermost first) now count as rescued."""
        if not self.pending:
            return []
        done: list[str] = []
        fresh, self._fresh = self._fresh, []
        for key in fresh:
            if key in self.pending:
                done += self._settle(key)
        for section in reversed(node.leaf.sections if node.leaf is not None else ()):
            key = (section.block_id, node.host or "")
            if section.part == "rescue" and key in self.pending:
                done += self._settle(key)
        return done

    def _settle(self, key: tuple[str, str]) -> list[str]:
        rescue = self._rescue_nodes().get(key, [])
        if any(n not in self.statuses for n in rescue):
            return []  # still running
        answered = self.pending.pop(key)
        not_run = any(stopped_before(self.statuses[n], self.messages.get(n, "")) for n in rescue)
        if key in self._failed or not_run:
            return []
        return answered

    def _rescue_nodes(self) -> dict[tuple[str, str], list[str]]:
        """Built at the first failure a rescue takes over: a run without one does not pay."""
        if self._nodes is None:
            self._nodes = {}
            for node in self.plan.nodes.values():
                if node.leaf is None or node.host is None:
                    continue
                for section in node.leaf.sections:
                    if section.part == "rescue":
                        self._nodes.setdefault((section.block_id, node.host), []).append(node.id)
        return self._nodes
