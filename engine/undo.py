"""`opsbook rollback RUN`: undo what a finished run left changed, later, on purpose.

A run that succeeded (or ran with `--rollback never`) keeps the undos its steps recorded,
unused. The un-isolate step of every first response is exactly those undos, run once the
root cause is fixed. This module runs them as a new run linked to the first (its record says
`rollback_of`), in the order a failed run would (per host newest first, delegated undos with
the host they acted for, serial batches newest first; see opsbook.rollback), and writes each
outcome back to the first run's entries too, so `show` of either run says what happened.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from opsbook.errors import RunError
from opsbook.journal import Journal, RunRecord, new_run_id, whoami
from opsbook.registry import Registry
from opsbook.runtypes import RunSummary

UNDONE = ("pending", "kept")  # undos that never ran: the run succeeded, or --rollback never


@dataclass
class UndoPlan:
    """What `opsbook rollback RUN` would do: the run, its plan, the undos that never ran."""

    record: RunRecord
    plan: Any  # opsbook.compile.Plan of the first run (origins: privileges, serial batches)
    entries: list[dict[str, Any]]  # journal rollback rows, in the order they were recorded


def undo_plan(run_id: str, registry: Registry, journal: Journal, given_params: dict[str, Any],
              allow_changed: bool = False) -> UndoPlan:
    """The undos of `run_id` that never ran, or a RunError saying why there is nothing to do."""
    from opsbook.api import load_inventory_sources, load_runbook, make_plan

    journal.verify()
    record = journal.get_run(run_id)
    if record.status == "running":
        raise RunError(f"run {record.id} is still running: it rolls back by itself if it fails "
                       f"(opsbook show {record.id}); undo a run once it has ended")
    if record.options.get("check"):
        raise RunError(f"run {record.id} was a dry run (--check): it changed nothing, so there is nothing to undo")
    rows = journal.rollbacks(record.id)
    entries = [r for r in rows if r["status"] in UNDONE]
    if not entries:
        said = ", ".join(f"{n} {s}" for s, n in sorted(_count(rows).items())) or "none recorded"
        raise RunError(f"run {record.id} has nothing left to undo (its undos: {said})")
    runbook = load_runbook(record.runbook_path, registry)
    if runbook.digest != record.digest and not allow_changed:
        raise RunError(f"{record.runbook_path} changed since run {record.id}; the recorded undos are kept as "
                       "they were, but their steps' settings (become, serial batches) come from the file: "
                       "add --allow-changed to use the new version")
    missing = [n for n, v in record.params.items() if v == "********" and n not in given_params]
    if missing:
        raise RunError("secret parameters are not stored in the journal; pass them again: "
                       + ", ".join(f"--secret {n}=env:VAR" for n in missing))
    plan = make_plan(runbook, load_inventory_sources(list(record.inventory), registry),
                     {**record.params, **given_params})
    return UndoPlan(record, plan, entries)


def _count(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def rollback_run(undo: UndoPlan, registry: Registry, journal: Journal, request: Any) -> RunSummary:
    """Run `undo`'s entries as a new run (recorded, locked like the first run) and write each
    outcome back to the first run's entries."""
    from opsbook.execute import Executor

    first = undo.record
    new_id = new_run_id()
    options = request.options
    options.rollback = "always"
    journal.create_run(RunRecord(
        id=new_id, runbook_path=first.runbook_path, runbook_name=f"rollback of {first.runbook_name}",
        digest=first.digest, params=first.params, inventory=first.inventory,
        inventory_digest=first.inventory_digest, options={**first.options, "rollback_of": first.id, "check": False},
        status="running", started=time.time(), finished=None, who=whoami(), host=socket.gethostname(),
        pid=os.getpid(), objectives={}, incident_start=None, summary={}))
    moved = {journal.add_rollback(new_id, e["node_id"], e["host"], e["action"], e["args"], e["target"]): e["seq"]
             for e in undo.entries}
    journal.event(first.id, "rollback requested", data={"by_run": new_id, "by": whoami(), "undos": len(moved)})
    lock = f"run:{first.id}"
    journal.acquire(lock, new_id)  # the first run cannot be resumed while its changes are undone
    started = time.time()
    try:
        executor = Executor(undo.plan, registry, journal, new_id, options, request.secrets, request.listeners)
        try:
            executor.emit("run_started", nodes=0, runbook=f"rollback of {first.runbook_name} ({first.id})")
            done = executor.runner.rollbacks.replay()
        finally:
            executor.pool.close()
        problems = list(executor.runner.rollbacks.problems)
    finally:
        journal.release(lock, new_id)
    for row in journal.rollbacks(new_id):
        journal.rollback_status(first.id, moved[row["seq"]], row["status"],
                                f"{row['msg']} (by opsbook rollback: run {new_id})".strip())
    status = "succeeded" if not problems and done == len(moved) else "failed"
    message = f"undid {done} of {len(moved)} change(s) of run {first.id}"
    journal.set_run_status(new_id, status, {"message": message, "rolled_back": done, "rollback_of": first.id})
    executor.emit("run_finished", status=status, counts={}, rolled_back=done, message=message)
    return RunSummary(new_id, status, {}, [], started, time.time(), done, message, rollback_problems=problems)
