"""SIGINT and SIGTERM during every kind of wait (issue 26): an approval gate, an
`until`/`retries` delay, `local.wait`, a probe waiting on a server that never answers (with
retries), and a host waiting for a `keep_healthy` step's pre-flight lock. Each run must end
interrupted (exit 130 / 143) well within its deadline, with the change made before the wait
rolled back: every wait observes the run's one cancel token (opsbook.cancel).

Lab-free: local actions and an HTTP server on 127.0.0.1 run by the test.
"""

from __future__ import annotations

import http.server
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opsbook_lab.pytest_plugin import wait_for

pytestmark = pytest.mark.slow

# seconds from the signal to the exit (the issue asks for one; this leaves room for a loaded
# machine); each wait below lasts 10 minutes, and a pre-flight probe's own limit is 10 s
DEADLINE = 5.0
FIRST = """opsbook: 1
name: signal-during-a-wait
steps:
  - name: change
    local.shell: "echo done > {tmp}/done"
    rollback: {{local.shell: "echo undone > {tmp}/undone"}}
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path.startswith("/hang"):
            self.server.hanging += 1  # type: ignore[attr-defined]
            self.server.release.wait(600)  # type: ignore[attr-defined]
            return
        self.send_response(200 if self.path.startswith("/ok") else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    """http://127.0.0.1:PORT: /ok answers 200, /fail 500, /hang never answers (counted)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    httpd.hanging = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


WAITS = {
    # the run waits for `opsbook approve` (no --yes, no terminal)
    "gate": ("""  - name: the wait
    approve: "Go on?"
    local.shell: "echo gated > {tmp}/gated"
""", "approval"),
    "retry delay": ("""  - name: the wait
    local.command: "false"
    retries: 5
    delay: 600
""", "started"),
    "local.wait": ("""  - name: the wait
    local.wait: 600
""", "started"),
    "probe with retries": ("""  - name: the wait
    probe.http: {{url: "{url}/hang", timeout: 600}}
    retries: 3
    delay: 600
""", "started"),
    # web1's pre-flight probes web2 through a server that never answers
    "pre-flight probe": ("""  - name: the wait
    hosts: web
    keep_healthy: {{min: 1, probe: {{probe.http: {{url: "{url}/hang", timeout: 600}}}}}}
    local.shell: "echo gated > {tmp}/gated"
""", "hanging"),
    # web1 takes the step's lock and waits in its action; web2 waits for the lock
    "pre-flight lock": ("""  - name: the wait
    hosts: web
    keep_healthy: {{min: 0, probe: {{probe.http: {{url: "{url}/ok"}}}}}}
    local.wait: 600
""", "preflight"),
}
INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"


def _in_the_wait(journal: Path, sign: str, server: http.server.ThreadingHTTPServer) -> bool:
    """Whether the journal (or the server) shows the run in its second step's wait."""
    if sign == "hanging":
        return server.hanging > 0  # type: ignore[attr-defined,no-any-return]
    if not journal.exists():
        return False
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        if sign == "approval":
            return con.execute("SELECT count(*) FROM approvals WHERE decided IS NULL").fetchone()[0] > 0
        if sign == "preflight":
            return con.execute("SELECT count(*) FROM events WHERE kind='preflight'").fetchone()[0] > 0 and \
                con.execute("SELECT count(*) FROM node_log WHERE status='started' AND step_id LIKE '%wait%'"
                            ).fetchone()[0] > 0
        return con.execute("SELECT count(*) FROM node_log WHERE status='started' AND step_id LIKE '%wait%'"
                           ).fetchone()[0] > 0
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
    finally:
        con.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", list(WAITS))
def test_a_signal_during_a_wait_ends_the_run_interrupted_and_rolls_back(
        tmp_path: Path, server: http.server.ThreadingHTTPServer, kind: str, sig: signal.Signals) -> None:
    body, sign = WAITS[kind]
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rb = tmp_path / "rb.yaml"
    rb.write_text(FIRST.format(tmp=tmp_path) + body.format(tmp=tmp_path, url=url))
    inv = tmp_path / "inv.ini"
    inv.write_text(INVENTORY)
    journal = tmp_path / "j.db"
    env = {**os.environ, "OPSBOOK_JOURNAL": str(journal), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    args = [sys.executable, "-m", "opsbook", "run", str(rb), "-i", str(inv)]
    if kind != "gate":
        args.append("--yes")
    with open(tmp_path / "run.err", "w") as err:
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for(f"the run to be in its {kind}", lambda: _in_the_wait(journal, sign, server) or proc.poll() is not None,
                     timeout=120, interval=0.1)
            assert proc.poll() is None, (tmp_path / "run.err").read_text()
            proc.send_signal(sig)
            try:
                code = proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{sig.name} during the {kind}: the run did not end within {DEADLINE:g}s:\n"
                            + (tmp_path / "run.err").read_text()[-2000:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    out = (tmp_path / "run.err").read_text()
    assert code == 128 + sig, out[-2000:]
    assert (tmp_path / "done").read_text() == "done\n"
    assert (tmp_path / "undone").read_text() == "undone\n", "the change made before the wait is rolled back"
    assert not (tmp_path / "gated").exists()
    con = sqlite3.connect(journal)
    try:
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    finally:
        con.close()
