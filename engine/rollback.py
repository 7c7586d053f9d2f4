"""Rollback: the undo entries a run records as its steps change state, and their replay.

Owns the pending entries (written to the journal as soon as a step's change is known: when
its action declares it with `ctx.changed(...)` before it waits, else next to the step's
result, whatever its status when the result says `changed`; see `UndoSlot`; a `no_log`
step's arguments are kept in this process only) and their order on
replay (`order`): per host the step acted for, newest first; hosts in parallel, except
the hosts of a `serial` rollout, which are undone one batch at a time, newest batch
first. After one undo of a host fails, that host's older undos are not run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opsbook.compile import Node
from opsbook.delegate import acting_host
from opsbook.errors import UserError
from opsbook.plugin import ActionContext, ActionSpec, Become, HostInfo, Result, Status
from opsbook.runtypes import RunServices, user_message
from opsbook.secrets import HIDDEN
from opsbook.variables import render_args

ROLLBACK_TIMEOUT = 300.0  # seconds each inverse action gets


def order(entries: list[dict[str, Any]], wave_of: Callable[[list[dict[str, Any]]], int]) -> list[list[list[dict[str, Any]]]]:
    """The replay order of pending journal entries (in the order they were recorded):
    waves run one after the other, each a list of hosts run in parallel, each host's
    entries newest first. `wave_of(host's entries)` is the serial batch the host's undos
    belong to (-1: none), and higher batches go first, -1 last."""
    by_host: dict[str | None, list[dict[str, Any]]] = {}
    for entry in entries:
        by_host.setdefault(entry["host"], []).append(entry)
    waves: dict[int, list[list[dict[str, Any]]]] = {}
    for items in by_host.values():
        waves.setdefault(wave_of(items), []).append(list(reversed(items)))
    return [waves[w] for w in sorted(waves, reverse=True)]


def undone_nodes(entries: list[dict[str, Any]], hosts: set[str]) -> list[str]:
    """The nodes of `hosts` whose change the run's rollback undid (each of their undo
    entries `done` by the rollback, not by a step of the run): a resume that continues
    these hosts runs them again first, so the steps after them find the state they left."""
    done: dict[str, bool] = {}
    for entry in entries:
        if entry["host"] not in hosts:
            continue
        by_rollback = entry["status"] == "done" and not entry["msg"].startswith("undone by step")
        done[entry["node_id"]] = done.get(entry["node_id"], True) and by_rollback
    return [node_id for node_id, undone in done.items() if undone]


class Rollbacks:
    """The undo entries of one run: recorded as steps complete, replayed on failure."""

    def __init__(self, svc: RunServices, become_for: Callable[[Node], Become | None]) -> None:
        self._svc = svc
        self._become_for = become_for  # an origin node's privileges (its rendered become settings)
        self._unrecorded: dict[int, Any] = {}  # rollback seq -> args of a no_log step
        self.problems: list[str] = []  # undos that failed or were not run (a human is needed)

    # -- recording (node runs) -----------------------------------------------------------
    def slot(self, node: Node, spec: ActionSpec, scope: dict[str, Any]) -> UndoSlot:
        """Where the undo of one call of a node's action (one loop item) is recorded."""
        return UndoSlot(self, node, spec, scope)

    def record_one(self, node: Node, spec: ActionSpec, scope: dict[str, Any], result: Result) -> tuple[bool, str]:
        """The undo of one call (`scope`: the node's variables, a loop's item bound), computed
        from `result`: the step's `rollback:` rendered, else the action's inverse. Returns
        (an undo was recorded, why the inverse could not be computed: the exception it raised)."""
        step = node.step
        if step.rollback is not None:
            inverse_spec = self._svc.registry.action(step.rollback.name)
            try:
                if inverse_spec is None:
                    raise UserError(f"{step.rollback.name} is not installed")
                args = render_args(inverse_spec, step.rollback.args, scope, step.pos)
                target = acting_host(node, scope)  # a loop may delegate per item
            except UserError as exc:
                self._svc.emit("warning", node, message=f"rollback of {step.name} cannot be rendered: {exc.message}")
                return False, ""
            self._add(node, step.rollback.name, args, target)
            return True, ""
        if spec.inverse is None:
            return False, ""
        try:
            args = render_args(spec, step.action.args, scope, step.pos)  # type: ignore[union-attr]
            inverse = spec.inverse(spec.parse_args(args), result)
            target = acting_host(node, scope)  # a loop may delegate per item
        except UserError as exc:  # the delegate: the undo would run on the wrong host
            return False, user_message(exc)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug: said, never swallowed
            return False, f"raised {type(exc).__name__}: {exc}"
        if inverse is None:
            return False, ""
        declared = spec.inverse_actions
        if declared is not None and inverse[0] not in declared:
            return False, (f"named {inverse[0]}, which is not among the actions it declares "
                           f"(inverse_actions: {', '.join(sorted(declared))})")
        self._add(node, inverse[0], inverse[1], target)
        return True, ""

    def _add(self, node: Node, action: str, args: Any, target: str | None) -> None:
        svc = self._svc
        if not node.step.no_log:
            svc.journal.add_rollback(svc.run_id, node.id, node.host, action, svc.secrets.seal(args), target=target)
            return
        # no_log: the arguments stay in this process only; after a crash the entry says so.
        seq = svc.journal.add_rollback(svc.run_id, node.id, node.host, action, HIDDEN, target=target)
        self._unrecorded[seq] = args

    # -- replay (after the run) ------------------------------------------------------------
    def replay(self) -> int:
        """Undo what completed (see the module docstring). A delegated step's undo belongs
        to the host it acted for (the balancer's "put web1 back" waits until web1's own
        changes are undone), and runs where the step ran. Returns how many were undone."""
        svc = self._svc
        entries = [e for e in svc.journal.rollbacks(svc.run_id) if e["status"] == "pending"]
        if not entries:
            return 0
        svc.emit("rollback_started", count=len(entries))
        done = 0
        for hosts in order(entries, self._wave):
            with ThreadPoolExecutor(max_workers=max(1, min(svc.opts.forks, len(hosts))),
                                    thread_name_prefix="rollback") as workers:
                done += sum(f.result() for f in [workers.submit(self._host, items) for items in hosts])
        return done

    def _wave(self, items: list[dict[str, Any]]) -> int:
        """The serial batch (its index) a host's undos belong to, or -1 when none was serial."""
        wave = -1
        for entry in items:
            origin = self._svc.plan.nodes.get(entry["node_id"])
            leaf = origin.leaf if origin is not None else None
            if leaf is not None and leaf.serial_owner is not None:
                index = next((k for k, batch in enumerate(leaf.batches) if entry["host"] in batch), -1)
                wave = max(wave, index)
        return wave

    def _host(self, entries: list[dict[str, Any]]) -> int:
        """One host's undos, newest first. After one fails, the older ones are not run: the host
        is in a state nobody planned for, and an older undo (put it back into the balancer's
        pool) must not put it back into service on a change that could not be undone."""
        svc = self._svc
        done = 0
        failed_first = ""
        for entry in entries:
            spec = svc.registry.action(entry["action"])
            seq = entry["seq"]
            origin = svc.plan.nodes.get(entry["node_id"])
            undoes = origin.step.name if origin is not None and origin.leaf is not None else entry["node_id"]
            if failed_first:
                msg = (f'not run: the undo of "{failed_first}" failed before it, so this host is left as it is; '
                       "undo by hand once it is safe")
                svc.journal.rollback_status(svc.run_id, seq, "skipped", msg)
                self._done(entry, undoes, "skipped", msg)
                continue
            if spec is None:
                msg = f"action {entry['action']} not installed"
                svc.journal.rollback_status(svc.run_id, seq, "failed", msg)
                self._done(entry, undoes, "failed", msg)
                failed_first = undoes
                continue
            svc.journal.rollback_status(svc.run_id, seq, "running")
            result = self._undo(entry, spec, origin, undoes)
            result.msg = svc.secrets.redact_error(result.msg)  # parsers quote pieces of a secret
            status = "done" if result.status is Status.OK else "failed"
            svc.journal.rollback_status(svc.run_id, seq, status, svc.secrets.redact(result.msg))
            self._done(entry, undoes, status, result.msg)
            done += status == "done"
            failed_first = failed_first or (undoes if status == "failed" else "")
        return done

    def _undo(self, entry: dict[str, Any], spec: ActionSpec, origin: Node | None, undoes: str) -> Result:
        svc = self._svc
        target = entry["target"]
        info = svc.hostinfo(target) if target else HostInfo("localhost", {})
        # undo with the privileges it was done with
        become = self._become_for(origin) if origin is not None and origin.leaf is not None else None
        # not the run's cancel token: a rollback runs because the run was stopped
        ctx = ActionContext(host=info, step_name=f"rollback of {undoes}", secrets=svc.secrets, become=become,
                            timeout=ROLLBACK_TIMEOUT, runbook_dir=svc.runbook_dir, run_id=svc.run_id,
                            src_dirs=origin.step.src_dirs if origin is not None and origin.leaf is not None else (),
                            evidence_dir=svc.opts.evidence_dir, _connect=svc.pool.get, _lookup_host=svc.hostinfo)
        try:
            seq = entry["seq"]
            if seq in self._unrecorded:
                args = self._unrecorded[seq]
            elif entry["args"] == HIDDEN:
                raise UserError(f"its arguments were not recorded (the step has no_log: true) and this process "
                                f"did not record them either: undo {entry['action']} by hand")
            else:
                args = svc.secrets.unseal(entry["args"])
            return spec.fn(ctx, spec.parse_args(args))
        except UserError as exc:
            return Result.failed(user_message(exc))
        except Exception as exc:  # noqa: BLE001
            return Result.failed(f"{type(exc).__name__}: {exc}")

    def _done(self, entry: dict[str, Any], undoes: str, status: str, msg: str) -> None:
        svc = self._svc
        if status != "done":
            where = f" (on {entry['target']})" if entry.get("target") and entry["target"] != entry["host"] else ""
            self.problems.append(svc.secrets.redact(
                f'undo of "{undoes}" for {entry["host"] or "localhost"}{where} {status}: {msg}'))
        svc.emit("rollback_finished", host=entry["host"], target=entry["target"], action=entry["action"],
                 origin=entry["node_id"], step=undoes, status=status, msg=msg)


class UndoSlot:
    """The undo of one call of a node's action (one loop item, all its attempts): recorded
    at most once, in the journal at once (a crash or a resume sees it), when the first of
    these happens:

    - the action declares its change while it runs (`ctx.changed(**data)`, before it waits
      or verifies): the inverse is computed from `Result(changed=True, data=data)`;
    - an attempt that changed state fails and is retried (before the retry's delay);
    - the call ends: a result that is ok (as always), or any result that says `changed`
      (failed, timed out, abandoned by the step's timeout: changed state keeps its undo).

    Never in check mode (the node runner makes no slot then)."""

    def __init__(self, rollbacks: Rollbacks, node: Node, spec: ActionSpec, scope: dict[str, Any]) -> None:
        self._rollbacks = rollbacks
        self.node = node
        self.spec = spec
        self.scope = scope
        self.recorded = False
        self.problem = ""  # why the inverse could not be computed (the exception it raised)
        self._lock = threading.Lock()  # the action's thread declares; the node's thread settles

    def declare(self, data: Mapping[str, Any]) -> None:
        """`ctx.changed(**data)`: the action changed state; record its undo now."""
        self._record(Result(status=Status.OK, changed=True, data=dict(data)))

    def settle(self, result: Result, final: bool = True) -> None:
        """An attempt's result: its undo is recorded when it changed state, or (`final`) when
        the call ends ok. A result that is neither records nothing."""
        if result.changed or (final and result.status is Status.OK):
            self._record(result)

    def _record(self, result: Result) -> None:
        with self._lock:
            if self.recorded:
                return
            self.recorded, problem = self._rollbacks.record_one(self.node, self.spec, self.scope, result)
            self.problem = "" if self.recorded else (problem or self.problem)
