"""Server errors seen by probe.http and local.http, from an HTTP server of our own on loopback:
5xx that go away (retried as configured), 5xx that stay (the run fails and rolls back), a server
that accepts and never answers, and one that hangs up without an answer."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class _Script:
    """What each path answers, in order; the last answer repeats."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, str]]] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def next(self, path: str) -> tuple[int, str]:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            queue = self.answers.get(path) or [(404, "no such path")]
            return queue.pop(0) if len(queue) > 1 else queue[0]


class _Server:
    def __init__(self) -> None:
        script = self.script = _Script()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/hang":
                    time.sleep(30)
                    return
                if self.path == "/hangup":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, body = script.next(self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.mark.parametrize("action", ["probe.http", "local.http"])
def test_5xx_that_goes_away_is_retried_as_configured(server, book, action):
    server.script.answers["/flaky"] = [(503, "warming up"), (502, "bad gateway"), (200, "ok")]
    b = book(f"""
        opsbook: 1
        name: flaky
        steps:
          - name: service answers
            {action}: {{url: "{server.url('/flaky')}"}}
            retries: 5
            delay: 0.1s
            register: answer
        """)
    assert b.summary.status == "succeeded", b.summary
    node = b.node("service-answers", "localhost")
    assert node.attempts == 3 and server.script.hits["/flaky"] == 3
    retries = [line for line in b.output("localhost") if line.startswith("attempt ")]
    assert len(retries) == 2
    assert "503" in retries[0] and "502" in retries[1]
    assert server.url("/flaky") in retries[0]


@pytest.mark.parametrize("action", ["probe.http", "local.http"])
def test_5xx_that_stays_fails_the_run_after_the_retries_and_rolls_back(server, book, tmp_path: Path, action):
    server.script.answers["/broken"] = [(500, "database unavailable")]
    log = tmp_path / "log"
    b = book(f"""
        opsbook: 1
        name: broken
        steps:
          - name: drain
            local.shell: "echo drained >> {log}"
            rollback: {{local.shell: "echo undrained >> {log}"}}
          - name: backend answers
            {action}: {{url: "{server.url('/broken')}"}}
            retries: 2
            delay: 0.1s
        """)
    assert b.summary.status == "failed"
    node = b.node("backend-answers", "localhost")
    assert node.status == "failed" and node.attempts == 3
    assert "500" in node.msg and server.url("/broken") in node.msg, node.msg
    assert server.script.hits["/broken"] == 3
    assert log.read_text().split() == ["drained", "undrained"]


@pytest.mark.parametrize("action", ["probe.http", "local.http"])
def test_server_that_never_answers_fails_within_the_probe_timeout(server, book, action):
    b = book(f"""
        opsbook: 1
        name: hang
        steps:
          - name: hung backend
            {action}: {{url: "{server.url('/hang')}", timeout: 1}}
            timeout: 10s
        """)
    node = b.node("hung-backend", "localhost")
    assert node.status == "failed", node
    assert node.finished - node.started < 5
    assert "timed out" in node.msg.lower() or "no answer" in node.msg.lower(), node.msg


@pytest.mark.parametrize("action", ["probe.http", "local.http"])
def test_server_hanging_up_without_an_answer_is_a_clear_failure(server, book, action):
    b = book(f"""
        opsbook: 1
        name: hangup
        steps:
          - name: rude backend
            {action}: {{url: "{server.url('/hangup')}"}}
        """)
    node = b.node("rude-backend", "localhost")
    assert node.status == "failed", node
    assert server.url("/hangup") in node.msg or "127.0.0.1" in node.msg, node.msg
    assert "internal error" not in node.msg, node.msg
