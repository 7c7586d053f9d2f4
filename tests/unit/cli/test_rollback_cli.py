"""`opsbook rollback RUN`: undo a finished run's changes later, on purpose (issue 28: "a
succeeded isolation has no way back"), as a new run linked to the first."""

from __future__ import annotations

from pathlib import Path

from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import opsbook

ISOLATE = """opsbook: 1
name: isolate
hosts: web
steps:
  - name: drain at the balancer
    delegate_to: lb1
    local.shell: "echo drain-{{{{ inventory_hostname }}}} >> {log}"
    rollback: {{local.shell: "echo ready-{{{{ inventory_hostname }}}} >> {log}"}}
  - name: disconnect
    local.shell: "echo off-{{{{ inventory_hostname }}}} >> {log}"
    rollback: {{local.shell: "{undo}"}}
"""


def _isolated(tmp_path: Path, undo: str = "echo on-{{ inventory_hostname }} >> LOG") -> str:
    log = tmp_path / "log"
    (tmp_path / "inv.ini").write_text("[web]\nweb1 ansible_connection=local\n[lb]\nlb1 ansible_connection=local\n")
    (tmp_path / "rb.yaml").write_text(ISOLATE.format(log=log, undo=undo.replace("LOG", str(log))))
    done = opsbook(tmp_path, "run", str(tmp_path / "rb.yaml"), "-i", str(tmp_path / "inv.ini"), "--format", "text")
    assert done.returncode == 0, done.stderr
    journal = Journal(tmp_path / "j.db")
    try:
        return journal.latest_run_id()
    finally:
        journal.close()


def test_a_succeeded_run_is_undone_later_newest_first_as_a_new_linked_run(tmp_path):
    first = _isolated(tmp_path)
    shown = opsbook(tmp_path, "rollback", first)
    assert shown.returncode == 2 and "confirm on a terminal, or add --yes" in shown.stderr
    assert 'web1: local.shell echo on-web1' in shown.stdout and 'undoes "disconnect"' in shown.stdout
    done = opsbook(tmp_path, "rollback", first, "--yes")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "log").read_text().split() == ["drain-web1", "off-web1", "on-web1", "ready-web1"]
    assert f"undid 2 of 2 change(s) of run {first}" in done.stderr
    journal = Journal(tmp_path / "j.db")
    try:
        second = journal.latest_run_id()
        assert second != first and journal.get_run(second).options["rollback_of"] == first
        assert journal.get_run(second).runbook_name == "rollback of isolate"
        assert [r["status"] for r in journal.rollbacks(first)] == ["done", "done"]
        assert all(f"by opsbook rollback: run {second}" in r["msg"] for r in journal.rollbacks(first))
    finally:
        journal.close()
    again = opsbook(tmp_path, "rollback", first, "--yes")
    assert again.returncode == 2 and "has nothing left to undo (its undos: 2 done)" in again.stderr


def test_a_failed_undo_leaves_the_older_ones_of_that_host_and_exits_4(tmp_path):
    first = _isolated(tmp_path, undo="exit 3")
    done = opsbook(tmp_path, "rollback", first, "--yes")
    assert done.returncode == 4, done.stderr
    assert "ROLLBACK FAILED" in done.stderr
    assert "ready-web1" not in (tmp_path / "log").read_text(), "the balancer's undo waits for the host's own"
    journal = Journal(tmp_path / "j.db")
    try:
        assert [r["status"] for r in journal.rollbacks(first)] == ["skipped", "failed"]
    finally:
        journal.close()


def test_a_dry_run_and_a_run_with_nothing_to_undo_are_refused_in_one_line(tmp_path):
    rb = tmp_path / "dry.yaml"
    rb.write_text("opsbook: 1\nname: dry\nsteps:\n  - name: act\n    local.command: echo x\n")
    assert opsbook(tmp_path, "run", str(rb), "--check").returncode == 0
    dry = opsbook(tmp_path, "rollback", "last", "--yes")
    assert dry.returncode == 2 and "was a dry run (--check): it changed nothing" in dry.stderr
    assert opsbook(tmp_path, "run", str(rb)).returncode == 0
    none = opsbook(tmp_path, "rollback", "last", "--yes")
    assert none.returncode == 2 and "has nothing left to undo (its undos: none recorded)" in none.stderr
    assert "Traceback" not in dry.stderr + none.stderr
