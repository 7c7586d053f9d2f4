"""A damaged journal: say so in one line, never write into it, and copy out what can be read.

SQLite finds damage when it reads a damaged page ("database disk image is malformed"), so a
run checks the whole file (`PRAGMA quick_check`, `Journal.verify`, in `opsbook.journal`)
before it writes its first row, and `opsbook journal check` does the same on demand. `opsbook journal recover` copies every row
that can still be read into a new journal, keeps the damaged file beside it, and says how
many rows of each table came across.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from opsbook.errors import JournalError
from opsbook.journal import Journal

TABLES = ("runs", "node_log", "events", "rollbacks", "approvals")  # locks are not worth keeping
_CHUNK = 200


@dataclass
class Recovery:
    kept: Path  # the damaged file, moved aside
    copied: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # rows (or ranges of rowids) that could not be read


def recover(path: str) -> Recovery:
    """Copy every readable row of `path` into a fresh journal at `path`; the damaged file is
    renamed to PATH.damaged-TIMESTAMP (with its -wal and -shm)."""
    source = Path(path)
    if not source.exists():
        raise JournalError(f"there is no journal at {path}")
    fresh = source.with_name(source.name + ".recovering")
    fresh.unlink(missing_ok=True)
    Journal(fresh).close()  # the current schema
    result = Recovery(source.with_name(f"{source.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))
    old = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    new = sqlite3.connect(fresh)
    try:
        for table in TABLES:
            copied, lost = _copy_table(old, new, table)
            result.copied[table], result.lost[table] = copied, lost
        new.commit()
    finally:
        old.close()
        new.close()
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(source) + suffix)
        if part.exists():
            part.rename(str(result.kept) + suffix)
    fresh.rename(source)
    return result


def _copy_table(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> tuple[int, int]:
    """(rows copied, rows or chunks lost) of one table, read in rowid ranges so that a damaged
    page costs only the rows on it."""
    try:
        columns = [r[1] for r in old.execute(f"PRAGMA table_info({table})")]
        top = old.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        return 0, 1
    wanted = [r[1] for r in new.execute(f"PRAGMA table_info({table})")]
    shared = [c for c in columns if c in wanted]
    names = ",".join(shared)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({','.join('?' * len(shared))})"
    copied = lost = 0
    for low in range(0, top + 1, _CHUNK):
        try:
            rows = old.execute(f"SELECT {names} FROM {table} WHERE rowid >= ? AND rowid < ?",
                               (low, low + _CHUNK)).fetchall()
        except sqlite3.DatabaseError:
            rows = []
            for rowid in range(low, low + _CHUNK):
                try:
                    rows += old.execute(f"SELECT {names} FROM {table} WHERE rowid = ?", (rowid,)).fetchall()
                except sqlite3.DatabaseError:
                    lost += 1
        new.executemany(insert, rows)
        copied += len(rows)
    return copied, lost
