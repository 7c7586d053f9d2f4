"""Running one node: from its rendered arguments to its recorded outcome.

Owns what happens to one node once the scheduler hands it out: its template variables,
`when`, loops, check mode's rules (see opsbook.dryrun), a resume's in-doubt check, the
`keep_healthy` pre-flight and the approval gate in front of its action, `until`/`retries`
with their delays, the action call itself (an `ActionContext` whose `cancelled` is the
node's cancel token), `failed_when`/`changed_when`, its undo entries, and its journal
record. It is handed a `NodeTicket` (the node, its cancel token, whether its start is
written) and knows nothing of the scheduler's state: what runs beside it, what is ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opsbook import abandon, dryrun, facts
from opsbook.cancel import NEVER, CancelToken
from opsbook.compile import Node
from opsbook.counts import is_ignored
from opsbook.delegate import delegate_host
from opsbook.dryrun import DryRun
from opsbook.errors import OpsbookError, UserError
from opsbook.evidence import EvidenceClaims, Writer
from opsbook.gates import ApprovalGates
from opsbook.hoststate import HostStates
from opsbook.journal import NodeRecord
from opsbook.nodegate import GateAsker
from opsbook.nodeoutcome import (
    apply_overrides,
    changed_unknown,
    combine,
    excuse,
    false_condition,
    seen,
    skipped_item,
)
from opsbook.plugin import (
    ActionContext,
    ActionSpec,
    Become,
    HostInfo,
    Result,
    Status,
    clashing_data,
    truthy,
)
from opsbook.preflight import PreFlights
from opsbook.rollback import Rollbacks, UndoSlot
from opsbook.runtypes import (
    CANCELLED,
    IN_DOUBT,
    NOT_RUN,
    Outcome,
    RunServices,
    outcome_of,
    pydantic_msg,
    user_message,
)
from opsbook.secrets import HIDDEN
from opsbook.template import (
    evaluate,
    holds_template,
    render,
    short_value,
)
from opsbook.variables import EMPTY, Scope, builtin_names, render_args


@dataclass(slots=True)
class NodeTicket:
    """One node handed to a runner: all it is told about the run around it."""

    node: Node
    cancel: CancelToken  # set by a signal, the run's timeout or the step's `timeout:`
    ahead: bool = False  # its start is written already (by the scheduling round that handed it out)
    pure: bool = False  # no side effect: nothing to write ahead, nothing to cancel
    abandoned: bool = False  # the scheduler recorded it in doubt and moved on: its result is only noted
    settling: bool = False  # its action returned: the scheduler can no longer abandon it (opsbook.abandon)
    worker: Any = None  # the thread running it (a forsaken one, should it be abandoned)
    gathered: Any = None  # facts gathered for it first (opsbook.facts): recorded with its outcome
    gathering: float = 0.0  # seconds that gathering took: part of the node's duration


class NodeDeadlines(Protocol):
    """Where a node's `timeout:` is kept (opsbook.scheduler.Deadlines): the scheduler cancels
    the node's token when it passes."""

    def start(self, node_id: str, seconds: float) -> float: ...

    def get(self, node_id: str) -> float | None: ...



class RunControl(Protocol):
    """What a node run may ask of the run as a whole."""

    @property
    def aborted(self) -> str: ...  # why nothing new starts ("" while the run goes on)

    @property
    def interrupted(self) -> bool: ...  # a signal stopped the run

    stop: CancelToken  # set when nothing new may start: gates that wait end

    def abort(self, reason: str) -> None: ...


class NodeRunner:
    """Runs nodes of one run; one instance, called from any worker thread."""

    def __init__(self, svc: RunServices, control: RunControl, states: HostStates, gates: ApprovalGates,
                 rollbacks: Rollbacks, deadlines: NodeDeadlines, prior: Mapping[str, NodeRecord],
                 evidence: EvidenceClaims, wants_output: bool) -> None:
        self.svc = svc
        self.control = control
        self.states = states
        self.gates = gates
        self.rollbacks = rollbacks
        self.deadlines = deadlines  # on the monotonic clock (time.monotonic)
        self.opts = svc.opts
        self.prior = prior
        self.evidence = evidence
        self.wants_output = wants_output
        self.preflights = PreFlights(svc, self.context_for)
        self.dry = DryRun(svc, self.spec)
        self.asker = GateAsker(svc, gates, control)  # the approval gates (opsbook.nodegate)
        plan = svc.plan
        self._groups = {g: [h.name for h in plan.inventory.hosts_of(g)] for g in plan.inventory.groups}
        self._static_args: dict[str, Any] = {}
        self._specs: dict[str, ActionSpec | None] = {}
        self._renders: dict[str, bool] = {}
        self._gathers = plan.runbook.gather_facts  # the runbook's default (a step may say otherwise)

    # -- lookups (cached per step) -------------------------------------------------------
    def spec(self, step: Any) -> ActionSpec | None:
        """The action of a step (looked up once per step, not once per node)."""
        if step.id not in self._specs:  # an action that is not installed is looked up once too
            spec = self._specs[step.id] = self.svc.registry.action(step.action.name)
            if spec is not None:
                spec.prepare()
        return self._specs[step.id]

    def _needs_context(self, step: Any) -> bool:
        """Whether a step renders anything (cached): most steps of large plans do not."""
        known = self._renders.get(step.id)
        if known is None:
            known = bool(step.when or step.loop is not None or step.vars or step.until or step.failed_when
                         or step.changed_when or step.approve or step.delegate_to or step.rollback
                         or step.keep_healthy or step.register or self.svc.plan.runbook.vars
                         or holds_template(step.action.args if step.action else None)
                         or (step.action is not None and step.action.expression_fields)
                         or (step.action is not None and getattr(self.spec(step), "reads_vars", False)))
            self._renders[step.id] = known
        return known

    def _host_only(self, node: Node) -> dict[str, Any]:
        host = self.svc.hostinfo(node.host) if node.host else HostInfo("localhost", {})
        return host.vars  # type: ignore[return-value]  # read-only use: become settings

    def context_for(self, node: Node, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Template variables of a node, in the precedence of opsbook.variables (the plan
        view renders with the same)."""
        svc = self.svc
        name = node.host or "localhost"
        host = svc.hostinfo(name) if node.host else HostInfo("localhost", {})
        state = self.states.view(name)
        base = builtin_names(name, host.vars, self._groups, svc.plan.params, str(svc.runbook_dir))
        base.update(hostvars=self.states.hostvars, run={"id": svc.run_id, "check": self.opts.check},
                    ansible_check_mode=self.opts.check, ansible_verbosity=self.opts.verbosity,
                    **self._play_hosts(node))
        return Scope(base, svc.plan.runbook.vars, svc.plan.params, (state.facts, state.registered),
                     node.step.vars, extra or EMPTY).resolve()

    def _play_hosts(self, node: Node) -> dict[str, list[str]]:
        """Ansible's ansible_play_hosts(_all) and ansible_play_batch for a node: the step's
        hosts (its serial batch), without those that failed."""
        leaf = node.leaf
        if leaf is None:
            return {}
        every = list(leaf.scope or leaf.hosts)
        batch = next((list(b) for b in leaf.batches if node.host in b), every)
        alive = self.states.alive(every)
        return {"ansible_play_hosts_all": every, "ansible_play_hosts": alive, "play_hosts": alive,
                "ansible_play_batch": [h for h in batch if h in alive]}

    # -- one node --------------------------------------------------------------------------
    def run(self, ticket: NodeTicket) -> Outcome:
        node = ticket.node
        step = node.step
        asked = step.gather_facts if step.gather_facts is not None else self._gathers
        if not (asked and node.host and facts.wanted(step, self.svc.plan.runbook, self.states.view(node.host).facts)
                and not facts.gathers_itself(step, self.svc.registry)):
            return self._run(ticket, ticket.gathered or EMPTY)
        # The gathering is part of the node: its time is in the node's duration (see _act).
        wall, mono = time.time(), time.monotonic()
        found = facts.gather(self.svc, node.host, ticket.cancel, self.deadlines.get(node.id))
        ticket.gathering = time.monotonic() - mono
        if found.failed_:
            failed = outcome_of(found.status, found.msg)
            failed.started, failed.elapsed = wall, ticket.gathering
            return failed
        ticket.gathered = found.facts
        return facts.landed(self._run(ticket, found.facts), found.facts)

    def _run(self, ticket: NodeTicket, gathered: Mapping[str, Any]) -> Outcome:
        node = ticket.node
        step = node.step
        start = time.time()
        action = step.action
        assert action is not None
        spec = self.spec(step)
        if spec is None:
            return outcome_of(Status.FAILED, f"plugin action {action.name} is not installed")
        check = self.opts.check
        if check:
            unknown = self.dry.reads_unknown(node, self.states)
            if unknown is not None:
                return unknown
        try:
            ctx_vars = self.context_for(node, gathered) if gathered or self._needs_context(step) else self._host_only(node)
            if step.loop is None and not step.when:
                items: list[tuple[Any, Any]] = []  # the common case, without a call
            else:
                items, skipped = self._items(step, ctx_vars)
                if skipped is not None:
                    return skipped
        except UserError as exc:
            return outcome_of(Status.FAILED, user_message(exc))
        if check:
            unknown = self.dry.observes_unmade(node, spec)
            if unknown is not None:
                return unknown
        prior = self.prior.get(node.id)
        if prior is not None and prior.status in IN_DOUBT:
            resolved = self._in_doubt(node, spec, ctx_vars)
            if resolved is not None:
                return resolved
        if step.keep_healthy is not None and check:
            try:  # nothing is taken out in a dry run, but its group must resolve
                self.preflights.members(node, ctx_vars)
            except UserError as exc:
                return outcome_of(Status.FAILED, f"keep_healthy: {user_message(exc)}")
        if step.keep_healthy is not None and not check and step.approve is not None:
            refused = self.preflights.check(node, ctx_vars, ticket.cancel)  # don't ask a human for a refusal
            if refused is not None:
                return outcome_of(Status.FAILED, refused)
        if step.approve is not None and not check:
            denied = self.asker.ask(node, spec, ctx_vars, items)
            if denied is not None:
                return denied
        if step.keep_healthy is not None and not check:
            # The pre-flight and the action run under one lock per step, so two hosts of
            # the same step can never both pass the check and both be taken out.
            lock = self.preflights.lock(step.id)
            if not self.control.stop.acquire(lock):
                return outcome_of(Status.SKIPPED, f"{NOT_RUN}{self.control.aborted or 'interrupted'}")
            try:
                refused = self.preflights.check(node, ctx_vars, ticket.cancel)
                if refused is not None:
                    return outcome_of(Status.FAILED, refused)
                return self._act(ticket, spec, ctx_vars, items, start)
            finally:
                lock.release()
        return self._act(ticket, spec, ctx_vars, items, start)

    def _items(self, step: Any, ctx_vars: dict[str, Any]) -> tuple[list[tuple[Any, Any]], Outcome | None]:
        """A loop's (item, its false `when` or None), and the outcome when nothing runs."""
        if step.loop is None:
            false = false_condition(step, ctx_vars)
            if false is not None:
                out = outcome_of(Status.SKIPPED, f"when: {false} is false{seen(step, [false], ctx_vars, self.svc.secrets.redact_any)}")
                out.registered = Result(status=Status.SKIPPED).registered()
                return [], out
            return [], None
        # Ansible evaluates `when` once per item, with the item bound
        rendered = render(step.loop, ctx_vars, pos=step.pos)
        if not isinstance(rendered, list):
            return [], outcome_of(Status.FAILED, f"loop must render to a list, got {type(rendered).__name__}")
        if not rendered:  # Ansible skips a loop over nothing: no gate, no pre-flight, no action
            out = outcome_of(Status.SKIPPED, "loop: no items")
            out.registered = Result(status=Status.SKIPPED).registered()
            out.registered["results"] = []
            return [], out
        items = [(i, false_condition(step, {**ctx_vars, step.loop_var: i})) for i in rendered]
        if all(false is not None for _, false in items):
            out = outcome_of(Status.SKIPPED, "when: false for every item of the loop")
            out.registered = Result(status=Status.SKIPPED).registered()
            out.registered["results"] = [skipped_item(step, i, false).registered() for i, false in items]
            return items, out
        return items, None

    def _act(self, ticket: NodeTicket, spec: ActionSpec, ctx_vars: dict[str, Any], items: list[tuple[Any, Any]],
             start: float) -> Outcome:
        # Its duration runs from here (its start in the journal), after any approval wait,
        # on the monotonic clock.
        mono = time.monotonic()
        node = ticket.node
        step = node.step
        svc = self.svc
        if ticket.pure:  # no side effect: nothing to write ahead, nothing to cancel
            cancel = NEVER
            svc.emit("node_started", node)
        else:
            self._write_ahead(ticket)
            cancel = ticket.cancel
        if step.timeout:
            self.deadlines.start(node.id, step.timeout)
        results: list[Result] = []
        undos: list[tuple[UndoSlot, Result]] = []  # each call that may record an undo, and its result
        if step.loop is None:
            slot = self._undo_slot(node, spec, ctx_vars)
            results.append(self._attempts(node, spec, ctx_vars, cancel, slot))
            if slot is not None:
                undos.append((slot, results[0]))
        for item, false in items:
            if false is not None:  # Ansible lists a skipped item in results too
                results.append(skipped_item(step, item, false))
                continue
            scope = {**ctx_vars, step.loop_var: item}
            slot = self._undo_slot(node, spec, scope)
            result = self._attempts(node, spec, scope, cancel, slot)
            if slot is not None:
                undos.append((slot, result))
            result.data = {**result.data, step.loop_var: item, "ansible_loop_var": step.loop_var}
            results.append(result)
            if cancel.is_set():
                break
        outcome = combine(node.step, results)
        if ticket.gathered:
            facts.landed(outcome, ticket.gathered)
        if self.opts.check and outcome.status in (Status.FAILED, Status.TIMED_OUT) and node.id not in self.dry.own_fault:
            unmade = dryrun.before(node, self.dry.upstream(node.id))
            if unmade:  # rule 3 of opsbook.dryrun
                excuse(outcome, unmade)
        end = time.monotonic()
        outcome.started, outcome.finished = start - ticket.gathering, time.time()
        clock = svc.clock
        outcome.elapsed = end - mono + ticket.gathering  # facts gathered for it first included
        outcome.at = clock.wall0 + (end - clock.mono0)  # RunClock.at(end)
        if self.opts.diff:
            self._show_diffs(node, results)
        if outcome.status is Status.OK and node.host and step.keep_healthy is not None and not self.opts.check:
            self.preflights.out_of_pool.take_out(step.id, node.host)
        undo = bool(undos) and self._settle_undos(node, spec, outcome, undos)
        if not ticket.pure and not abandon.claim(ticket):
            # The run already recorded this node in doubt and moved on: keep that history,
            # note what the action finally did (its undo, if it changed state, is recorded above).
            svc.journal.event(svc.run_id, "late_result", node.id,
                              {"status": outcome.status.value,
                               "msg": HIDDEN if step.no_log else svc.secrets.redact(outcome.result.msg)})
            outcome.recorded = True
            return outcome
        # The result is deferred to the next journal write (a scheduling round, or the next
        # start a worker takes on), which commits it before that start; a node that
        # registered its undo commits its result at once, next to that undo.
        self.record(node, outcome, buffered=ticket.pure or (ticket.ahead and not undo))
        return outcome

    # -- undo: changed state keeps its undo (opsbook.rollback.UndoSlot) ---------------------
    def _undo_slot(self, node: Node, spec: ActionSpec, scope: dict[str, Any]) -> UndoSlot | None:
        """Where the undo of one call of the action is recorded, or None when nothing could
        be undone: no `rollback:` and no inverse, or a dry run (check mode records none)."""
        step = node.step
        if not (step.rollback or spec.inverse) or (self.opts.check if step.check_mode is None else step.check_mode):
            return None
        return self.rollbacks.slot(node, spec, scope)

    def _settle_undos(self, node: Node, spec: ActionSpec, outcome: Outcome,
                      undos: list[tuple[UndoSlot, Result]]) -> bool:
        """Record the undo of each call that ended ok or changed state (whatever its status),
        unless it was recorded while the action ran; a change whose undo could not be computed
        fails the step loudly. Returns whether any undo of this node is recorded."""
        for slot, result in undos:
            slot.settle(result)
        problem = next((slot.problem for slot, _ in undos if slot.problem), "")
        if problem:  # a change nothing would undo: a loud failure, never a silent success
            svc = self.svc
            msg = (f"{spec.full_name} changed something, but its undo could not be computed (its inverse "
                   f"{problem}): nothing is recorded to undo it; check the host and undo by hand")
            if outcome.status is Status.OK:
                outcome.status = outcome.result.status = Status.FAILED
            elif outcome.result.msg:
                msg += f"; {outcome.result.msg}"
            outcome.result.msg = svc.secrets.redact_error(msg)
            svc.journal.event(svc.run_id, "warning", node.id, {"message": outcome.result.msg})
        return any(slot.recorded for slot, _ in undos)

    def _show_diffs(self, node: Node, results: list[Result]) -> None:
        """--diff: what each change did (or would do), in the live output and the journal
        (`show` and the report print it)."""
        diffs = [r.diff for r in results if r.diff]
        if not diffs:
            return
        svc = self.svc
        text = HIDDEN if node.step.no_log else svc.secrets.redact("\n".join(diffs))
        svc.journal.event(svc.run_id, "diff", node.id, {"step": node.step.name, "host": node.host, "diff": text})
        svc.emit("node_diff", node, diff=text)

    def _write_ahead(self, ticket: NodeTicket) -> None:
        node = ticket.node
        if not ticket.ahead:  # else it was written when the node was handed out
            # with everything that happened before this side effect, in one transaction
            self.flush(started=[node])
        self.svc.emit("node_started", node)

    def _attempts(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], cancel: CancelToken,
                  undo: UndoSlot | None = None) -> Result:
        step = node.step
        delay = step.delay
        attempt = 0
        while True:
            attempt += 1
            result = self._call(node, spec, ctx_vars, cancel, undo=undo)
            if result.msg:
                result.msg = self.svc.secrets.redact_error(result.msg)  # parsers quote pieces of a secret
            result.attempts = attempt
            if result.status is Status.UNKNOWN and step.changed_when:
                result.changed = changed_unknown(step, ctx_vars)
            if result.status is Status.UNKNOWN or cancel.is_set():
                return result
            try:
                if step.failed_when or step.changed_when:
                    result = apply_overrides(step, result, ctx_vars, self.svc.secrets.redact_any)
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
                                      + seen(step, [step.until], view, self.svc.secrets.redact_any)
                                      + (f" (last: {result.msg})" if result.msg else ""))
                        return result
                elif not result.failed_ or attempt > step.retries:
                    return result
            except UserError as exc:
                self.dry.own_fault.add(node.id)
                return Result.failed(user_message(exc))
            if undo is not None:
                undo.settle(result, final=False)  # an attempt that changed state: its undo before the delay
            self.svc.emit("node_output", node, line=f"attempt {attempt} failed, retrying in {delay:g}s: {result.msg}")
            if cancel.wait(delay):
                result.status = Status.TIMED_OUT
                return result
            delay *= step.backoff

    def _call(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any], cancel: CancelToken,
              force_check: bool = False, undo: UndoSlot | None = None) -> Result:
        step = node.step
        svc = self.svc
        assert step.action is not None
        try:
            parsed = self._static_args.get(step.id)
            if parsed is None:
                args = render_args(spec, step.action.args, ctx_vars, step.pos)
                parsed = spec.parse_args(args)
                if not step.loop and not holds_template(step.action.args) and not spec.expression_fields:
                    # Arguments without templates are the same on every host: validate once.
                    # (Actions treat their arguments as read-only.)
                    self._static_args[step.id] = parsed
        except UserError as exc:
            self.dry.own_fault.add(node.id)
            return Result.failed(user_message(exc))
        except Exception as exc:  # noqa: BLE001 - pydantic validation of rendered arguments
            self.dry.own_fault.add(node.id)
            return Result.failed(f"{step.pos}: {spec.full_name}: invalid arguments after rendering: "
                                 f"{pydantic_msg(exc)}")
        check = (force_check or self.opts.check) if step.check_mode is None else step.check_mode
        if check and not spec.supports_check:
            return Result.unknown(f"{spec.full_name} does not support check mode; it would run now")
        target = node.host or "localhost"
        try:
            if step.delegate_to:
                target = delegate_host(step, ctx_vars, known=svc.hostinfo)
            where = svc.hostinfo(target) if node.host else HostInfo("localhost", {})
        except UserError as exc:  # a delegate that is no inventory host: the step's failure, said plainly
            return Result.failed(user_message(exc))
        deadline = self.deadlines.get(node.id)
        ctx = ActionContext(
            host=where,
            step_name=step.name, check_mode=check, diff_mode=self.opts.diff,
            timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
            cancelled=cancel, evidence_dir=self.opts.evidence_dir,
            become=self.become(step, ctx_vars), secrets=svc.secrets, run_id=svc.run_id,
            runbook_dir=svc.runbook_dir, src_dirs=step.src_dirs, variables=ctx_vars, _connect=svc.pool.get,
            _output=(lambda line: svc.emit("node_output", node, line=line)) if self.wants_output else None,
            _lookup_host=svc.hostinfo,
            _claim=lambda path: self.evidence.claim(path, _writer(node, ctx_vars)),
            _changed=None if undo is None else undo.declare,
        )
        start = time.monotonic()
        try:
            result = spec.fn(ctx, parsed)
        except OpsbookError as exc:
            result = Result.failed(user_message(exc) if isinstance(exc, UserError) else str(exc))
        except Exception as exc:  # noqa: BLE001 - failures are values: report, don't crash the run
            result = Result.failed(f"{type(exc).__name__}: {exc}")
            _keep_traceback(svc, node, spec, exc)
        if not isinstance(result, Result):  # a plugin bug: say which action returned what
            result = Result.failed(f"{spec.full_name} returned {type(result).__name__}, not an opsbook.plugin.Result "
                                   f"(its function must return Result.ok(...) or Result.failed(...))")
        elif result.data:  # a data key register: sets itself would be lost without a word
            result = clashing_data(spec.full_name, result)
        result.duration = time.monotonic() - start
        past_deadline = deadline is not None and time.monotonic() >= deadline - 0.01
        if cancel.is_set() and result.status is not Status.OK and self.control.interrupted:
            # A signal stopped the run: the action was cancelled, it did not time out
            # (resume runs it again, see runtypes.stopped_before).
            result.status = Status.FAILED
            own = result.msg.strip()  # what the action saw last, when it says more than "cancelled"
            result.msg = f"{CANCELLED}{cancel.reason or 'interrupted'}" + (
                f": {own}" if own and own.lower() not in ("cancelled", "cancelled (timeout)", "interrupted") else "")
        elif (cancel.is_set() or past_deadline) and result.status is not Status.OK:
            result.status = Status.TIMED_OUT
            if step.timeout:
                own = result.msg.strip()
                result.msg = f"timed out after {step.timeout:g}s" + (
                    f": {own}" if own and own != "cancelled" and "timed out" not in own else "")
            else:
                result.msg = result.msg or "cancelled"
        return result

    def become(self, step: Any, ctx_vars: Mapping[str, Any]) -> Become | None:
        become = step.become if step.become is not None else bool(ctx_vars.get("ansible_become", False))
        if not become:
            return None
        password = ctx_vars.get("ansible_become_password") or ctx_vars.get("ansible_become_pass")
        if password:
            self.svc.secrets.add("become_password", str(password))
        return Become(step.become_user or str(ctx_vars.get("ansible_become_user", "root")),
                      str(password) if password else None)

    # -- the journal -----------------------------------------------------------------------
    def flush(self, started: Iterable[Node] = (), finished: Iterable[NodeRecord] = ()) -> None:
        """Write deferred results, then `finished` and the starts of `started`, in one transaction."""
        self.svc.journal.record_nodes(self.svc.run_id, list(finished), [(n.id, n.step.id, n.host) for n in started])

    def record(self, node: Node, outcome: Outcome, buffered: bool = False) -> None:
        svc = self.svc
        step = node.step
        r = outcome.result
        # The registered value when something reads it back (register, run_once, a loop's
        # items); else only the action's own data (the report looks for data times there):
        # stdout and stderr have their own columns.
        read_back = step.register is not None or step.run_once or step.loop is not None
        kept = outcome.registered if read_back else (r.data or None)
        redact = svc.secrets.redact
        hide = step.no_log
        rec = NodeRecord(
            node_id=node.id, step_id=step.id, host=node.host, status=outcome.status.value,
            started=outcome.started or time.time(), finished=outcome.finished or time.time(),
            attempts=r.attempts, changed=r.changed, rc=r.rc,
            msg=(HIDDEN if hide else redact(r.msg)) if r.msg else "",
            stdout="" if hide or not r.stdout else redact(r.stdout),
            stderr="" if hide or not r.stderr else redact(r.stderr),
            registered=None if kept is None else ({"hidden": True} if hide else svc.secrets.redact_any(kept)),
            facts=({k: HIDDEN for k in r.facts} if hide else svc.secrets.redact_any(r.facts)) if r.facts else {},
            notify=outcome.notify, elapsed=outcome.elapsed, at=outcome.at if outcome.at is not None else svc.clock.now(),
            ignored=bool(step.ignore_errors) and is_ignored(outcome.status.value, True))
        outcome.recorded = True
        if buffered and not r.evidence:
            if svc.journal.defer(svc.run_id, rec) >= 1000:
                self.flush()
            return
        self.flush(finished=[rec])
        for ev in r.evidence:
            from opsbook.evidence import describe_file

            svc.journal.event(svc.run_id, "evidence", node.id,
                              {"path": ev.path, "source": HIDDEN if hide else redact(ev.source),
                               "description": HIDDEN if hide and ev.description else redact(ev.description),
                               "step": step.name, "host": node.host,
                               **describe_file(self.opts.evidence_dir, ev.path)})

    # -- resume: nodes that were running when opsbook died -----------------------------------
    def _in_doubt(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any]) -> Outcome | None:
        """None = run it again; an Outcome = settled without running."""
        opts = self.svc.opts
        confirmed = "*" in opts.confirm_rerun or node.id in opts.confirm_rerun
        if spec.idempotent or confirmed:
            return None
        if spec.supports_check:
            result = self._call(node, spec, ctx_vars, CancelToken(), force_check=True)
            if result.status is Status.OK and not result.changed:
                out = Outcome(Status.OK, result, result.registered())
                out.result.msg = "was running when opsbook stopped; check shows it is done"
                self.record(node, out)
                return out
            if result.changed and result.status in (Status.OK, Status.UNKNOWN):
                return None  # the check says it has not happened yet: run it
        msg = (f"was running when opsbook stopped and {spec.full_name} is not idempotent; "
               f"confirm a re-run with: opsbook resume {self.svc.run_id} --confirm {node.id}")
        out = outcome_of(Status.UNKNOWN, msg)
        self.record(node, out)
        self.control.abort(f"node {node.id} needs confirmation")
        return out


def _writer(node: Node, ctx_vars: Mapping[str, Any]) -> Writer:
    """Who writes evidence now: the node, and with `loop:` the item (retries are the same)."""
    step = node.step
    item = None if step.loop is None else short_value(ctx_vars.get(step.loop_var))
    return Writer(node.id, step.name, node.host, item)


def inline(spec: ActionSpec, node: Node) -> bool:
    """Cheap pure actions run on the scheduler thread: no hand-off cost per node."""
    step = node.step
    return (spec.plugin == "local" and spec.name in ("noop", "set", "assert", "fail")
            and not step.approve and not step.retries and not step.timeout and not step.loop)


def _keep_traceback(svc: Any, node: Node, spec: ActionSpec, exc: BaseException) -> None:
    """An action's unexpected exception, with its traceback, in the journal (`opsbook show
    RUN --debug` prints it) and, with OPSBOOK_DEBUG=1 (`opsbook --debug`), on stderr: the
    plugin's author sees where their code failed."""
    import os
    import sys
    import traceback

    text = svc.secrets.redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    svc.journal.event(svc.run_id, "action_exception", node.id,
                      {"action": spec.full_name, "step": node.step.name, "where": str(node.step.pos),
                       "traceback": text})
    if os.environ.get("OPSBOOK_DEBUG"):
        print(f"{spec.full_name} raised in step \"{node.step.name}\" ({node.step.pos}) on {node.host or 'localhost'}:\n"
              f"{text}", file=sys.stderr, flush=True)

