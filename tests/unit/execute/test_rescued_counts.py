"""A failure inside a block whose `rescue:` then ran on that host and did not fail counts as
`rescued`, not `failed` (Ansible's recap), everywhere a run's counts are shown or returned;
the node itself stays `failed` in the journal. A rescue that failed leaves it `failed`."""

from __future__ import annotations

import json
import sqlite3

from opsbook.api import load_inventory_sources, make_plan
from opsbook.counts import ordered, tally
from opsbook.journal import Journal, NodeRecord
from opsbook.load import RunbookLoader
from opsbook.rescues import Rescues
from opsbook.runtypes import NOT_RUN
from opsbook_lab.pytest_plugin import statuses

RECOVER = """
    opsbook: 1
    name: recover
    steps:
      - name: fast path
        block:
          - name: config test
            local.command: "sh -c 'echo bad config >&2; exit 3'"
            register: test
          - name: reload
            local.command: "true"
        rescue:
          - name: restart instead
            local.debug: {msg: "{{ test.failed }}"}
        always:
          - name: note
            local.command: "true"
      - name: go on
        local.command: "true"
    """


def test_counts_put_a_rescued_failure_under_rescued_before_ignored():
    assert tally([("ok", False, False), ("failed", False, True), ("timed_out", False, True), ("failed", True),
                  ("failed", False, False), ("skipped", False, True)]) == \
        {"ok": 1, "failed": 1, "rescued": 2, "ignored": 1, "skipped": 1}
    assert list(ordered({"ignored": 1, "skipped": 1, "rescued": 2, "failed": 1, "ok": 3})) == \
        ["ok", "failed", "rescued", "ignored", "skipped"]


def test_a_rescued_failure_counts_as_rescued_and_stays_failed_in_the_journal(run, journal):
    summary = run(RECOVER)
    assert summary.status == "succeeded" and summary.ok
    assert summary.counts == {"ok": 3, "rescued": 1, "skipped": 1}
    assert summary.failed_nodes == [] and summary.rescued_nodes == ["config-test@localhost"]
    assert statuses(journal, summary.run_id)["config-test@localhost"] == "failed"
    nodes = journal.nodes(summary.run_id)
    assert nodes["config-test@localhost"].rescued is True and nodes["restart-instead@localhost"].rescued is False
    assert nodes["config-test@localhost"].rc == 3 and "bad config" in nodes["config-test@localhost"].stderr
    assert nodes["restart-instead@localhost"].msg == "true"  # register's .failed stays true, as in Ansible
    recorded = journal.get_run(summary.run_id).summary
    assert recorded["counts"] == summary.counts and recorded["failed"] == []
    assert recorded["rescued"] == ["config-test@localhost"]


def test_a_rescue_that_fails_leaves_the_failure_counted_failed(run, journal):
    summary = run("""
        opsbook: 1
        name: recover
        steps:
          - name: fast path
            block:
              - name: config test
                local.fail: bad config
            rescue:
              - name: restart instead
                local.fail: restart failed too
        """, rollback="never")
    assert summary.status == "failed"
    assert summary.counts == {"failed": 2}
    assert summary.failed_nodes == ["config-test@localhost", "restart-instead@localhost"]
    assert summary.rescued_nodes == []
    assert journal.nodes(summary.run_id)["config-test@localhost"].rescued is False


def test_a_timed_out_step_rescued_counts_as_rescued(run, journal):
    summary = run("""
        opsbook: 1
        name: slow
        steps:
          - block:
              - name: slow step
                local.shell: "sleep 5"
                timeout: 0.3s
            rescue:
              - name: instead
                local.command: "true"
        """)
    assert summary.status == "succeeded" and summary.counts == {"ok": 1, "rescued": 1}
    assert statuses(journal, summary.run_id)["slow-step@localhost"] == "timed_out"


def test_an_outer_rescue_answers_an_inner_block_without_one_and_a_rescue_may_hold_its_own_block(run):
    summary = run("""
        opsbook: 1
        name: nested
        steps:
          - name: outer
            block:
              - name: inner
                block:
                  - name: deep step
                    local.fail: deep down
            rescue:
              - name: guarded
                block:
                  - name: first try
                    local.fail: not yet
                rescue:
                  - name: second try
                    local.command: "true"
        """)
    assert summary.status == "succeeded"
    assert summary.counts == {"ok": 1, "rescued": 2}
    assert summary.rescued_nodes == ["deep-step@localhost", "first-try@localhost"]


def test_a_failed_inner_rescue_fails_the_outer_rescue_too(run):
    summary = run("""
        opsbook: 1
        name: nested
        steps:
          - name: outer
            block:
              - name: deep step
                local.fail: deep down
            rescue:
              - name: guarded
                block:
                  - name: first try
                    local.fail: not yet
                rescue:
                  - name: second try
                    local.fail: no luck
        """, rollback="never")
    assert summary.status == "failed"
    assert summary.counts == {"failed": 3}


def test_each_host_counts_by_its_own_rescue(run):
    summary = run("""
        opsbook: 1
        name: fleet
        steps:
          - hosts: web
            block:
              - name: config test
                local.fail: bad config
            rescue:
              - name: restart instead
                local.command: "{{ 'false' if inventory_hostname == 'web2' else 'true' }}"
        """, inventory="[web]\nweb[1:3] ansible_connection=local\n", rollback="never")
    assert summary.status == "failed"
    assert summary.counts == {"ok": 2, "failed": 2, "rescued": 2}
    assert sorted(summary.failed_nodes) == ["config-test@web2", "restart-instead@web2"]
    assert sorted(summary.rescued_nodes) == ["config-test@web1", "config-test@web3"]


def test_a_rescue_whose_steps_are_skipped_or_elsewhere_still_rescues(run):
    summary = run("""
        opsbook: 1
        name: elsewhere
        steps:
          - block:
              - name: breaks
                local.fail: boom
            rescue:
              - name: only when asked
                when: false
                local.command: "true"
          - name: after
            local.command: "true"
        """)
    assert summary.status == "succeeded" and summary.counts == {"ok": 1, "rescued": 1, "skipped": 1}
    summary = run("""
        opsbook: 1
        name: elsewhere
        steps:
          - hosts: web1
            block:
              - name: breaks
                local.fail: boom
            rescue:
              - name: on the other host
                hosts: web2
                local.command: "true"
        """, inventory="[web]\nweb[1:2] ansible_connection=local\n")
    assert summary.status == "succeeded" and summary.rescued_nodes == ["breaks@web1"]
    assert summary.counts == {"rescued": 1, "skipped": 1}  # web2's rescue: nothing failed there


def test_a_rescue_the_stopped_run_did_not_run_rescues_nothing(registry, write):
    """The rescue's steps skipped because the run stopped (`not run: ...`): the failure
    stays failed; a step of the rescue that failed there keeps it failed too."""
    rb = RunbookLoader(registry).load_file(write("rb.yaml", """
        opsbook: 1
        name: r
        steps:
          - name: b
            block:
              - name: breaks
                local.fail: boom
            rescue:
              - name: fix
                local.command: "true"
              - name: check
                local.command: "true"
        """))
    plan = make_plan(rb, load_inventory_sources([]), {})
    block_id = next(s.block_id for leaf in plan.leaves.values() for s in leaf.sections)
    nodes = plan.nodes
    for ending, expect in ((("ok", ""), ["breaks@localhost"]), (("skipped", f"{NOT_RUN}interrupted"), [])):
        statuses_, messages = {"breaks@localhost": "failed"}, {}
        rescues = Rescues(plan, statuses_, messages)
        rescues.take_over(block_id, nodes["breaks@localhost"])
        assert rescues.ended(nodes["breaks@localhost"]) == []  # the rescue has not run yet
        statuses_["fix@localhost"] = "ok"
        assert rescues.ended(nodes["fix@localhost"]) == []  # nor ended
        statuses_["check@localhost"], messages["check@localhost"] = ending
        assert rescues.ended(nodes["check@localhost"]) == expect
    rescues = Rescues(plan, {"breaks@localhost": "failed", "fix@localhost": "failed", "check@localhost": "ok"}, {})
    rescues.take_over(block_id, nodes["breaks@localhost"])
    rescues.rescue_failed(block_id, "localhost")
    assert rescues.ended(nodes["check@localhost"]) == []


def test_the_json_events_say_rescued_and_the_counts_carry_it(run):
    events = []
    run(RECOVER, listeners=[events.append])
    rescued = [e for e in events if e.kind == "node_rescued"]
    assert [(e.node_id, e.data["status"]) for e in rescued] == [("config-test@localhost", "failed")]
    kinds = [(e.kind, e.node_id) for e in events]
    assert kinds.index(("node_rescued", "config-test@localhost")) > \
        kinds.index(("node_finished", "restart-instead@localhost"))  # once the rescue has ended
    end = json.loads(json.dumps(events[-1].to_json()))
    assert end["event"] == "run_finished" and end["counts"] == {"ok": 3, "rescued": 1, "skipped": 1}


def test_a_resume_keeps_the_mark_without_writing_it_again(run, journal, registry):
    from opsbook.api import RunRequest, resume_run

    summary = run(RECOVER)
    journal.set_run_status(summary.run_id, "interrupted")
    rows = journal.db.execute("SELECT count(*) FROM node_log WHERE run_id=?", (summary.run_id,)).fetchone()[0]
    again = resume_run(summary.run_id, registry, journal, RunRequest())
    assert again.counts == summary.counts and again.rescued_nodes == ["config-test@localhost"]
    assert journal.db.execute("SELECT count(*) FROM node_log WHERE run_id=?", (summary.run_id,)).fetchone()[0] == rows


def test_a_resume_that_runs_the_rescue_marks_the_failure_then(run, journal, registry):
    from opsbook.api import RunRequest, resume_run

    rid = run(RECOVER).run_id
    # as if opsbook had stopped before the rescue ran: no mark, nothing after the failure
    journal.db.execute("DELETE FROM node_log WHERE run_id=? AND node_id=? AND rescued=1", (rid, "config-test@localhost"))
    journal.forget_nodes(rid, ["restart-instead@localhost", "note@localhost", "go-on@localhost"])
    journal.set_run_status(rid, "interrupted")
    assert journal.nodes(rid)["config-test@localhost"].rescued is False
    again = resume_run(rid, registry, journal, RunRequest())
    assert again.status == "succeeded" and again.rescued_nodes == ["config-test@localhost"]
    assert again.counts == {"ok": 3, "rescued": 1, "skipped": 1}
    assert journal.nodes(rid)["config-test@localhost"].rescued is True


def test_a_journal_without_the_rescued_column_gets_it_and_marks_copy_the_last_failure(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE node_log (seq INTEGER PRIMARY KEY, run_id TEXT, node_id TEXT, step_id TEXT, host TEXT,
          status TEXT, started REAL, finished REAL, attempts INTEGER, changed INTEGER, rc INTEGER, msg TEXT,
          stdout TEXT, stderr TEXT, out_size INTEGER, out_sha256 TEXT, registered TEXT, facts TEXT, notify TEXT,
          elapsed REAL, at REAL, ignored INTEGER);
        INSERT INTO node_log (run_id, node_id, step_id, host, status, started, finished, rc, stdout)
               VALUES ('r1', 'a@h', 'a', 'h', 'failed', 1.0, 2.0, 3, 'out');
    """)
    con.commit()
    con.close()
    old = Journal(path)
    try:
        assert old.nodes("r1")["a@h"].rescued is False  # as counted before: failed
        old.defer(old_run := "r1", NodeRecord("b@h", "b", "h", "failed", 3.0, 4.0, msg="boom"))
        old.node_finished(old_run, NodeRecord("c@h", "c", "h", "ok", 4.0, 5.0))
        old.defer_rescued(old_run, ["a@h", "b@h", "c@h"])  # c@h did not fail: nothing to mark
        assert old.deferring
        old.record_nodes(old_run, [])
        nodes = old.nodes("r1")
        assert (nodes["a@h"].rescued, nodes["a@h"].rc, nodes["a@h"].stdout) == (True, 3, "out")
        assert (nodes["b@h"].rescued, nodes["b@h"].msg) == (True, "boom")  # deferred before: written first
        assert nodes["c@h"].rescued is False
        assert old.db.execute("SELECT count(*) FROM node_log").fetchone()[0] == 5
    finally:
        old.close()
