"""Every surface shows a rescued failure (its block's rescue succeeded on the host) as
`rescued`, not `failed`: the live table, the run's last line, `opsbook show`, the
Markdown/HTML/JSON reports and JUnit (where it is not a failure)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from opsbook.report import build_report, timeline_text
from opsbook_lab.pytest_plugin import opsbook

# as in test_rescued_counts: config test fails, the rescue succeeds
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


def test_the_live_table_moves_a_rescued_failure_to_its_column():
    from opsbook.display import LiveProgress, _describe
    from opsbook.events import Event
    from rich.console import Console

    live = LiveProgress(Console(file=io.StringIO(), width=120, force_terminal=False))
    for host in ("h1", "h2"):
        live(Event("node_finished", "r1", 0.0, f"t@{host}", host, "config test", {"status": "failed", "msg": "bad"}))
    rescued = Event("node_rescued", "r1", 0.0, "t@h1", "h1", "config test", {"status": "failed"})
    live(rescued)
    assert live.steps["config test"]["failed"] == 1 and live.steps["config test"]["rescued"] == 1
    out = io.StringIO()
    Console(file=out, width=120).print(live._render())
    head, row = out.getvalue().splitlines()[:2]
    assert head.split()[:8] == ["step", "run", "ok", "chg", "fail", "resc", "ign", "skip"]
    assert row.split()[:4] == ["config", "test", "1", "1"]
    assert "rescued   config test @ h1 (failed, then the block's rescue succeeded)" in _describe(rescued, 0)


def test_show_and_the_reports_count_it_rescued_and_junit_does_not_fail_it(run, journal):
    summary = run(RECOVER)
    shown = timeline_text(journal, summary.run_id)
    assert "nodes       3 ok, 1 rescued, 1 skipped;" in shown
    row = next(line for line in shown.splitlines() if "config test" in line and line.lstrip().startswith("+"))
    assert row.split()[2:4] == ["rescued", "localhost"]
    assert "failed (the block's rescue succeeded): rc 3: command exited with rc=3: bad config" in shown
    assert "rescued: config test" in shown and "failed: config test" not in shown  # the host's end state
    md = build_report(journal, summary.run_id, "md")
    assert "| Nodes | 3 ok, 1 rescued, 1 skipped |" in md
    assert "### config test on localhost: failed (rescued: the block's rescue succeeded)" in md  # the postmortem
    html = build_report(journal, summary.run_id, "html")
    assert '<td class="st st-rescued">rescued</td>' in html
    data = json.loads(build_report(journal, summary.run_id, "json"))
    assert data["counts"] == {"ok": 3, "rescued": 1, "skipped": 1}
    assert [n["node_id"] for n in data["nodes"] if n["rescued"]] == ["config-test@localhost"]
    suite = ET.fromstring(build_report(journal, summary.run_id, "junit")).find("testsuite[@name='recover']")
    assert suite.get("failures") == "0"
    case = next(c for c in suite.findall("testcase") if c.get("name") == "config test @ localhost")
    assert case.find("failure") is None
    assert case.find("system-out").text.startswith(
        "rescued (the block's rescue succeeded): failed (rc 3): command exited with rc=3: bad config")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["rescued"] == "1" and props["status"] == "succeeded"


def test_the_cli_end_line_says_rescued_and_the_run_exits_0(tmp_path):
    book = tmp_path / "rb.yaml"
    book.write_text("\n".join(line[4:] for line in RECOVER.splitlines()))
    done = opsbook(tmp_path, "run", str(book), "--format", "text")
    assert done.returncode == 0, done.stderr
    end = next(line for line in done.stderr.splitlines() if " run " in line and "succeeded:" in line)
    assert end.endswith("succeeded: ok=3, rescued=1, skipped=1"), end
    assert "failed=" not in end
    shown = opsbook(tmp_path, "show", "last")
    assert "3 ok, 1 rescued, 1 skipped" in shown.stdout
    assert "rescued     localhost  config test" in shown.stdout
