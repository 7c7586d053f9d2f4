"""Four eyes: a runbook with `approved_by: another` (or a run with --four-eyes) cannot be
approved by the user who started it; by default a self-approval is allowed and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsbook.approve import refuse_self_approval
from opsbook.errors import UserError
from opsbook.journal import Journal, RunRecord
from opsbook_lab.pytest_plugin import cli_env, on_a_terminal, opsbook, wait_for

GATED = """opsbook: 1
name: promote
{extra}steps:
  - name: promote standby
    approve: "Promote the standby?"
    local.shell: "echo promoted >> {out}"
"""


def _runbook(tmp_path: Path, extra: str = "approved_by: another\n") -> Path:
    rb = tmp_path / "promote.yaml"
    rb.write_text(GATED.format(extra=extra, out=tmp_path / "out"))
    return rb


def _waiting_run(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "run.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", *args], env=cli_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    wait_for("the run to wait at its gate", lambda: "waiting for: opsbook approve" in
             (tmp_path / "run.err").read_text(), timeout=60, interval=0.1)
    return proc


@pytest.fixture
def ended():
    procs: list[subprocess.Popen[bytes]] = []
    yield procs.append
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_the_starter_cannot_approve_a_four_eyes_gate_but_can_deny_it(tmp_path, ended):
    proc = _waiting_run(tmp_path, str(_runbook(tmp_path)))
    ended(proc)
    assert "by someone other than the user who started the run" in (tmp_path / "run.err").read_text()
    refused = opsbook(tmp_path, "approve", "last", "promote standby", "--yes")
    assert refused.returncode == 2
    assert "needs another person's approval" in refused.stderr and "Traceback" not in refused.stderr
    assert "four eyes" in refused.stdout  # what the approver was shown says so too
    assert proc.poll() is None, "a refused approval decided nothing: the gate still waits"
    assert "status      running for " in opsbook(tmp_path, "show", "last").stdout  # not "running after 31ms"
    denied = opsbook(tmp_path, "deny", "last", "promote standby", "--yes")
    assert denied.returncode == 0, denied.stderr
    assert proc.wait(30) == 4
    assert not (tmp_path / "out").exists()
    assert "DENIED" in opsbook(tmp_path, "show", "last").stdout.upper()


def test_four_eyes_from_the_command_line_and_kept_by_resume(tmp_path, ended):
    proc = _waiting_run(tmp_path, str(_runbook(tmp_path, extra="")), "--four-eyes")
    ended(proc)
    assert opsbook(tmp_path, "approve", "last", "promote standby", "--yes").returncode == 2
    proc.kill()
    proc.wait(30)
    journal = Journal(tmp_path / "j.db")
    try:
        assert journal.get_run(journal.latest_run_id()).options["four_eyes"] is True
    finally:
        journal.close()


def test_yes_cannot_approve_a_four_eyes_run_and_nothing_is_recorded(tmp_path):
    done = opsbook(tmp_path, "run", str(_runbook(tmp_path)), "--yes")
    assert done.returncode == 2
    assert "needs another person to approve its gates" in done.stderr and "--yes" in done.stderr
    assert not (tmp_path / "out").exists()
    assert "promote" not in opsbook(tmp_path, "runs").stdout  # refused before a run was recorded


def test_on_a_terminal_a_four_eyes_gate_waits_for_another_user_instead_of_asking(tmp_path):
    rb = _runbook(tmp_path)
    code, seen = on_a_terminal([sys.executable, "-m", "opsbook", "run", str(rb), "--format", "text",
                                "--approval-timeout", "2s"], env=cli_env(tmp_path), cwd=tmp_path,
                               answers={"approve? [y/N]": "y"}, timeout=60)
    assert "waiting for: opsbook approve" in seen and "approve? [y/N]" not in seen
    assert "Promote the standby?" in seen and "will run: local.shell" in seen, "the terminal shows what waits"
    assert code == 4 and not (tmp_path / "out").exists()  # nobody else approved within 2s


def test_by_default_the_starter_may_approve_and_the_record_says_so(tmp_path, ended):
    proc = _waiting_run(tmp_path, str(_runbook(tmp_path, extra="")))
    ended(proc)
    approved = opsbook(tmp_path, "approve", "last", "promote standby", "--yes")
    assert approved.returncode == 0, approved.stderr
    assert proc.wait(30) == 0
    assert (tmp_path / "out").read_text() == "promoted\n"
    assert "approved by" in opsbook(tmp_path, "show", "last").stdout
    journal = Journal(tmp_path / "j.db")
    try:
        [gate] = journal.approvals(journal.latest_run_id())
        assert gate["who"].endswith("via opsbook approve (who started the run)")
    finally:
        journal.close()


def _record(who: str) -> RunRecord:
    return RunRecord(id="r1", runbook_path="/x.yaml", runbook_name="x", digest="", params={}, inventory=[],
                     inventory_digest="", options={"four_eyes": True}, status="running", started=0.0, finished=None,
                     who=who, host="vm", pid=1, objectives={}, incident_start=None, summary={})


def test_another_user_may_approve_a_four_eyes_gate():
    gates = [{"step_id": "promote", "detail": {"step_name": "promote standby", "four_eyes": True}}]
    refuse_self_approval(_record("alice"), gates, "bob")  # a second person: accepted
    with pytest.raises(UserError, match="you \\(alice\\) started run r1; its gate promote standby"):
        refuse_self_approval(_record("alice"), gates, "alice")
    refuse_self_approval(_record("alice"), [{"step_id": "p", "detail": {"four_eyes": False}}], "alice")


def test_on_a_terminal_the_starter_is_refused_before_being_asked_to_confirm(tmp_path, ended):
    proc = _waiting_run(tmp_path, str(_runbook(tmp_path)))
    ended(proc)
    code, seen = on_a_terminal([sys.executable, "-m", "opsbook", "approve", "last", "promote standby"],
                               env=cli_env(tmp_path), cwd=tmp_path, answers={"gate(s)?": "y"}, timeout=60)
    assert code == 2 and "needs another person's approval" in seen and "gate(s)?" not in seen
    assert proc.poll() is None


def test_end_of_input_at_the_confirmation_decides_nothing(tmp_path, ended):
    proc = _waiting_run(tmp_path, str(_runbook(tmp_path, extra="")))
    ended(proc)
    code, seen = on_a_terminal([sys.executable, "-m", "opsbook", "deny", "last", "promote standby"],
                               env=cli_env(tmp_path), cwd=tmp_path, answers={"gate(s)?": "\x04"}, timeout=60)
    assert code == 1 and "nothing decided" in seen and "internal error" not in seen
    assert proc.poll() is None
