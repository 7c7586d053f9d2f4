"""Journal stage: the durable record of every run (SQLite, WAL), and the source of truth for
resume, approvals from another shell, locks and reports.

Write-ahead: the executor commits a node's start before the side effect begins and its
result before anything after it starts, so after a crash every node is either done
(result recorded), in doubt (started, no result) or not started. Secrets are redacted by
the caller before writing. A run first asks the journal whether its file is sound
(`Journal.verify`: SQLite's quick_check; a damaged file raises `JournalDamaged` before
anything is written); copying out what a damaged file still holds is `journal_repair`'s.

The `Journal` class is the seam for other back ends (PostgreSQL later): the executor only
uses its methods, never SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.errors import JournalError, RunError, RunLockedError

OUTPUT_KEEP = 64 * 1024
_NODE_COLUMNS = ("run_id,node_id,step_id,host,status,started,finished,attempts,changed,rc,msg,stdout,stderr,"
                 "out_size,out_sha256,registered,facts,notify,elapsed,at,ignored,rescued")
# Node records are appended, never updated in place: a node's start and its result are
# two rows, and the last row of a node is its state. Appending keeps every write at the
# end of the table and of its run index; an upsert keyed by node id touched pages all
# over a growing index (a 100,000-node run spent most of its journal time there).
_NODE_INSERT = f"INSERT INTO node_log ({_NODE_COLUMNS}) VALUES ({','.join('?' * 22)})"
# A failure a block's rescue answered (see opsbook.counts): its last row again, marked
# rescued, appended like any other (the last row of a node is its state). The run index
# holds rows in seq order, so the newest row of the node is found by reading it backwards
# from its end: the failure is a few rows back, whatever the run's size.
_RESCUED_COPY = (f"INSERT INTO node_log ({_NODE_COLUMNS}) SELECT {_NODE_COLUMNS.removesuffix(',rescued')}, 1 "
                 "FROM (SELECT * FROM node_log WHERE run_id=? AND node_id=? ORDER BY seq DESC LIMIT 1) "
                 "WHERE status IN ('failed', 'timed_out')")
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()  # stored per stream; full size and hash are kept beside it

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, runbook_path TEXT, runbook_name TEXT, digest TEXT, params TEXT,
  inventory TEXT, inventory_digest TEXT, options TEXT, status TEXT, started REAL, finished REAL,
  who TEXT, host TEXT, pid INTEGER, objectives TEXT, incident_start REAL, summary TEXT
);
CREATE TABLE IF NOT EXISTS node_log (
  seq INTEGER PRIMARY KEY,
  run_id TEXT, node_id TEXT, step_id TEXT, host TEXT, status TEXT, started REAL, finished REAL,
  attempts INTEGER, changed INTEGER, rc INTEGER, msg TEXT, stdout TEXT, stderr TEXT,
  out_size INTEGER, out_sha256 TEXT, registered TEXT, facts TEXT, notify TEXT,
  elapsed REAL, at REAL, ignored INTEGER, rescued INTEGER
);
CREATE INDEX IF NOT EXISTS node_log_run ON node_log (run_id);
CREATE TABLE IF NOT EXISTS events (
  run_id TEXT, seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, kind TEXT, node_id TEXT, data TEXT
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS rollbacks (
  run_id TEXT, seq INTEGER, node_id TEXT, host TEXT, action TEXT, args TEXT, status TEXT,
  started REAL, finished REAL, msg TEXT, target TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT, node_id TEXT, step_id TEXT, prompt TEXT, requested REAL, decided REAL,
  approved INTEGER, who TEXT, detail TEXT, cancelled INTEGER DEFAULT 0, PRIMARY KEY (run_id, node_id)
);
CREATE TABLE IF NOT EXISTS locks (
  name TEXT PRIMARY KEY, run_id TEXT, pid INTEGER, host TEXT, acquired REAL
);
"""


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


VALUE_KEEP = 8 * 1024 * 1024  # characters of one node's registered value (or facts) the journal keeps


STRING_KEEP = 256 * 1024  # characters of one string inside a registered value (or facts) kept


def _clip_strings(value: Any) -> Any:
    """`value` with each string over STRING_KEEP cut to its first and last halves around a
    "[... N characters not journaled ...]" note (a resumed run reads the cut value)."""
    if isinstance(value, str):
        if len(value) <= STRING_KEEP:
            return value
        half = STRING_KEEP // 2
        return (value[:half] + f"\n[... {len(value) - 2 * half} characters not journaled; "
                f"{len(value)} in all ...]\n" + value[-half:])
    if isinstance(value, dict):
        return {k: _clip_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clip_strings(v) for v in value]
    return value


def _bounded_json(value: Any, what: str) -> str:
    """The JSON of a registered value or facts, each string in it cut at STRING_KEEP, or,
    over VALUE_KEEP in all, a note saying so: one huge value (a 50 MB output registered in
    a 20-item loop) must not grow the journal without bound. A resumed run does not get
    such a value back."""
    text = _json(value)
    if len(text) > STRING_KEEP:  # a string over STRING_KEEP can only be in a longer JSON text
        text = _json(_clip_strings(value))
    if len(text) <= VALUE_KEEP:
        return text
    return _json({"omitted": f"the {what} was {len(text):,} characters, more than the journal keeps "
                             f"({VALUE_KEEP:,}); it is not recorded (the run had it in memory)"})


@dataclass
class NodeRecord:
    """What the journal knows about one node."""

    node_id: str
    step_id: str
    host: str | None
    status: str  # started | ok | failed | skipped | timed_out | unknown
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    changed: bool = False
    rc: int | None = None
    msg: str = ""
    stdout: str = ""
    stderr: str = ""
    registered: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notify: list[str] = field(default_factory=list)
    # On the monotonic clock (issue 24 item 15): how long the node ran, and when it ended
    # as the run's clock reads (wall time at the run's start + monotonic seconds since).
    # A wall-clock step during the run moves `started`/`finished`, never these.
    elapsed: float | None = None
    at: float | None = None
    # The failure counts as ignored (ignore_errors; see opsbook.counts). None: not recorded
    # (a journal of an earlier version, which the reports read from the runbook).
    ignored: bool | None = None
    # The failure counts as rescued: its block's rescue ran on the host and did not fail
    # (see opsbook.counts). False in rows of earlier versions (they counted it failed).
    rescued: bool = False


@dataclass
class RunRecord:
    id: str
    runbook_path: str
    runbook_name: str
    digest: str
    params: dict[str, Any]
    inventory: list[str]
    inventory_digest: str
    options: dict[str, Any]
    status: str
    started: float
    finished: float | None
    who: str
    host: str
    pid: int
    objectives: dict[str, Any]
    incident_start: float | None
    summary: dict[str, Any]

    @property
    def declares_objectives(self) -> bool:
        """The runbook declared an RTO or an RPO (there is a verdict to tell)."""
        objectives = self.objectives or {}
        return objectives.get("rto") is not None or objectives.get("rpo") is not None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def digest_files(paths: list[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        p = Path(path)
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(str(f).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


@dataclass
class _Batch:
    """Rows of several writers committed in one transaction (see Journal._group)."""

    items: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: JournalError | None = None


class JournalDamaged(JournalError):
    """The journal file is damaged: nothing is written to it."""


def damaged(path: str, detail: str) -> JournalDamaged:
    return JournalDamaged(f"the journal {path} is damaged ({detail}); nothing was written to it. "
                          f"`opsbook journal recover --journal {path}` copies what can still be read into a new "
                          "journal and keeps the damaged file beside it")


def quick_check(db: sqlite3.Connection, path: str) -> None:
    """Raise JournalDamaged unless SQLite's quick_check says the file is sound."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, str(exc)) from None
    problems = [r[0] for r in rows if r[0] != "ok"]
    if problems:
        more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        raise damaged(path, problems[0] + more)


class Journal:
    """SQLite journal. `Journal(":memory:")` keeps everything in memory (tests, benchmarks)."""

    def __init__(self, path: str | Path, sync: str = "NORMAL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            from opsbook.paths import private_dir, private_file

            # 0700 folder, 0600 file (SQLite gives its -wal and -shm the file's mode)
            private_dir(Path(self.path).parent)
            private_file(self.path)
        self._lock = threading.RLock()
        # Group commit: concurrent writers of node records share transactions (see _group).
        self._gc = threading.Lock()
        self._open = _Batch()  # collecting rows; its first writer commits it
        self._last: _Batch | None = None  # the batch most recently given a first writer
        self._deferred: list[tuple[Any, ...]] = []  # rows that ride along with the next commit (see defer)
        self._rescued: list[tuple[str, str]] = []  # (run id, node id) marks that ride along too (see defer_rescued)
        try:
            self.db = sqlite3.connect(self.path, timeout=10, check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of opsbook (SIGKILL); FULL also survives
            # power loss at the cost of an fsync per commit.
            self.db.execute(f"PRAGMA synchronous={sync}")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def verify(self) -> None:
        """Raise JournalDamaged when the file is damaged (before a run writes into it)."""
        if self.path != ":memory:":
            with self._lock:
                quick_check(self.db, self.path)

    def _migrate(self) -> None:
        """Journals of earlier versions: approvals without what was asked (detail) and
        whether a stop cancelled the gate; one row per node in `nodes` before the node log."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(approvals)")}
        if "detail" not in columns:
            with self._tx() as db:
                db.execute("ALTER TABLE approvals ADD COLUMN detail TEXT")
                db.execute("ALTER TABLE approvals ADD COLUMN cancelled INTEGER DEFAULT 0")
                if "target" not in {row[1] for row in db.execute("PRAGMA table_info(rollbacks)")}:
                    db.execute("ALTER TABLE rollbacks ADD COLUMN target TEXT")
        node_columns = {row[1] for row in self.db.execute("PRAGMA table_info(node_log)")}
        if "at" not in node_columns:
            with self._tx() as db:
                db.execute("ALTER TABLE node_log ADD COLUMN elapsed REAL")
                db.execute("ALTER TABLE node_log ADD COLUMN at REAL")
        if "ignored" not in node_columns:  # whether a failure counted as ignored (ignore_errors)
            with self._tx() as db:
                db.execute("ALTER TABLE node_log ADD COLUMN ignored INTEGER")
        if "rescued" not in node_columns:  # whether a block's rescue answered the failure
            with self._tx() as db:
                db.execute("ALTER TABLE node_log ADD COLUMN rescued INTEGER")
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='nodes'").fetchone() is None:
            return  # the common case: no write transaction just to look
        with self._tx() as db:
            old = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='nodes'").fetchone()
            if old is None:
                return
            cols = _NODE_COLUMNS.removesuffix(",elapsed,at,ignored,rescued")
            db.execute(f"INSERT INTO node_log ({cols}) SELECT {cols} FROM nodes "
                       "ORDER BY run_id, started")
            db.execute("DROP TABLE nodes")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise JournalError(f"journal {self.path}: write failed: {exc}"
                                   + (" (disk full?)" if "full" in str(exc) else "")
                                   + (" (locked by another process)" if "locked" in str(exc) else "")) from None

    def _group(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Write rows durably, sharing the transaction with whoever writes at the same time.

        Group commit: rows join the open batch. The first writer of a batch waits until
        the batch before it is committed (commits stay in order), closes its batch and
        commits everything in it in one transaction; the other writers of the batch wait
        for exactly that commit. Every caller returns only once its own rows are
        committed (write-ahead holds), and wakes up once."""
        with self._gc:
            batch = self._open
            leads = not batch.items
            if self._deferred:  # results deferred before this write commit with it (or earlier)
                batch.items.append((_NODE_INSERT, self._deferred))
                self._deferred = []
            if self._rescued:  # after the results they mark
                batch.items.append((_RESCUED_COPY, self._rescued))
                self._rescued = []
            batch.items.append((sql, rows))
            if leads:
                before, self._last = self._last, batch
        if not leads:
            batch.done.wait()
            if batch.error is not None:
                raise batch.error
            return
        if before is not None:
            before.done.wait()
        with self._gc:
            self._open = _Batch()  # later writers start the next batch
        try:
            with self._tx() as db:
                for statement, values in batch.items:
                    db.executemany(statement, values)
        except JournalError as exc:
            batch.error = exc
        finally:
            batch.done.set()
        if batch.error is not None:
            raise batch.error

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.id, run.runbook_path, run.runbook_name, run.digest, _json(run.params),
                 _json(run.inventory), run.inventory_digest, _json(run.options), run.status,
                 run.started, run.finished, run.who, run.host, run.pid, _json(run.objectives),
                 run.incident_start, _json(run.summary)),
            )

    def set_run_status(self, run_id: str, status: str, summary: dict[str, Any] | None = None,
                       finished: bool = True) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status=?, finished=?, summary=COALESCE(?, summary), pid=? WHERE id=?",
                       (status, time.time() if finished else None,
                        _json(summary) if summary is not None else None, os.getpid(), run_id))

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                row = self.db.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY started DESC",
                                      (run_id + "%",)).fetchone()
        if row is None:
            raise RunError(f'no run "{run_id}" in the journal {self.path} (see `opsbook runs`)')
        return RunRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6],
                         json.loads(row[7]), row[8], row[9], row[10], row[11], row[12], row[13],
                         json.loads(row[14] or "{}"), row[15], json.loads(row[16] or "{}"))

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            ids = [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY rowid DESC LIMIT ?", (limit,))]
        return [self.get_run(i) for i in ids]

    def latest_run_id(self) -> str:
        with self._lock:
            # insertion order, not the wall clock: a clock stepped back must not make `last` another run
            row = self.db.execute("SELECT id FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
        if row is None:
            raise RunError("the journal has no runs yet")
        return str(row[0])

    # -- nodes -------------------------------------------------------------------------------
    def node_started(self, run_id: str, node_id: str, step_id: str, host: str | None) -> None:
        """Committed before the node's side effect begins (write-ahead)."""
        self.record_nodes(run_id, [], [(node_id, step_id, host)])

    def node_finished(self, run_id: str, rec: NodeRecord) -> None:
        self.record_nodes(run_id, [rec])

    def nodes_finished(self, run_id: str, records: list[NodeRecord]) -> None:
        self.record_nodes(run_id, records)

    def record_nodes(self, run_id: str, finished: Sequence[NodeRecord],
                     started: Sequence[tuple[str, str, str | None]] = ()) -> None:
        """Deferred results, then `finished`, then starts (node id, step id, host), committed
        in one transaction; with nothing to write, the deferred results alone."""
        if not finished and not started and not self._deferred and not self._rescued:
            return
        now = time.time()
        rows = [self._node_row(run_id, rec) for rec in finished]
        rows += [(run_id, node_id, step_id, host, "started", now, None, 0, 0, None, None, None, None, None,
                  None, None, None, None, None, None, None, 0) for node_id, step_id, host in started]
        self._group(_NODE_INSERT, rows)

    def defer(self, run_id: str, rec: NodeRecord) -> int:
        """Queue a result without a commit of its own: it is committed with the next write
        of node records, before what that write holds (a node that starts after this result
        is known cannot be durable without it). Returns how many results wait."""
        row = self._node_row(run_id, rec)
        with self._gc:
            self._deferred.append(row)
            return len(self._deferred)

    def defer_rescued(self, run_id: str, node_ids: Sequence[str]) -> None:
        """Mark failures as rescued (their block's rescue ran and did not fail), committed
        with the next write of node records, after the results deferred before: each node's
        last row is appended again with `rescued` set, when that row is a failure."""
        with self._gc:
            self._rescued += [(run_id, n) for n in node_ids]

    @property
    def deferring(self) -> bool:
        """Whether results (or rescued marks) wait for the next commit."""
        return bool(self._deferred or self._rescued)

    @staticmethod
    def _node_row(run_id: str, rec: NodeRecord) -> tuple[Any, ...]:
        out = ((rec.stdout or "") + (rec.stderr or "")).encode()
        return (run_id, rec.node_id, rec.step_id, rec.host, rec.status, rec.started, rec.finished or time.time(),
                rec.attempts, int(rec.changed), rec.rc, rec.msg, rec.stdout[-OUTPUT_KEEP:],
                rec.stderr[-OUTPUT_KEEP:], len(out), hashlib.sha256(out).hexdigest() if out else _EMPTY_SHA,
                _bounded_json(rec.registered, "registered value") if rec.registered is not None else None,
                _bounded_json(rec.facts, "facts") if rec.facts else "{}", _json(rec.notify) if rec.notify else "[]",
                rec.elapsed, rec.at, None if rec.ignored is None else int(rec.ignored), int(rec.rescued))

    def nodes(self, run_id: str) -> dict[str, NodeRecord]:
        """The state of every node of a run: its last record. A result keeps the time its
        node started; a new start (a node run again on resume) restarts the clock."""
        with self._lock:
            rows = self.db.execute(
                "SELECT node_id,step_id,host,status,started,finished,attempts,changed,rc,msg,stdout,stderr,"
                "registered,facts,notify,elapsed,at,ignored,rescued FROM node_log WHERE run_id=? ORDER BY seq",
                (run_id,)).fetchall()
        state: dict[str, NodeRecord] = {}
        for r in rows:
            before = state.get(r[0])
            if r[3] == "started":
                if before is None:
                    state[r[0]] = NodeRecord(r[0], r[1], r[2], "started", r[4])
                else:
                    before.status, before.started = "started", r[4]
                continue
            started = before.started if before is not None and before.started is not None else r[4]
            state[r[0]] = NodeRecord(r[0], r[1], r[2], r[3], started, r[5], r[6] or 0, bool(r[7]), r[8], r[9] or "",
                                     r[10] or "", r[11] or "", json.loads(r[12]) if r[12] else None,
                                     json.loads(r[13] or "{}"), json.loads(r[14] or "[]"), r[15], r[16],
                                     None if r[17] is None else bool(r[17]), bool(r[18]))
        return dict(sorted(state.items(), key=lambda kv: (kv[1].started is not None, kv[1].started or 0.0)))

    def forget_nodes(self, run_id: str, node_ids: list[str], reapprove: Iterable[str] = ()) -> None:
        """Make nodes runnable again (retry --failed / --from). The gates of `reapprove`
        (nodes whose change the run's rollback undid) are asked again: their decision answered
        a state that no longer holds; it stays in the events as `approval expired`."""
        with self._tx() as db:
            db.executemany("DELETE FROM node_log WHERE run_id=? AND node_id=?", [(run_id, n) for n in node_ids])
            # a gate a stop cancelled is asked again when its node runs again (the history of
            # the cancellation stays in the events)
            db.executemany("DELETE FROM approvals WHERE run_id=? AND node_id=? AND cancelled=1",
                           [(run_id, n) for n in node_ids])
            for node_id in reapprove:
                row = db.execute("SELECT approved, who, decided FROM approvals WHERE run_id=? AND node_id=?",
                                 (run_id, node_id)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM approvals WHERE run_id=? AND node_id=?", (run_id, node_id))
                db.execute("INSERT INTO events (run_id,ts,kind,node_id,data) VALUES (?,?,?,?,?)",
                           (run_id, time.time(), "approval expired", node_id,
                            _json({"approved": bool(row[0]), "who": row[1], "decided": row[2],
                                   "why": "the run's rollback undid the step; its gate is asked again"})))

    # -- events ------------------------------------------------------------------------------
    def event(self, run_id: str, kind: str, node_id: str | None = None, data: dict[str, Any] | None = None,
              ts: float | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (run_id,ts,kind,node_id,data) VALUES (?,?,?,?,?)",
                       (run_id, ts or time.time(), kind, node_id, _json(data or {})))

    def events(self, run_id: str) -> list[tuple[float, str, str | None, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute("SELECT ts,kind,node_id,data FROM events WHERE run_id=? ORDER BY seq",
                                   (run_id,)).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # -- rollback ----------------------------------------------------------------------------
    def add_rollback(self, run_id: str, node_id: str, host: str | None, action: str, args: Any,
                     target: str | None = None) -> int:
        """An undo of `node_id`: for `host` (the host the step acted for: its rollbacks run newest
        first), run on `target` when that is another host (the step delegated). Returns its
        sequence number."""
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq),0)+1 FROM rollbacks WHERE run_id=?", (run_id,)).fetchone()[0]
            db.execute("INSERT INTO rollbacks (run_id,seq,node_id,host,action,args,status,target) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (run_id, seq, node_id, host, action, _json(args), "pending",
                        target if target != host else None))
        return int(seq)

    def rollbacks(self, run_id: str) -> list[dict[str, Any]]:
        """Every undo of a run; `target` is where it runs (the host itself unless the step delegated)."""
        with self._lock:
            rows = self.db.execute("SELECT seq,node_id,host,action,args,status,started,finished,msg,target "
                                   "FROM rollbacks WHERE run_id=? ORDER BY seq", (run_id,)).fetchall()
        return [dict(seq=r[0], node_id=r[1], host=r[2], action=r[3], args=json.loads(r[4]), status=r[5],
                     started=r[6], finished=r[7], msg=r[8] or "", target=r[9] or r[2]) for r in rows]

    def undone_by(self, run_id: str, node_ids: Sequence[str], msg: str) -> None:
        """The pending undo of these nodes was performed by a step of the run (a rescue): done."""
        with self._tx() as db:
            db.executemany("UPDATE rollbacks SET status='done', msg=?, started=?, finished=? "
                           "WHERE run_id=? AND node_id=? AND status='pending'",
                           [(msg, time.time(), time.time(), run_id, n) for n in node_ids])

    def rollback_status(self, run_id: str, seq: int, status: str, msg: str = "") -> None:
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE rollbacks SET status=?, msg=?, started=COALESCE(started, ?), finished=? "
                       "WHERE run_id=? AND seq=?",
                       (status, msg, now, None if status == "running" else now, run_id, seq))

    # -- approvals ---------------------------------------------------------------------------
    def request_approval(self, run_id: str, node_id: str, step_id: str, prompt: str,
                         detail: dict[str, Any] | None = None) -> None:
        """A gate starts waiting: what is asked (prompt, host, rendered action, who started the run)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO approvals (run_id,node_id,step_id,prompt,requested,detail) "
                       "VALUES (?,?,?,?,?,?)", (run_id, node_id, step_id, prompt, time.time(), _json(detail or {})))

    def pending_approvals(self, run_id: str, gate: str | None = None, hosts: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Gates of a run still waiting; with `gate`, those it names: the step's id or name,
        the node id, or (a block's approval) the block's id or name; with `hosts`, only theirs."""
        rows = [a for a in self.approvals(run_id) if a["decided"] is None]
        rows = rows if gate is None else [a for a in rows if gate in _gate_names(a)]
        return rows if not hosts else [a for a in rows if (a["detail"].get("host") or "localhost") in hosts]

    def decide(self, run_id: str, step: str, approved: bool, who: str, hosts: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Approve/deny the waiting gates `step` names (see pending_approvals), of `hosts` if
        given; returns them."""
        with self._tx() as db:
            rows = db.execute("SELECT node_id,step_id,prompt,requested,decided,approved,who,detail,cancelled "
                              "FROM approvals WHERE run_id=? AND decided IS NULL ORDER BY requested",
                              (run_id,)).fetchall()
            chosen = [a for a in map(_approval_row, rows) if step in _gate_names(a)
                      and (not hosts or (a["detail"].get("host") or "localhost") in hosts)]
            now = time.time()
            db.executemany("UPDATE approvals SET decided=?, approved=?, who=? WHERE run_id=? AND node_id=? "
                           "AND decided IS NULL", [(now, int(approved), who, run_id, a["node_id"]) for a in chosen])
        return chosen

    def approval(self, run_id: str, node_id: str) -> tuple[bool, str] | None:
        with self._lock:
            row = self.db.execute("SELECT approved, who FROM approvals WHERE run_id=? AND node_id=? AND decided IS NOT NULL",
                                  (run_id, node_id)).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def close_gate(self, run_id: str, node_id: str, who: str) -> tuple[bool, str] | None:
        """Deny a gate nobody decided (its wait ran out), in one conditional update: None when
        that closed it, else the decision that came first (a late approval wins only if it
        was recorded before this)."""
        with self._tx() as db:
            cur = db.execute("UPDATE approvals SET decided=?, approved=0, who=? WHERE run_id=? AND node_id=? "
                             "AND decided IS NULL", (time.time(), who, run_id, node_id))
            if cur.rowcount:
                return None
            row = db.execute("SELECT approved, who FROM approvals WHERE run_id=? AND node_id=?",
                             (run_id, node_id)).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def record_decision(self, run_id: str, node_id: str, step_id: str, prompt: str, approved: bool, who: str,
                        cancelled: bool = False) -> None:
        """The decision the run acted on (the time it was asked is kept as it was). A gate the
        run cancelled is recorded cancelled even over an approval that came meanwhile: the
        action did not run."""
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO approvals (run_id,node_id,step_id,prompt,requested,detail) "
                       "VALUES (?,?,?,?,?,?)", (run_id, node_id, step_id, prompt, now, "{}"))
            # a decision already recorded is the one the run acted on (it read it from here)
            db.execute("UPDATE approvals SET decided=COALESCE(decided, ?), approved=?, who=?, cancelled=? "
                       "WHERE run_id=? AND node_id=? AND (decided IS NULL OR ?)",
                       (now, int(approved), who, int(cancelled), run_id, node_id, int(cancelled)))

    def approvals(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute("SELECT node_id,step_id,prompt,requested,decided,approved,who,detail,cancelled "
                                   "FROM approvals WHERE run_id=? ORDER BY requested", (run_id,)).fetchall()
        return [_approval_row(r) for r in rows]

    # -- locks -------------------------------------------------------------------------------
    def acquire(self, name: str, run_id: str) -> None:
        """Take a lock (run:<id> or a runbook's named lock); stale locks of dead PIDs are taken over."""
        host = socket.gethostname()
        with self._tx() as db:
            row = db.execute("SELECT run_id,pid,host FROM locks WHERE name=?", (name,)).fetchone()
            # another run holds it, in another live process or in this one (a watcher
            # answering two alerts at once runs them in threads of one process), or this same
            # run in another process (two `opsbook resume RUN` at once)
            held_by_other = row is not None and (row[0] != run_id or (row[1], row[2]) != (os.getpid(), host))
            if held_by_other and _alive(row[1], row[2]):
                raise RunLockedError(f'lock "{name}" is held by run {row[0]} (pid {row[1]} on {row[2]}); '
                                     "wait for it to finish, or stop it first")
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?,?,?)", (name, run_id, os.getpid(), host, time.time()))

    def release(self, name: str, run_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM locks WHERE name=? AND run_id=? AND pid=?", (name, run_id, os.getpid()))


def _approval_row(r: Sequence[Any]) -> dict[str, Any]:
    return dict(node_id=r[0], step_id=r[1], prompt=r[2], requested=r[3], decided=r[4],
                approved=None if r[5] is None else bool(r[5]), who=r[6],
                detail=json.loads(r[7]) if r[7] else {}, cancelled=bool(r[8]))


def _gate_names(approval: dict[str, Any]) -> set[str]:
    """Every name an operator may use for a gate: node id, step id and name, block id and name."""
    detail = approval["detail"]
    names = {approval["node_id"], approval["step_id"], detail.get("step_name"), detail.get("block_id"),
             detail.get("block_name")}
    return {n for n in names if n}


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell; assume the other machine still runs it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def whoami() -> str:
    """The user this process really runs as (its real uid), never USER/LOGNAME: anyone can
    set those, and an approval is recorded under this name."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry in some containers
        return f"uid {os.getuid()}"
