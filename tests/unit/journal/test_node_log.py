"""The journal's node log: starts and results are appended; a node's last record is its state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opsbook.journal import Journal, NodeRecord


def _result(node: str, status: str = "ok", **kw) -> NodeRecord:
    return NodeRecord(node, node.split("@")[0], node.split("@")[1], status, **kw)


def test_a_result_keeps_its_start_and_a_new_start_restarts_the_clock(tmp_path: Path):
    j = Journal(tmp_path / "j.db")
    j.node_started("r1", "a@h1", "a", "h1")
    (first_start,) = [r.started for r in j.nodes("r1").values()]
    assert j.nodes("r1")["a@h1"].status == "started"
    j.node_finished("r1", _result("a@h1", msg="done", stdout="out\n", started=first_start + 5, finished=first_start + 6))
    rec = j.nodes("r1")["a@h1"]
    assert (rec.status, rec.msg, rec.stdout, rec.started) == ("ok", "done", "out\n", first_start)
    # in doubt after a crash, then run again on resume: the new start counts
    j.node_started("r1", "a@h1", "a", "h1")
    again = j.nodes("r1")["a@h1"]
    assert again.status == "started" and again.started >= first_start and again.msg == "done"
    j.node_finished("r1", _result("a@h1", "failed", msg="boom", finished=again.started + 1))
    assert j.nodes("r1")["a@h1"].status == "failed" and j.nodes("r1")["a@h1"].started == again.started
    j.close()


def test_results_without_a_start_record_and_the_order_of_nodes(tmp_path: Path):
    j = Journal(tmp_path / "j.db")
    j.nodes_finished("r1", [_result("b@h1", started=20.0, finished=21.0), _result("a@h1", started=10.0, finished=11.0),
                            _result("c@h1", "skipped", started=None, finished=12.0)])
    j.nodes_finished("r2", [_result("a@h1", started=1.0, finished=2.0)])
    got = j.nodes("r1")
    assert list(got) == ["c@h1", "a@h1", "b@h1"]  # by start time, like the timeline
    assert got["b@h1"].started == 20.0 and got["c@h1"].status == "skipped"
    j.forget_nodes("r1", ["a@h1"])
    assert list(j.nodes("r1")) == ["c@h1", "b@h1"] and list(j.nodes("r2")) == ["a@h1"]
    j.close()


def test_a_journal_written_with_one_row_per_node_is_migrated(tmp_path: Path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE nodes (
          run_id TEXT, node_id TEXT, step_id TEXT, host TEXT, status TEXT, started REAL, finished REAL,
          attempts INTEGER, changed INTEGER, rc INTEGER, msg TEXT, stdout TEXT, stderr TEXT,
          out_size INTEGER, out_sha256 TEXT, registered TEXT, facts TEXT, notify TEXT,
          PRIMARY KEY (run_id, node_id));
        INSERT INTO nodes VALUES ('r1','a@h1','a','h1','ok',1.0,2.0,1,1,0,'fine','hi','',2,'x',
                                  '{"rc": 0}','{"f": 1}','["restart"]');
        INSERT INTO nodes (run_id,node_id,step_id,host,status,started,attempts)
                    VALUES ('r1','b@h1','b','h1','started',3.0,0);
    """)
    con.commit()
    con.close()
    j = Journal(db)
    got = j.nodes("r1")
    assert got["a@h1"] == NodeRecord("a@h1", "a", "h1", "ok", 1.0, 2.0, 1, True, 0, "fine", "hi", "",
                                     {"rc": 0}, {"f": 1}, ["restart"])
    assert got["b@h1"].status == "started" and got["b@h1"].started == 3.0
    j.node_finished("r1", _result("b@h1", finished=4.0))
    j.close()
    reopened = Journal(db)  # a second open finds nothing left to migrate
    assert reopened.nodes("r1")["b@h1"].status == "ok" and reopened.nodes("r1")["b@h1"].started == 3.0
    tables = {r[0] for r in reopened.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "nodes" not in tables and "node_log" in tables
    reopened.close()


def test_a_deferred_result_is_committed_with_the_next_write_and_before_it(tmp_path: Path):
    j = Journal(tmp_path / "j.db")
    j.node_started("r1", "a@h1", "a", "h1")
    assert j.defer("r1", _result("a@h1", msg="done", started=1.0, finished=2.0)) == 1
    assert j.deferring
    other = Journal(tmp_path / "j.db")  # what a resume after a crash would read
    assert other.nodes("r1")["a@h1"].status == "started", "a deferred result has no commit of its own"
    j.node_started("r1", "b@h1", "b", "h1")  # the next start carries it, ahead of itself
    assert not j.deferring
    rows = other.db.execute("SELECT node_id, status FROM node_log WHERE run_id='r1' ORDER BY seq").fetchall()
    assert rows == [("a@h1", "started"), ("a@h1", "ok"), ("b@h1", "started")]
    j.defer("r1", _result("b@h1", finished=3.0))
    j.record_nodes("r1", [])  # nothing of its own: commits what waits
    assert other.nodes("r1")["b@h1"].status == "ok" and not j.deferring
    j.record_nodes("r1", [])  # and with nothing waiting, writes nothing
    assert other.db.execute("SELECT count(*) FROM node_log").fetchone() == (4,)
    other.close()
    j.close()


def test_concurrent_writers_never_commit_a_start_before_a_result_deferred_earlier(tmp_path: Path):
    import threading

    j = Journal(tmp_path / "j.db")
    order: list[str] = []  # what each writer did, in the order it did it
    lock = threading.Lock()

    def host(h: str) -> None:
        for step in range(20):
            node = f"s{step}@{h}"
            j.node_started("r1", node, f"s{step}", h)
            with lock:
                j.defer("r1", _result(node, finished=float(step)))
                order.append(node)

    threads = [threading.Thread(target=host, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.record_nodes("r1", [])
    rows = j.db.execute("SELECT node_id, status FROM node_log WHERE run_id='r1' ORDER BY seq").fetchall()
    seq = {(node, status): i for i, (node, status) in enumerate(rows)}
    assert len(rows) == 8 * 20 * 2
    for h in range(8):
        for step in range(1, 20):
            # a host's next start is durable only after its previous result
            assert seq[(f"s{step - 1}@h{h}", "ok")] < seq[(f"s{step}@h{h}", "started")]
    j.close()


def test_a_journal_without_the_ignored_column_gets_it_and_its_old_rows_say_nothing(tmp_path):
    """Rows written before the column existed say nothing (None): the reports then read
    ignore_errors from the runbook file, as they did before."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE node_log (seq INTEGER PRIMARY KEY, run_id TEXT, node_id TEXT, step_id TEXT, host TEXT,
          status TEXT, started REAL, finished REAL, attempts INTEGER, changed INTEGER, rc INTEGER, msg TEXT,
          stdout TEXT, stderr TEXT, out_size INTEGER, out_sha256 TEXT, registered TEXT, facts TEXT, notify TEXT,
          elapsed REAL, at REAL);
        INSERT INTO node_log (run_id, node_id, step_id, host, status, started, finished)
               VALUES ('r1', 'a@h', 'a', 'h', 'failed', 1.0, 2.0);
    """)
    con.commit()
    con.close()
    old = Journal(path)
    try:
        assert old.nodes("r1")["a@h"].ignored is None
        old.node_finished("r1", NodeRecord("b@h", "b", "h", "failed", 3.0, 4.0, ignored=True))
        assert old.nodes("r1")["b@h"].ignored is True
    finally:
        old.close()
