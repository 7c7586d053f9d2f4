"""Execute stage: run a Plan's nodes as soon as their dependencies are done.

Concurrency lives here and only here. Run state (what is ready, host failures,
registered results, counters) is changed under one lock: by the scheduler thread, which
hands ready nodes to workers, and by a worker when its node ends, which folds the
outcome in and runs the same host's next node itself when that is ready at once (a
host's steps one after the other, without a hand-off per step). The journal is written
ahead: a node's start is committed before its side effect begins, its result after;
rollback entries are committed with the result.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook import dryrun
from opsbook.compile import ACTION, BARRIER, HANDLER, Node, Plan, fact_names
from opsbook.errors import JournalError, OpsbookError, UserError
from opsbook.events import Event, Listener, wants_output
from opsbook.gates import ApprovalGates, ApprovalRequest, Approver
from opsbook.evidence import EvidenceClaims, Writer
from opsbook.journal import Journal, NodeRecord
from opsbook.preflight import OutOfPool
from opsbook.plugin import (
    ActionContext,
    ActionSpec,
    Become,
    Connection,
    HostInfo,
    Result,
    Status,
    truthy,
)
from opsbook.registry import Registry
from opsbook.secrets import HIDDEN, SecretStore, register_plan
from opsbook.capture import clip_text
from opsbook.template import evaluate, expression_values, holds_template, referenced_names, render, short_value
from opsbook.variables import EMPTY, Scope, builtin_names, render_args

TIMEOUT_GRACE = 5.0  # seconds an action gets to return after it was cancelled
# Journal states of a node that a resume must look at again: it was running when opsbook
# died ("started"), or a previous resume could not settle it ("unknown").
IN_DOUBT = ("started", "unknown")
ROLLBACK_TIMEOUT = 300.0  # seconds each inverse action gets
# A node skipped because the run stopped (a threshold, a signal, a node that needs a human, a
# cancelled gate) rather than by a decision about it (`when`, tags, a failed host): such a skip
# is not final, and a resume runs the node (see api.resume_run).
NOT_RUN = "not run: "


def stopped_before(status: str, msg: str) -> bool:
    """Whether a recorded node was skipped only because the run stopped before it."""
    return status == "skipped" and msg.startswith(NOT_RUN)


@dataclass
class RunOptions:
    """How to run: everything the CLI flags decide."""

    forks: int = 50
    check: bool = False
    diff: bool = False
    rollback: str = "on-failure"  # always | on-failure | never
    timeout: float | None = None
    max_errors: int | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    limit: frozenset[str] | None = None  # host names
    evidence_dir: Path | None = None
    confirm_rerun: frozenset[str] = frozenset()  # in-doubt node ids confirmed to run again ("*" = all)
    approval_timeout: float = 3600.0




@dataclass
class Outcome:
    """What a worker hands back for one node."""

    status: Status
    result: Result
    registered: dict[str, Any] | None = None
    notify: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    restored: bool = False  # taken from the journal on resume
    recorded: bool = False  # already written to the journal


@dataclass
class HostState:
    failed: bool = False
    registered: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)
    failed_blocks: set[str] = field(default_factory=set)
    # check mode: registered result or fact whose value check mode could not know -> the step
    unknown: dict[str, str] = field(default_factory=dict)


_NO_STATE = HostState()  # read-only stand-in for a host nothing has happened to yet


@dataclass
class RunSummary:
    run_id: str
    status: str  # succeeded | failed | aborted | interrupted | timed_out
    counts: dict[str, int]
    failed_nodes: list[str]
    started: float
    finished: float
    rolled_back: int = 0
    message: str = ""
    denied: list[str] = field(default_factory=list)  # nodes whose approval was refused
    signal: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM), if one did
    cause: str = ""  # the first failure that decided the outcome: step, host, the telling line
    rollback_problems: list[str] = field(default_factory=list)  # undos that failed or were not run

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class ConnectionPool:
    """One connection per host, created on first use and reused by every step."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._conns: dict[str, Connection] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, host: HostInfo) -> Connection:
        conn = self._conns.get(host.name)
        if conn is not None:
            return conn
        with self._guard:
            lock = self._locks.setdefault(host.name, threading.Lock())
        with lock:
            if host.name not in self._conns:
                kind = host.connection_kind
                factory = self.registry.connection_factory(kind)
                if factory is None:
                    raise UserError(f'host {host.name}: no plugin provides ansible_connection "{kind}"',
                                    hint="installed connection kinds: " + ", ".join(
                                        sorted(k for p in self.registry.plugins.values() for k in p.connections)))
                self._conns[host.name] = factory(host)
            return self._conns[host.name]

    def close(self) -> None:
        for conn in list(self._conns.values()):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._conns.clear()


class HostVars(Mapping[str, Any]):
    """`hostvars[name]`: another host's variables, facts and registered results."""

    def __init__(self, executor: Executor) -> None:
        self._ex = executor

    def __getitem__(self, name: str) -> Any:
        host = self._ex.hostinfo(name)
        state = self._ex.host_states.get(name, _NO_STATE)
        return {**host.vars, "inventory_hostname": name, **state.facts, **state.registered}

    def __iter__(self) -> Any:
        return iter(self._ex.plan.inventory.hosts)

    def __len__(self) -> int:
        return len(self._ex.plan.inventory.hosts)


class Executor:
    """Runs a plan; one instance per run."""

    def __init__(self, plan: Plan, registry: Registry, journal: Journal, run_id: str,
                 options: RunOptions | None = None, secrets: SecretStore | None = None,
                 listeners: Iterable[Listener] = (), approver: Approver | None = None,
                 prior: Mapping[str, NodeRecord] | None = None) -> None:
        self.plan = plan
        self.registry = registry
        self.journal = journal
        self.run_id = run_id
        self.opts = options or RunOptions()
        self.secrets = register_plan(plan, secrets or SecretStore())  # before the first render
        self.listeners = list(listeners)
        self._wants_output = wants_output(self.listeners)
        self.approver = approver
        self.prior = dict(prior or {})
        self._unrecorded_rollbacks: dict[int, Any] = {}  # rollback seq -> args of a no_log step
        self.pool = ConnectionPool(registry)
        self.host_states: dict[str, HostState] = {}
        self.statuses: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.step_failures: dict[str, int] = {}
        self.run_failures = 0
        self.ignored = 0  # failed nodes of steps with ignore_errors (Ansible's recap `ignored=`)
        self.aborted = ""
        self.interrupted = False
        self.denied: list[str] = []
        self._journal_error: JournalError | None = None
        self._abandoned: set[str] = set()  # nodes the scheduler gave up on; their late results are only noted
        self.gates = ApprovalGates(approver)
        self._blocks = {s.id: s for s in plan.runbook.all_steps() if s.is_block}
        self.started_by = ""  # who started the run (shown to approvers); set by the caller
        self.signal: int | None = None  # the signal that interrupted the run, if one did
        self._stop = threading.Event()  # set when nothing new may start (a stop, a threshold)
        self._lock = threading.Lock()  # run state: ready, in flight, statuses, host states
        self._hostinfo: dict[str, HostInfo] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._deadline: dict[str, float] = {}
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()  # a worker left work for the scheduler
        self._waiting: dict[str, int] = {}  # node id -> dependencies not yet done
        self._succ: dict[str, list[str]] = {}
        self._ready: list[str] = []  # runnable node ids; pop() gives the next in file order
        self._inflight: dict[str, Node] = {}
        self._ahead: set[str] = set()  # in flight, start already written (see _start, _settle)
        self._preflight_locks: dict[str, threading.Lock] = {}
        self._static_args: dict[str, Any] = {}
        self._specs: dict[str, ActionSpec | None] = {}
        self._renders: dict[str, bool] = {}
        self._cause = ""  # the first failure of the run (see RunSummary.cause)
        self._rollback_problems: list[str] = []  # undos that failed or were not run (a human is needed)
        self._batch_failed: dict[tuple[str, int], set[str]] = {}  # (serial owner, batch) -> failed hosts
        self._serial_owners = {s.id: s for s in plan.runbook.all_steps() if s.serial}
        self._out_of_pool = OutOfPool(plan.releases)  # keep_healthy: members taken out, not yet back
        self._rescued_blocks = {s.block_id for leaf in plan.leaves.values() for s in leaf.sections if s.part == "rescue"}
        self._hostvars = HostVars(self)
        self._runbook_dir = Path(plan.runbook.path).resolve().parent
        self._groups = {g: [h.name for h in plan.inventory.hosts_of(g)] for g in plan.inventory.groups}
        # Who wrote which evidence file: a second node writing the same file is refused.
        self._evidence = EvidenceClaims.from_journal(journal, run_id) if self.prior else EvidenceClaims()
        # check mode (see opsbook.dryrun): each done node's unmade changes upstream of it and
        # its own; nodes whose failure is the runbook's own (never excused); names steps read
        self._deps = plan.dependencies() if self.opts.check else {}
        self._unmade: dict[str, frozenset[dryrun.Unmade]] = {}
        self._own_fault: set[str] = set()
        self._inputs: dict[str, frozenset[str]] = {}
        self._remote_inputs: dict[str, frozenset[str]] = {}  # read through hostvars[...]

    # -- events ------------------------------------------------------------------------------
    def emit(self, kind: str, node: Node | None = None, **data: Any) -> None:
        if not self.listeners:
            return
        if node is not None and node.leaf is not None and node.step.no_log:
            if kind == "node_output":
                return
            data = {k: (HIDDEN if k in ("msg", "line", "prompt") and v else v) for k, v in data.items()}
        event = Event(kind, self.run_id, time.time(), node.id if node else None,
                      node.host if node else None, node.step.name if node and node.leaf else None,
                      self.secrets.redact_any(data))
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - what shows the run must never stop it
                self._listener_failed(listener, exc)

    def _listener_failed(self, listener: Listener, exc: Exception) -> None:
        """A listener (a display, a plugin's) raised: it gets no more events; the journal says so."""
        try:
            self.listeners.remove(listener)
        except ValueError:
            return  # another thread removed it already
        self.journal.event(self.run_id, "warning", None,
                           {"message": f"a listener stopped: {type(listener).__name__}: {type(exc).__name__}: {exc}"})

    # -- public ------------------------------------------------------------------------------
    def interrupt(self, reason: str = "interrupted", signum: int | None = None) -> None:
        """Ctrl-C / SIGTERM: stop scheduling, cancel what runs (a wait at an approval gate
        included), then roll back."""
        self.interrupted = True
        self.signal = self.signal or signum
        self._abort(reason)
        for event in list(self._cancel.values()):
            event.set()

    def _abort(self, reason: str) -> None:
        """Nothing new starts from here on (the first reason is kept); gates that wait end."""
        self.aborted = self.aborted or reason
        self._stop.set()

    def run(self) -> RunSummary:
        started = time.time()
        # the nodes `plan` and `show` count: step x host, not the scheduler's barriers
        self.emit("run_started", nodes=sum(n.kind != BARRIER for n in self.plan.nodes.values()),
                  runbook=self.plan.runbook.name)
        run_timeout = self.opts.timeout or self.plan.runbook.timeout
        run_deadline = time.monotonic() + run_timeout if run_timeout else None
        timed_out = False
        try:
            with _Workers(max(1, self.opts.forks)) as workers:
                try:
                    timed_out = self._schedule(workers, run_deadline)
                finally:
                    if self._journal_error is None:
                        self.flush()
            if self._journal_error is not None:
                raise self._journal_error  # no rollback without a journal to record it in
            status = self._status(timed_out)
            rolled = 0
            if self.opts.rollback == "always" or (self.opts.rollback == "on-failure" and status != "succeeded"):
                if not self.opts.check:
                    rolled = self._rollback()
        finally:
            self.pool.close()
        counts: dict[str, int] = {}
        for node_id, st in self.statuses.items():
            if self.plan.nodes[node_id].kind != BARRIER:
                counts[st] = counts.get(st, 0) + 1
        failed = [n for n, st in self.statuses.items() if st in ("failed", "timed_out")]
        summary = RunSummary(self.run_id, status, counts, failed, started, time.time(), rolled, self.aborted,
                             list(self.denied), self.signal, self._cause if status != "succeeded" else "",
                             list(self._rollback_problems))
        self.emit("run_finished", status=status, counts=counts, rolled_back=rolled, message=self.aborted,
                  ignored=self.ignored)
        return summary

    def _status(self, timed_out: bool) -> str:
        if self.interrupted:
            return "interrupted"
        if timed_out:
            return "timed_out"
        if self.aborted:
            return "aborted"
        if any(state.failed for state in self.host_states.values()):
            return "failed"
        if self.opts.check and any(st == "unknown" for st in self.statuses.values()):
            return "succeeded"
        return "succeeded"

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, workers: _Workers, run_deadline: float | None) -> bool:
        nodes = self.plan.nodes
        self._waiting, self._succ = self.plan.adjacency()
        ready = self._ready
        ready[:] = sorted((n for n, d in self._waiting.items() if d == 0), key=lambda n: nodes[n].index)
        ready.reverse()  # pop() from the end gives file order
        inflight = self._inflight  # nodes handed to workers, not yet finished
        timed_out = False
        forks = max(1, self.opts.forks)
        lock = self._lock
        lock.acquire()
        try:
            while ready or inflight:
                starting: list[Node] = []
                while ready and len(inflight) + len(starting) < forks:
                    node = nodes[ready.pop()]
                    outcome = self._prepare(node)
                    if outcome is None:  # must really run
                        spec = self._spec(node.step)
                        if spec is not None and _inline(spec, node):
                            self._finish(node, self._run_node(node, pure=True))
                            self._release(node.id)
                            continue
                        starting.append(node)
                        continue
                    self._finish(node, outcome)
                    self._release(node.id)
                self._start(starting, workers)
                if not inflight:
                    continue
                lock.release()  # workers fold their outcomes in meanwhile (see _settle)
                try:
                    self._wake.get(timeout=0.2)
                    while True:  # one pass for every wake-up that came meanwhile
                        self._wake.get_nowait()
                except queue.Empty:
                    pass
                finally:
                    lock.acquire()
                now = time.monotonic()
                if run_deadline and now > run_deadline and not timed_out:
                    timed_out = True
                    self._abort("the run's timeout expired")
                    for nid in inflight:
                        self._cancel[nid].set()
                for nid, deadline in list(self._deadline.items()):
                    if nid in inflight and now > deadline:
                        self._cancel[nid].set()
                        if now > deadline + TIMEOUT_GRACE:  # the action ignores cancellation
                            stuck = inflight.pop(nid)
                            self._deadline.pop(nid, None)
                            self._abandoned.add(nid)
                            self._finish(stuck, _outcome(Status.TIMED_OUT, f"timed out; the action did not stop within {TIMEOUT_GRACE:g}s of being cancelled"))
                            self._release(nid)
        finally:
            lock.release()
        return timed_out

    def _release(self, node_id: str) -> None:
        """A node is done: its successors with nothing else to wait for become ready."""
        waiting, ready = self._waiting, self._ready
        for s in self._succ[node_id]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)

    def _start(self, starting: list[Node], workers: _Workers) -> None:
        """End a scheduling round with one journal transaction, then hand `starting` to workers.

        The transaction holds the results deferred so far (see _act) and the write-ahead
        of the nodes about to start, so a node's result is durable before anything after
        it starts, and a node's start before its action runs; workers wait for no commit
        of their own. Nodes that may wait for a human or a health check first (approve,
        keep_healthy), and in-doubt nodes of a resumed run, write their start themselves,
        right before they act.
        """
        ahead = [n for n in starting if self._starts_here(n)]
        if ahead or self.journal.deferring:
            try:
                self.flush(started=ahead)
            except JournalError as exc:
                self._journal_failed(exc)
                for node in starting:
                    self._not_started(node)
                return
        self._ahead.update(n.id for n in ahead)
        for node in starting:
            self._inflight[node.id] = node
            self._cancel[node.id] = threading.Event()
            workers.submit(self._worker, node)

    def _starts_here(self, node: Node) -> bool:
        """Whether the scheduler writes this node's start (see _start)."""
        step = node.step
        if step.approve is not None or step.keep_healthy is not None:
            return False
        prior = self.prior.get(node.id)
        return prior is None or prior.status not in IN_DOUBT

    def _journal_failed(self, exc: JournalError) -> None:
        # The journal cannot record what happens: stop scheduling and fail the run loudly.
        self._journal_error = self._journal_error or exc
        self._abort(f"the journal cannot be written: {exc}")

    def _not_started(self, node: Node) -> None:
        """A node handed out whose start the journal could not take (run state lock held)."""
        self._inflight.pop(node.id, None)
        out = _outcome(Status.SKIPPED, f"{NOT_RUN}{self.aborted}")
        out.recorded = True  # the journal cannot take it
        self._finish(node, out)
        self._release(node.id)

    def _worker(self, node: Node | None) -> None:
        while node is not None:
            try:
                outcome = self._run_node(node)
            except JournalError as exc:
                # Leave this node in doubt (its start may be recorded, its result is not).
                self._journal_failed(exc)
                outcome = _outcome(Status.UNKNOWN, f"journal write failed: {exc}")
                outcome.recorded = True
            except BaseException as exc:  # noqa: BLE001 - a bug in a plugin must not hang the run
                outcome = _outcome(Status.FAILED, f"internal error in {node.step.action.name}: {type(exc).__name__}: {exc}")  # type: ignore[union-attr]
            node = self._settle(node, outcome)

    def _settle(self, node: Node, outcome: Outcome) -> Node | None:
        """Fold a worker's finished node into the run state; return the same host's next
        node when it is ready now and can run here (its start committed), else None.

        The scheduler is woken only when there is something left for it: ready nodes this
        worker does not take, or the end of the run."""
        with self._lock:
            if self._inflight.pop(node.id, None) is None:
                return None  # abandoned after its timeout: its late result is only noted
            self._finish(node, outcome)
            self._release(node.id)
            follow = self._follow_on(node)
            if self._ready or not self._inflight:
                self._wake.put(None)
        try:
            # the results deferred so far (this node's among them), then the next start;
            # at the end of a host's run of nodes, the results alone: durable at once
            self.flush(started=[follow] if follow is not None else [])
        except JournalError as exc:
            self._journal_failed(exc)
            if follow is not None:
                with self._lock:
                    self._not_started(follow)
                    self._wake.put(None)
            return None
        if follow is not None:
            self._ahead.add(follow.id)
        return follow

    def _follow_on(self, node: Node) -> Node | None:
        """The node the worker that ran `node` takes next (run state lock held): the newest
        ready node when it is an ordinary action of the same host that must really run.
        Anything that may wait for a human or a health check, runs inline, or is skipped
        is left to the scheduler."""
        ready = self._ready
        if not ready or self.aborted or self.interrupted:
            return None
        nxt = self.plan.nodes[ready[-1]]
        if nxt.host != node.host or nxt.kind != ACTION or not self._starts_here(nxt):
            return None
        spec = self._spec(nxt.step)
        if spec is None or _inline(spec, nxt) or self._prepare(nxt) is not None:
            return None
        ready.pop()
        self._inflight[nxt.id] = nxt
        self._cancel[nxt.id] = threading.Event()
        return nxt

    # -- per node decisions (run-state lock held) -------------------------------------------
    def _prepare(self, node: Node) -> Outcome | None:
        """An Outcome when the node does not need to run (barrier, skip, resumed), else None."""
        if node.kind == BARRIER:
            return _outcome(Status.OK, "")
        prior = self.prior.get(node.id)
        if prior is not None and prior.status not in IN_DOUBT:
            return self._restore(node, prior)
        step = node.step
        if node.host is None:
            return _outcome(Status.SKIPPED, "no hosts matched")
        if self.opts.limit is not None and node.host not in self.opts.limit:
            return _outcome(Status.SKIPPED, "not in --limit")
        if self.aborted and node.kind != HANDLER:
            return _outcome(Status.SKIPPED, f"{NOT_RUN}{self.aborted}")
        if self.interrupted:
            return _outcome(Status.SKIPPED, f"{NOT_RUN}interrupted")
        if node.kind != HANDLER and not tags_select(step.tags, self.opts.tags, self.opts.skip_tags):
            return _outcome(Status.SKIPPED, "not selected by tags")  # a notified handler runs, as in Ansible
        state = self._state(node.host)
        if node.kind == HANDLER:
            if not (set(step.listen) | {step.name, step.id}) & state.notified:
                return _outcome(Status.SKIPPED, "not notified")
            return None
        parts = node.leaf.sections  # type: ignore[union-attr]
        in_always = any(s.part == "always" for s in parts)
        for section in parts:
            failed_here = section.block_id in state.failed_blocks
            if section.part == "block" and failed_here:
                return _outcome(Status.SKIPPED, "an earlier step of this block failed")
            if section.part == "rescue" and not failed_here:
                return _outcome(Status.SKIPPED, "rescue not needed: the block succeeded")
        if state.failed and not in_always:
            return _outcome(Status.SKIPPED, "host failed earlier")
        return None

    def _state(self, host: str) -> HostState:
        state = self.host_states.get(host)
        if state is None:
            state = self.host_states[host] = HostState()
        return state

    def _spec(self, step: Any) -> ActionSpec | None:
        """The action of a step (looked up once per step, not once per node)."""
        if step.id not in self._specs:  # an action that is not installed is looked up once too
            spec = self._specs[step.id] = self.registry.action(step.action.name)
            if spec is not None:
                spec.prepare()
        return self._specs[step.id]

    def _restore(self, node: Node, prior: NodeRecord) -> Outcome:
        """A node the journal already holds a result for (resume): reuse it."""
        outcome = _outcome(Status(prior.status) if prior.status in Status._value2member_map_ else Status.OK,
                           prior.msg)
        outcome.registered = prior.registered
        outcome.result.facts = prior.facts
        outcome.result.changed = prior.changed
        outcome.notify = prior.notify
        outcome.started, outcome.finished = prior.started or 0.0, prior.finished or 0.0
        outcome.restored = True
        return outcome

    def _finish(self, node: Node, outcome: Outcome) -> None:
        """Fold a node's outcome into the run state (run-state lock held)."""
        self.statuses[node.id] = outcome.status.value
        self._deadline.pop(node.id, None)
        self._cancel.pop(node.id, None)
        self._ahead.discard(node.id)
        if self._deps:
            self._note_unmade(node, outcome)
        if node.kind == BARRIER:
            return
        step = node.step
        restored = outcome.restored
        if not restored and not outcome.recorded and node.host is not None and self._journal_error is None:
            self._record(node, outcome, buffered=outcome.status is Status.SKIPPED)
        if outcome.result.msg:
            self.messages[node.id] = outcome.result.msg
        if node.host is None:
            return
        state = self._state(node.host)
        # run_once: the one result counts for every host the step was meant for (Ansible)
        unknown = outcome.status is Status.UNKNOWN
        for name in (node.leaf.scope or (node.host,)) if step.run_once else (node.host,):  # type: ignore[union-attr]
            target = self._state(name)
            if step.register and outcome.registered is not None:
                target.registered[step.register] = outcome.registered
                self._mark_known(target, (step.register,), step.name if unknown else None)
            target.facts.update(outcome.result.facts)
            self._mark_known(target, outcome.result.facts, None)
            if unknown:  # the facts it would have set are unknown too, like its register
                self._mark_known(target, fact_names(step), step.name)
        state.notified.update(outcome.notify)  # a run_once step notifies the host it ran on only (Ansible)
        if outcome.status is Status.OK:
            if restored and step.keep_healthy is not None:
                self._out_of_pool.take_out(step.id, node.host)
            self._out_of_pool.succeeded(step.id, node.host)
            undone = self.plan.undoes.get(step.id)
            if undone and not restored and not self.opts.check and self._journal_error is None:
                self.journal.undone_by(self.run_id, [f"{u}@{node.host}" for u in undone],
                                       f'undone by step "{step.name}"')
        failure = outcome.status in (Status.FAILED, Status.TIMED_OUT)
        if failure and not step.ignore_errors:
            if not self._cause:  # a rescued failure counts too: it is what the rescue answered
                self._cause = f'"{step.name}" on {node.host}: {self.secrets.redact(outcome.result.msg or outcome.status.value)}'
            self._host_failed(node, state)
        elif failure:
            self.ignored += 1
        if self.listeners:
            self.emit("node_finished", node, status=outcome.status.value, msg=outcome.result.msg,
                      changed=outcome.result.changed, duration=round(outcome.finished - outcome.started, 6)
                      if outcome.finished else 0.0, restored=restored, ignored=failure and step.ignore_errors,
                      **({"recorded_at": outcome.finished} if restored else {}))

    @staticmethod
    def _mark_known(state: HostState, names: Iterable[str], unknown_by: str | None) -> None:
        """Names now holding a value check mode knows (None), or one it cannot know."""
        for name in names:
            if unknown_by is None:
                state.unknown.pop(name, None)
            else:
                state.unknown[name] = unknown_by

    # -- check mode: changes not made (see opsbook.dryrun) -----------------------------------
    def _upstream_unmade(self, node_id: str) -> frozenset[dryrun.Unmade]:
        deps = self._deps.get(node_id, ())
        if len(deps) == 1:
            return self._unmade.get(deps[0], frozenset())
        return frozenset().union(*(self._unmade.get(d, frozenset()) for d in deps))

    def _note_unmade(self, node: Node, outcome: Outcome) -> None:
        """Remember the unmade changes upstream of a done node, and its own (lock held)."""
        unmade = self._upstream_unmade(node.id)
        if node.kind != BARRIER and node.host is not None:
            step = node.step
            # a step always run in check mode (check_mode: true) makes no change in a real run
            # either: nothing after it waits for one
            dry = self.opts.check if step.check_mode is None else False
            if dry and dryrun.leaves_unmade(step, self._spec(step), outcome.status, outcome.result.changed):
                own = dryrun.Unmade(node.leaf.order, step.name, node.host, "mitigation" in step.marks)  # type: ignore[union-attr]
                unmade = unmade | {own}
        self._unmade[node.id] = unmade

    def _reads_unknown(self, node: Node) -> Outcome | None:
        """Rule 1 of opsbook.dryrun: a node reading a value check mode could not know, on its
        host or (through hostvars) on another."""
        step = node.step
        inputs = self._inputs.get(step.id)
        if inputs is None:  # workers may do this at once for one step: same values, set remote first
            inputs = dryrun.input_names(step)
            self._remote_inputs[step.id] = dryrun.hostvars_names(step) if "hostvars" in inputs else frozenset()
            self._inputs[step.id] = inputs
        state = self.host_states.get(node.host or "", _NO_STATE)
        steps = dict.fromkeys(state.unknown[d] for d in sorted(inputs & set(state.unknown)))
        remote = self._remote_inputs[step.id]
        if remote:
            for other in list(self.host_states.values()):
                steps.update(dict.fromkeys(other.unknown[d] for d in sorted(remote & set(other.unknown))))
        if not steps:
            return None
        return _unknown("depends on " + ", ".join(f'"{s}"' for s in steps) + " (unknown in check mode)")

    def _observes_unmade(self, node: Node, spec: ActionSpec) -> Outcome | None:
        """Rule 2 of opsbook.dryrun: a node observing what an unmade change would alter."""
        if not dryrun.observes(node.step, spec):
            return None
        unmade = dryrun.before(node, self._upstream_unmade(node.id))
        return _unknown(dryrun.observation_reason(unmade)) if unmade else None

    def _host_failed(self, node: Node, state: HostState) -> None:
        # Ansible's block semantics: the rest of each enclosing block is skipped up to the
        # innermost block that has a rescue; without one, the host has failed.
        rescued = False
        for section in reversed(node.leaf.sections):  # type: ignore[union-attr]
            if section.part != "block":
                continue
            state.failed_blocks.add(section.block_id)
            if section.block_id in self._rescued_blocks:
                rescued = True
                break
        if rescued:
            return  # a rescued failure is handled by the block: no threshold counts it
        state.failed = True
        step = node.step
        self.step_failures[step.id] = self.step_failures.get(step.id, 0) + 1
        self.run_failures += 1
        why = self._batch_limit(node) if node.leaf.serial_owner else ""  # type: ignore[union-attr]
        pct, max_err = self.plan.step_failure_limits()[step.id]
        total = max(1, len(node.leaf.hosts))  # type: ignore[union-attr]
        if why:
            pass
        elif pct is not None and 100.0 * self.step_failures[step.id] / total > pct:
            why = (f'step "{step.name}" failed on {self.step_failures[step.id]} of {total} hosts, '
                   f"over max_fail_percentage {pct:g}%")
        elif max_err is not None and self.step_failures[step.id] > max_err:
            why = f'step "{step.name}" failed on {self.step_failures[step.id]} hosts, over max_errors {max_err}'
        run_max = self.opts.max_errors if self.opts.max_errors is not None else self.plan.runbook.max_errors
        if run_max is not None and self.run_failures > run_max:
            why = f"{self.run_failures} nodes failed, over the run's max_errors {run_max}"
        if why:
            self.aborted = why  # the newest threshold crossed is the one reported (as before)
            self._stop.set()
            # Nothing new starts from here on; what runs now finishes.
            self.emit("aborted", node, message=self.aborted, still_running=len(self._inflight))

    def _batch_limit(self, node: Node) -> str:
        """Ansible's rule for a serial batch: the run stops when more than max_fail_percentage
        of the batch's hosts failed (the owner's, else the runbook's), or when every host of
        the batch failed. The reason, or ""."""
        leaf = node.leaf
        assert leaf is not None and leaf.serial_owner is not None
        index = next((k for k, hosts in enumerate(leaf.batches) if node.host in hosts), None)
        if index is None:
            return ""
        batch = leaf.batches[index]
        failed = self._batch_failed.setdefault((leaf.serial_owner, index), set())
        failed.add(node.host)  # type: ignore[arg-type]
        owner = self._serial_owners.get(leaf.serial_owner)
        pct = owner.max_fail_percentage if owner is not None and owner.max_fail_percentage is not None \
            else self.plan.runbook.max_fail_percentage
        name = owner.name if owner is not None else leaf.serial_owner
        where = f'batch {index + 1} of {len(leaf.batches)} of "{name}"'
        if pct is not None and 100.0 * len(failed) / len(batch) > pct:
            return (f"{len(failed)} of {len(batch)} hosts of {where} failed ({', '.join(sorted(failed))}), "
                    f"over max_fail_percentage {pct:g}%: later batches do not start")
        if len(failed) == len(batch):
            return f"every host of {where} failed ({', '.join(sorted(failed))}): later batches do not start"
        return ""

    # -- running a node (worker thread) -----------------------------------------------------
    def hostinfo(self, name: str) -> HostInfo:
        info = self._hostinfo.get(name)
        if info is None:
            inv_host = self.plan.inventory.host(name)
            info = HostInfo(name, dict(inv_host.vars))
            self._hostinfo[name] = info
        return info

    def _needs_context(self, step: Any) -> bool:
        """Whether a step renders anything (cached): most steps of large plans do not."""
        known = self._renders.get(step.id)
        if known is None:
            known = bool(step.when or step.loop is not None or step.vars or step.until or step.failed_when
                         or step.changed_when or step.approve or step.delegate_to or step.rollback
                         or step.keep_healthy or step.register or self.plan.runbook.vars
                         or holds_template(step.action.args if step.action else None)
                         or (step.action is not None and step.action.expression_fields))
            self._renders[step.id] = known
        return known

    def _host_only(self, node: Node) -> dict[str, Any]:
        host = self.hostinfo(node.host) if node.host else HostInfo("localhost", {})
        return host.vars  # type: ignore[return-value]  # read-only use: become settings

    def context_for(self, node: Node, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Template variables of a node, in the precedence of opsbook.variables (the plan
        view renders with the same)."""
        name = node.host or "localhost"
        host = self.hostinfo(name) if node.host else HostInfo("localhost", {})
        state = self.host_states.get(name, _NO_STATE)
        base = builtin_names(name, host.vars, self._groups, self.plan.params, str(self._runbook_dir))
        base.update(hostvars=self._hostvars, run={"id": self.run_id, "check": self.opts.check},
                    ansible_check_mode=self.opts.check, **self._play_hosts(node))
        return Scope(base, self.plan.runbook.vars, self.plan.params, (state.facts, state.registered),
                     node.step.vars, extra or EMPTY).resolve()

    def _play_hosts(self, node: Node) -> dict[str, list[str]]:
        """Ansible's ansible_play_hosts(_all) and ansible_play_batch for a node: the step's
        hosts (its serial batch), without those that failed."""
        leaf = node.leaf
        if leaf is None:
            return {}
        every = list(leaf.scope or leaf.hosts)
        batch = next((list(b) for b in leaf.batches if node.host in b), every)
        alive = [h for h in every if not self.host_states.get(h, _NO_STATE).failed]
        return {"ansible_play_hosts_all": every, "ansible_play_hosts": alive, "play_hosts": alive,
                "ansible_play_batch": [h for h in batch if h in alive]}

    def _run_node(self, node: Node, pure: bool = False) -> Outcome:
        step = node.step
        start = time.time()
        action = step.action
        assert action is not None
        spec = self._spec(step)
        if spec is None:
            return _outcome(Status.FAILED, f"plugin action {action.name} is not installed")
        if self.opts.check:
            unknown = self._reads_unknown(node)
            if unknown is not None:
                return unknown
        try:
            ctx_vars = self.context_for(node) if self._needs_context(step) else self._host_only(node)
            if step.loop is None:
                false = self._false_condition(step, ctx_vars)
                if false is not None:
                    out = _outcome(Status.SKIPPED, f"when: {false} is false{self._seen(step, [false], ctx_vars)}")
                    out.registered = Result(status=Status.SKIPPED).registered()
                    return out
                items: list[tuple[Any, Any]] = []  # a loop's (item, its false `when` or None)
            else:  # Ansible evaluates `when` once per item, with the item bound
                rendered = render(step.loop, ctx_vars, pos=step.pos)
                if not isinstance(rendered, list):
                    return _outcome(Status.FAILED, f"loop must render to a list, got {type(rendered).__name__}")
                if not rendered:  # Ansible skips a loop over nothing: no gate, no pre-flight, no action
                    out = _outcome(Status.SKIPPED, "loop: no items")
                    out.registered = Result(status=Status.SKIPPED).registered()
                    out.registered["results"] = []
                    return out
                items = [(i, self._false_condition(step, {**ctx_vars, step.loop_var: i})) for i in rendered]
                if rendered and all(false is not None for _, false in items):
                    out = _outcome(Status.SKIPPED, "when: false for every item of the loop")
                    out.registered = Result(status=Status.SKIPPED).registered()
                    out.registered["results"] = [_skipped_item(step, i, false).registered() for i, false in items]
                    return out
        except UserError as exc:
            return _outcome(Status.FAILED, _user_message(exc))
        if self.opts.check:
            unknown = self._observes_unmade(node, spec)
            if unknown is not None:
                return unknown
        prior = self.prior.get(node.id)
        if prior is not None and prior.status in IN_DOUBT:
            resolved = self._in_doubt(node, spec, ctx_vars)
            if resolved is not None:
                return resolved
        if step.keep_healthy is not None and self.opts.check:
            try:  # nothing is taken out in a dry run, but its group must resolve
                self._pool_members(node, ctx_vars)
            except UserError as exc:
                return _outcome(Status.FAILED, f"keep_healthy: {_user_message(exc)}")
        if step.keep_healthy is not None and not self.opts.check and step.approve is not None:
            refused = self._preflight(node, ctx_vars)  # don't ask a human for something we would refuse
            if refused is not None:
                return refused
        if step.approve is not None and not self.opts.check:
            denied = self._ask_approval(node, spec, ctx_vars, items)
            if denied is not None:
                return denied
        if step.keep_healthy is not None and not self.opts.check:
            # The pre-flight and the action run under one lock per step, so two hosts of
            # the same step can never both pass the check and both be taken out.
            with self._preflight_locks.setdefault(step.id, threading.Lock()):
                refused = self._preflight(node, ctx_vars)
                if refused is not None:
                    return refused
                return self._act(node, spec, ctx_vars, items, start, pure)
        return self._act(node, spec, ctx_vars, items, start, pure)

    def _act(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], items: list[tuple[Any, Any]],
             start: float, pure: bool = False) -> Outcome:
        step = node.step
        if pure:  # no side effect: nothing to write ahead, nothing to cancel
            cancel = _NEVER
            self.emit("node_started", node)
        else:
            self._write_ahead(node)
            cancel = self._cancel.get(node.id) or self._cancel.setdefault(node.id, threading.Event())
        if step.timeout:
            self._deadline[node.id] = time.monotonic() + step.timeout
        results: list[Result] = []
        if step.loop is None:
            results.append(self._attempts(node, spec, ctx_vars, cancel))
        for item, false in items:
            if false is not None:  # Ansible lists a skipped item in results too
                results.append(_skipped_item(step, item, false))
                continue
            result = self._attempts(node, spec, {**ctx_vars, step.loop_var: item}, cancel)
            result.data = {**result.data, step.loop_var: item, "ansible_loop_var": step.loop_var}
            results.append(result)
            if cancel.is_set():
                break
        outcome = self._combine(node, results)
        if self.opts.check and outcome.status in (Status.FAILED, Status.TIMED_OUT) and node.id not in self._own_fault:
            unmade = dryrun.before(node, self._upstream_unmade(node.id))
            if unmade:  # rule 3 of opsbook.dryrun
                self._excuse(node, outcome, unmade)
        outcome.started, outcome.finished = start, time.time()
        if self.opts.diff:
            self._show_diffs(node, results)
        if outcome.status is Status.OK and node.host and step.keep_healthy is not None and not self.opts.check:
            self._out_of_pool.take_out(step.id, node.host)
        if node.id in self._abandoned:
            # The run already recorded this node timed out and moved on: keep that history,
            # note what the action finally did.
            self.journal.event(self.run_id, "late_result", node.id,
                               {"status": outcome.status.value,
                                "msg": HIDDEN if step.no_log else self.secrets.redact(outcome.result.msg)})
            outcome.recorded = True
            return outcome
        dry = self.opts.check if step.check_mode is None else step.check_mode
        undo = outcome.status is Status.OK and not dry and bool(step.rollback or spec.inverse)
        if undo:
            self._record_rollback(node, spec, ctx_vars, results)
        # The result is deferred to the next journal write (a scheduling round, or the next
        # start a worker takes on, see _settle), which commits it before that start; a node
        # that registered its undo commits its result at once, next to that undo.
        self._record(node, outcome, buffered=pure or (node.id in self._ahead and not undo))
        return outcome

    @staticmethod
    def _excuse(node: Node, outcome: Outcome, unmade: list[dryrun.Unmade]) -> None:
        dryrun.excuse(outcome.result, unmade)
        outcome.status = Status.UNKNOWN
        outcome.notify = []
        if outcome.registered is not None:
            items = outcome.registered.get("results")
            outcome.registered = outcome.result.registered()
            if items is not None:
                outcome.registered["results"] = items

    def _show_diffs(self, node: Node, results: list[Result]) -> None:
        """--diff: what each change did (or would do), in the live output and the journal
        (`show` and the report print it)."""
        diffs = [r.diff for r in results if r.diff]
        if not diffs:
            return
        text = HIDDEN if node.step.no_log else self.secrets.redact("\n".join(diffs))
        self.journal.event(self.run_id, "diff", node.id, {"step": node.step.name, "host": node.host, "diff": text})
        self.emit("node_diff", node, diff=text)

    @staticmethod
    def _false_condition(step: Any, ctx_vars: Mapping[str, Any]) -> Any:
        """The first `when` condition that is false, or None when all hold."""
        for cond in step.when:
            if not truthy(cond if isinstance(cond, bool) else evaluate(cond, ctx_vars, step.pos)):
                return cond
        return None

    def _write_ahead(self, node: Node) -> None:
        if node.id not in self._ahead:  # else it was written when the node was handed out
            # with everything that happened before this side effect, in one transaction
            self.flush(started=[node])
        self.emit("node_started", node)

    def _attempts(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], cancel: threading.Event) -> Result:
        step = node.step
        delay = step.delay
        attempt = 0
        while True:
            attempt += 1
            result = self._call(node, spec, ctx_vars, cancel)
            result.msg = self.secrets.redact_error(result.msg)  # parsers quote pieces of a secret
            result.attempts = attempt
            if result.status is Status.UNKNOWN and step.changed_when:
                result.changed = self._changed_unknown(step, ctx_vars)
            if result.status is Status.UNKNOWN or cancel.is_set():
                return result
            try:
                result = self._apply_overrides(step, result, ctx_vars)
                if step.until:
                    view = {**ctx_vars, "result": result.registered()}
                    if step.register:
                        view[step.register] = view["result"]
                    if truthy(evaluate(step.until, view, step.pos)):
                        result.status = Status.OK if result.status is not Status.TIMED_OUT else result.status
                        return result
                    if attempt > max(step.retries, 0):
                        result.status = Status.FAILED
                        result.msg = (f"until: {step.until} still false after {attempt} attempts"
                                      + self._seen(step, [step.until], view)
                                      + (f" (last: {result.msg})" if result.msg else ""))
                        return result
                elif not result.failed_ or attempt > step.retries:
                    return result
            except UserError as exc:
                self._own_fault.add(node.id)
                return Result.failed(_user_message(exc))
            self.emit("node_output", node, line=f"attempt {attempt} failed, retrying in {delay:g}s: {result.msg}")
            if cancel.wait(delay):
                result.status = Status.TIMED_OUT
                return result
            delay *= step.backoff

    def _call(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], cancel: threading.Event) -> Result:
        step = node.step
        assert step.action is not None
        try:
            parsed = self._static_args.get(step.id)
            if parsed is None:
                args = self._render_args(spec, step.action.args, ctx_vars, step)
                parsed = spec.parse_args(args)
                if not step.loop and not holds_template(step.action.args) and not spec.expression_fields:
                    # Arguments without templates are the same on every host: validate once.
                    # (Actions treat their arguments as read-only.)
                    self._static_args[step.id] = parsed
        except UserError as exc:
            self._own_fault.add(node.id)
            return Result.failed(_user_message(exc))
        except Exception as exc:  # noqa: BLE001 - pydantic validation of rendered arguments
            self._own_fault.add(node.id)
            return Result.failed(f"{spec.full_name}: invalid arguments after rendering: {_pydantic_msg(exc)}")
        check = self.opts.check if step.check_mode is None else step.check_mode
        if check and not spec.supports_check:
            return Result.unknown(f"{spec.full_name} does not support check mode; it would run now")
        target = node.host or "localhost"
        try:
            if step.delegate_to:
                target = str(render(step.delegate_to, ctx_vars, pos=step.pos))
            where = self.hostinfo(target) if node.host else HostInfo("localhost", {})
        except UserError as exc:  # a delegate that is no inventory host: the step's failure, said plainly
            return Result.failed(f"delegate_to {target!r}: {_user_message(exc)} ({step.pos})")
        deadline = self._deadline.get(node.id)
        ctx = ActionContext(
            host=where,
            step_name=step.name, check_mode=check, diff_mode=self.opts.diff,
            timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
            cancelled=cancel, evidence_dir=self.opts.evidence_dir,
            become=self._become(step, ctx_vars), secrets=self.secrets, run_id=self.run_id,
            runbook_dir=self._runbook_dir, variables=ctx_vars, _connect=self.pool.get,
            _output=(lambda line: self.emit("node_output", node, line=line)) if self._wants_output else None,
            _lookup_host=self.hostinfo,
            _claim=lambda path: self._evidence.claim(path, self._writer(node, ctx_vars)),
        )
        start = time.monotonic()
        try:
            result = spec.fn(ctx, parsed)
        except OpsbookError as exc:
            result = Result.failed(_user_message(exc) if isinstance(exc, UserError) else str(exc))
        except Exception as exc:  # noqa: BLE001 - failures are values: report, don't crash the run
            result = Result.failed(f"{type(exc).__name__}: {exc}")
        result.duration = time.monotonic() - start
        past_deadline = deadline is not None and time.monotonic() >= deadline - 0.01
        if (cancel.is_set() or past_deadline) and result.status is not Status.OK and not self.interrupted:
            result.status = Status.TIMED_OUT
            if step.timeout:
                own = result.msg.strip()
                result.msg = f"timed out after {step.timeout:g}s" + (f": {own}" if own and "timed out" not in own else "")
            else:
                result.msg = result.msg or "cancelled"
        return result

    @staticmethod
    def _writer(node: Node, ctx_vars: Mapping[str, Any]) -> Writer:
        """Who writes evidence now: the node, and with `loop:` the item (retries are the same)."""
        step = node.step
        item = None if step.loop is None else short_value(ctx_vars.get(step.loop_var))
        return Writer(node.id, step.name, node.host, item)

    @staticmethod
    def _render_args(spec: ActionSpec, args: Any, ctx_vars: dict[str, Any], step: Any) -> Any:
        return render_args(spec, args, ctx_vars, step.pos)

    def _become(self, step: Any, ctx_vars: Mapping[str, Any]) -> Become | None:
        become = step.become if step.become is not None else bool(ctx_vars.get("ansible_become", False))
        if not become:
            return None
        password = ctx_vars.get("ansible_become_password") or ctx_vars.get("ansible_become_pass")
        if password:
            self.secrets.add("become_password", str(password))
        return Become(step.become_user or str(ctx_vars.get("ansible_become_user", "root")),
                      str(password) if password else None)

    @staticmethod
    def _changed_unknown(step: Any, ctx_vars: dict[str, Any]) -> bool:
        """`changed_when` of a step check mode did not run: decided when it does not read
        the step's own result (`changed_when: false`), else it may change (True)."""
        own = {"result"} | ({step.register} if step.register else set())
        for cond in step.changed_when:  # ANDed: one that is decidably false decides
            try:
                if isinstance(cond, str) and referenced_names(cond, expression=True) & own:
                    continue
                if not truthy(cond if isinstance(cond, bool) else evaluate(cond, ctx_vars, step.pos)):
                    return False
            except UserError:
                continue
        return True

    def _apply_overrides(self, step: Any, result: Result, ctx_vars: dict[str, Any]) -> Result:
        if not (step.failed_when or step.changed_when):
            return result
        view = {**ctx_vars, "result": result.registered()}
        if step.register:
            view[step.register] = view["result"]
        if step.changed_when:
            result.changed = all(truthy(c if isinstance(c, bool) else evaluate(c, view, step.pos)) for c in step.changed_when)
        if step.failed_when:
            fail = all(truthy(c if isinstance(c, bool) else evaluate(c, view, step.pos)) for c in step.failed_when)
            if fail:
                why = "failed_when: " + " and ".join(map(str, step.failed_when)) + self._seen(step, step.failed_when, view)
                result.msg = why + (f"; {result.msg}" if result.msg else "")
            if fail and result.status is Status.OK:
                result.status = Status.FAILED
            elif not fail and result.status is Status.FAILED:
                result.status = Status.OK
        return result

    def _seen(self, step: Any, conditions: Iterable[Any], view: Mapping[str, Any]) -> str:
        """` (out.rc = 1, out.stdout = '...')`: what a condition read, redacted and short;
        nothing for a `no_log` step."""
        if step.no_log:
            return ""
        values = expression_values(conditions, view, redact=self.secrets.redact_any)
        return f" ({values})" if values else ""

    def _combine(self, node: Node, results: list[Result]) -> Outcome:
        step = node.step
        if step.loop is None:
            result = results[0]
            wanted = step.register is not None or step.run_once
            registered = result.registered() if wanted else None
        else:
            worst = next((r for r in results if r.status in (Status.TIMED_OUT, Status.FAILED)), None) or \
                next((r for r in results if r.status is Status.UNKNOWN), None)
            skipped = sum(r.status is Status.SKIPPED for r in results)
            summary = f"{len(results)} items" + (f" ({skipped} skipped)" if skipped else "")
            result = Result(status=worst.status if worst else Status.OK, changed=any(r.changed for r in results),
                            msg=worst.msg if worst else summary,
                            stdout=clip_text("\n".join(r.stdout for r in results if r.stdout)),
                            stderr=clip_text("\n".join(r.stderr for r in results if r.stderr)))
            for r in results:
                result.facts.update(r.facts)
                result.evidence.extend(r.evidence)
            registered = result.registered()
            registered["results"] = [r.registered() for r in results]
        notify = list(step.notify) if result.changed and result.status is Status.OK else []
        out = Outcome(result.status, result, registered, notify)
        return out

    def flush(self, started: Iterable[Node] = (), finished: Iterable[NodeRecord] = ()) -> None:
        """Write deferred results, then `finished` and the starts of `started`, in one transaction."""
        self.journal.record_nodes(self.run_id, list(finished), [(n.id, n.step.id, n.host) for n in started])

    def _record(self, node: Node, outcome: Outcome, buffered: bool = False) -> None:
        step = node.step
        r = outcome.result
        # The registered value when something reads it back (register, run_once, a loop's
        # items); else only the action's own data (the report looks for data times there):
        # stdout and stderr have their own columns.
        read_back = step.register is not None or step.run_once or step.loop is not None
        kept = outcome.registered if read_back else (r.data or None)
        redact = self.secrets.redact
        hide = step.no_log
        rec = NodeRecord(
            node_id=node.id, step_id=step.id, host=node.host, status=outcome.status.value,
            started=outcome.started or time.time(), finished=outcome.finished or time.time(),
            attempts=r.attempts, changed=r.changed, rc=r.rc,
            msg=HIDDEN if hide and r.msg else redact(r.msg),
            stdout="" if hide else redact(r.stdout), stderr="" if hide else redact(r.stderr),
            registered=None if kept is None else ({"hidden": True} if hide else self.secrets.redact_any(kept)),
            facts=({k: HIDDEN for k in r.facts} if hide else self.secrets.redact_any(r.facts)) if r.facts else {},
            notify=outcome.notify)
        outcome.recorded = True
        if buffered and not r.evidence:
            if self.journal.defer(self.run_id, rec) >= 1000:
                self.flush()
            return
        self.flush(finished=[rec])
        for ev in r.evidence:
            from opsbook.evidence import describe_file

            self.journal.event(self.run_id, "evidence", node.id,
                               {"path": ev.path, "source": HIDDEN if hide else redact(ev.source),
                                "description": HIDDEN if hide and ev.description else redact(ev.description),
                                "step": step.name, "host": node.host,
                                **describe_file(self.opts.evidence_dir, ev.path)})

    # -- safety pre-flight (keep_healthy) ----------------------------------------------------
    def _preflight(self, node: Node, ctx_vars: Mapping[str, Any]) -> Outcome | None:
        """Refuse to act when fewer than the minimum of healthy members would remain.

        Members are judged by their probe now; those this run took out and has not put back
        (see opsbook.preflight) count as out whatever the probe says."""
        step = node.step
        keep = step.keep_healthy
        assert keep is not None and node.host is not None
        try:
            group, members = self._pool_members(node, ctx_vars)
        except UserError as exc:
            return _outcome(Status.FAILED, f"keep_healthy: {_user_message(exc)}")
        taken = self._out_of_pool.out(step.id)
        others = [m for m in members if m != node.host and m not in taken]
        healthy: list[str] = []
        unhealthy: list[str] = []
        for member in others:
            ok, why = self._probe_member(node, member)
            (healthy if ok else unhealthy).append(member if ok else f"{member} ({why})")
        total = len(members)
        minimum, percent = keep.minimum, keep.percent
        if keep.template is not None:  # `min: "{{ params.min_in_pool }}"`
            from opsbook.load import count_or_percent

            try:
                minimum, percent = count_or_percent(str(render(keep.template, ctx_vars, pos=step.pos)))
            except UserError as exc:
                return _outcome(Status.FAILED, f"keep_healthy.min: {_user_message(exc)}")
            if minimum is None and percent is None:
                return _outcome(Status.FAILED, f"keep_healthy.min {keep.template!r} must render to a count like 2 or "
                                               f"a percentage like '50%' ({step.pos})")
        needed = int(minimum if minimum is not None else -(-total * (percent or 0) // 100))
        detail = {"group": group, "members": total, "healthy_others": healthy,
                  "unhealthy": unhealthy, "taken_out": sorted(taken & set(members)), "required": needed}
        self.journal.event(self.run_id, "preflight", node.id, detail)
        if len(healthy) >= needed:
            return None
        why = (f"refusing to take {node.host} out: only {len(healthy)} other healthy member(s) of "
               f"{group} would remain ({', '.join(healthy) or 'none'}); keep_healthy requires {needed}")
        if unhealthy:
            why += f"; unhealthy: {', '.join(unhealthy)}"
        if detail["taken_out"]:
            why += f"; taken out by this step and not yet put back: {', '.join(detail['taken_out'])}"
        return _outcome(Status.FAILED, why)

    def _pool_members(self, node: Node, ctx_vars: Mapping[str, Any]) -> tuple[str, list[str]]:
        """(how the group reads, its members): `keep_healthy.group` rendered like any
        templated field, or the step's own hosts."""
        keep = node.step.keep_healthy
        assert keep is not None
        if not keep.group:
            return "the step's hosts", list(node.leaf.hosts)  # type: ignore[union-attr]
        pattern = str(render(keep.group, ctx_vars, pos=node.step.pos))
        return pattern, [h.name for h in self.plan.inventory.match(pattern, position=node.step.pos)]

    def _probe_member(self, node: Node, member: str) -> tuple[bool, str]:
        keep = node.step.keep_healthy
        assert keep is not None
        info = self.hostinfo(member)
        if keep.probe is not None:
            name, raw_args = keep.probe.name, keep.probe.args
        elif info.vars.get("health_url"):
            name, raw_args = "probe.http", {"url": info.vars["health_url"]}
        else:
            return False, "no probe: set keep_healthy.probe or the host var health_url"
        spec = self.registry.action(name)
        if spec is None:
            return False, f"{name} is not installed"
        member_node = Node(node.id, node.kind, node.leaf, member, node.index)
        try:
            args = render(raw_args, self.context_for(member_node), pos=keep.probe.pos if keep.probe else None)
            ctx = ActionContext(host=info, step_name=f"pre-flight of {node.step.name}", timeout=10.0,
                                secrets=self.secrets, run_id=self.run_id, _connect=self.pool.get,
                                _lookup_host=self.hostinfo, check_mode=True)
            result = spec.fn(ctx, spec.parse_args(args))
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run means "not known healthy"
            return False, str(exc)
        return result.status is Status.OK, result.msg or result.status.value

    # -- approvals ---------------------------------------------------------------------------
    def _ask_approval(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any],
                      items: list[tuple[Any, Any]]) -> Outcome | None:
        """None when the step may act; else its outcome (denied, cancelled by a stop).

        A block's approval is asked once per host (see opsbook.gates); the block's later
        steps on that host reuse the decision. A loop is approved once per node, the
        approver shown the action rendered for each item that will run."""
        step = node.step
        try:
            prompt = str(render(step.approve, ctx_vars, pos=step.pos)) if step.approve else f"Run {step.name} on {node.host}?"
            args = (self._render_args(spec, step.action.args, ctx_vars, step) if step.loop is None  # type: ignore[union-attr]
                    else [self._render_args(spec, step.action.args, {**ctx_vars, step.loop_var: item}, step)  # type: ignore[union-attr]
                          for item, false in items if false is None])
        except UserError as exc:
            return _outcome(Status.FAILED, _user_message(exc))
        if step.no_log:  # neither shown to the approver nor recorded
            prompt, args = HIDDEN, HIDDEN
        block = self._blocks.get(step.approve_scope) if step.approve_scope else None
        request = ApprovalRequest(self.run_id, node.id, step.id, step.name, node.host, self.secrets.redact(prompt),
                                  spec.full_name, self.secrets.redact_any(args),
                                  block_id=step.approve_scope, block_name=block.name if block else None,
                                  started_by=self.started_by, cancelled=self._stop,
                                  runs_on=self._acting_host(node, ctx_vars) if step.delegate_to else None,
                                  steps=self._gate_steps(block, ctx_vars) if block else ())

        def announce(req: ApprovalRequest) -> None:
            self.journal.request_approval(self.run_id, req.node_id, req.step_id, req.prompt, req.detail())
            self.emit("approval_requested", node, prompt=req.prompt, action=req.action, args=req.args,
                      gate=req.gate, started_by=req.started_by, runs_on=req.runs_on, steps=list(req.steps))

        decision, asked = self.gates.decide(request, lambda: self.aborted, announce)
        if asked:
            who = decision.who if not decision.cancelled else f"cancelled: {decision.cancelled}"
            self.journal.record_decision(self.run_id, node.id, step.id, request.prompt,
                                         decision.approved, who, cancelled=bool(decision.cancelled))
            self.emit("approval_decided", node, approved=decision.approved, who=who, gate=request.gate,
                      cancelled=bool(decision.cancelled))
        if decision.cancelled:
            if asked:  # kept in the events too: a resume asks the gate again and replaces its row
                self.journal.event(self.run_id, "gate cancelled", node.id, {"gate": request.gate, "why": decision.cancelled})
            return _outcome(Status.SKIPPED, f"{NOT_RUN}the approval gate was cancelled ({decision.cancelled})")
        if not decision.approved:
            if asked:
                self.denied.append(node.id)
            return _outcome(Status.FAILED, f"not approved ({decision.who})")
        return None

    # -- resume: nodes that were running when opsbook died -----------------------------------
    def _in_doubt(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any]) -> Outcome | None:
        """None = run it again; an Outcome = settled without running."""
        confirmed = "*" in self.opts.confirm_rerun or node.id in self.opts.confirm_rerun
        if spec.idempotent or confirmed:
            return None
        if spec.supports_check:
            checker = Executor.__new__(Executor)
            checker.__dict__.update(self.__dict__)
            checker.opts = RunOptions(**{**self.opts.__dict__, "check": True})
            result = checker._call(node, spec, ctx_vars, threading.Event())
            if result.status is Status.OK and not result.changed:
                out = Outcome(Status.OK, result, result.registered())
                out.result.msg = "was running when opsbook stopped; check shows it is done"
                self._record(node, out)
                return out
            if result.changed and result.status in (Status.OK, Status.UNKNOWN):
                return None  # the check says it has not happened yet: run it
        msg = (f"was running when opsbook stopped and {spec.full_name} is not idempotent; "
               f"confirm a re-run with: opsbook resume {self.run_id} --confirm {node.id}")
        out = _outcome(Status.UNKNOWN, msg)
        self._record(node, out)
        self._abort(f"node {node.id} needs confirmation")
        return out

    # -- rollback ----------------------------------------------------------------------------
    def _record_rollback(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], results: list[Result]) -> None:
        """One undo per item done (a loop's rendered with its item bound), newest last."""
        step = node.step
        done = [(ctx_vars, results[0])] if step.loop is None else \
            [({**ctx_vars, step.loop_var: r.data.get(step.loop_var)}, r) for r in results if r.status is Status.OK]
        if step.rollback is not None:
            inverse_spec = self.registry.action(step.rollback.name)
            for scope, _result in done:
                try:
                    if inverse_spec is None:
                        raise UserError(f"{step.rollback.name} is not installed")
                    args = self._render_args(inverse_spec, step.rollback.args, scope, step)
                except UserError as exc:
                    self.emit("warning", node, message=f"rollback of {step.name} cannot be rendered: {exc.message}")
                    return
                self._add_rollback(node, step.rollback.name, args, self._acting_host(node, ctx_vars))
        elif spec.inverse is not None:
            for scope, result in done:
                try:
                    args = self._render_args(spec, step.action.args, scope, step)  # type: ignore[union-attr]
                    inverse = spec.inverse(spec.parse_args(args), result)
                except Exception:  # noqa: BLE001 - no inverse for this result
                    inverse = None
                if inverse is not None:
                    self._add_rollback(node, inverse[0], inverse[1], self._acting_host(node, ctx_vars))

    def _add_rollback(self, node: Node, action: str, args: Any, target: str | None) -> None:
        if not node.step.no_log:
            self.journal.add_rollback(self.run_id, node.id, node.host, action, self.secrets.seal(args), target=target)
            return
        # no_log: the arguments stay in this process only; after a crash the entry says so.
        seq = self.journal.add_rollback(self.run_id, node.id, node.host, action, HIDDEN, target=target)
        self._unrecorded_rollbacks[seq] = args

    def _gate_steps(self, block: Any, ctx_vars: dict[str, Any]) -> tuple[str, ...]:
        """What a block's approval covers: each of its steps, its action and where it runs."""
        out = []
        for child in block.block:
            where = ""
            if child.delegate_to:
                try:
                    where = f" on {render(child.delegate_to, ctx_vars, pos=child.pos)}"
                except UserError:
                    where = f" on {child.delegate_to}"
            out.append(f"{child.name}: {child.action.name if child.action else 'block'}{where}")
        return tuple(out)

    def _acting_host(self, node: Node, ctx_vars: dict[str, Any]) -> str | None:
        """Where the action really ran: the delegate when the step delegates."""
        if node.step.delegate_to:
            try:
                return str(render(node.step.delegate_to, ctx_vars, pos=node.step.pos))
            except UserError:
                return node.host
        return node.host

    def _rollback(self) -> int:
        """Undo what completed: per host the step acted for, newest first; hosts in parallel,
        except the hosts of a `serial` rollout, which are undone one batch at a time, newest
        batch first, as the rollout went: undoing every batch at once would take more hosts
        out of service together than `serial` and `keep_healthy` ever allowed.

        A delegated step's undo belongs to the host it acted for (the balancer's "put web1
        back" waits until web1's own changes are undone), and runs where the step ran."""
        entries = [e for e in self.journal.rollbacks(self.run_id) if e["status"] == "pending"]
        if not entries:
            return 0
        by_host: dict[str | None, list[dict[str, Any]]] = {}
        for entry in entries:
            by_host.setdefault(entry["host"], []).append(entry)
        self.emit("rollback_started", count=len(entries))
        waves: dict[int, list[list[dict[str, Any]]]] = {}
        for items in by_host.values():
            waves.setdefault(self._rollback_wave(items), []).append(list(reversed(items)))
        done = 0
        for wave in sorted(waves, reverse=True):  # the newest serial batch first; -1 (no serial) last
            hosts = waves[wave]
            with ThreadPoolExecutor(max_workers=max(1, min(self.opts.forks, len(hosts))),
                                    thread_name_prefix="rollback") as workers:
                done += sum(f.result() for f in [workers.submit(self._rollback_host, items) for items in hosts])
        return done

    def _rollback_wave(self, items: list[dict[str, Any]]) -> int:
        """The serial batch (its index) a host's undos belong to, or -1 when none was serial."""
        wave = -1
        for entry in items:
            origin = self.plan.nodes.get(entry["node_id"])
            leaf = origin.leaf if origin is not None else None
            if leaf is not None and leaf.serial_owner is not None:
                index = next((k for k, batch in enumerate(leaf.batches) if entry["host"] in batch), -1)
                wave = max(wave, index)
        return wave

    def _rollback_host(self, entries: list[dict[str, Any]]) -> int:
        """One host's undos, newest first. After one fails, the older ones are not run: the host
        is in a state nobody planned for, and an older undo (put it back into the balancer's
        pool) must not put it back into service on a change that could not be undone."""
        done = 0
        failed_first = ""
        for entry in entries:
            spec = self.registry.action(entry["action"])
            seq = entry["seq"]
            origin = self.plan.nodes.get(entry["node_id"])
            undoes = origin.step.name if origin is not None and origin.leaf is not None else entry["node_id"]
            if failed_first:
                msg = (f'not run: the undo of "{failed_first}" failed before it, so this host is left as it is; '
                       "undo by hand once it is safe")
                self.journal.rollback_status(self.run_id, seq, "skipped", msg)
                self._rolled_back(entry, undoes, "skipped", msg)
                continue
            if spec is None:
                msg = f"action {entry['action']} not installed"
                self.journal.rollback_status(self.run_id, seq, "failed", msg)
                self._rolled_back(entry, undoes, "failed", msg)
                failed_first = undoes
                continue
            self.journal.rollback_status(self.run_id, seq, "running")
            target = entry["target"]
            info = self.hostinfo(target) if target else HostInfo("localhost", {})
            become = None
            if origin is not None and origin.leaf is not None:  # undo with the privileges it was done with
                become = self._become(origin.step, self.context_for(origin))
            ctx = ActionContext(host=info, step_name=f"rollback of {undoes}", secrets=self.secrets, become=become,
                                timeout=ROLLBACK_TIMEOUT, runbook_dir=self._runbook_dir, run_id=self.run_id,
                                evidence_dir=self.opts.evidence_dir, _connect=self.pool.get,
                                _lookup_host=self.hostinfo)
            try:
                if seq in self._unrecorded_rollbacks:
                    args = self._unrecorded_rollbacks[seq]
                elif entry["args"] == HIDDEN:
                    raise UserError(f"its arguments were not recorded (the step has no_log: true) and this process "
                                    f"did not record them either: undo {entry['action']} by hand")
                else:
                    args = self.secrets.unseal(entry["args"])
                result = spec.fn(ctx, spec.parse_args(args))
            except UserError as exc:
                result = Result.failed(_user_message(exc))
            except Exception as exc:  # noqa: BLE001
                result = Result.failed(f"{type(exc).__name__}: {exc}")
            result.msg = self.secrets.redact_error(result.msg)  # parsers quote pieces of a secret
            status = "done" if result.status is Status.OK else "failed"
            self.journal.rollback_status(self.run_id, seq, status, self.secrets.redact(result.msg))
            self._rolled_back(entry, undoes, status, result.msg)
            done += status == "done"
            failed_first = failed_first or (undoes if status == "failed" else "")
        return done

    def _rolled_back(self, entry: dict[str, Any], undoes: str, status: str, msg: str) -> None:
        if status != "done":
            where = f" (on {entry['target']})" if entry.get("target") and entry["target"] != entry["host"] else ""
            self._rollback_problems.append(self.secrets.redact(
                f'undo of "{undoes}" for {entry["host"] or "localhost"}{where} {status}: {msg}'))
        self.emit("rollback_finished", host=entry["host"], target=entry["target"], action=entry["action"],
                  origin=entry["node_id"], step=undoes, status=status, msg=msg)


class _Workers:
    """Up to `size` threads that run submitted calls, started as the work needs them.

    ThreadPoolExecutor's futures are not needed here (a node hands its outcome back
    through the executor's queue), and a node is the engine's unit of work, so each
    submit is a queue put, nothing more."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._busy += 1
            if self._busy > len(self._threads) and len(self._threads) < self._size:
                thread = threading.Thread(target=self._loop, name=f"node-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._tasks.put((fn, args))

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            finally:
                with self._lock:
                    self._busy -= 1

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        """Wait for what runs (an abandoned node's action included), then stop the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


_NEVER = threading.Event()  # the cancel event of pure nodes: never set


def _inline(spec: ActionSpec, node: Node) -> bool:
    """Cheap pure actions run on the scheduler thread: no hand-off cost per node."""
    step = node.step
    return (spec.plugin == "local" and spec.name in ("noop", "set", "assert", "fail")
            and not step.approve and not step.retries and not step.timeout and not step.loop)


def tags_select(tags: Iterable[str], only: frozenset[str], skip: frozenset[str]) -> bool:
    """Ansible's tag selection: `always` runs unless skipped by name, `never` only when asked
    for by one of its tags; `all`, `tagged` and `untagged` select as in Ansible (a step with no
    tags is `untagged`)."""
    have = set(tags) or {"untagged"}
    only = only or frozenset({"all"})
    if "always" in have:
        run = True
    elif "all" in only and "never" not in have:
        run = True
    elif not have.isdisjoint(only):
        run = True
    elif "tagged" in only and have != {"untagged"} and "never" not in have:
        run = True
    else:
        run = False
    if run and skip:
        if "all" in skip:
            run = "always" in have and "always" not in skip
        elif not have.isdisjoint(skip):
            run = False
        elif "tagged" in skip and have != {"untagged"}:
            run = False
    return run


def _skipped_item(step: Any, item: Any, false: Any) -> Result:
    """A loop item whose `when` was false, as it appears in the registered results."""
    return Result(status=Status.SKIPPED, msg=f"when: {false} is false",
                  data={step.loop_var: item, "ansible_loop_var": step.loop_var})


def _unknown(reason: str) -> Outcome:
    """A node check mode leaves `unknown` without running it; its register says so too."""
    return _outcome(Status.UNKNOWN, reason, registered=Result.unknown(reason).registered())


def _outcome(status: Status, msg: str, registered: dict[str, Any] | None = None) -> Outcome:
    now = time.time()
    return Outcome(status, Result(status=status, msg=msg), registered, [], now, now)



def _user_message(exc: UserError) -> str:
    where = f" ({exc.position})" if exc.position else ""
    return exc.message + where


def _pydantic_msg(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors())
    return str(exc)
