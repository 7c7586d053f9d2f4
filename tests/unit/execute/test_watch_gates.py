"""A response started by `opsbook watch` (a probe round or an alert) answers no approval gate
by itself: the gate waits for a human, announced with the prompt and the approve command,
unless `--auto-approve` names the response runbook (issue 28, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from opsbook.watch import WatchConfig, Watcher
from opsbook_lab.pytest_plugin import cli_env, wait_for


def _runbooks(write, tmp_path):
    flag = tmp_path / "up"
    watched = write("svc.yaml", f"""
        opsbook: 1
        name: svc
        steps:
          - name: service is up
            marks: [verification]
            local.wait: {{path: "{flag}", timeout: 0}}
        """)
    respond = write("fix.yaml", f"""
        opsbook: 1
        name: fix
        steps:
          - name: remove and recreate
            approve: "Remove and recreate the web container?"
            marks: [mitigation]
            local.shell: "touch {flag}; echo recreated >> {tmp_path}/log"
        """)
    return watched, respond


def test_a_watch_response_gate_waits_for_a_human_and_says_how_to_approve(registry, journal, write, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    watched, respond = _runbooks(write, tmp_path)
    events: list[tuple[str, dict]] = []
    watcher = Watcher(WatchConfig(watched, respond, interval=0.05, failures=1, cooldown=60, max_responses=1,
                                  max_rounds=5), registry, journal, lambda kind, data: events.append((kind, data)))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    wait_for("the response to ask for approval", lambda: any(k == "approval_needed" for k, _ in events),
             timeout=30, interval=0.05)
    [needed] = [d for k, d in events if k == "approval_needed"]
    assert "Remove and recreate" in needed["prompt"] and needed["approve"] == (
        f"opsbook approve {needed['run']} 'remove and recreate'")
    assert not (tmp_path / "log").exists(), "nothing runs before a human says yes"
    env = {**os.environ, "OPSBOOK_JOURNAL": journal.path}
    done = subprocess.run([sys.executable, "-m", "opsbook", "approve", needed["run"], "remove and recreate", "--yes"],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    thread.join(60)
    assert not thread.is_alive()
    (summary,) = watcher.state.responses
    assert summary.status == "succeeded"
    assert (tmp_path / "log").read_text() == "recreated\n"
    [gate] = journal.approvals(summary.run_id)
    assert "via opsbook approve" in gate["who"]


def test_no_answer_within_the_approval_timeout_is_a_denial(registry, journal, write, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    watched, respond = _runbooks(write, tmp_path)
    watcher = Watcher(WatchConfig(watched, respond, interval=0.05, failures=1, cooldown=60, max_responses=1,
                                  max_rounds=5, approval_timeout=0.5), registry, journal)
    watcher.run()
    (summary,) = watcher.state.responses
    assert summary.status == "failed" and not (tmp_path / "log").exists()


def test_auto_approve_answers_the_gates_as_yes_does(registry, journal, write, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    watched, respond = _runbooks(write, tmp_path)
    events: list[tuple[str, dict]] = []
    watcher = Watcher(WatchConfig(watched, respond, interval=0.05, failures=1, cooldown=60, max_responses=1,
                                  max_rounds=5, auto_approve=True), registry, journal,
                      lambda kind, data: events.append((kind, data)))
    watcher.run()
    (summary,) = watcher.state.responses
    assert summary.status == "succeeded" and (tmp_path / "log").read_text() == "recreated\n"
    [said] = [d for k, d in events if k == "auto_approved"]  # the watcher's output says it approved
    assert said["gate"] == "remove and recreate" and "Remove and recreate" in said["prompt"]
    [gate] = journal.approvals(summary.run_id)
    assert gate["who"].endswith("(--yes)")


TOKEN = "webhook-token-for-gate-tests-0123456789"


def _alert(port: int) -> int:
    import http.client
    import json

    body = json.dumps({"alerts": [{"status": "firing", "labels": {"alertname": "WebDown"}, "fingerprint": "g1"}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body.encode(), {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def _listening(tmp_path, *extra: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    rb = tmp_path / "recreate.yaml"
    rb.write_text(f'opsbook: 1\nname: recreate\nsteps:\n  - name: remove and recreate\n    approve: "Recreate?"\n'
                  f'    local.shell: "echo recreated >> {tmp_path}/log"\n')
    (tmp_path / "token").write_text(TOKEN)
    env = cli_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "watch", "--listen", "127.0.0.1:0", "--route",
                             f"WebDown:{rb}", "--token-file", str(tmp_path / "token"), *extra],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    lines = [proc.stderr.readline()]
    port = int(lines[0].split("address=")[1].split(":")[1])
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    return proc, port, lines


def test_an_alert_started_gate_waits_for_a_human_unless_its_route_is_auto_approved(tmp_path):
    proc, port, lines = _listening(tmp_path)
    try:
        assert _alert(port) == 202
        wait_for("the approval_needed line", lambda: any("approval_needed" in line for line in lines), timeout=30)
        [line] = [line for line in lines if "approval_needed" in line]
        assert 'prompt=Recreate? ' in line and "approve=\"opsbook approve " in line and "'remove and recreate'" in line
        assert not (tmp_path / "log").exists()
    finally:
        proc.terminate()
        proc.wait(30)
    auto = tmp_path / "auto"
    auto.mkdir()
    proc, port, lines = _listening(auto, "--auto-approve", "all")
    try:
        assert _alert(port) == 202
        wait_for("the auto-approved response to act", lambda: (auto / "log").exists(), timeout=30)
    finally:
        proc.terminate()
        proc.wait(30)


def test_auto_approve_never_approves_a_four_eyes_response_and_the_watcher_goes_on(registry, journal, write,
                                                                                    tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    watched, respond = _runbooks(write, tmp_path)
    from pathlib import Path

    Path(respond).write_text(Path(respond).read_text().replace("name: fix\n", "name: fix\napproved_by: another\n"))
    events: list[tuple[str, dict]] = []
    watcher = Watcher(WatchConfig(watched, respond, interval=0.05, failures=1, cooldown=60, max_responses=1,
                                  max_rounds=5, auto_approve=True, approval_timeout=0.5), registry, journal,
                      lambda kind, data: events.append((kind, data)))
    watcher.run()
    kinds = [k for k, _ in events]
    assert "auto_approve_ignored" in kinds and "approval_needed" in kinds
    (summary,) = watcher.state.responses
    assert summary.status == "failed" and not (tmp_path / "log").exists()


def test_a_response_that_cannot_start_is_said_and_watching_goes_on(registry, journal, write, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    watched, respond = _runbooks(write, tmp_path)
    journal.acquire("lock:watch:fix", "a-run-of-someone-else")
    events: list[tuple[str, dict]] = []
    watcher = Watcher(WatchConfig(watched, respond, interval=0.05, failures=1, cooldown=0, max_rounds=3,
                                  auto_approve=True), registry, journal, lambda kind, data: events.append((kind, data)))
    watcher.run()
    refused = [d for k, d in events if k == "response_not_started"]
    assert refused and "a-run-of-someone-else" in refused[0]["why"]
    assert watcher.state.rounds == 3, "the watcher kept probing"


def test_a_mistyped_auto_approve_is_refused_before_watching(tmp_path):
    rb = tmp_path / "recreate.yaml"
    rb.write_text('opsbook: 1\nname: recreate\nsteps:\n  - name: up\n    probe.tcp: {port: 1, timeout: 1}\n')
    env = cli_env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "opsbook", "watch", str(rb), "--auto-approve", "recreate.yml",
                           "--max-responses", "1"], capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "--auto-approve recreate.yml: not a response runbook of this watch" in done.stderr
    assert "(name: recreate)" in done.stderr
