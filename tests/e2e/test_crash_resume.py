"""opsbook itself crashes: SIGKILL at many points, then resume; SIGTERM rolls back.

Every node appends its name to a log guarded by a marker (`creates:`), the way a real
runbook makes a non-idempotent command safe to resume. After any number of kills and
resumes, every node has run exactly once and the run completes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOSTS = 6
STEPS = 5


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "journal.db"),
            "OPSBOOK_RUNS_DIR": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1"}


def _fleet(tmp_path: Path) -> tuple[str, str]:
    inv = tmp_path / "inv.ini"
    inv.write_text(f"[fleet]\nn[1:{HOSTS}] ansible_connection=local\n")
    (tmp_path / "m").mkdir()
    steps = []
    for s in range(STEPS):
        steps.append(f"""
  - name: step{s}
    local.shell:
      cmd: "echo step{s}-{{{{ inventory_hostname }}}} >> {tmp_path}/log; sleep 0.05; touch {tmp_path}/m/step{s}-{{{{ inventory_hostname }}}}"
      creates: "{tmp_path}/m/step{s}-{{{{ inventory_hostname }}}}"
""")
    rb = tmp_path / "fleet.yaml"
    rb.write_text("opsbook: 1\nname: fleet\nhosts: fleet\nsteps:" + "".join(steps))
    return str(rb), str(inv)


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "opsbook", *args, "--format", "json", "--forks", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
                            stdin=subprocess.DEVNULL)


def _kill_after(proc: subprocess.Popen[str], finished: int, sig: int) -> tuple[str | None, int]:
    """Read JSON events; send `sig` after `finished` node_finished events. Returns run id."""
    run_id = None
    seen = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        run_id = run_id or event.get("run")
        if event["event"] == "node_finished" and not event.get("restored") and event.get("status") != "skipped":
            seen += 1
            if seen >= finished:
                proc.send_signal(sig)
                break
    proc.wait(timeout=60)
    return run_id, seen


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "log"
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("seed", range(8))
def test_sigkill_at_random_points_then_resume_runs_every_node_exactly_once(tmp_path, seed):
    rng = random.Random(seed)
    rb, inv = _fleet(tmp_path)
    total = HOSTS * STEPS
    proc = _start(["run", rb, "-i", inv], tmp_path)
    run_id, _ = _kill_after(proc, rng.randint(1, total - 1), signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    # Kill the resume too, sometimes more than once, before letting one finish.
    for _ in range(rng.randint(0, 2)):
        proc = _start(["resume", run_id], tmp_path)
        _kill_after(proc, rng.randint(1, 4), signal.SIGKILL)
    time.sleep(0.2)  # let orphaned shells of the killed process finish their command
    done = subprocess.run([sys.executable, "-m", "opsbook", "resume", run_id, "--format", "json"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    log = _log(tmp_path)
    expected = sorted(f"step{s}-n{h}" for s in range(STEPS) for h in range(1, HOSTS + 1))
    assert sorted(log) == expected, "every node must run exactly once"
    runs = subprocess.run([sys.executable, "-m", "opsbook", "runs"], capture_output=True, text=True,
                          env=_env(tmp_path))
    assert f"{run_id}" in runs.stdout and "succeeded" in runs.stdout


def test_two_resumes_at_once_one_is_refused(tmp_path):
    log = tmp_path / "log"
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: slow
steps:
  - name: quick
    local.shell: {{cmd: "echo quick >> {log}", creates: "{tmp_path}/q"}}
  - name: marker
    local.shell: {{cmd: "touch {tmp_path}/q"}}
  - name: slow
    local.shell: {{cmd: "sleep 4; echo slow-$$-$(date +%s.%N) >> {log}; touch {tmp_path}/s", creates: "{tmp_path}/s"}}
""")
    proc = _start(["run", str(rb)], tmp_path)
    run_id, _ = _kill_after(proc, 2, signal.SIGKILL)
    first = _start(["resume", run_id], tmp_path)
    assert first.stdout is not None
    for line in first.stdout:  # wait until the first resume runs the slow step
        if json.loads(line)["event"] == "node_started":
            break
    second = subprocess.run([sys.executable, "-m", "opsbook", "resume", run_id], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=60)
    first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert f'lock "run:{run_id}" is held by run {run_id}' in second.stderr
    assert first.returncode == 0
    assert [e.split("-")[0] for e in _log(tmp_path)] == ["quick", "slow"], _log(tmp_path)


def test_sigterm_rolls_back_exactly_the_completed_actions_in_reverse(tmp_path):
    log = tmp_path / "log"
    steps = "".join(f"""
  - name: s{i}
    local.shell: "echo do-{i} >> {log}; sleep 0.3"
    rollback: {{local.shell: "echo undo-{i} >> {log}"}}
""" for i in range(6))
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: term\nsteps:" + steps)
    proc = _start(["run", str(rb)], tmp_path)
    run_id, seen = _kill_after(proc, 3, signal.SIGTERM)
    assert proc.returncode == 3, proc.stderr.read() if proc.stderr else ""
    entries = _log(tmp_path)
    done = [e for e in entries if e.startswith("do-")]
    undone = [e for e in entries if e.startswith("undo-")]
    # the step running when SIGTERM arrived was cancelled (it did not complete): not undone
    completed = [f"do-{i}" for i in range(seen)]
    assert done[:seen] == completed
    assert undone == [f"undo-{i}" for i in reversed(range(seen))]
