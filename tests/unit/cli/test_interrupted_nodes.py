"""What stopped a running command is what the journal says (outside review, item 1): a
signal cancels the node ("cancelled: interrupted by SIGINT", recorded `failed`, never
`timed_out`), while the step's own `timeout:` still times it out. Real `opsbook run`
processes on the controller, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import cli_env, opsbook, wait_for


def _book(tmp: Path, timeout: str = "") -> Path:
    rb = tmp / "slow.yaml"
    rb.write_text(f"""opsbook: 1
name: slow
steps:
  - name: change
    local.shell: "echo done > {tmp}/done"
    rollback: {{local.shell: "echo undone > {tmp}/undone"}}
  - name: slow
    local.shell: "touch {tmp}/started; sleep 30"
{f'    timeout: {timeout}' if timeout else ''}
  - name: after
    local.command: "true"
""")
    return rb


def _node(tmp: Path, node_id: str) -> tuple[str, str]:
    journal = Journal(tmp / "j.db")
    try:
        rec = journal.nodes(journal.latest_run_id())[node_id]
        return rec.status, rec.msg
    finally:
        journal.close()


class TestWhatStoppedACommand:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    def test_a_signal_cancels_the_running_command_it_does_not_time_it_out(self, tmp_path, sig):
        proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(_book(tmp_path))],
                                env=cli_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for("the slow command to start", lambda: (tmp_path / "started").exists(), timeout=60, interval=0.05)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err
        status, msg = _node(tmp_path, "slow@localhost")
        assert (status, msg) == ("failed", f"cancelled: interrupted by {sig.name}")
        assert "timeout" not in err and "timed_out" not in err, err
        assert "slow @ localhost (changed)" in err and f"cancelled: interrupted by {sig.name}" in err
        shown = opsbook(tmp_path, "show", "last").stdout
        assert "timed_out" not in shown and f"cancelled: interrupted by {sig.name}" in shown, shown
        assert (tmp_path / "undone").exists(), "what completed was rolled back"

    def test_the_steps_own_timeout_still_times_the_command_out(self, tmp_path):
        done = opsbook(tmp_path, "run", str(_book(tmp_path, timeout="1s")))
        assert done.returncode == 1, done.stderr
        assert _node(tmp_path, "slow@localhost") == ("timed_out", "timed out after 1s")
        assert "timed_out" in opsbook(tmp_path, "show", "last").stdout
