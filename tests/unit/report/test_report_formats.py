"""`opsbook report`: Markdown, one self-contained HTML page with an SVG Gantt chart, JSON, JUnit."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from opsbook.cli import main
from opsbook.report import STATUS_COLORS, build_report

SVG = "{http://www.w3.org/2000/svg}"
STDERR = "".join(f"pg_restore: error {i}\n" for i in range(60)) + "| pipes | and ``` fences\n"


@pytest.fixture
def incident(journal, new_run):
    """A failed first-response run with every kind of record."""
    run = new_run(incident=-120.0, duration=None, status="running", ago=100.0)
    run.node("web-answers", "web1", "failed", 0, 2, rc=7, msg="connection refused")
    run.node("collect-logs", "web1", "skipped", 2, 2, msg="not selected by tags")
    journal.event(run.run_id, "evidence", "web-answers@web1",
                  {"path": "web1/error.log", "source": "web1:/var/log/nginx/error.log", "step": "web answers",
                   "host": "web1", "description": "nginx error log"}, ts=run.t0 + 2.5)
    run.node("restart-web", "web1", "ok", 3, 10, changed=True, msg="restarted <nginx>")
    run.node("restore-db", "db1", "failed", 10, 20, rc=1, msg="restore | failed", stdout="reading dump\n",
             stderr=STDERR)
    run.node("web-answers-again", "web1", "ok", 20, 25)
    journal.record_decision(run.run_id, "restart-web@web1", "restart-web", "Restart nginx on web1?", True, "alice")
    journal.add_rollback(run.run_id, "restart-web@web1", "web1", "ssh.command", {"cmd": "nginx -s stop"})
    journal.rollback_status(run.run_id, 1, "done", "stopped")
    journal.set_run_status(run.run_id, "failed", {"message": "1 host failed"})
    return run


def test_markdown_has_every_postmortem_section(journal, incident):
    md = build_report(journal, incident.run_id, "md")
    assert md.startswith(f"# Run report: web-restart ({incident.run_id})\n")
    headings = re.findall(r"^## (.+)$", md, re.MULTILINE)
    assert headings == ["Summary", "State at the end", "Recovery objectives", "Timeline", "Failures",
                        "Approvals", "Rollbacks", "Evidence", "Root cause notes", "Permanent fix"]
    assert "| Status | failed |" in md
    assert re.search(r"\| Run by \| alice@ops-laptop \(pid \d+\) \|", md)  # set_run_status records its pid
    # the mitigation (restart web) was undone by the rollback: the service was not left recovered
    assert "| RTO | - | 5m00s | not recovered |" in md
    assert "basis: not recovered: the mitigation (restart web on web1) was rolled back when the run failed" in md
    assert "| RPO | - | 60.0s | not measured |" in md


def test_markdown_timeline_table_has_a_row_per_entry(journal, incident):
    md = build_report(journal, incident.run_id, "md")
    table = md.split("## Timeline")[1].split("## Failures")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Offset")]
    # incident, 5 nodes, evidence, approval, rollback, run end
    assert len(rows) == 10
    assert rows[0].startswith("| -02:00.0 |")
    assert "| +00:03.0 | 7.0s | ok | web1 | restart web | [mitigation] restarted <nginx> |" in table
    assert "restore \\| failed" in table  # a pipe in a message does not break the table


def test_markdown_failures_quote_output_tails_in_fences(journal, incident):
    md = build_report(journal, incident.run_id, "md")
    failures = md.split("## Failures")[1].split("## Approvals")[0]
    assert "### web answers on web1: failed (ignored: ignore_errors)" in failures
    assert "### restore db on db1: failed" in failures
    assert "rc 1. restore | failed" in failures
    assert "stderr (last 40 lines; 21 earlier lines not shown):" in failures
    block = failures.split("````text\n")[1].split("\n````")[0]  # ``` inside: a longer fence
    assert block.splitlines()[-1] == "| pipes | and ``` fences"
    assert "pg_restore: error 20" not in block and "pg_restore: error 21" in block
    assert "```text\nreading dump\n```" in failures


def test_markdown_lists_approvals_rollbacks_evidence_and_prompts(journal, incident):
    md = build_report(journal, incident.run_id, "md")
    assert re.search(r"\| restart web \| web1 \| Restart nginx on web1\? \| approved \| alice \|", md)
    assert "| 1 | ssh.command | web1 | restart web | done |" in md
    assert "- web1/error.log: from web1:/var/log/nginx/error.log (step web answers on web1, +00:02.5)" in md
    root = md.split("## Root cause notes")[1].split("## Permanent fix")[0]
    assert '- [ ] Why did "restore db" fail on db1? (restore | failed)' in root
    assert '- [ ] Why did "web answers" fail on web1?' in root and "was this failure the incident itself?" in root
    fix = md.split("## Permanent fix")[1]
    assert '- [ ] What change keeps "restore db" from failing on db1 again' in fix


class _TagBalance(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.bad.append(tag)


def test_html_is_one_self_contained_page(journal, incident):
    page = build_report(journal, incident.run_id, "html")
    balance = _TagBalance()
    balance.feed(page)
    assert balance.bad == [] and balance.open == []
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|url\(|@import", page)
    assert not re.search(r'href="(?!#)', page)
    for title in ("Summary", "Recovery objectives", "Timeline", "Failures", "Approvals", "Rollbacks", "Evidence",
                  "Root cause notes", "Permanent fix"):
        assert f"<h2>{title}</h2>" in page
    assert "restarted &lt;nginx&gt;" in page and "<nginx>" not in page  # escaped
    assert "pg_restore: error 59" in page


def test_html_svg_gantt_has_a_bar_per_node_and_rollback_coloured_by_status(journal, incident):
    page = build_report(journal, incident.run_id, "html")
    svg = ET.fromstring(re.search(r"<svg\b.*?</svg>", page, re.DOTALL).group(0))
    assert svg.tag == f"{SVG}svg"
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 6  # 5 nodes + 1 executed rollback
    fills = [b.get("fill") for b in bars]
    # web answers failed with ignore_errors: coloured as counted, ignored
    assert fills[:5] == [STATUS_COLORS[s] for s in ("ignored", "skipped", "ok", "failed", "ok")]
    assert fills[5] == STATUS_COLORS["done"]
    # the rollback took no measurable time, and still has a bar a reader can see and hover
    assert float(bars[5].get("width")) >= 4.0
    tips = [b.find(f"{SVG}title").text for b in bars]
    assert tips[3].startswith("restore db @ db1: failed, 10.0s - restore | failed")
    labels = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "label"]
    assert labels[:2] == ["web answers @ web1", "collect logs @ web1"]
    # bars start where their nodes start: restart web at +3s of a chart that begins at the run start
    x_restart, x_first = float(bars[2].get("x")), float(bars[0].get("x"))
    x_restore = float(bars[3].get("x"))
    assert x_first < x_restart < x_restore
    assert (x_restore - x_first) == pytest.approx((x_restart - x_first) * 10 / 3, rel=0.01)
    assert len(svg.findall(f"{SVG}polygon")) == 1  # the approval
    markers = [m.find(f"{SVG}title").text for m in svg.findall(f"{SVG}line") if m.get("class") == "marker"]
    assert markers == ["mitigated at +00:10.0"]  # rolled back afterwards: no recovery marker


def test_json_holds_everything_structured(journal, incident):
    data = json.loads(build_report(journal, incident.run_id, "json"))
    assert data["format"] == "opsbook-report/1"
    assert data["run"]["id"] == incident.run_id and data["run"]["status"] == "failed"
    assert data["counts"] == {"ok": 2, "failed": 1, "ignored": 1, "skipped": 1}
    assert [n["ignored"] for n in data["nodes"]][:4] == [True, False, False, False]
    assert data["rto"]["rto"] is None and data["rto"]["rto_verdict"] == "not recovered"
    assert data["rto"]["time_to_mitigate"] == pytest.approx(130.0)
    assert [n["node_id"] for n in data["nodes"]][:3] == ["web-answers@web1", "collect-logs@web1", "restart-web@web1"]
    restore = data["nodes"][3]
    assert restore["stderr"] == STDERR and restore["rc"] == 1 and restore["duration"] == pytest.approx(10.0)
    assert data["approvals"][0]["who"] == "alice" and data["rollbacks"][0]["status"] == "done"
    assert data["events"][0]["kind"] == "evidence"
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds[0] == "incident" and kinds.count("node") == 5 and "run_end" in kinds
    assert data["steps"]["restart-web"]["marks"] == ["mitigation"]


def _schema_valid(text: str) -> None:
    """The run report's JUnit is valid against the Jenkins/Ant JUnit schema (issue 31 item 4)."""
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("junit.xsd"))))
    doc = etree.fromstring(text.encode())
    assert schema.validate(doc), schema.error_log


def test_junit_has_a_testcase_per_node(journal, incident):
    text = build_report(journal, incident.run_id, "junit")
    _schema_valid(text)
    root = ET.fromstring(text)
    suite = root.find("testsuite[@name='web-restart']")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["web answers @ web1", "collect logs @ web1", "restart web @ web1",
                                              "restore db @ db1", "web answers again @ web1"]
    by_name = {c.get("name"): c for c in cases}
    restore = by_name["restore db @ db1"].find("failure")
    assert restore.get("message") == "restore | failed" and "(rc 1)" in restore.text
    assert by_name["restore db @ db1"].find("system-err").text.endswith("| pipes | and ``` fences")
    assert by_name["web answers @ web1"].find("failure") is None  # ignore_errors: not a CI failure
    assert by_name["collect logs @ web1"].find("skipped").get("message") == "not selected by tags"
    assert by_name["restart web @ web1"].get("time") == "7.000"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "1")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == incident.run_id and props["rto_verdict"] == "not recovered"
    assert root.find("testsuite[@name='web-restart rollback']/testcase").get("name").startswith("ssh.command @ web1")
    assert root.get("tests") == str(len(root.findall(".//testcase")))


def test_junit_fails_a_missed_objective_and_flags_nodes_in_doubt(journal, new_run):
    run = new_run(incident=-600.0, status="interrupted")
    run.node("restart-web", "web1", "ok", 0, 5)
    run.node("web-answers-again", "web1", "ok", 5, 6)
    journal.node_started(run.run_id, "restore-db@db1", "restore-db", "db1")
    text = build_report(journal, run.run_id, "junit")
    _schema_valid(text)
    root = ET.fromstring(text)
    objectives = {c.get("name"): c for c in root.find("testsuite[@name='web-restart objectives']")}
    assert objectives["RTO"].find("failure").get("message") == "RTO missed by 5m06s"
    assert objectives["RPO"].find("skipped") is not None
    doubt = root.find(".//testcase[@name='restore db @ db1']/error")
    assert doubt.get("type") == "in_doubt"


def test_unknown_format_is_rejected(journal, new_run):
    run = new_run()
    with pytest.raises(ValueError, match="unknown report format"):
        build_report(journal, run.run_id, "pdf")


def test_cli_show_and_report_read_the_same_journal(journal, incident, tmp_path):
    runner = CliRunner()
    shown = runner.invoke(main, ["show", "last", "--journal", journal.path])
    assert shown.exit_code == 0, shown.output
    assert "restart web" in shown.output and "[mitigation]" in shown.output
    out = tmp_path / "r.html"
    made = runner.invoke(main, ["report", incident.run_id[:8], "--format", "html", "-o", str(out),
                                "--journal", journal.path])
    assert made.exit_code == 0, made.output
    assert "<svg" in out.read_text()
