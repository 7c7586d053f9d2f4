"""A journal damaged on disk (issue 16 item 7): every command says so in one line with the way
out, a run never writes into it, and `opsbook journal recover` copies what can be read."""

from __future__ import annotations

import os
import sqlite3
from opsbook_lab.pytest_plugin import opsbook


def _damage(path) -> None:
    """Garbage over the middle half of the file (after a checkpoint: the WAL is folded in)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.seek(size // 4)
        handle.write(b"\xa5" * (size // 2))


def test_a_damaged_journal_is_named_refused_for_runs_and_recovered(tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: many\nsteps:\n" + "".join(
        f"  - name: s{i}\n    local.shell: \"head -c 3000 /dev/zero | tr '\\\\0' x\"\n" for i in range(40)))
    for _ in range(3):
        assert opsbook(tmp_path, "run", str(rb)).returncode == 0
    journal = tmp_path / "j.db"
    _damage(journal)
    ids = [line.split()[0] for line in opsbook(tmp_path, "runs").stdout.splitlines()]
    shown = [opsbook(tmp_path, "show", run_id) for run_id in ids]
    broken = [s for s in shown if s.returncode != 0]
    assert broken, "the damage was not met by any read"
    for s in broken:
        assert s.returncode == 2 and "Traceback" not in s.stderr and "internal error" not in s.stderr
        assert f"the journal {journal} is damaged (database disk image is malformed)" in s.stderr
        assert "opsbook journal recover" in s.stderr
    before = journal.read_bytes()
    refused = opsbook(tmp_path, "run", str(rb))
    assert refused.returncode == 2 and "is damaged" in refused.stderr and "nothing was written to it" in refused.stderr
    assert journal.read_bytes() == before, "a run wrote into a damaged journal"
    checked = opsbook(tmp_path, "journal", "check")
    assert checked.returncode == 1 and "damaged" in checked.stderr
    recovered = opsbook(tmp_path, "journal", "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "runs       3 row(s) copied" in recovered.stdout and "unreadable" in recovered.stdout
    assert [p.name for p in tmp_path.glob("j.db.damaged-*")], "the damaged file is kept"
    assert opsbook(tmp_path, "journal", "check").returncode == 0
    assert opsbook(tmp_path, "run", str(rb)).returncode == 0
    assert len(opsbook(tmp_path, "runs").stdout.splitlines()) == 4


def test_last_is_the_newest_run_recorded_even_when_the_clock_went_back(tmp_path):
    """Issue 24 item 15: `last` was picked by wall-clock start; with the clock stepped back,
    `approve last` approved another run."""
    from opsbook.journal import Journal, RunRecord

    journal = Journal(tmp_path / "j.db")
    for run_id, started in (("first", 2000.0), ("second", 1000.0)):  # the clock stepped back between them
        journal.create_run(RunRecord(run_id, "rb.yaml", "rb", "", {}, [], "", {}, "running", started, None,
                                     "me", "here", 1, {}, None, {}))
    assert journal.latest_run_id() == "second"
    assert [r.id for r in journal.list_runs()] == ["second", "first"]
    journal.close()


def test_a_huge_registered_value_is_not_recorded_whole(tmp_path):
    """Issue 16 item 8 / issue 24 item 13: one registered value is bounded in the journal: each
    string is cut at STRING_KEEP with a note, and a value over VALUE_KEEP in all is a note."""
    from opsbook.journal import STRING_KEEP, VALUE_KEEP, Journal, NodeRecord

    journal = Journal(tmp_path / "j.db")
    many = {"results": [{"stdout": "x" * (STRING_KEEP - 10)} for _ in range(VALUE_KEEP // STRING_KEEP + 2)]}
    one = {"stdout": "a" * STRING_KEEP + "b" * (VALUE_KEEP + 10)}
    journal.record_nodes("run", [
        NodeRecord("n@h", "n", "h", "ok", 1.0, 2.0, registered=many, facts={"f": ["y" * (STRING_KEEP - 10)] * 40}),
        NodeRecord("m@h", "m", "h", "ok", 1.0, 2.0, registered=one)], [])
    rec = journal.nodes("run")["n@h"]
    assert set(rec.registered) == {"omitted"} and "more than the journal keeps" in rec.registered["omitted"]
    assert set(rec.facts) == {"omitted"}
    cut = journal.nodes("run")["m@h"].registered["stdout"]
    assert cut.startswith("a" * (STRING_KEEP // 2)) and cut.endswith("b" * (STRING_KEEP // 2))
    assert f"characters not journaled; {STRING_KEEP + VALUE_KEEP + 10} in all" in cut
    assert len(cut) < STRING_KEEP + 200
    assert (tmp_path / "j.db").stat().st_size + (tmp_path / "j.db-wal").stat().st_size < 4 * VALUE_KEEP
    journal.close()
