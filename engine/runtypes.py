"""What the units of a run hand each other: options, a node's outcome, the summary, the
run's clock, its connections and the services every unit may use (`RunServices`).

The units (see docs/design.md, "The executor in parts"): `execute` (the run and its
scheduling loop), `scheduler` (what is ready, batches, thresholds, deadlines, workers),
`noderun` (one node from rendered arguments to recorded outcome), `gates` (approvals),
`preflight` (`keep_healthy`), `rollback` (undo entries and their replay), `hoststate`
(what each host has become) and `cancel` (the one cancellation mechanism).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.errors import UserError
from opsbook.plugin import Connection, HostInfo, Result, Status

# Journal states of a node that a resume must look at again: it was running when opsbook
# died ("started"), or a previous resume could not settle it ("unknown").
IN_DOUBT = ("started", "unknown")
# A node skipped because the run stopped (a threshold, a signal, a node that needs a human, a
# cancelled gate) rather than by a decision about it (`when`, tags, a failed host): such a skip
# is not final, and a resume runs the node (see api.resume_run).
NOT_RUN = "not run: "
# A node whose action a signal cancelled while it ran (recorded `failed`, "cancelled:
# interrupted by SIGINT"): it did not fail on its own, and a resume runs it again too.
CANCELLED = "cancelled: "


def stopped_before(status: str, msg: str) -> bool:
    """Whether a recorded node was skipped only because the run stopped before it, or
    was cancelled by the signal that stopped the run while it ran."""
    return (status == "skipped" and msg.startswith(NOT_RUN)) or (status == "failed" and msg.startswith(CANCELLED))


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
    four_eyes: bool = False  # gates need someone other than the run's starter (approved_by: another)
    cancel_grace: float = 5.0  # seconds a cancelled action may take to return before it is abandoned (opsbook.abandon)
    verbosity: int = 0  # -v count: `ansible_verbosity` (debug's `verbosity:`)
    force_handlers: bool = False  # --force-handlers: notified handlers run on failed hosts too


class RunClock:
    """The run's clock: wall time for display, monotonic time for every duration.

    `now()` is the wall time at the run's start plus the monotonic seconds since, so a
    wall-clock step during the run (NTP, a VM resumed) changes no duration and no RTO."""

    def __init__(self, wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic) -> None:
        self._mono = mono
        self.wall0 = wall()
        self.mono0 = mono()

    def now(self) -> float:
        return self.wall0 + (self._mono() - self.mono0)

    def at(self, mono: float) -> float:
        """A monotonic reading as the run's clock shows it."""
        return self.wall0 + (mono - self.mono0)

    def elapsed(self) -> float:
        """Seconds since the run started, on the monotonic clock."""
        return self._mono() - self.mono0


@dataclass
class Outcome:
    """What a node's run hands back: its result and when it ran."""

    status: Status
    result: Result
    registered: dict[str, Any] | None = None
    notify: list[str] = field(default_factory=list)
    started: float = 0.0  # wall clock (display)
    finished: float = 0.0
    restored: bool = False  # taken from the journal on resume
    recorded: bool = False  # already written to the journal
    elapsed: float | None = None  # monotonic seconds the node took
    at: float | None = None  # its end on the run's clock (RunClock.now)

    @property
    def duration(self) -> float:
        if self.elapsed is not None:
            return self.elapsed
        return self.finished - self.started if self.finished else 0.0


@dataclass
class RunSummary:
    run_id: str
    status: str  # succeeded | failed | aborted | interrupted | timed_out
    counts: dict[str, int]  # per count of opsbook.counts: an ignored (rescued) failure is `ignored` (`rescued`)
    failed_nodes: list[str]  # failed or timed out, not ignored, not rescued
    started: float
    finished: float
    rolled_back: int = 0
    message: str = ""
    denied: list[str] = field(default_factory=list)  # nodes whose approval was refused
    signal: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM), if one did
    cause: str = ""  # the first failure that decided the outcome: step, host, the telling line
    rollback_problems: list[str] = field(default_factory=list)  # undos that failed or were not run
    elapsed: float = 0.0  # monotonic seconds from the run's start to its end (rollback included)
    ignored_nodes: list[str] = field(default_factory=list)  # failed or timed out on an ignore_errors step
    rescued_nodes: list[str] = field(default_factory=list)  # failed or timed out, then their block's rescue succeeded

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class ConnectionPool:
    """One connection per host, created on first use and reused by every step."""

    def __init__(self, registry: Any) -> None:
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


@dataclass(frozen=True)
class RunServices:
    """What every unit of one run may use; none of it is another unit's state."""

    plan: Any  # opsbook.compile.Plan
    registry: Any  # opsbook.registry.Registry
    journal: Any  # opsbook.journal.Journal
    run_id: str
    opts: RunOptions
    secrets: Any  # opsbook.secrets.SecretStore
    pool: ConnectionPool
    clock: RunClock
    emit: Callable[..., None]  # emit(kind, node=None, **data): an event to the listeners
    hostinfo: Callable[[str], HostInfo]
    runbook_dir: Path


def outcome_of(status: Status, msg: str, registered: dict[str, Any] | None = None) -> Outcome:
    """An outcome decided without running an action (a skip, a refusal)."""
    now = time.time()
    return Outcome(status, Result(status=status, msg=msg), registered, [], now, now)


def unknown_outcome(reason: str) -> Outcome:
    """A node check mode leaves `unknown` without running it; its register says so too."""
    return outcome_of(Status.UNKNOWN, reason, registered=Result.unknown(reason).registered())


def user_message(exc: UserError) -> str:
    where = f" ({exc.position})" if exc.position else ""
    return exc.message + where


def pydantic_msg(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors())
    return str(exc)
