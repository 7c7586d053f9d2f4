"""opsbook's own faults: the journal's disk fills up, another process locks the journal, an action
ignores its cancellation. The journal must stay consistent (SQLite integrity, no node recorded
done that did not finish) and the run resumable or clearly marked, with a clear message.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opsbook.plugin import ActionContext, Plugin, Result
from opsbook.registry import Registry
from pydantic import BaseModel
from relkit import BookRunner, Cli

DISK_FULL = "write failed: database or disk is full (disk full?)"


def integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs of our own (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "opsbook-rel-full", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill_all_but(kib: int, disk: Path) -> str:
    """A shell line that fills `disk` up to `kib` KiB of free space."""
    return (f"avail=$(df --output=avail -k {disk} | tail -1); "
            f"dd if=/dev/zero of={disk}/filler bs=1k count=$((avail-{kib})) 2>/dev/null")


def test_disk_full_when_a_result_is_written_stops_the_run_and_resume_finishes_it(cli: Cli, small_disk: Path):
    journal = small_disk / "journal.db"
    log = cli.home / "log"
    marker = cli.home / "filled"
    rb = cli.write("fill.yaml", f"""
        opsbook: 1
        name: disk-full
        steps:
          - name: fill the disk
            local.shell:
              cmd: "{_fill_all_but(0, small_disk)}; echo filled >> {log}; touch {marker}"
              creates: "{marker}"
          - name: second
            local.shell: "echo second >> {log}"
          - name: third
            local.shell: "echo third >> {log}"
        """)
    first = cli("run", str(rb), "--journal", str(journal), "--format", "text")
    assert first.rc == 2, first
    assert f"error: journal {journal}: {DISK_FULL}" in first.stderr
    assert "Traceback" not in first.stderr
    assert log.read_text().split() == ["filled"], "nothing may run once the journal cannot record it"
    (small_disk / "filler").unlink()
    assert integrity(journal) == "ok"
    runs = cli("runs", "--journal", str(journal))
    run_id = runs.stdout.split()[0]
    assert "running" in runs.stdout  # never marked finished: visibly stopped, resumable
    shown = cli("show", run_id, "--journal", str(journal))
    assert "in doubt" in shown.stdout and "fill the disk" in shown.stdout
    # The in-doubt step is settled by its creates: guard (check mode), not run twice.
    resumed = cli("resume", run_id, "--journal", str(journal), "--format", "text")
    assert resumed.rc == 0, resumed
    assert log.read_text().split() == ["filled", "second", "third"]
    assert integrity(journal) == "ok"


def test_disk_full_for_a_big_result_is_a_journal_error_not_a_failed_step(cli: Cli, small_disk: Path):
    """The result (45 KB of output) does not fit, a short failure record would: the run must still
    stop with the journal's error and leave the node in doubt, not record a completed command as
    failed and go on without its journal."""
    journal = small_disk / "journal.db"
    log = cli.home / "log"
    rb = cli.write("fill.yaml", f"""
        opsbook: 1
        name: disk-almost-full
        steps:
          - name: fill the disk
            local.shell: "{_fill_all_but(48, small_disk)}; echo filled >> {log}"
          - name: big output
            local.shell: "head -c 45000 /dev/zero | tr '\\\\0' x; echo big >> {log}"
          - name: third
            local.shell: "echo third >> {log}"
        """)
    done = cli("run", str(rb), "--journal", str(journal), "--format", "text")
    (small_disk / "filler").unlink(missing_ok=True)
    assert integrity(journal) == "ok"
    assert "internal error" not in done.stderr, done
    assert done.rc == 2 and f"error: journal {journal}: {DISK_FULL}" in done.stderr, done
    assert log.read_text().split() == ["filled", "big"]


def _hold_lock(db: Path, hold: float, after: float = 0.0) -> subprocess.Popen[str]:
    """Another process that takes the journal's write lock (BEGIN EXCLUSIVE) and holds it."""
    code = textwrap.dedent(f"""
        import sqlite3, sys, time
        db = sqlite3.connect({str(db)!r}, isolation_level=None)
        time.sleep({after})
        db.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep({hold})
        db.execute("ROLLBACK")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    if not after:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_journal_locked_by_another_process_refuses_to_start_clearly(cli: Cli):
    log = cli.home / "log"
    rb = cli.write("rb.yaml", f"""
        opsbook: 1
        name: locked
        steps:
          - name: one
            local.shell: "echo one >> {log}"
        """)
    assert cli("runs").rc == 0  # the journal exists
    holder = _hold_lock(cli.journal, hold=30)
    try:
        start = time.monotonic()
        res = cli("run", str(rb), "--format", "text")
        took = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert res.rc == 2, res
    assert res.stderr.strip().endswith(
        f"error: journal {cli.journal}: write failed: database is locked (locked by another process)")
    assert took < 20, "it waits for the lock (busy timeout), then says so"
    assert not log.exists()
    assert integrity(cli.journal) == "ok"
    again = cli("run", str(rb), "--format", "text")
    assert again.rc == 0, again
    assert log.read_text().split() == ["one"]


@pytest.mark.slow
def test_journal_locked_while_a_result_is_written_leaves_the_node_in_doubt(cli: Cli):
    log = cli.home / "log"
    rb = cli.write("rb.yaml", f"""
        opsbook: 1
        name: locked-mid-run
        steps:
          - name: one
            local.shell: "echo one >> {log}; sleep 2"
          - name: two
            local.shell: "echo two >> {log}"
        """)
    assert cli("runs").rc == 0
    holder = _hold_lock(cli.journal, hold=13, after=1.0)
    try:
        res = cli("run", str(rb), "--format", "text")
    finally:
        holder.wait(timeout=30)
    assert integrity(cli.journal) == "ok"
    assert "internal error" not in res.stderr, res
    assert res.rc == 2 and "locked by another process" in res.stderr, res
    assert log.read_text().split() == ["one"]


# --------------------------------------------------------------------------- stuck actions


class _SleepArgs(BaseModel):
    seconds: float


def _stubborn_registry() -> Registry:
    """The real plugins plus one whose action ignores cancellation (a plugin author's bug)."""
    plugin = Plugin("stubborn", "An action that ignores ctx.cancelled.")

    @plugin.action
    def sleep(ctx: ActionContext, args: _SleepArgs) -> Result:
        """Sleep, ignoring cancellation, then report success."""
        time.sleep(args.seconds)
        return Result.ok(changed=True, msg="done anyway")

    registry = Registry.from_entry_points()
    registry.add(plugin)
    return registry


def test_an_action_that_ignores_its_timeout_does_not_rewrite_history(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    runner = BookRunner(_stubborn_registry(), tmp_path)
    log = tmp_path / "log"
    b = runner(f"""
        opsbook: 1
        name: stubborn
        steps:
          - name: stuck
            stubborn.sleep: {{seconds: 8}}
            timeout: 1s
            rollback: {{local.shell: "echo undo >> {log}"}}
        """)
    assert b.summary.status == "failed"
    given_up = b.finished("stuck")[0]
    assert given_up.data["status"] == "unknown"  # abandoned in doubt: a resume asks (opsbook.abandon)
    assert "did not stop within 5s of being cancelled: abandoned, in doubt" in given_up.data["msg"]
    node = b.node("stuck", "localhost")
    # What the run decided is what the journal says, and no compensation is left hanging.
    assert node.status == "unknown", node
    assert all(r["status"] != "pending" for r in b.rollbacks()), b.rollbacks()
