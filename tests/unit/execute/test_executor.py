"""The executor against real local commands: ordering, concurrency, failures, handlers,
rescue, rollback, approvals and check mode. Side effects are files the nodes write."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from opsbook.execute import ApprovalRequest
from opsbook_lab.pytest_plugin import statuses, wait_for

INVENTORY = """
[web]
web[1:4] ansible_connection=local
[db]
db1 ansible_connection=local
"""


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_parallel_branches_really_overlap(run, journal, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: overlap
        hosts: web
        steps:
          - name: start
            local.noop: {{}}
          - name: slow a
            needs: [start]
            local.shell: "sleep 0.5"
          - name: slow b
            needs: [start]
            local.shell: "sleep 0.5"
        """, INVENTORY)
    assert summary.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    slow = [r for r in nodes.values() if r.step_id.startswith("slow")]
    assert len(slow) == 8
    first_end = min(r.finished for r in slow)
    last_start = max(r.started for r in slow)
    assert last_start < first_end, "all 8 sleeps should be running at the same time"


def test_per_host_pipelining_has_no_global_barrier(run, journal, tmp_path):
    marker = tmp_path / "order"
    summary = run(f"""
        opsbook: 1
        name: pipeline
        hosts: web
        steps:
          - name: one
            local.shell: "if [ {{{{ inventory_hostname }}}} = web1 ]; then sleep 0.6; fi; echo one-{{{{ inventory_hostname }}}} >> {marker}"
          - name: two
            local.shell: "echo two-{{{{ inventory_hostname }}}} >> {marker}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    order = lines(marker)
    # web2 finished both steps while web1 was still in its first one
    assert order.index("two-web2") < order.index("one-web1")


def test_serial_batches_are_respected(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: serial
        hosts: web
        steps:
          - name: rolling
            serial: [1, 2]
            block:
              - name: change
                local.shell: "echo start-{{{{ inventory_hostname }}}} >> {log}; sleep 0.2"
              - name: verify
                local.shell: "echo end-{{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    events = lines(log)
    # batch 1 = web1; batch 2 = web2, web3; batch 3 = web4 (the last size repeats)
    assert events.index("end-web1") < events.index("start-web2")
    assert events.index("end-web1") < events.index("start-web3")
    assert max(events.index("end-web2"), events.index("end-web3")) < events.index("start-web4")


def test_max_fail_percentage_stops_scheduling(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: threshold
        hosts: web
        steps:
          - name: flaky
            local.shell: "test {{{{ inventory_hostname }}}} != web1 && test {{{{ inventory_hostname }}}} != web2"
            max_fail_percentage: 25
          - name: after
            local.shell: "echo {{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY, forks=1)
    assert summary.status == "aborted"
    assert "over max_fail_percentage 25%" in summary.message
    nodes = statuses(journal, summary.run_id)
    assert nodes["flaky@web1"] == "failed" and nodes["flaky@web2"] == "failed"
    assert lines(log) == [], "no new node is scheduled once the threshold is crossed"


def test_failed_host_stops_but_others_continue(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: one-host-fails
        hosts: web
        steps:
          - name: check
            local.shell: "test {{{{ inventory_hostname }}}} != web3"
          - name: next
            local.shell: "echo {{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "failed"
    assert sorted(lines(log)) == ["web1", "web2", "web4"]
    rec = journal.nodes(summary.run_id)["next@web3"]
    assert (rec.status, rec.msg) == ("skipped", "host failed earlier")


def test_retries_until_and_backoff(run, journal, tmp_path):
    counter = tmp_path / "count"
    summary = run(f"""
        opsbook: 1
        name: retry
        steps:
          - name: eventually
            local.shell: "echo x >> {counter}; wc -l < {counter}"
            register: out
            until: "out.stdout | int >= 3"
            retries: 5
            delay: 0.05
            backoff: 2
        """)
    assert summary.status == "succeeded"
    rec = journal.nodes(summary.run_id)["eventually@localhost"]
    assert rec.attempts == 3 and len(lines(counter)) == 3


def test_until_gives_up_with_a_clear_message(run, journal):
    summary = run("""
        opsbook: 1
        name: retry
        steps:
          - name: never
            local.command: "echo 1"
            until: "result.stdout | int > 5"
            retries: 2
            delay: 0
        """)
    rec = journal.nodes(summary.run_id)["never@localhost"]
    assert summary.status == "failed"
    assert rec.msg == "until: result.stdout | int > 5 still false after 3 attempts (result.stdout = '1')"


def test_step_timeout_cancels_and_reports(run, journal):
    start = time.monotonic()
    summary = run("""
        opsbook: 1
        name: hang
        steps:
          - name: hung command
            local.shell: "sleep 30"
            timeout: 0.5
        """)
    assert time.monotonic() - start < 10
    rec = journal.nodes(summary.run_id)["hung-command@localhost"]
    assert (summary.status, rec.status) == ("failed", "timed_out")
    assert rec.msg.startswith("timed out after 0.5s")


def test_handlers_flush_at_the_end_and_survive_a_later_failure(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: handlers
        steps:
          - name: change config
            local.shell: "echo changed >> {log}"
            notify: restart app
          - name: unrelated
            local.noop: {{}}
            notify: never notified
            changed_when: false
          - name: later failure
            local.fail: boom
        handlers:
          - name: restart app
            local.shell: "echo restarted >> {log}"
          - name: never notified
            local.shell: "echo wrong >> {log}"
        """)
    assert summary.status == "failed"
    assert lines(log) == ["changed", "restarted"]


def test_rescue_and_always(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: blocks
        steps:
          - block:
              - name: breaks
                local.fail: boom
              - name: skipped
                local.shell: "echo skipped >> {log}"
            rescue:
              - name: fix
                local.shell: "echo rescue >> {log}"
            always:
              - name: cleanup
                local.shell: "echo always >> {log}"
          - name: continues
            local.shell: "echo after >> {log}"
        """)
    assert summary.status == "succeeded"
    assert lines(log) == ["rescue", "always", "after"]


def test_block_without_rescue_fails_the_host_but_always_runs(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: blocks
        steps:
          - block:
              - local.fail: boom
            always:
              - local.shell: "echo always >> {log}"
          - local.shell: "echo after >> {log}"
        """, rollback="never")
    assert summary.status == "failed"
    assert lines(log) == ["always"]


def test_rollback_runs_exact_inverses_in_reverse_order(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: rollback
        steps:
          - name: one
            local.shell: "echo do-1 >> {log}"
            rollback: {{local.shell: "echo undo-1 >> {log}"}}
          - name: two
            local.shell: "echo do-2 >> {log}"
            rollback: {{local.shell: "echo undo-2 >> {log}"}}
          - name: three fails
            local.shell: "exit 3"
            rollback: {{local.shell: "echo undo-3 >> {log}"}}
          - name: four never runs
            local.shell: "echo do-4 >> {log}"
            rollback: {{local.shell: "echo undo-4 >> {log}"}}
        """)
    # a command that failed may have changed state (it reports changed, as Ansible's do):
    # its `rollback:` is recorded too, and runs first
    assert summary.status == "failed" and summary.rolled_back == 3
    assert lines(log) == ["do-1", "do-2", "undo-3", "undo-2", "undo-1"]
    assert [r["status"] for r in journal.rollbacks(summary.run_id)] == ["done", "done", "done"]


def test_a_failed_step_that_says_it_changed_nothing_records_no_undo(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: rollback
        steps:
          - name: one
            local.shell: "echo do-1 >> {log}"
            rollback: {{local.shell: "echo undo-1 >> {log}"}}
          - name: two fails before changing
            local.shell: "exit 3"
            changed_when: result.rc == 0
            rollback: {{local.shell: "echo undo-2 >> {log}"}}
        """)
    assert summary.status == "failed" and summary.rolled_back == 1
    assert lines(log) == ["do-1", "undo-1"]


def test_rollback_never_and_always(run, journal, tmp_path):
    log = tmp_path / "log"
    text = f"""
        opsbook: 1
        name: rollback
        steps:
          - name: one
            local.shell: "echo do >> {log}"
            rollback: {{local.shell: "echo undo >> {log}"}}
        """
    assert run(text, rollback="always").rolled_back == 1
    assert lines(log) == ["do", "undo"]


def test_when_and_register_and_loop(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: logic
        params:
          fruits: {{type: list, default: [apple, pear]}}
        steps:
          - name: probe
            local.command: "echo 7"
            register: probe
          - name: loop
            local.shell: "echo {{{{ item }}}}-{{{{ probe.stdout | trim }}}} >> {log}"
            loop: "{{{{ params.fruits }}}}"
          - name: skipped by when
            local.shell: "echo no >> {log}"
            when: probe.stdout | int > 10
        """)
    assert summary.status == "succeeded"
    assert lines(log) == ["apple-7", "pear-7"]
    rec = journal.nodes(summary.run_id)["skipped-by-when@localhost"]
    assert rec.status == "skipped" and rec.msg == "when: probe.stdout | int > 10 is false (probe.stdout = '7')"


def test_values_reach_shell_commands_quoted(run, journal, tmp_path):
    log = tmp_path / "log"
    evil = "x; touch PWNED $(touch PWNED2) `touch PWNED3` ' \" \nnewline"
    summary = run(f"""
        opsbook: 1
        name: quoting
        params:
          value: {{type: string}}
        steps:
          - name: echo
            local.shell: "cd {tmp_path} && printf '%s' {{{{ params.value }}}} > {log}"
        """, params={"value": evil})
    assert summary.status == "succeeded"
    assert log.read_text() == evil
    assert not any((tmp_path / n).exists() for n in ("PWNED", "PWNED2", "PWNED3"))


def test_approval_from_another_thread_through_the_journal(run, journal, tmp_path):
    from opsbook.approve import journal_approver
    from opsbook.journal import Journal

    log = tmp_path / "log"
    db = journal.path
    approver = journal_approver(lambda: Journal(db), timeout=20, poll=0.05)

    def approve_later():
        other = Journal(db)
        run_id = wait_for("the run's approval request in the journal",
                          lambda: (runs := other.list_runs()) and other.approvals(runs[0].id) and runs[0].id,
                          timeout=10, interval=0.05)
        other.decide(run_id, "promote", True, "alice")

    threading.Thread(target=approve_later, daemon=True).start()
    summary = run(f"""
        opsbook: 1
        name: gate
        steps:
          - name: promote
            approve: "Promote the standby?"
            local.shell: "echo promoted >> {log}"
        """, approver=approver)
    assert summary.status == "succeeded" and lines(log) == ["promoted"]
    (decision,) = journal.approvals(summary.run_id)
    assert decision["approved"] is True and decision["who"] == "alice"


def test_denied_approval_fails_the_step(run, journal, tmp_path):
    seen: list[ApprovalRequest] = []

    def deny(request: ApprovalRequest):
        seen.append(request)
        return False, "bob"

    summary = run("""
        opsbook: 1
        name: gate
        steps:
          - name: risky
            approve: "Wipe {{ inventory_hostname }}?"
            local.command: "echo no"
        """, approver=deny)
    assert summary.status == "failed"
    assert seen[0].prompt == "Wipe localhost?" and seen[0].action == "local.command"
    assert journal.nodes(summary.run_id)["risky@localhost"].msg == "not approved (bob)"


def test_check_mode_reports_unknown_and_dependents(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: dry
        steps:
          - name: mutate
            local.shell: "echo ran >> {log}"
            register: m
          - name: depends
            local.shell: "echo also >> {log}"
            when: m.rc == 0
          - name: pure
            local.assert: {{that: [true]}}
        """, check=True)
    nodes = journal.nodes(summary.run_id)
    assert not log.exists(), "check mode must not run commands"
    assert nodes["mutate@localhost"].status == "unknown"
    assert nodes["depends@localhost"].status == "unknown"
    assert nodes["depends@localhost"].msg == 'depends on "mutate" (unknown in check mode)'
    assert nodes["pure@localhost"].status == "ok"


def test_run_once_and_delegate(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: once
        hosts: web
        steps:
          - name: once
            run_once: true
            local.shell: "echo {{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded" and lines(log) == ["web1"]


def test_secrets_never_reach_the_journal(run, journal, tmp_path):
    from opsbook.api import RunRequest  # noqa: F401 - documents where secrets enter

    summary = run("""
        opsbook: 1
        name: secret
        params:
          token: {type: secret}
        steps:
          - name: use it
            local.shell: "echo token={{ params.token }}; exit 1"
        """, params={"token": "s3cr3t-VALUE"})
    assert summary.status == "failed"
    raw = Path(journal.path).read_bytes()
    for suffix in ("-wal", ""):
        p = Path(journal.path + suffix)
        if p.exists():
            raw += p.read_bytes()
    assert b"s3cr3t-VALUE" not in raw
    assert "token=********" in journal.nodes(summary.run_id)["use-it@localhost"].stdout


def test_the_abort_line_says_that_running_nodes_finish():
    from opsbook.display import _describe
    from opsbook.events import Event

    message = "6 nodes failed, over the run's max_errors 5"
    busy = _describe(Event("aborted", "r1", data={"message": message, "still_running": 3}), 0)
    assert busy.endswith(f"ABORTED: {message} (nothing new starts; 3 running node(s) will finish)")
    idle = _describe(Event("aborted", "r1", data={"message": message, "still_running": 0}), 0)
    assert idle.endswith(f"ABORTED: {message}")


def test_a_hosts_next_step_runs_on_the_same_worker_after_its_result_is_durable(run, journal):
    threads: dict[str, str] = {}

    def listener(event):
        if event.kind == "node_started":
            threads[event.node_id] = threading.current_thread().name

    summary = run("""
        opsbook: 1
        name: chain
        hosts: web
        steps:
          - name: one
            local.shell: "echo one"
          - name: two
            local.shell: "echo two"
          - name: three
            local.shell: "echo three"
        """, INVENTORY, listeners=[listener], forks=4)
    assert summary.status == "succeeded"
    hosts = [f"web{i}" for i in range(1, 5)]
    for h in hosts:  # no hand-off through the scheduler between a host's steps
        assert threads[f"one@{h}"] == threads[f"two@{h}"] == threads[f"three@{h}"], threads
    rows = journal.db.execute("SELECT node_id, status FROM node_log WHERE run_id=? ORDER BY seq",
                              (summary.run_id,)).fetchall()
    seq = {(node, status): i for i, (node, status) in enumerate(rows)}
    for h in hosts:  # write-ahead holds: a start is committed after the result before it
        assert seq[(f"one@{h}", "ok")] < seq[(f"two@{h}", "started")] < seq[(f"two@{h}", "ok")]
        assert seq[(f"two@{h}", "ok")] < seq[(f"three@{h}", "started")] < seq[(f"three@{h}", "ok")]


def test_a_hosts_last_result_is_durable_while_other_hosts_still_run(run, journal, tmp_path):
    import sqlite3

    marker = tmp_path / "web1-result-seen"
    done: dict[str, object] = {}
    runner = threading.Thread(target=lambda: done.setdefault("summary", run(f"""
        opsbook: 1
        name: durable
        hosts: web
        steps:
          - name: one
            local.shell: "[ {{{{ inventory_hostname }}}} = web1 ] && exit 0; for i in $(seq 600); do [ -e {marker} ] && exit 0; sleep 0.05; done; exit 1"
        """, INVENTORY, limit={"web1", "web2"})))
    runner.start()
    reader = sqlite3.connect(str(journal.path))  # another connection: what a crash would leave
    try:
        wait_for("web1's result committed while web2 is still running",
                 lambda: reader.execute("SELECT status FROM node_log WHERE node_id='one@web1' "
                                        "ORDER BY seq DESC").fetchone() == ("ok",), timeout=30, interval=0.05)
    finally:
        reader.close()
        marker.touch()  # web2 may finish now
    runner.join()
    assert done["summary"].status == "succeeded"


def test_an_ignored_failure_is_shown_as_ignored(run):
    from opsbook.display import _describe

    events = []
    summary = run("""
        opsbook: 1
        name: detect
        steps:
          - name: service answers
            local.fail: down
            ignore_errors: true
          - name: go on
            local.noop: {}
        """, listeners=[events.append])
    assert summary.status == "succeeded"
    finished = next(e for e in events if e.kind == "node_finished" and e.step == "service answers")
    assert finished.data["ignored"] is True
    assert "failed    service answers @ localhost (ignored)" in _describe(finished, 0)
    last = _describe(events[-1], 0)
    assert last.endswith("succeeded: ok=1, ignored=1"), last  # Ansible's recap: ignored, not failed


def test_the_live_table_shows_counts_not_markup_on_any_console():
    """The counts of the live table are styled Text: rendered on a console without markup
    (as after an approval paused and resumed the table) they read 2, never `[green]2[/]`."""
    import io

    from opsbook.display import LiveProgress
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, markup=False, width=120, force_terminal=False, color_system=None)
    live = LiveProgress(console)
    for host, status in (("web1", "ok"), ("web2", "ok"), ("web3", "failed"), ("web4", "skipped")):
        live.steps.setdefault("restart [web]", {"running": 0, "ok": 0, "changed": 0, "failed": 0, "rescued": 0,
                                                 "ignored": 0, "skipped": 0, "last": ""})
        live.steps["restart [web]"][status] += 1
    console.print(live._render())
    text = out.getvalue()
    assert "restart [web]" in text and " 2 " in text, text
    assert "[green]" not in text and "[red]" not in text and "[dim]" not in text and "[/]" not in text, text
