"""Changed state keeps its undo (issue 29 item 1): a step whose action changed state and then
failed, timed out, was abandoned by its `timeout:` or was killed mid-wait is rolled back.

The action under test is the sample plugin's `svcadm.set_then_wait` (tests/sample_plugin): it
writes a service's state to a file, declares the change with `ctx.changed(...)`, then waits
for `online`, which never comes unless the state is online."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from opsbook.journal import Journal
from opsbook.plugin import Status
from opsbook.testing import ScriptedConnection, run_action
from opsbook_lab.pytest_plugin import wait_for


def _state(tmp_path: Path, value: str = "online") -> Path:
    folder = tmp_path / "state"
    folder.mkdir(exist_ok=True)
    (folder / "web").write_text(value + "\n")
    return folder


def test_the_kit_shows_the_undo_declared_before_the_wait():
    import opsbook_svcadm

    conn = ScriptedConnection().when("cat /var/lib/svcadm/web", stdout="online\n", times=1).when(
        "cat /var/lib/svcadm/web", stdout="maintenance\n").when(re.compile(r"mkdir -p .*maintenance.*"))
    done = run_action(opsbook_svcadm.plugin, "set_then_wait",
                      {"service": "web", "state": "maintenance", "timeout": 0.2, "interval": 0.05}, connection=conn)
    assert done.result.status is Status.FAILED and done.result.changed
    assert "not online, after 0.2s" in done.result.msg
    assert done.declared == {"before": "online", "state": "maintenance"}
    assert done.inverse == ("svcadm.set", {"service": "web", "state_dir": "/var/lib/svcadm", "state": "online"})


def test_a_change_whose_wait_fails_is_rolled_back(run, journal, tmp_path):
    state = _state(tmp_path)
    summary = run(f"""
        opsbook: 1
        name: set-then-wait
        steps:
          - name: web to maintenance, wait for it
            svcadm.set_then_wait: {{service: web, state: maintenance, state_dir: "{state}", timeout: 0.5, interval: 0.1}}
        """)
    assert summary.status == "failed" and summary.rolled_back == 1
    assert (state / "web").read_text() == "online\n"
    (undo,) = journal.rollbacks(summary.run_id)
    assert undo["status"] == "done" and undo["args"]["state"] == "online"


def test_a_failed_step_records_its_undo_once_and_a_check_run_none(run, journal, tmp_path):
    """The undo declared mid-wait is not recorded a second time when the failed result (which
    says changed) comes back, and `opsbook rollback RUN` runs it later; `--check` records nothing."""
    state = _state(tmp_path)
    text = f"""
        opsbook: 1
        name: set-then-wait
        steps:
          - name: web to maintenance, wait for it
            svcadm.set_then_wait: {{service: web, state: maintenance, state_dir: "{state}", timeout: 0.3, interval: 0.1}}
        """
    dry = run(text, check=True)
    assert journal.rollbacks(dry.run_id) == [] and (state / "web").read_text() == "online\n"
    real = run(text, rollback="never")
    assert real.status == "failed" and (state / "web").read_text() == "maintenance\n"
    assert [(u["action"], u["status"]) for u in journal.rollbacks(real.run_id)] == [("svcadm.set", "pending")]
    # `opsbook rollback RUN` reads the same entry and undoes it later
    undone = subprocess.run([sys.executable, "-m", "opsbook", "rollback", real.run_id, "--yes"], capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={**_env(tmp_path), "OPSBOOK_JOURNAL": str(tmp_path / "journal.db")})
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert (state / "web").read_text() == "online\n"


def test_an_abandoned_action_has_its_undo_recorded_before_it_was_abandoned(run, journal, tmp_path):
    """The action ignores its cancellation: the step's timeout abandons it as timed_out while it
    waits (in doubt); by then its undo is in the journal already, and the run's rollback puts the state back."""
    state = _state(tmp_path)
    seen: list[list[str]] = []

    def listener(event):
        if event.kind == "node_finished" and event.data.get("status") in ("timed_out", "unknown"):  # abandoned: in doubt
            seen.append([u["status"] for u in journal.rollbacks(event.run_id)])

    summary = run(f"""
        opsbook: 1
        name: abandoned
        steps:
          - name: web to maintenance, wait for it
            svcadm.set_then_wait: {{service: web, state: maintenance, state_dir: "{state}", timeout: 9,
                                    interval: 0.2, ignore_stop: true}}
            timeout: 1s
        """, listeners=[listener])
    assert seen == [["pending"]], "the undo was recorded before the scheduler gave up on the action"
    assert summary.status == "failed" and summary.rolled_back == 1
    assert (state / "web").read_text() == "online\n"


def test_each_loop_item_that_changed_then_failed_keeps_its_undo(run, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: loop
        steps:
          - name: each item
            local.shell: "echo do-{{{{ item }}}} >> {log}; test {{{{ item }}}} != 2"
            loop: [1, 2, 3]
            rollback: {{local.shell: "echo undo-{{{{ item }}}} >> {log}"}}
        """)
    assert summary.status == "failed" and summary.rolled_back == 3
    assert log.read_text().split() == ["do-1", "do-2", "do-3", "undo-3", "undo-2", "undo-1"]


def test_a_retried_attempt_that_changed_keeps_its_undo(run, tmp_path):
    """until/retries: the first attempt changed state then failed; later attempts find it set
    (changed=False) and fail too: the first attempt's undo is what rolls it back."""
    state = _state(tmp_path)
    summary = run(f"""
        opsbook: 1
        name: retried
        steps:
          - name: web to maintenance, wait for it
            svcadm.set: {{service: web, state: maintenance, state_dir: "{state}"}}
            failed_when: true
            retries: 2
            delay: 0.1
        """)
    assert summary.status == "failed" and summary.rolled_back == 1
    assert (state / "web").read_text() == "online\n"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}


def test_a_crash_mid_wait_leaves_the_undo_in_the_journal_and_a_resume_rolls_back(tmp_path):
    state = _state(tmp_path)
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: crash-mid-wait
steps:
  - name: web to maintenance, wait for it
    svcadm.set_then_wait: {{service: web, state: maintenance, state_dir: "{state}", timeout: 120, interval: 0.1}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb)], env=_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def pending() -> bool:
            if not (tmp_path / "j.db").exists():
                return False
            journal = Journal(tmp_path / "j.db")
            try:
                return any(journal.rollbacks(r.id) for r in journal.list_runs())
            finally:
                journal.close()

        wait_for("the undo in the journal while the step waits", pending, timeout=60, interval=0.1)
        assert (state / "web").read_text() == "maintenance\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    rb.write_text(rb.read_text().replace("timeout: 120", "timeout: 0.5"))
    resumed = subprocess.run([sys.executable, "-m", "opsbook", "resume", "last", "--allow-changed"],
                             capture_output=True, text=True, timeout=120, env=_env(tmp_path), stdin=subprocess.DEVNULL)
    # the step runs again (idempotent), finds the state set, waits and fails: the undo the
    # killed process recorded rolls it back
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert (state / "web").read_text() == "online\n"
