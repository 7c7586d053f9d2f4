"""A failure on an `ignore_errors` step counts as `ignored`, not `failed` (Ansible's recap),
everywhere a run's counts are shown or returned; the node itself stays `failed` in the journal."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from opsbook.counts import ordered, tally
from opsbook.report import build_report, timeline_text
from opsbook_lab.pytest_plugin import opsbook, statuses

DETECT = """
    opsbook: 1
    name: detect
    steps:
      - name: service answers
        local.command: "sh -c 'echo down >&2; exit 7'"
        ignore_errors: true
        register: probe
      - name: checks
        ignore_errors: true
        block:
          - name: inner check
            local.fail: inner down
      - name: tolerated
        local.command: "false"
        failed_when: false
      - name: go on
        local.debug: {msg: "{{ probe.failed }}"}
    """


def test_counts_put_an_ignored_failure_under_ignored_in_ansibles_order():
    assert tally([("ok", False), ("failed", True), ("timed_out", True), ("failed", False), ("started", False),
                  ("skipped", True)]) == {"ok": 1, "failed": 1, "ignored": 2, "skipped": 1, "in doubt": 1}
    assert list(ordered({"skipped": 1, "zzz": 1, "ignored": 2, "ok": 3})) == ["ok", "ignored", "skipped", "zzz"]


def test_an_ignored_failure_counts_as_ignored_and_stays_failed_in_the_journal(run, journal):
    summary = run(DETECT)
    assert summary.status == "succeeded" and summary.ok
    assert summary.counts == {"ok": 2, "ignored": 2}  # failed_when: false is ok, not ignored
    assert summary.failed_nodes == []
    assert summary.ignored_nodes == ["service-answers@localhost", "inner-check@localhost"]  # a block's too
    nodes = journal.nodes(summary.run_id)
    assert statuses(journal, summary.run_id) == {"service-answers@localhost": "failed",
                                                 "inner-check@localhost": "failed",
                                                 "tolerated@localhost": "ok", "go-on@localhost": "ok"}
    assert nodes["service-answers@localhost"].ignored is True and nodes["tolerated@localhost"].ignored is False
    assert nodes["go-on@localhost"].msg == "true"  # register's .failed stays true, as in Ansible
    recorded = journal.get_run(summary.run_id).summary
    assert recorded["counts"] == {"ok": 2, "ignored": 2} and recorded["failed"] == []
    assert recorded["ignored"] == summary.ignored_nodes


def test_a_failure_that_is_not_ignored_still_counts_as_failed_beside_an_ignored_one(run):
    summary = run("""
        opsbook: 1
        name: mixed
        steps:
          - name: probe
            local.fail: down
            ignore_errors: true
          - name: fix
            local.fail: cannot
        """)
    assert summary.status == "failed"
    assert summary.counts == {"failed": 1, "ignored": 1}
    assert summary.failed_nodes == ["fix@localhost"] and summary.ignored_nodes == ["probe@localhost"]


def test_a_timed_out_step_with_ignore_errors_counts_as_ignored(run, journal):
    summary = run("""
        opsbook: 1
        name: slow
        steps:
          - name: slow probe
            local.shell: "sleep 5"
            timeout: 0.3s
            ignore_errors: true
        """)
    assert summary.status == "succeeded" and summary.counts == {"ignored": 1}
    assert statuses(journal, summary.run_id) == {"slow-probe@localhost": "timed_out"}


def test_the_json_events_carry_ignored_in_the_counts(run):
    events = []
    run(DETECT, listeners=[events.append])
    finished = [e for e in events if e.kind == "node_finished"]
    assert [e.data["ignored"] for e in finished] == [True, True, False, False]
    end = json.loads(json.dumps(events[-1].to_json()))
    assert end["event"] == "run_finished" and end["counts"] == {"ok": 2, "ignored": 2}


def test_the_live_table_has_an_ignored_column():
    import io

    from opsbook.display import LiveProgress
    from opsbook.events import Event
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    live = LiveProgress(console)
    for status, ignored in (("failed", True), ("failed", False), ("ok", False)):
        live(Event("node_finished", "r1", 0.0, f"probe@h-{status}-{ignored}", "h", "probe",
                   {"status": status, "ignored": ignored, "msg": "down"}))
    assert live.steps["probe"]["ignored"] == 1 and live.steps["probe"]["failed"] == 1
    out = io.StringIO()
    Console(file=out, width=120).print(live._render())
    head, row = out.getvalue().splitlines()[:2]
    assert head.split()[:8] == ["step", "run", "ok", "chg", "fail", "resc", "ign", "skip"]
    assert row.split()[:4] == ["probe", "1", "1", "1"]


def test_show_and_the_reports_count_it_ignored_and_junit_does_not_fail_it(run, journal):
    summary = run(DETECT)
    shown = timeline_text(journal, summary.run_id)
    assert "nodes       2 ok, 2 ignored;" in shown
    row = next(line for line in shown.splitlines() if "service answers" in line)
    assert row.split()[2:4] == ["ignored", "localhost"]
    assert "failed (ignore_errors): rc 7: command exited with rc=7: down" in shown
    md = build_report(journal, summary.run_id, "md")
    assert "| Nodes | 2 ok, 2 ignored |" in md
    assert "| ignored | localhost | inner check | failed (ignore_errors): inner down |" in md
    assert "### inner check on localhost: failed (ignored: ignore_errors)" in md  # the postmortem still sees it
    html = build_report(journal, summary.run_id, "html")
    assert '<td class="st st-ignored">ignored</td>' in html
    data = json.loads(build_report(journal, summary.run_id, "json"))
    assert data["counts"] == {"ok": 2, "ignored": 2}
    assert [n["ignored"] for n in data["nodes"]] == [True, True, False, False]
    suite = ET.fromstring(build_report(journal, summary.run_id, "junit")).find("testsuite[@name='detect']")
    assert suite.get("failures") == "0"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    inner = cases["inner check @ localhost"]
    assert inner.find("failure") is None
    assert inner.find("system-out").text == "ignored (ignore_errors): failed: inner down"
    assert cases["service answers @ localhost"].find("system-out").text.startswith(
        "ignored (ignore_errors): failed (rc 7): command exited with rc=7: down")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["ignored"] == "2"


def test_the_cli_end_line_says_ignored_and_the_run_exits_0(tmp_path):
    book = tmp_path / "rb.yaml"
    book.write_text("\n".join(line[4:] for line in DETECT.splitlines()))
    done = opsbook(tmp_path, "run", str(book), "--format", "text")
    assert done.returncode == 0, done.stderr
    end = next(line for line in done.stderr.splitlines() if " run " in line and "succeeded:" in line)
    assert end.endswith("succeeded: ok=2, ignored=2"), end
    assert "failed=" not in done.stderr
    shown = opsbook(tmp_path, "show", "last")
    assert "2 ok, 2 ignored" in shown.stdout and "ignored     localhost  service answers" in shown.stdout
