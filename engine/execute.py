"""Execute stage: run a Plan's nodes as soon as their dependencies are done.

Concurrency lives here and only here. `Executor` wires the units of a run together (see
docs/design.md, "The executor in parts") and owns the run state: what is in flight, each
node's status, the run's stop and cancel tokens. Run state is changed under one lock: by
the scheduler thread, which hands ready nodes to workers, and by a worker when its node
ends, which folds the outcome in and runs the same host's next node itself when that is
ready at once (a host's steps one after the other, without a hand-off per step). The
journal is written ahead: a node's start is committed before its side effect begins, its
result after; rollback entries are committed with the result.

The units: `scheduler` (ready nodes, thresholds, deadlines, workers), `noderun` (one node),
`gates` (approvals), `preflight` (`keep_healthy`), `rollback`, `hoststate`, `cancel`.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opsbook.abandon import Stragglers, give_up
from opsbook.cancel import CancelToken
from opsbook.compile import ACTION, BARRIER, HANDLER, Node, Plan, fact_names
from opsbook.counts import FAILED, is_ignored, tally
from opsbook.errors import JournalError
from opsbook.events import Event, Listener, wants_output
from opsbook.evidence import EvidenceClaims
from opsbook.flow import META_ACTION, handled, meta_of, notify, pending
from opsbook.gates import ApprovalGates, ApprovalRequest, Approver
from opsbook.hoststate import HostState, HostStates
from opsbook.journal import Journal, NodeRecord
from opsbook.noderun import NodeRunner, NodeTicket, inline
from opsbook.plugin import HostInfo, Status
from opsbook.registry import Registry
from opsbook.rescues import Rescues
from opsbook.rollback import Rollbacks
from opsbook.runtypes import (
    IN_DOUBT,
    NOT_RUN,
    ConnectionPool,
    Outcome,
    RunClock,
    RunOptions,
    RunServices,
    RunSummary,
    outcome_of,
    stopped_before,
)
from opsbook.scheduler import Deadlines, Ready, Thresholds, Workers, tags_select
from opsbook.secrets import HIDDEN, SecretStore, register_plan

__all__ = [
    "IN_DOUBT",
    "NOT_RUN",
    "ApprovalRequest",
    "Approver",
    "ConnectionPool",
    "Executor",
    "HostState",
    "Outcome",
    "RunOptions",
    "RunSummary",
    "stopped_before",
    "tags_select",
]


_FREEZE_AT = 10_000  # nodes from which a run freezes its plan for the garbage collector


class Executor:
    """Runs a plan; one instance per run."""

    def __init__(self, plan: Plan, registry: Registry, journal: Journal, run_id: str,
                 options: RunOptions | None = None, secrets: SecretStore | None = None,
                 listeners: Iterable[Listener] = (), approver: Approver | None = None,
                 prior: Mapping[str, NodeRecord] | None = None) -> None:
        self.plan = plan
        self.journal = journal
        self.run_id = run_id
        self.opts = options or RunOptions()
        self.secrets = register_plan(plan, secrets or SecretStore())  # before the first render
        self.listeners = list(listeners)
        self.prior = dict(prior or {})
        self.pool = ConnectionPool(registry)
        self.states = HostStates(plan.inventory)
        self.clock = RunClock()
        self.svc = RunServices(plan, registry, journal, run_id, self.opts, self.secrets, self.pool, self.clock,
                               self.emit, self.states.info, Path(plan.runbook.path).resolve().parent)
        # One cancellation mechanism (see opsbook.cancel): a signal or the run's timeout sets
        # `cancel`; `stop` (nothing new starts, gates end) is its child, also set by an abort;
        # each running node's token is another child, also set by its own timeout.
        self.cancel = CancelToken()
        self.stop = self.cancel.child()
        self.statuses: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.ignored: set[str] = set()  # failed nodes of steps with ignore_errors (see opsbook.counts)
        self.rescued: set[str] = set()  # failed nodes their block's rescue answered, and it succeeded
        self.aborted = ""  # why nothing new starts ("" while the run goes on)
        self.ended = ""  # meta: end_play: which node ended the run (it succeeds unless a host failed)
        self.force_handlers = self.opts.force_handlers or plan.runbook.force_handlers
        self._tagging = bool(self.opts.tags or self.opts.skip_tags)  # else an untagged step always runs
        self.interrupted = False  # a signal stopped the run
        self.signal: int | None = None  # the signal that interrupted the run, if one did
        self._journal_error: JournalError | None = None
        self.gates = ApprovalGates(approver, options.four_eyes)
        self.deadlines = Deadlines(self.opts.timeout or plan.runbook.timeout)
        self.stragglers = Stragglers(self.opts.cancel_grace)  # cancelled actions that do not return
        self._doubtful: dict[str, str] = {}  # host -> the step abandoned in doubt there (see _abandon)
        self.thresholds = Thresholds(plan, self.opts.max_errors)
        self._lock = threading.Lock()  # run state: ready, in flight, statuses, host states
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()  # a worker left work for the scheduler
        self._ready: Ready | None = None
        self._inflight: dict[str, NodeTicket] = {}
        self._cause = ""  # the first failure of the run (see RunSummary.cause)
        self.rescues = Rescues(plan, self.statuses, self.messages)
        self.runner = NodeRunner(
            self.svc, self, self.states, self.gates, Rollbacks(self.svc, self._become_for), self.deadlines,
            self.prior, EvidenceClaims.from_journal(journal, run_id) if self.prior else EvidenceClaims(),
            wants_output(self.listeners))

    # -- what node runs may ask (opsbook.noderun.RunControl) ----------------------------------
    @property
    def started_by(self) -> str:
        """Who started the run (shown to approvers); set by the caller."""
        return self.runner.asker.started_by

    @started_by.setter
    def started_by(self, who: str) -> None:
        self.runner.asker.started_by = who

    @property
    def denied(self) -> list[str]:
        return self.runner.asker.denied

    def abort(self, reason: str) -> None:
        """Nothing new starts from here on (the first reason is kept); gates that wait end."""
        self.aborted = self.aborted or reason
        self.stop.set(self.aborted)

    def interrupt(self, reason: str = "interrupted", signum: int | None = None) -> None:
        """Ctrl-C / SIGTERM: stop scheduling, cancel every wait (an approval gate, a retry
        delay, an action, a pre-flight), then roll back."""
        self.interrupted = True
        self.signal = self.signal or signum
        self.abort(reason)
        self.cancel.set(reason)

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

    def _targets(self) -> list[str]:
        """Where the steps go (a cluster's context and API server): the run's header shows it."""
        if not self.listeners:
            return []
        from opsbook.targets import plan_targets

        try:
            return plan_targets(self.plan, self.svc.registry)
        except Exception:  # a description of the plan must never keep a run from starting
            return []

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> RunSummary:
        started = time.time()
        # the nodes `plan` and `show` count: step x host, not the scheduler's barriers
        self.emit("run_started", nodes=sum(n.kind != BARRIER for n in self.plan.nodes.values()),
                  runbook=self.plan.runbook.name, targets=self._targets(), check=self.opts.check)
        timed_out = False
        # A large plan (its nodes, steps and the registry) lives through the run: collected
        # once and frozen, the garbage collector no longer walks it at each older collection
        # (bench/README.md). Not for small plans: the one full collection would cost more
        # than it saves (and freezing without it keeps earlier garbage alive: a process that
        # runs many small runs grew by 60 MB over 1,000 runs, tests/reliability/test_load.py).
        frozen = len(self.plan.nodes) >= _FREEZE_AT
        if frozen:
            gc.collect()
            gc.freeze()
        try:
            with Workers(max(1, self.opts.forks)) as workers:
                try:
                    timed_out = self._schedule(workers)
                finally:
                    if self._journal_error is None:
                        self.runner.flush()
            if self._journal_error is not None:
                raise self._journal_error  # no rollback without a journal to record it in
            status = self._status(timed_out)
            rolled = 0
            if self.opts.rollback == "always" or (self.opts.rollback == "on-failure" and status != "succeeded"):
                if not self.opts.check:
                    rolled = self.runner.rollbacks.replay()
        finally:
            if frozen:
                gc.unfreeze()  # collectable again once the run is over (a process may run more)
            self.pool.close()
        nodes = self.plan.nodes
        ignored, rescued = self.ignored, self.rescued
        counts = tally((st, n in ignored, n in rescued) for n, st in self.statuses.items() if nodes[n].kind != BARRIER)
        failed = [n for n, st in self.statuses.items() if st in FAILED and n not in ignored and n not in rescued]
        summary = RunSummary(self.run_id, status, counts, failed, started, time.time(), rolled, self.aborted,
                             list(self.denied), self.signal, self._cause if status != "succeeded" else "",
                             list(self.runner.rollbacks.problems), self.clock.elapsed(),
                             [n for n in self.statuses if n in ignored],
                             [n for n, st in self.statuses.items() if n in rescued and st in FAILED])
        self.emit("run_finished", status=status, counts=counts, rolled_back=rolled, message=self.aborted)
        return summary

    def _status(self, timed_out: bool) -> str:
        if self.interrupted:
            return "interrupted"
        if timed_out:
            return "timed_out"
        if self.aborted:
            return "aborted"
        if self.states.any_failed():
            return "failed"
        return "succeeded"

    # -- scheduling (the scheduler thread) -----------------------------------------------------
    def _schedule(self, workers: Workers) -> bool:
        nodes = self.plan.nodes
        ready = self._ready = Ready(self.plan)
        inflight = self._inflight  # nodes handed to workers, not yet finished
        timed_out = False
        forks = max(1, self.opts.forks)
        lock = self._lock
        lock.acquire()
        try:
            waiting = ready.ids  # truthy while nodes are ready
            take, release = ready.take, ready.release
            while waiting or inflight:
                starting: list[Node] = []
                while waiting and len(inflight) + len(starting) < forks:
                    node = nodes[take()]
                    outcome = self._prepare(node)
                    if outcome is None:  # must really run
                        spec = self.runner.spec(node.step)
                        if spec is not None and inline(spec, node):
                            self._finish(node, self.runner.run(NodeTicket(node, self.cancel, pure=True)))
                            release(node.id)
                            continue
                        starting.append(node)
                        continue
                    self._finish(node, outcome)
                    release(node.id)
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
                expired, cancel = self.deadlines.check(inflight)
                if expired:
                    timed_out = True
                    self.abort("the run's timeout expired")
                    for ticket in inflight.values():
                        ticket.cancel.set("the run's timeout expired")
                for nid in cancel:
                    inflight[nid].cancel.set("timed out")
                if cancel or timed_out or self.cancel.is_set():  # a cancelled action that ignores it is given up
                    for stuck in self.stragglers.due(inflight):
                        self._abandon(stuck, workers)
        finally:
            lock.release()
        return timed_out

    def _abandon(self, ticket: NodeTicket, workers: Workers) -> None:
        """Give up a node whose action did not return within the grace period after it was
        cancelled (run state lock held; see opsbook.abandon): it is recorded in doubt, its
        thread is forsaken, and the run goes on without it."""
        if not give_up(ticket):
            return  # it returned meanwhile: its worker records it
        node = ticket.node
        self._inflight.pop(node.id, None)
        workers.forsake(ticket.worker)
        spec = self.runner.spec(node.step)
        action = spec.full_name if spec is not None else node.step.action.name  # type: ignore[union-attr]
        msg = self.stragglers.why(ticket, action)
        if self._journal_error is None:
            self.journal.event(self.run_id, "abandoned", node.id,
                               {"action": action, "step": node.step.name, "host": node.host,
                                "why": ticket.cancel.reason or "cancelled", "grace": self.stragglers.grace})
        self._finish(node, outcome_of(Status.UNKNOWN, msg))
        step = node.step
        if node.host is not None and not step.ignore_errors:  # the host's step did not complete
            self._cause = self._cause or f'"{step.name}" on {node.host}: {msg}'
            self._doubtful.setdefault(node.host, step.name)  # what it skips, a resume runs
            self._host_failed(node, self.states.state(node.host))
        assert self._ready is not None
        self._ready.release(node.id)

    def _start(self, starting: list[Node], workers: Workers) -> None:
        """End a scheduling round with one journal transaction, then hand `starting` to workers.

        The transaction holds the results deferred so far (see noderun) and the write-ahead
        of the nodes about to start, so a node's result is durable before anything after
        it starts, and a node's start before its action runs; workers wait for no commit
        of their own. Nodes that may wait for a human or a health check first (approve,
        keep_healthy), and in-doubt nodes of a resumed run, write their start themselves,
        right before they act.
        """
        ahead = [n for n in starting if self._starts_here(n)]
        if ahead or self.journal.deferring:
            try:
                self.runner.flush(started=ahead)
            except JournalError as exc:
                self._journal_failed(exc)
                for node in starting:
                    self._not_started(node)
                return
        written = {n.id for n in ahead}
        for node in starting:
            ticket = self._inflight[node.id] = NodeTicket(node, self.cancel.child(), ahead=node.id in written)
            workers.submit(self._worker, ticket)

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
        self.abort(f"the journal cannot be written: {exc}")

    def _not_started(self, node: Node) -> None:
        """A node handed out whose start the journal could not take (run state lock held)."""
        self._inflight.pop(node.id, None)
        out = outcome_of(Status.SKIPPED, f"{NOT_RUN}{self.aborted}")
        out.recorded = True  # the journal cannot take it
        self._finish(node, out)
        assert self._ready is not None
        self._ready.release(node.id)

    # -- workers -----------------------------------------------------------------------------
    def _worker(self, ticket: NodeTicket | None) -> None:
        me = threading.current_thread()
        while ticket is not None:
            node = ticket.node
            ticket.worker = me
            try:
                outcome = self.runner.run(ticket)
            except JournalError as exc:
                # Leave this node in doubt (its start may be recorded, its result is not).
                self._journal_failed(exc)
                outcome = outcome_of(Status.UNKNOWN, f"journal write failed: {exc}")
                outcome.recorded = True
            except BaseException as exc:  # noqa: BLE001 - a bug in a plugin must not hang the run
                outcome = outcome_of(Status.FAILED, f"internal error in {node.step.action.name}: {type(exc).__name__}: {exc}")  # type: ignore[union-attr]
            ticket = self._settle(ticket, outcome)

    def _settle(self, ticket: NodeTicket, outcome: Outcome) -> NodeTicket | None:
        """Fold a worker's finished node into the run state; return the same host's next
        node when it is ready now and can run here (its start committed), else None.

        The scheduler is woken only when there is something left for it: ready nodes this
        worker does not take, or the end of the run."""
        node = ticket.node
        ready = self._ready
        assert ready is not None
        with self._lock:
            if self._inflight.pop(node.id, None) is None:
                return None  # abandoned after its timeout: its late result is only noted
            self._finish(node, outcome)
            ready.release(node.id)
            follow = self._follow_on(node)
            if ready or not self._inflight:
                self._wake.put(None)
        try:
            # the results deferred so far (this node's among them), then the next start;
            # at the end of a host's run of nodes, the results alone: durable at once
            self.runner.flush(started=[follow.node] if follow is not None else [])
        except JournalError as exc:
            self._journal_failed(exc)
            if follow is not None:
                with self._lock:
                    self._not_started(follow.node)
                    self._wake.put(None)
            return None
        if follow is not None:
            follow.ahead = True
        return follow

    def _follow_on(self, node: Node) -> NodeTicket | None:
        """The node the worker that ran `node` takes next (run state lock held): the newest
        ready node when it is an ordinary action of the same host that must really run.
        Anything that may wait for a human or a health check, runs inline, or is skipped
        is left to the scheduler."""
        ready = self._ready
        assert ready is not None
        nid = ready.peek()
        if nid is None or self.aborted or self.interrupted:
            return None
        nxt = self.plan.nodes[nid]
        if nxt.host != node.host or nxt.kind != ACTION or not self._starts_here(nxt):
            return None
        spec = self.runner.spec(nxt.step)
        if spec is None or inline(spec, nxt) or self._prepare(nxt) is not None:
            return None
        ready.take()
        ticket = self._inflight[nxt.id] = NodeTicket(nxt, self.cancel.child())
        return ticket

    # -- per node decisions (run-state lock held) -------------------------------------------
    def _prepare(self, node: Node) -> Outcome | None:
        """An Outcome when the node does not need to run (barrier, skip, resumed), else None."""
        if node.kind == BARRIER:
            return outcome_of(Status.OK, "")
        prior = self.prior.get(node.id)
        if prior is not None and prior.status not in IN_DOUBT:
            return _restore(prior)
        step = node.step
        if node.host is None:
            return outcome_of(Status.SKIPPED, "no hosts matched")
        if self.opts.limit is not None and node.host not in self.opts.limit:
            return outcome_of(Status.SKIPPED, "not in --limit")
        leaf = node.leaf
        assert leaf is not None
        flushed = leaf.flush is not None  # a handler run by meta: flush_handlers, mid-run
        if self.aborted and (node.kind != HANDLER or flushed):
            return outcome_of(Status.SKIPPED, f"{NOT_RUN}{self.aborted}")
        if self.interrupted:
            return outcome_of(Status.SKIPPED, f"{NOT_RUN}interrupted")
        if self.ended:
            return outcome_of(Status.SKIPPED, f"end_play: the run was ended by {self.ended}")
        if node.kind != HANDLER and (step.tags or self._tagging) and \
                not tags_select(step.tags, self.opts.tags, self.opts.skip_tags):
            return outcome_of(Status.SKIPPED, "not selected by tags")  # a notified handler runs, as in Ansible
        state = self.states.view(node.host)
        if state.ended:
            return outcome_of(Status.SKIPPED, "end_host: this host's run ended")
        if node.kind == HANDLER:
            if not pending(state, step, leaf.handler_id or step.id):
                return outcome_of(Status.SKIPPED, "not notified")
            if state.failed and (flushed or not self.force_handlers):
                return outcome_of(Status.SKIPPED, "host failed earlier" + ("" if flushed else " (force_handlers: false)"))
            return None
        parts = node.leaf.sections  # type: ignore[union-attr]
        in_always = any(s.part == "always" for s in parts)
        for section in parts:
            failed_here = section.block_id in state.failed_blocks
            if section.part == "block" and failed_here:
                return self._after_doubt(node) or outcome_of(Status.SKIPPED, "an earlier step of this block failed")
            if section.part == "rescue" and not failed_here:
                # A host that failed before the block never ran it: say that, not "succeeded".
                why = "host failed earlier" if state.failed and not in_always else \
                    "rescue not needed: nothing in the block failed"
                return outcome_of(Status.SKIPPED, why)
        if state.failed and not in_always and meta_of(step) != "clear_host_errors":
            return self._after_doubt(node) or outcome_of(Status.SKIPPED, "host failed earlier")
        return None

    def _after_doubt(self, node: Node) -> Outcome | None:
        """A node skipped because an earlier step of its host was abandoned in doubt: not run
        yet rather than skipped for good, so the resume that settles that step runs it."""
        doubt = self._doubtful.get(node.host) if self._doubtful else None  # type: ignore[arg-type]
        return None if doubt is None else outcome_of(Status.SKIPPED, f'{NOT_RUN}"{doubt}" is in doubt on this host')

    def _finish(self, node: Node, outcome: Outcome) -> None:
        """Fold a node's outcome into the run state (run-state lock held)."""
        self.statuses[node.id] = outcome.status.value
        if self.deadlines.pending:
            self.deadlines.done(node.id)
        runner = self.runner
        if runner.dry.deps:
            runner.dry.note(node, outcome)
        if node.kind == BARRIER:
            return
        step = node.step
        restored = outcome.restored
        ignored = step.ignore_errors and is_ignored(outcome.status.value, True)
        if ignored:
            self.ignored.add(node.id)
        elif self.ignored:
            self.ignored.discard(node.id)  # run again (a resume): its new outcome counts
        if not restored and not outcome.recorded and node.host is not None and self._journal_error is None:
            runner.record(node, outcome, buffered=outcome.status is Status.SKIPPED)
        if outcome.result.msg:
            self.messages[node.id] = outcome.result.msg
        if node.host is None:
            return
        # run_once: the one result counts for every host the step was meant for (Ansible)
        unknown = step.name if outcome.status is Status.UNKNOWN else None
        for name in (node.leaf.scope or (node.host,)) if step.run_once else (node.host,):  # type: ignore[union-attr]
            self.states.record(name, step.register, outcome.registered, outcome.result.facts, unknown,
                               fact_names(step) if unknown else ())
        state = self.states.state(node.host)
        if outcome.notify:
            notify(state, outcome.notify)  # a run_once step notifies the host it ran on only (Ansible)
        if node.kind == HANDLER and outcome.status is not Status.SKIPPED:
            handled(state, node.leaf.handler_id or step.id)  # type: ignore[union-attr]
        if outcome.status is Status.OK and step.action is not None and step.action.name == META_ACTION:
            self._meta(node, state)
        if outcome.status is Status.OK:
            pool = runner.preflights.out_of_pool
            if restored and step.keep_healthy is not None:
                pool.take_out(step.id, node.host)
            pool.succeeded(step.id, node.host)
            undone = self.plan.undoes.get(step.id)
            if undone and not restored and not self.opts.check and self._journal_error is None:
                self.journal.undone_by(self.run_id, [f"{u}@{node.host}" for u in undone],
                                       f'undone by step "{step.name}"')
        if outcome.status in (Status.FAILED, Status.TIMED_OUT) and not ignored:
            if not self._cause:  # a rescued failure counts too: it is what the rescue answered
                self._cause = f'"{step.name}" on {node.host}: {self.secrets.redact(outcome.result.msg or outcome.status.value)}'
            self._host_failed(node, state)
        if self.listeners:
            self.emit("node_finished", node, status=outcome.status.value, msg=outcome.result.msg,
                      changed=outcome.result.changed, duration=round(outcome.duration, 6),
                      **({"show": True} if outcome.result.show else {}),
                      restored=restored, ignored=ignored,
                      **({"recorded_at": outcome.finished} if restored else {}))
        if self.rescues.pending:
            self._rescued(self.rescues.ended(node))

    def _rescued(self, node_ids: list[str]) -> None:
        """Failures whose block's rescue ran on their host and did not fail: counted
        `rescued` (see opsbook.counts), marked so in the journal (once: a resume restores
        the mark) and told to the listeners (run-state lock held)."""
        if not node_ids:
            return
        self.rescued.update(node_ids)
        prior = self.prior
        marks = [n for n in node_ids if not (n in prior and prior[n].rescued and prior[n].status in FAILED)]
        if marks and self._journal_error is None:
            self.journal.defer_rescued(self.run_id, marks)
        if self.listeners:
            for nid in node_ids:
                self.emit("node_rescued", self.plan.nodes[nid], status=self.statuses[nid],
                          restored=nid not in marks)

    def _meta(self, node: Node, state: HostState) -> None:
        """A meta step's node succeeded: apply its value (see opsbook.flow)."""
        value = meta_of(node.step)
        if value == "end_host":
            state.ended = True
        elif value == "end_play":
            self.ended = self.ended or f'"{node.step.name}" on {node.host}'
        elif value == "clear_host_errors":
            state.failed = False
            state.failed_blocks.clear()

    def _host_failed(self, node: Node, state: HostState) -> None:
        # Ansible's block semantics: the rest of each enclosing block is skipped up to the
        # innermost block that has a rescue; without one, the host has failed. A failure
        # that leaves a rescue is that rescue's failure (what it answered stays failed).
        for section in reversed(node.leaf.sections):  # type: ignore[union-attr]
            if section.part == "rescue":
                self.rescues.rescue_failed(section.block_id, node.host)  # type: ignore[arg-type]
            if section.part != "block":
                continue
            state.failed_blocks.add(section.block_id)
            if section.block_id in self.rescues.blocks:
                # handled by the block: no threshold counts it; its rescue's outcome decides its count
                self.rescues.take_over(section.block_id, node)
                return
        state.failed = True
        why = self.thresholds.host_failed(node)
        if why:
            self.aborted = why  # the newest threshold crossed is the one reported (as before)
            self.stop.set(why)
            # Nothing new starts from here on; what runs now finishes.
            self.emit("aborted", node, message=self.aborted, still_running=len(self._inflight))

    # -- what the rollback needs of the run ----------------------------------------------------
    def hostinfo(self, name: str) -> HostInfo:
        return self.states.info(name)

    def context_for(self, node: Node, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.runner.context_for(node, extra)

    def _become_for(self, origin: Node) -> Any:
        return self.runner.become(origin.step, self.runner.context_for(origin))


def _restore(prior: NodeRecord) -> Outcome:
    """A node the journal already holds a result for (resume): reuse it."""
    outcome = outcome_of(Status(prior.status) if prior.status in Status._value2member_map_ else Status.OK, prior.msg)
    outcome.registered = prior.registered
    outcome.result.facts = prior.facts
    outcome.result.changed = prior.changed
    outcome.notify = prior.notify
    outcome.started, outcome.finished = prior.started or 0.0, prior.finished or 0.0
    outcome.elapsed, outcome.at = prior.elapsed, prior.at
    outcome.restored = True
    return outcome

