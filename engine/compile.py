"""Compile stage: runbook + inventory + params -> Plan (a DAG of step x host nodes).

Edges, in the order the rules apply:
- a step waits for the previous step (file order) unless `needs:` names what it waits for;
- a step that reads another step's registered result waits for it (implicit edge);
- where both steps target the same hosts, the edge is per host (host h moves on as soon
  as its own previous node is done); otherwise, or where `run_once`/`serial` ask, all
  nodes of the earlier step meet at a barrier node first;
- block children chain block -> rescue -> always per host; `serial` on a step or block
  makes batch k wait for batch k-1; handlers wait for every other node.
"""

from __future__ import annotations

import dataclasses
import functools
import graphlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsbook.errors import (
    Diagnostic,
    Position,
    PatternError,
    ValidationError,
    did_you_mean,
)
from opsbook.flow import barrier_step, meta_of
from opsbook.model import Runbook, Step
from opsbook.params import check_host_params, resolve_params
from opsbook.preflight import pool_releases
from opsbook.template import hostvars_names, is_template, referenced_names, render

if TYPE_CHECKING:
    import networkx as nx

ACTION = "action"
BARRIER = "barrier"
HANDLER = "handler"


@dataclass(frozen=True, slots=True)
class Section:
    """Where a leaf step sits inside a block: (block id, 'block'|'rescue'|'always')."""

    block_id: str
    part: str


@dataclass(frozen=True, slots=True)
class Leaf:
    """A step that does something (not a block), with its resolved context."""

    step: Step
    hosts: tuple[str, ...]
    sections: tuple[Section, ...]
    order: int
    handler: bool = False
    serial_owner: str | None = None  # id of the step/block whose `serial` batches this leaf
    batches: tuple[tuple[str, ...], ...] = ()
    scope: tuple[str, ...] = ()  # run_once: every host the step matched (its result applies to all)
    flush: str | None = None  # a handler's copy run by this `meta: flush_handlers` step (opsbook.flow)
    handler_id: str | None = None  # handlers: the handler's own id (a flushed copy's too)


@dataclass(frozen=True, slots=True)
class Node:
    """One unit of execution: a leaf step on one host (or a barrier)."""

    id: str
    kind: str
    leaf: Leaf | None
    host: str | None
    index: int
    # The leaf's step (`leaf.step`), kept on the node as a slot, not a property: the run
    # reads it a dozen times per node. None for barriers.
    step: Step = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


@dataclass
class Plan:
    """What a run will do; deterministic for the same inputs.

    The node-level DAG is plain data (`nodes`, `edges`); `graph` is the same DAG as a
    networkx DiGraph, built on first use (graph export, analysis), so that a run does
    not pay for importing networkx.
    """

    runbook: Runbook
    inventory: Any
    params: dict[str, Any]
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]  # node id -> node id, each once, deterministic order
    leaves: dict[str, Leaf]  # by step id, in file order
    step_edges: set[tuple[str, str]] = field(default_factory=set)  # leaf id -> leaf id
    warnings: list[Diagnostic] = field(default_factory=list)
    releases: dict[str, frozenset[str]] = field(default_factory=dict)  # see opsbook.preflight
    undoes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # leaf id -> leaf ids whose undo it performs
    # Only with opaque_patterns (check without -i): leaf id -> the host pattern no host was
    # matched for, because the inventory that would resolve it was not given.
    unresolved: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from(self.edges)
        return graph

    def adjacency(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """(number of dependencies, dependents) of every node."""
        waiting = dict.fromkeys(self.nodes, 0)
        dependents: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            waiting[b] += 1
            dependents[a].append(b)
        return waiting, dependents

    def dependencies(self) -> dict[str, list[str]]:
        """The nodes each node waits for."""
        needs: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            needs[b].append(a)
        return needs

    def action_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind != BARRIER]

    def step_failure_limits(self) -> dict[str, tuple[float | None, int | None]]:
        rb = self.runbook
        return {sid: (leaf.step.max_fail_percentage if leaf.step.max_fail_percentage is not None
                      else rb.max_fail_percentage, leaf.step.max_errors)
                for sid, leaf in self.leaves.items()}


class _Builder:
    def __init__(self, runbook: Runbook, inventory: Any, params: dict[str, Any],
                 opaque_patterns: bool = False) -> None:
        self.rb = runbook
        self.inv = inventory
        self.params = params
        self.opaque_patterns = opaque_patterns
        self.unresolved: dict[str, str] = {}  # leaf id -> pattern (opaque_patterns only)
        self.problems: list[Diagnostic] = []
        self.leaves: dict[str, Leaf] = {}
        self.entry: dict[str, list[str]] = {}  # step/block id -> first leaf ids
        self.exit: dict[str, list[str]] = {}  # step/block id -> last leaf ids
        self.by_name: dict[str, str] = {}
        # Every step written with each name, by position (a looped block's copies are one step).
        self.named: dict[str, dict[Position, Step]] = {}
        self.written_ids: set[str] = set()  # ids given with `id:` (never ambiguous)
        self.step_edges: set[tuple[str, str]] = set()
        self.cross_host: set[tuple[str, str]] = set()  # edges read through hostvars: a barrier
        self.pending_needs: list[tuple[str, Step]] = []
        self.releases: dict[str, frozenset[str]] = {}  # see opsbook.preflight
        self.undoes: dict[str, tuple[str, ...]] = {}
        self.context = self._static_context()

    def _static_context(self) -> dict[str, Any]:
        """What patterns and block loops see: params, groups and the runbook vars that do
        not depend on a host (those are left out), in the run's precedence."""
        from opsbook.variables import Scope

        groups = {name: [h.name for h in self.inv.hosts_of(name)] for name in self.inv.groups}
        base = {"params": self.params, "groups": groups}
        return Scope(base, self.rb.vars, self.params).resolve(drop_unrendered=True)

    # -- leaves ---------------------------------------------------------------------------
    def add_sequence(self, steps: Sequence[Step], hosts: str, sections: tuple[Section, ...],
                     serial_owner: tuple[str, tuple[tuple[str, ...], ...]] | None, handler: bool = False,
                     parent: Step | None = None, extra_vars: Mapping[str, Any] | None = None) -> list[str]:
        """Add steps chained in file order; return the ids of the top-level items."""
        ids = []
        previous: str | None = None
        for index, step in enumerate(steps):
            if parent is not None:
                step = inherit(step, parent, extra_vars or {}, first=index == 0)
            sid = self.add_step(step, hosts, sections, serial_owner, handler)
            if sid is None:
                continue
            if step.needs is not None:
                self.pending_needs.append((sid, step))  # may name later steps: resolved at the end
            elif previous:
                self.link(previous, sid)
            previous = sid
            ids.append(sid)
        return ids

    def link(self, dep: str, sid: str) -> None:
        for a in self.exit[dep]:
            for b in self.entry[sid]:
                self.step_edges.add((a, b))

    def resolve_needs(self) -> None:
        for sid, step in self.pending_needs:
            for need in step.needs:
                dep = self.resolve_need(need, step)
                if dep:
                    self.link(dep, sid)

    def add_step(self, step: Step, hosts: str, sections: tuple[Section, ...],
                 serial_owner: tuple[str, tuple[tuple[str, ...], ...]] | None, handler: bool) -> str | None:
        pattern = step.hosts or hosts
        self.by_name.setdefault(step.name, step.id)
        self.named.setdefault(step.name, {}).setdefault(step.pos, step)
        if "id" in step.explicit:
            self.written_ids.add(step.id)
        if step.is_block:
            return self.add_block(step, pattern, sections, serial_owner)
        host_names = self.match_hosts(pattern, step, leaf=True)
        if step.keep_healthy is not None and step.keep_healthy.group:
            self.match_hosts(step.keep_healthy.group, step, label="keep_healthy.group")
        if step.delegate_to and not is_template(step.delegate_to):  # a literal delegate must exist
            self.match_hosts(step.delegate_to, step, label="delegate_to")
        if step.serial and serial_owner is None:
            serial_owner = (step.id, batches(host_names, step.serial))
        scope = tuple(host_names)
        if step.run_once and host_names:
            host_names = host_names[:1]
        owner = (serial_owner[0] if serial_owner else None, serial_owner[1] if serial_owner else ())
        leaf = Leaf(step, tuple(host_names), sections, len(self.leaves), handler, *owner, scope,
                    handler_id=step.id if handler else None)
        self.leaves[step.id] = leaf
        self.entry[step.id] = [step.id]
        self.exit[step.id] = [self.add_flush(leaf, owner) if meta_of(step) == "flush_handlers" and not handler
                              else step.id]
        return step.id

    def add_flush(self, meta: Leaf, owner: tuple[str | None, tuple[tuple[str, ...], ...]]) -> str:
        """`meta: flush_handlers`: a copy of each handler after it, on its hosts (see opsbook.flow);
        returns the last leaf id. A handler that is a block runs at the end only."""
        last = meta.step.id
        for handler in self.rb.handlers:
            if handler.is_block:
                continue
            copy = dataclasses.replace(handler, id=f"{meta.step.id}/{handler.id}", needs=None)
            self.leaves[copy.id] = Leaf(copy, meta.hosts, meta.sections, len(self.leaves), True, *owner,
                                        meta.hosts, flush=meta.step.id, handler_id=handler.id)
            self.step_edges.add((last, copy.id))
            last = copy.id
        return last

    def add_block(self, block: Step, pattern: str, sections: tuple[Section, ...],
                  serial_owner: tuple[str, tuple[tuple[str, ...], ...]] | None) -> str | None:
        if block.serial and serial_owner is None:
            serial_owner = (block.id, batches(self.match_hosts(pattern, block), block.serial))
        iterations = self.static_loop(block)
        chain: list[str] = []
        for index, item in enumerate(iterations):
            overlay = dict(block.vars)
            copy = block
            if block.loop is not None:
                overlay[block.loop_var] = item
                copy = _suffix_ids(block, f"[{index}]")
            parts: list[list[str]] = []
            for part in ("block", "rescue", "always"):
                children = getattr(copy, part)
                if children:
                    ids = self.add_sequence(children, pattern, sections + (Section(copy.id, part),),
                                            serial_owner, parent=block, extra_vars=overlay)
                    parts.append(ids)
            flat = [i for ids in parts for i in ids]
            # Chain block -> rescue -> always: each part starts after the previous ends.
            for earlier, later in zip(parts, parts[1:]):
                for a in self.exit[earlier[-1]]:
                    for b in self.entry[later[0]]:
                        self.step_edges.add((a, b))
            if chain and flat:
                for a in self.exit[chain[-1]]:
                    for b in self.entry[flat[0]]:
                        self.step_edges.add((a, b))
            chain.extend(flat)
        if not chain:
            return None
        self.entry[block.id] = self.entry[chain[0]]
        self.exit[block.id] = self.exit[chain[-1]]
        return block.id

    def static_loop(self, block: Step) -> list[Any]:
        if block.loop is None:
            return [None]
        try:
            items = render(block.loop, self.context, pos=block.pos)
        except Exception as exc:  # noqa: BLE001
            self.problems.append(Diagnostic(block.pos, f"a loop over a block must be known when the plan is made: {exc}",
                                            "loop over params, vars or groups, not over registered results"))
            return []
        if not isinstance(items, list):
            self.problems.append(Diagnostic(block.pos, f"loop must be a list, found {type(items).__name__}"))
            return []
        return items

    def match_hosts(self, pattern: str, step: Step, leaf: bool = False, label: str = "hosts") -> list[str]:
        where = f'step "{step.name}"' + (f" {label}" if label != "hosts" else "")
        try:
            rendered = render(pattern, self.context, pos=step.pos) if is_template(pattern) else pattern
            return [h.name for h in self.inv.match(str(rendered), position=step.pos)]
        except PatternError as exc:
            if self.opaque_patterns and exc.unmatched:
                # Names only an inventory could resolve: the pattern is kept as written and
                # the step is compiled (and checked) like any other, on hosts not known yet.
                if leaf:
                    self.unresolved[step.id] = str(rendered)
                return []
            self.problems.append(Diagnostic(exc.position or step.pos, f"{where}: {exc.message}", exc.hint))
        except Exception as exc:  # noqa: BLE001 - template problems are reported, not raised
            self.problems.append(Diagnostic(step.pos, f'{where}: {label} "{pattern}": {exc}'))
        return []

    def resolve_undoes(self) -> dict[str, tuple[str, ...]]:
        """`undoes:` names -> the leaf ids (every copy of a looped block's step) it performs the undo of."""
        out: dict[str, tuple[str, ...]] = {}
        for sid, leaf in self.leaves.items():
            found: list[str] = []
            for name in leaf.step.undoes:
                named = [lid for lid, other in self.leaves.items()
                         if name in (other.step.name, other.step.id, lid) and lid != sid]
                if not named:
                    known = sorted({other.step.name for other in self.leaves.values()})
                    self.problems.append(Diagnostic(leaf.step.pos, f'step "{leaf.step.name}" undoes "{name}", which is '
                                                    "not a step of this runbook" + did_you_mean(name, known),
                                                    "undoes: names the step whose change this step puts back"))
                found += named
            if found:
                out[sid] = tuple(found)
        return out

    def resolve_need(self, need: str, step: Step) -> str | None:
        same_name = list(self.named.get(need, {}).values())
        if len(same_name) > 1 and need not in self.written_ids:
            places = " and ".join(f"{s.pos} (id {s.id})" for s in same_name[:3])
            more = f" and {len(same_name) - 3} more" if len(same_name) > 3 else ""
            self.problems.append(Diagnostic(step.pos, f'step "{step.name}" needs "{need}", but {len(same_name)} steps '
                                            f"have that name: {places}{more}",
                                            f"name the one you mean by its id (needs: [{same_name[-1].id}]), "
                                            "or give the steps different names"))
            return None
        if need in self.entry:
            return need
        if need in self.by_name and self.by_name[need] in self.entry:
            return self.by_name[need]
        known = list(self.entry) + list(self.by_name)
        self.problems.append(Diagnostic(step.pos, f'step "{step.name}" needs "{need}", which is not a step of this runbook'
                                        + did_you_mean(need, known),
                                        "needs: names the id or name of another step"))
        return None

    # -- implicit edges and cycles -----------------------------------------------------------
    def add_implicit_edges(self) -> None:
        # A name registered by several steps (a looped block's or include's copies, or two
        # steps) is read from the nearest one before the reader, as the value a run has then.
        registers: dict[str, list[tuple[int, str]]] = {}
        for sid, leaf in self.leaves.items():
            if leaf.step.register:
                registers.setdefault(leaf.step.register, []).append((leaf.order, sid))
        if not registers:
            return
        for sid, leaf in self.leaves.items():
            direct, other_hosts = _step_reads(leaf.step)
            for name in direct | other_hosts:
                found = registers.get(name)
                if not found:
                    continue
                before = [s for order, s in found if order < leaf.order]
                source = before[-1] if before else found[-1][1]
                if source != sid and not leaf.handler:
                    self.step_edges.add((source, sid))
                    if name in other_hosts:  # hostvars[h].x: h's node, not this host's, holds x
                        self.cross_host.add((source, sid))

    def check_cycles(self) -> None:
        order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for a, c in self.step_edges:
            order.add(c, a)
        try:
            order.prepare()
            return
        except graphlib.CycleError:
            pass
        import networkx as nx  # only for the message

        # The same graph on every run (a set's order follows the hash seed): nodes in file
        # order, edges by their consumer's then their producer's place in the file.
        graph = nx.DiGraph()
        graph.add_nodes_from(sorted(self.leaves, key=lambda sid: self.leaves[sid].order))
        graph.add_edges_from(sorted(self.step_edges, key=lambda e: (self.leaves[e[1]].order, self.leaves[e[0]].order)))
        cycle = nx.find_cycle(graph, source=next(n for n in graph if _on_cycle(graph, n)))
        # the edge written last (its consumer is the latest step in the file) closed the cycle
        producer, consumer = max(cycle, key=lambda e: (self.leaves[e[1]].order, self.leaves[e[0]].order))
        start = cycle.index((producer, consumer))
        ring = cycle[start + 1:] + cycle[:start + 1]
        names = [self.leaves[ring[-1][1]].step.name] + [self.leaves[c].step.name for _, c in ring]
        closing = self.leaves[consumer].step
        self.problems.append(Diagnostic(
            closing.pos, "steps depend on each other in a cycle: " + " -> ".join(names)
            + f' (closed here: step "{closing.name}" needs "{self.leaves[producer].step.name}")',
            "remove one of the needs: (or the register it reads)"))


def _on_cycle(graph: Any, node: str) -> bool:
    """Whether a node lies on a cycle (reaches itself)."""
    import networkx as nx

    return any(node in nx.descendants(graph, succ) or succ == node for succ in graph.successors(node))


def batches(hosts: Sequence[str], serial: Sequence[int | str]) -> tuple[tuple[str, ...], ...]:
    """Split hosts into Ansible serial batches; the last size repeats."""
    out: list[tuple[str, ...]] = []
    index = 0
    sizes = list(serial)
    i = 0
    while index < len(hosts):
        spec = sizes[min(i, len(sizes) - 1)]
        size = int(spec) if not isinstance(spec, str) else max(1, math.floor(len(hosts) * float(spec[:-1]) / 100))
        size = max(1, size)
        out.append(tuple(hosts[index:index + size]))
        index += size
        i += 1
    return tuple(out)


def inherit(child: Step, block: Step, block_vars: Mapping[str, Any], first: bool) -> Step:
    """Ansible's block keywords apply to every step inside: conditions add up (AND), tags
    add up, and for the rest a keyword written on the step wins over the block's.

    A block's `approve` is asked once per host, before the first of its steps that runs
    (the executor remembers the decision per block and host)."""
    own = child.explicit

    def pick(name: str) -> Any:
        return getattr(child, name) if name in own else getattr(block, name)

    approve, scope, approve_pos = child.approve, child.approve_scope, child.approve_pos
    if "approve" not in own and block.approve is not None:
        approve, scope, approve_pos = block.approve, block.approve_scope or block.id, block.approve_pos
    return dataclasses.replace(
        child,
        vars={**block_vars, **child.vars},
        when=block.when + child.when,
        tags=tuple(dict.fromkeys(block.tags + child.tags)),
        become=pick("become"),
        become_user=pick("become_user"),
        ignore_errors=pick("ignore_errors"),
        delegate_to=pick("delegate_to"),
        no_log=pick("no_log"),
        timeout=pick("timeout"),
        gather_facts=pick("gather_facts"),
        approve=approve,
        approve_scope=scope,
        approve_pos=approve_pos,
        explicit=own | (block.explicit & INHERITED),
    )


INHERITED = frozenset({"become", "become_user", "ignore_errors", "delegate_to", "no_log", "timeout", "approve",
                       "gather_facts"})


def _suffix_ids(step: Step, suffix: str) -> Step:
    return dataclasses.replace(
        step, id=step.id + suffix,
        block=tuple(_suffix_ids(s, suffix) for s in step.block),
        rescue=tuple(_suffix_ids(s, suffix) for s in step.rescue),
        always=tuple(_suffix_ids(s, suffix) for s in step.always),
        needs=None if step.needs is None else tuple(n + suffix for n in step.needs),
    )


def _templates_of(step: Step) -> Iterable[tuple[str, bool]]:
    """(source, is_bare_expression) of every template a leaf step evaluates."""
    def walk(value: Any) -> Iterable[str]:
        if isinstance(value, str):
            if is_template(value):
                yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)

    def expressions(value: Any) -> Iterable[tuple[str, bool]]:  # an expression argument (one or a list)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield item, not is_template(item)

    if step.action is not None:
        args = step.action.args
        exprs = step.action.expression_fields
        if isinstance(args, dict) and exprs:
            for key, value in args.items():
                if key in exprs:
                    yield from expressions(value)
                else:
                    for t in walk(value):
                        yield t, False
        elif exprs and isinstance(args, (str, list)):  # scalar form of an expression argument
            yield from expressions(args)
        else:
            for t in walk(args):
                yield t, False
    for t in walk(step.loop):
        yield t, False
    for t in walk(dict(step.vars)):
        yield t, False
    if step.approve:
        yield step.approve, False
    if step.keep_healthy is not None:
        if step.keep_healthy.group and is_template(step.keep_healthy.group):
            yield step.keep_healthy.group, False
        if step.keep_healthy.template is not None:
            yield step.keep_healthy.template, False
        if step.keep_healthy.probe is not None:
            for t in walk(step.keep_healthy.probe.args):
                yield t, False
    if step.delegate_to and is_template(step.delegate_to):
        yield step.delegate_to, False
    for cond in step.when + step.failed_when + step.changed_when:
        if isinstance(cond, str):
            yield cond, True


def fact_names(step: Step) -> set[str]:
    """The variables a step sets on its host (`local.set`'s keys, like Ansible's set_fact)."""
    if step.action is not None and step.action.name == "local.set" and isinstance(step.action.args, dict):
        return set(step.action.args)
    return set()


def _step_reads(step: Step) -> tuple[set[str], set[str]]:
    """The variables a step reads: (by name, through `hostvars[h].x`), in its templates and
    conditions and in the arguments its action evaluates itself (debug's `var: x.stdout`)."""
    direct: set[str] = set()
    other_hosts: set[str] = set()
    until = [(step.until, True)] if isinstance(step.until, str) else []  # not in _templates_of: check reads it apart
    for source, expr in [*_templates_of(step), *_read_fields(step), *until]:
        try:
            direct |= referenced_names(source, expression=expr)
        except Exception:  # noqa: BLE001 - syntax errors are reported by check
            continue
        other_hosts |= hostvars_names(source, expression=expr)
    return direct, other_hosts


def _read_fields(step: Step) -> Iterable[tuple[str, bool]]:
    """(source, is_bare_expression) of the arguments the action evaluates itself."""
    action = step.action
    if action is None or not action.read_fields:
        return
    args = action.args if isinstance(action.args, dict) else {}
    for field in action.read_fields:
        value = args.get(field)
        if isinstance(value, str) and value.strip():
            yield value, not is_template(value)


def compile_plan(runbook: Runbook, inventory: Any, params: Mapping[str, Any] | None = None,
                 expand: bool = True) -> Plan:
    """Build the plan; raise ValidationError listing every problem found.

    With expand=False only the step-level graph is built."""
    b = _build(runbook, inventory, params, opaque_patterns=False)
    if b.problems:
        raise ValidationError(b.problems)
    nodes, edges = _expand(b) if expand else ({}, [])
    return Plan(runbook, inventory, b.params, nodes, edges, b.leaves, b.step_edges, releases=b.releases,
                undoes=b.undoes)


def compile_steps(runbook: Runbook, inventory: Any, params: Mapping[str, Any] | None = None,
                  opaque_patterns: bool = False) -> tuple[Plan, list[Diagnostic]]:
    """The step-level plan and every problem found, without raising for them (`check`).

    With opaque_patterns (`check` without an inventory), a host pattern naming a host or
    group the inventory does not know is not a problem: the step gets no hosts, the
    pattern is listed in `Plan.unresolved`, and every other rule applies to the step as
    usual. Unknown parameters still raise ValidationError."""
    b = _build(runbook, inventory, params, opaque_patterns)
    plan = Plan(runbook, inventory, b.params, {}, [], b.leaves, b.step_edges, unresolved=b.unresolved,
                releases=b.releases, undoes=b.undoes)
    return plan, b.problems


def _build(runbook: Runbook, inventory: Any, params: Mapping[str, Any] | None, opaque_patterns: bool) -> _Builder:
    given = dict(params or {})
    declared = {p.name for p in runbook.params}
    # -e may set inventory variables too (they win over the inventory's, as in Ansible).
    inventory_vars = ({name for host in inventory.hosts.values() for name in host.vars}
                      if any(name not in declared for name in given) else set())
    resolved = resolve_params(runbook, given, inventory_vars)
    host_problems = check_host_params(runbook, resolved, inventory)
    if host_problems:
        raise ValidationError(host_problems)
    b = _Builder(runbook, inventory, resolved, opaque_patterns)
    b.add_sequence(runbook.steps, runbook.hosts, (), None)
    b.add_sequence(runbook.handlers, runbook.hosts, (), None, handler=True)
    b.resolve_needs()
    b.add_implicit_edges()
    b.check_cycles()
    b.releases, problems = pool_releases(b.leaves)
    b.problems += problems
    b.undoes = b.resolve_undoes()
    return b


def _expand(b: _Builder) -> tuple[dict[str, Node], list[tuple[str, str]]]:
    """Step-level DAG -> node-level DAG (step x host), with barriers where needed."""
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    by_leaf: dict[str, list[str]] = {}

    def add(node_id: str, kind: str, leaf: Leaf | None, host: str | None) -> str:
        nodes[node_id] = Node(node_id, kind, leaf, host, len(nodes), leaf.step if leaf is not None else None)
        return node_id

    for sid, leaf in b.leaves.items():
        kind = HANDLER if leaf.handler else ACTION
        by_leaf[sid] = [add(f"{sid}@{h}", kind, leaf, h) for h in leaf.hosts]
        if not leaf.hosts:  # keep the step visible (it will be skipped: no hosts)
            by_leaf[sid] = [add(f"{sid}@-", kind, leaf, None)]

    barriers: dict[str, str] = {}

    def barrier_of(sid: str) -> str:
        if sid not in barriers:
            barriers[sid] = add(f"{sid}/done", BARRIER, None, None)
            edges.extend((n, barriers[sid]) for n in by_leaf[sid])
        return barriers[sid]

    for a, c in sorted(b.step_edges, key=lambda e: (b.leaves[e[1]].order, b.leaves[e[0]].order)):
        la, lc = b.leaves[a], b.leaves[c]
        # another host's value: wait for every host, except within one serial rollout (a
        # later batch's host cannot be waited for: its batch waits for this one)
        cross = (a, c) in b.cross_host and not (la.serial_owner is not None and la.serial_owner == lc.serial_owner)
        per_host = (la.hosts == lc.hosts and not la.step.run_once and not lc.step.run_once and not cross
                    # inside `serial` batches the batch gates order the hosts already
                    and not (barrier_step(la.step) and la.serial_owner is None)
                    and not (barrier_step(lc.step) and lc.serial_owner is None)
                    and (la.serial_owner == lc.serial_owner or (la.serial_owner is None and lc.serial_owner is None)))
        if per_host and la.hosts:
            edges.extend((f"{a}@{h}", f"{c}@{h}") for h in la.hosts)
        else:
            gate = barrier_of(a)
            edges.extend((gate, n) for n in by_leaf[c])

    # serial: batch k of an owner waits for every leaf node of batch k-1 of that owner
    owners: dict[str, list[Leaf]] = {}
    for leaf in b.leaves.values():
        if leaf.serial_owner:
            owners.setdefault(leaf.serial_owner, []).append(leaf)
    for owner, leaves in owners.items():
        batch_list = leaves[0].batches
        for k in range(1, len(batch_list)):
            gate = add(f"{owner}/batch{k}", BARRIER, None, None)
            for leaf in leaves:
                edges.extend((f"{leaf.step.id}@{h}", gate) for h in batch_list[k - 1] if h in leaf.hosts)
                edges.extend((gate, f"{leaf.step.id}@{h}") for h in batch_list[k] if h in leaf.hosts)

    # handlers flush at the end: after every other node (flushed copies included)
    handler_nodes = [n for n in nodes.values() if n.kind == HANDLER and n.leaf.flush is None]  # type: ignore[union-attr]
    if handler_nodes:
        gate = add("handlers/flush", BARRIER, None, None)
        edges.extend((n.id, gate) for n in nodes.values()
                     if n.kind == ACTION or (n.kind == HANDLER and n.leaf.flush is not None))  # type: ignore[union-attr]
        edges.extend((gate, n.id) for n in handler_nodes)

    return nodes, list(dict.fromkeys(edges))
