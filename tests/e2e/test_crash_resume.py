"""opsbook itself crashes: SIGKILL at many points, then resume; SIGTERM rolls back.

Every node logs each start of its command, then makes its effect atomically (a hard link
that fails if it already exists), guarded by `creates:` the way a real runbook makes a
command safe to resume. After any number of kills and resumes: every effect happened
exactly once, the run completes, and a node was only ever started again if the journal
showed it in doubt (started, no result) when opsbook was killed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
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
      cmd: >-
        n=step{s}-{{{{ inventory_hostname }}}}; echo $n >> {tmp_path}/starts; sleep 0.05;
        echo $n > {tmp_path}/m/.$n.$$ && (ln {tmp_path}/m/.$n.$$ {tmp_path}/m/$n 2>/dev/null || echo $n >> {tmp_path}/dups);
        rm -f {tmp_path}/m/.$n.$$; echo $n >> {tmp_path}/log
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


def _log(tmp_path: Path, name: str = "log") -> list[str]:
    path = tmp_path / name
    return path.read_text().split() if path.exists() else []


def _in_doubt(tmp_path: Path, run_id: str) -> set[str]:
    """Nodes the journal shows started without a result (what a kill leaves behind)."""
    from opsbook.journal import Journal

    journal = Journal(tmp_path / "journal.db")
    try:
        return {f"{r.step_id}-{r.host}" for r in journal.nodes(run_id).values() if r.status == "started"}
    finally:
        journal.close()


@pytest.mark.parametrize("seed", [pytest.param(s, marks=pytest.mark.slow) if s >= 2 else s for s in range(8)])
def test_sigkill_at_random_points_then_resume_runs_every_node_exactly_once(tmp_path, seed):
    rng = random.Random(seed)
    rb, inv = _fleet(tmp_path)
    total = HOSTS * STEPS
    proc = _start(["run", rb, "-i", inv], tmp_path)
    run_id, _ = _kill_after(proc, rng.randint(1, total - 1), signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    doubts: list[str] = sorted(_in_doubt(tmp_path, run_id))
    # Kill the resume too, sometimes more than once, before letting one finish.
    for _ in range(rng.randint(0, 2)):
        proc = _start(["resume", run_id], tmp_path)
        _kill_after(proc, rng.randint(1, 4), signal.SIGKILL)
        doubts += sorted(_in_doubt(tmp_path, run_id))
    done = subprocess.run([sys.executable, "-m", "opsbook", "resume", run_id, "--format", "json"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    expected = sorted(f"step{s}-n{h}" for s in range(STEPS) for h in range(1, HOSTS + 1))
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if not p.name.startswith(".")) == expected
    assert _log(tmp_path, "dups") == [], "an effect happened twice"
    starts = _log(tmp_path, "starts")
    for node in expected:
        assert starts.count(node) <= 1 + doubts.count(node), f"{node} started again without being in doubt"
    runs = subprocess.run([sys.executable, "-m", "opsbook", "runs"], capture_output=True, text=True,
                          env=_env(tmp_path))
    assert f"{run_id}" in runs.stdout and "succeeded" in runs.stdout


def test_two_resumes_at_once_one_is_refused(tmp_path):
    log = tmp_path / "log"
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: gated
steps:
  - name: quick
    local.shell: {{cmd: "echo quick >> {log}; touch {tmp_path}/q", creates: "{tmp_path}/q"}}
  - name: wait
    local.wait: 2
  - name: gated
    approve: "go on?"
    local.shell: "echo gated >> {log}"
""")
    proc = _start(["run", str(rb)], tmp_path)
    run_id, _ = _kill_after(proc, 1, signal.SIGKILL)
    # The first resume holds the run's lock while it waits for an approval from another shell.
    first = subprocess.Popen([sys.executable, "-m", "opsbook", "resume", run_id, "--format", "json",
                              "--approval-timeout", "60s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=_env(tmp_path), stdin=subprocess.DEVNULL)
    assert first.stdout is not None
    for line in first.stdout:
        if json.loads(line)["event"] == "approval_requested":
            break
    second = subprocess.run([sys.executable, "-m", "opsbook", "resume", run_id], capture_output=True, text=True,
                            env=_env(tmp_path), timeout=60, stdin=subprocess.DEVNULL)
    approve = subprocess.run([sys.executable, "-m", "opsbook", "approve", run_id, "gated", "--yes"],
                             capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert f'lock "run:{run_id}" is held by run {run_id}' in second.stderr
    assert approve.returncode == 0, approve.stderr
    assert first.returncode == 0
    assert _log(tmp_path) == ["quick", "gated"]


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
    assert proc.returncode == 143, proc.stderr.read() if proc.stderr else ""  # 128 + SIGTERM
    entries = _log(tmp_path)
    done = [e for e in entries if e.startswith("do-")]
    undone = [e for e in entries if e.startswith("undo-")]
    # the step running when SIGTERM arrived was cancelled, but its command had already
    # written its line: a command counts as a change, and a change keeps its undo (issue 29
    # item 1), so it is undone too; nothing that never started is undone
    completed = [f"do-{i}" for i in range(seen)]
    assert done[:seen] == completed
    # (the signal may also land before the cancelled step's command wrote anything: its
    # undo then runs too, harmlessly, as it would after any cancelled command)
    assert undone in ([f"undo-{i}" for i in reversed(range(seen))],
                      [f"undo-{i}" for i in reversed(range(seen + 1))]), (done, undone)
    assert len(done) <= len(undone), (done, undone)  # every line written is undone
