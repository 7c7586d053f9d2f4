"""`opsbook watch --listen` end to end (issue 24 items 1, 9, 16): a token is required, a route
fills only the parameters it maps, a run is reported started only once journaled, and alerts
at once do not run one response runbook twice at the same time."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

from opsbook_lab.pytest_plugin import cli_env

TOKEN = "webhook-token-for-tests-0123456789"


def test_watch_listen_needs_a_token(tmp_path):
    done = subprocess.run([sys.executable, "-m", "opsbook", "watch", "--listen", "127.0.0.1:0", "--route",
                           "WebDown:x.yaml"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPSBOOK_WEBHOOK_TOKEN": ""}, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "--listen needs a token" in done.stderr


def _post(port: int, alerts: list[dict]) -> tuple[int, dict]:
    body = json.dumps({"alerts": alerts}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body, {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


def test_alerts_start_journaled_locked_runs_with_only_the_mapped_parameters(tmp_path):
    rb = tmp_path / "respond.yaml"
    rb.write_text(f"""opsbook: 1
name: respond
params:
  target: {{type: string, default: none}}
  service: {{type: string, default: unset}}
steps:
  - name: act
    local.shell: "echo {{{{ params.target }}}} {{{{ params.service }}}} >> {tmp_path}/acted; sleep 2"
""")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    env = cli_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "watch", "--listen", "127.0.0.1:0", "--route",
                             f"WebDown:{rb}:instance=target", "--token-file", str(token)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(line.split("address=")[1].split(":")[1])
        first = {"status": "firing", "labels": {"alertname": "WebDown", "instance": "web1", "service": "evil"},
                 "fingerprint": "a1"}
        status, body = _post(port, [first])
        assert status == 202, body
        (started,) = body["started"]
        runs = subprocess.run([sys.executable, "-m", "opsbook", "runs"], capture_output=True, text=True, env=env)
        assert runs.stdout.split()[0] == started["run"], "reported started before it was journaled"
        second = {**first, "fingerprint": "a2", "labels": {**first["labels"], "instance": "web2"}}
        status, body = _post(port, [second])
        assert status == 409 and "is held by run" in body["error"], body
    finally:
        proc.terminate()
        proc.wait(30)
    from opsbook_lab.pytest_plugin import wait_for

    wait_for("the first response to finish", lambda: (tmp_path / "acted").exists(), timeout=30)
    assert (tmp_path / "acted").read_text().split() == ["web1", "unset"], "only the mapped label fills a param"
