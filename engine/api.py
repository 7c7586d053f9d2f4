"""The stages wired together: what the CLI (and Python callers, and tests) use.

    runbook = load_runbook("runbooks/x.yaml", registry)
    plan = make_plan(runbook, load_inventory_sources(["inv.ini"]), {"primary": "db1"})
    summary = start_run(plan, registry, journal, RunOptions(), ...)
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.compile import Plan, compile_plan
from opsbook.errors import JournalError, RunError, RunLockedError, ValidationError
from opsbook.events import Listener
from opsbook.execute import Approver, Executor, RunOptions, RunSummary, stopped_before
from opsbook.journal import Journal, RunRecord, digest_files, new_run_id, whoami
from opsbook.load import RunbookLoader
from opsbook.model import Runbook
from opsbook.paths import private_dir, runs_dir
from opsbook.registry import Registry
from opsbook.rollback import undone_nodes
from opsbook.secrets import SecretStore, register_plan


def load_runbook(path: str, registry: Registry) -> Runbook:
    return RunbookLoader(registry).load_file(path)


def load_inventory_sources(sources: Sequence[str], registry: Registry | None = None) -> Any:
    """Inventory from files/dirs/host lists and dynamic sources (`docker://?label=...`)."""
    from opsbook.inventory import load_inventory

    if not sources:
        return load_inventory([])

    resolved = [_dynamic_source(s, registry) if _is_dynamic(s) else s for s in sources]
    return load_inventory(resolved)


def _is_dynamic(source: str) -> bool:
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.isidentifier() and not os.path.exists(source)


def _dynamic_source(source: str, registry: Registry | None) -> str:
    """Ask the plugin that serves the scheme; hand its hosts to the inventory loader as YAML."""
    import tempfile
    from urllib.parse import parse_qs, urlsplit

    import yaml
    from opsbook.errors import InventoryError, Position

    registry = registry or Registry.from_entry_points()
    scheme = source.partition("://")[0]
    provider = registry.inventory_source(scheme)
    if provider is None:
        schemes = sorted({s for p in registry.plugins.values() for s in p.inventory_sources})
        raise InventoryError(f'no plugin provides inventory source "{scheme}://"', Position(source),
                             "dynamic sources: " + (", ".join(f"{s}://" for s in schemes) or "none installed"))
    listing = provider(parse_qs(urlsplit(source).query))
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    children = {group: {"hosts": {h: None for h in data.get("hosts", [])}}
                for group, data in listing.items() if group not in ("_meta", "all", "ungrouped")}
    document = {"all": {"hosts": {h: v or None for h, v in hostvars.items()}, "children": children}}
    handle = tempfile.NamedTemporaryFile("w", prefix=f"opsbook-{scheme}-", suffix=".yaml", delete=False)
    with handle:
        yaml.safe_dump(document, handle)
    return handle.name


def make_plan(runbook: Runbook, inventory: Any, params: Mapping[str, Any] | None = None) -> Plan:
    return compile_plan(runbook, inventory, params)


def refuse_evidence_conflicts(plan: Plan, registry: Registry, hosts: Iterable[str] | None = None) -> None:
    """ValidationError when two nodes of the plan would write the same evidence file."""
    from opsbook.evidence import static_conflicts

    problems = static_conflicts(plan, registry, hosts)
    if problems:
        raise ValidationError(problems)


@dataclass
class RunRequest:
    """Everything a run needs besides the plan."""

    inventory_sources: list[str] = field(default_factory=list)
    options: RunOptions = field(default_factory=RunOptions)
    secrets: SecretStore = field(default_factory=SecretStore)
    listeners: list[Listener] = field(default_factory=list)
    approver: Approver | None = None
    incident_start: float | None = None
    given_params: dict[str, Any] = field(default_factory=dict)


def start_run(plan: Plan, registry: Registry, journal: Journal, request: RunRequest,
              run_id: str | None = None, on_executor: Any = None) -> RunSummary:
    """Record a new run in the journal and execute it."""
    journal.verify()  # never write a run into a damaged journal
    refuse_evidence_conflicts(plan, registry, request.options.limit)
    run_id = run_id or new_run_id()
    rb = plan.runbook
    evidence = runs_dir(journal.path) / run_id / "evidence" if request.options.evidence_dir is None else request.options.evidence_dir
    private_dir(evidence)
    request.options.evidence_dir = evidence
    secret_names = {p.name for p in rb.params if p.secret}
    request.options.four_eyes = request.options.four_eyes or rb.approved_by == "another"
    _four_eyes_approver(request, journal, rb.name)
    register_plan(plan, request.secrets)
    journal.create_run(RunRecord(
        id=run_id, runbook_path=os.path.abspath(rb.path), runbook_name=rb.name, digest=rb.digest,
        params=request.secrets.redact_any({k: ("********" if k in secret_names else v)
                                           for k, v in request.given_params.items()}),
        inventory=[os.path.abspath(s) for s in request.inventory_sources],
        inventory_digest=digest_files(request.inventory_sources) if request.inventory_sources else "",
        options=_options_record(request.options), status="running", started=time.time(), finished=None,
        who=whoami(), host=socket.gethostname(), pid=os.getpid(),
        objectives={"rto": rb.objectives.rto, "rpo": rb.objectives.rpo},
        incident_start=request.incident_start, summary={}))
    try:
        return _drive(plan, registry, journal, request, run_id, dict, on_executor)
    except RunLockedError as exc:  # nothing ran: say so, never leave it "running"
        journal.set_run_status(run_id, "refused", {"message": str(exc)})
        raise


def resume_run(run_id: str, registry: Registry, journal: Journal, request: RunRequest,
               forget: Iterable[str] = (), allow_changed: bool = False, on_executor: Any = None) -> RunSummary:
    """Continue a run from the journal: done nodes are not executed again."""
    journal.verify()
    record = journal.get_run(run_id)
    run_id = record.id
    runbook = load_runbook(record.runbook_path, registry)
    if runbook.digest != record.digest and not allow_changed:
        raise RunError(f"{record.runbook_path} (or a file it includes) changed since run {run_id} started; "
                       "resume with --allow-changed to use the new version")
    request.inventory_sources = request.inventory_sources or record.inventory
    params = {**record.params, **request.given_params}
    missing = [n for n, v in record.params.items() if v == "********" and n not in request.given_params]
    if missing:
        raise RunError("secret parameters are not stored in the journal; pass them again: "
                       + ", ".join(f"--secret {n}=env:VAR" for n in missing))
    plan = make_plan(runbook, load_inventory_sources(request.inventory_sources, registry), params)
    register_plan(plan, request.secrets)
    if record.options.get("check"):
        request.options.check = True  # a dry run resumed or retried stays a dry run
    request.options.four_eyes = (request.options.four_eyes or bool(record.options.get("four_eyes"))
                                 or runbook.approved_by == "another")
    _four_eyes_approver(request, journal, runbook.name)
    evidence = record.options.get("evidence_dir")
    request.options.evidence_dir = request.options.evidence_dir or (
        Path(evidence) if evidence else runs_dir(journal.path) / run_id / "evidence")
    private_dir(request.options.evidence_dir)
    asked = list(forget)

    def settle() -> dict[str, Any]:
        """Under the run's lock: what to run again, and the journal's word that the run resumed.

        Nodes skipped only because the run stopped (it waited for a human, was interrupted,
        crossed a threshold) are not final: this resume runs them."""
        recorded = journal.nodes(run_id)
        again = list(dict.fromkeys([*asked, *(n for n, rec in recorded.items()
                                             if stopped_before(rec.status, rec.msg))]))
        redo = _redone(plan, recorded, again, journal.rollbacks(run_id)) if again else []
        again += redo
        if again:
            journal.forget_nodes(run_id, again, reapprove=redo)
        journal.event(run_id, "resumed", data={"by": whoami(), "pid": os.getpid(), "forgotten": len(again),
                                                "redone": len(redo)})
        return journal.nodes(run_id)

    return _drive(plan, registry, journal, request, run_id, settle, on_executor)


def _redone(plan: Plan, recorded: dict[str, Any], again: list[str], entries: list[dict[str, Any]]) -> list[str]:
    """What the run's rollback undid, done again by a resume that goes on (docs/language.md:
    resume), so that the steps run again find the state the run had made and the run ends
    in the state its steps make; not on a host with a failure left (its later steps do not
    run, and a rollback would undo the same again)."""

    def ignored(node_id: str) -> bool:
        node = plan.nodes.get(node_id)
        return node is not None and node.leaf is not None and node.step.ignore_errors

    failed = {rec.host for n, rec in recorded.items()
              if n not in again and rec.status in ("failed", "timed_out") and not ignored(n) and not rec.rescued}
    hosts = {e["host"] for e in entries if e["host"]} - failed
    return [n for n in undone_nodes(entries, hosts) if n in recorded and n not in again]


def _four_eyes_approver(request: RunRequest, journal: Journal, runbook: str) -> None:
    """Before anything is recorded: a four-eyes run waits for another user's approval and
    refuses --yes (see opsbook.approve.approver_for)."""
    from opsbook.approve import approver_for

    request.approver = approver_for(request.approver, request.options.four_eyes, lambda: Journal(journal.path),
                                    request.options.approval_timeout, runbook)


def _drive(plan: Plan, registry: Registry, journal: Journal, request: RunRequest, run_id: str,
           prior: Callable[[], dict[str, Any]], on_executor: Any) -> RunSummary:
    """Take the run's locks, then read what the journal already holds (`prior`, called under
    the locks: a resume refused because another process runs it changes nothing) and execute."""
    lock_names = [f"run:{run_id}"]
    if plan.runbook.lock:
        from opsbook.template import render

        lock_names.append("lock:" + str(render(plan.runbook.lock, {"params": plan.params, **plan.params})))
    taken: list[str] = []
    try:
        for name in lock_names:
            journal.acquire(name, run_id)
            taken.append(name)
        done = prior()
        journal.set_run_status(run_id, "running", finished=False)
        executor = Executor(plan, registry, journal, run_id, request.options, request.secrets,
                            request.listeners, request.approver, done)
        record = journal.get_run(run_id)
        executor.started_by = f"{record.who}@{record.host}"
        if on_executor is not None:
            on_executor(executor)
        summary = executor.run()
        journal.set_run_status(run_id, summary.status, {
            "counts": summary.counts, "failed": summary.failed_nodes[:100], "ignored": summary.ignored_nodes[:100],
            "rescued": summary.rescued_nodes[:100],
            "rolled_back": summary.rolled_back,
            "message": summary.message, "cause": summary.cause,
            "elapsed": round(summary.elapsed, 6), "at": executor.clock.now()})
        return summary
    finally:
        for name in taken:
            try:
                journal.release(name, run_id)
            except JournalError:
                pass  # a lock of a dead process is taken over by the next run anyway


def _options_record(options: RunOptions) -> dict[str, Any]:
    return {"evidence_dir": str(options.evidence_dir) if options.evidence_dir else None, "forks": options.forks, "check": options.check, "diff": options.diff, "rollback": options.rollback,
            "timeout": options.timeout, "tags": sorted(options.tags), "skip_tags": sorted(options.skip_tags),
            "limit": sorted(options.limit) if options.limit else None, "four_eyes": options.four_eyes}


def evidence_dir(run_id: str) -> Path:
    return runs_dir() / run_id / "evidence"
