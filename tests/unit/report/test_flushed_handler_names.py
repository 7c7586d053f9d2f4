"""A handler run by `meta: flush_handlers` reads whole and apart from the same handler at
the run's end, in `show` and in the report (outside review, item 6: the column cut both to
"restart the web server grac...")."""

from __future__ import annotations

from opsbook_lab.pytest_plugin import opsbook

RUNBOOK = """opsbook: 1
name: handlers
steps:
  - name: change the web server configuration
    local.command: "true"
    notify: restart the web server gracefully
  - name: apply now
    meta: flush_handlers
  - name: change it again
    local.command: "true"
    notify: restart the web server gracefully
handlers:
  - name: restart the web server gracefully
    local.command: "true"
"""


def test_a_flushed_handler_and_the_same_handler_at_the_end_read_whole_and_apart(tmp_path):
    rb = tmp_path / "handlers.yaml"
    rb.write_text(RUNBOOK)
    assert opsbook(tmp_path, "run", str(rb)).returncode == 0
    shown = opsbook(tmp_path, "show", "last").stdout
    rows = [line for line in shown.splitlines() if "restart the web server" in line and "ok" in line]
    assert len(rows) == 2, shown
    assert "restart the web server gracefully (flush_handlers)" in rows[0], shown
    assert rows[1].rstrip().endswith("restart the web server gracefully"), shown
    assert "..." not in "".join(rows) and "change the web server configuration" in shown
    report = opsbook(tmp_path, "report", "last", "--format", "md").stdout
    assert "| restart the web server gracefully (flush_handlers) |" in report, report
    assert "| restart the web server gracefully |" in report, report
