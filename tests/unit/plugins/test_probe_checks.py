"""probe.* from the controller against real servers on 127.0.0.1, and the pieces they use."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook.registry import Registry
from opsbook_plugins import probe
from opsbook_plugins.http_checks import json_path_get, parse_json_path
from opsbook_plugins.probe import Outcome, verdict
from pydantic import ValidationError


class Handler(BaseHTTPRequestHandler):
    """/status/<code>, /slow/<seconds>, /json, /echo (POST), /redirect -> /json."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str = "text/plain", extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "status":
            self._send(int(parts[1]), f"status {parts[1]}\n".encode())
        elif parts[0] == "slow":
            time.sleep(float(parts[1]))
            self._send(200, b"slow ok\n")
        elif parts[0] == "json":
            doc = {"status": {"state": "degraded", "checks": [{"name": "db", "ok": False}]}, "n": 3}
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif parts[0] == "redirect":
            self._send(302, b"", extra={"Location": "/json"})
        else:
            self._send(200, b"hello from the unit server\n")

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        echo = {"got": body.decode(), "type": self.headers.get("Content-Type")}
        self._send(201, json.dumps(echo).encode(), "application/json")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that time out hang up on us
        pass


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(action: str, args, host: HostInfo | None = None, **kw):
    spec = probe.plugin.actions[action]
    ctx = ActionContext(
        host=host or HostInfo("local", {"ansible_host": "127.0.0.1"}), step_name="t", **kw
    )
    return spec.fn(ctx, spec.parse_args(args))


# --------------------------------------------------------------------------- registration


def test_probes_are_registered_read_only_and_idempotent():
    registry = Registry.from_entry_points()
    for name in ("probe.icmp", "probe.tcp", "probe.http"):
        spec = registry.action(name)
        assert spec is not None and spec.supports_check and spec.idempotent and not spec.mutates


# --------------------------------------------------------------------------- http


def test_http_ok_names_status_url_and_latency(server):
    result = run("http", {"url": f"{server}/healthz", "status": 200})
    assert result.status is Status.OK
    assert result.msg.startswith(f"HTTP 200 from {server}/healthz in ")
    assert result.data["status"] == 200 and result.data["latency_ms"] > 0
    assert result.data["vantage"]["controller"]["ok"] is True


def test_http_wrong_status_says_expected_and_got(server):
    result = run("http", {"url": f"{server}/status/503", "status": 200})
    assert result.status is Status.FAILED
    assert result.msg.startswith(f"expected HTTP 200 from {server}/status/503, got 503 in ")
    assert result.msg.endswith(" ms")
    listed = run("http", {"url": f"{server}/status/404", "status": [200, 204]})
    assert listed.msg.startswith(f"expected HTTP 200 or 204 from {server}/status/404, got 404 in ")


def test_http_default_expects_any_2xx(server):
    assert run("http", f"{server}/status/204").status is Status.OK
    result = run("http", f"{server}/status/500")
    assert result.msg.startswith(f"expected HTTP 2xx from {server}/status/500, got 500")


def test_http_body_regex_mismatch_quotes_the_body(server):
    result = run("http", {"url": f"{server}/", "body_regex": "^ok"})
    assert result.status is Status.FAILED
    assert result.msg.endswith(
        "but the body does not match /^ok/ (body starts: 'hello from the unit server')"
    )
    assert run("http", {"url": f"{server}/", "body_regex": "unit server"}).status is Status.OK


def test_http_json_path_value(server):
    ok = run(
        "http", {"url": f"{server}/json", "json_path": "status.checks[0].name", "json_value": "db"}
    )
    assert ok.status is Status.OK
    wrong = run("http", {"url": f"{server}/json", "json_path": "status.state", "json_value": "ok"})
    assert wrong.status is Status.FAILED
    assert wrong.msg.endswith('but JSON status.state is "degraded", expected "ok"')
    missing = run("http", {"url": f"{server}/json", "json_path": "status.checks[3].ok"})
    assert missing.msg.endswith(
        "but the JSON has no status.checks[3].ok (status.checks has no item [3])"
    )
    as_text = run("http", {"url": f"{server}/json", "json_path": "n", "json_value": "3"})
    assert as_text.status is Status.OK
    not_json = run("http", {"url": f"{server}/", "json_path": "a"})
    assert "but the body is not JSON" in not_json.msg


def test_http_latency_threshold(server):
    result = run("http", {"url": f"{server}/slow/0.3", "max_latency": "100ms"})
    assert result.status is Status.FAILED
    assert result.msg.startswith(f"HTTP 200 from {server}/slow/0.3 in ")
    assert result.msg.endswith(", slower than max_latency 100 ms")
    assert result.data["latency_ms"] >= 300


def test_http_timeout_and_closed_port(server):
    slow = run("http", {"url": f"{server}/slow/3", "timeout": "500ms"})
    assert slow.status is Status.FAILED
    assert (
        slow.msg
        == f"expected HTTP 2xx from {server}/slow/3, got no answer: no answer within 500 ms"
    )
    port = closed_port()
    refused = run("http", {"port": port, "path": "/healthz"})
    assert refused.msg == (
        f"expected HTTP 2xx from http://127.0.0.1:{port}/healthz, got no answer: connection refused"
    )


def test_http_step_timeout_caps_the_probe(server):
    started = time.monotonic()
    result = run("http", {"url": f"{server}/slow/3", "timeout": "10s"}, timeout=0.5)
    assert result.status is Status.FAILED and time.monotonic() - started < 2


def test_http_post_json_and_head(server):
    posted = run(
        "http",
        {
            "url": f"{server}/echo",
            "method": "POST",
            "json": {"a": 1},
            "status": 201,
            "json_path": "type",
            "json_value": "application/json",
        },
    )
    assert posted.status is Status.OK, posted.msg
    assert json.loads(posted.data["body"])["got"] == '{"a": 1}'
    head = run("http", {"url": f"{server}/status/200", "method": "HEAD"})
    assert head.status is Status.OK and head.data["body"] == ""


def test_http_redirects_are_not_followed_unless_asked(server):
    plain = run("http", {"url": f"{server}/redirect"})
    assert plain.msg.startswith(f"expected HTTP 2xx from {server}/redirect, got 302")
    followed = run(
        "http", {"url": f"{server}/redirect", "follow_redirects": True, "json_path": "n"}
    )
    assert followed.status is Status.OK and followed.data["url"] == f"{server}/json"


def test_http_ignores_proxy_settings(server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert run("http", f"{server}/healthz").status is Status.OK


def test_http_url_built_from_the_hosts_address(server):
    port = int(server.rsplit(":", 1)[1])
    host = HostInfo("web1", {"ansible_host": "127.0.0.1"})
    result = run("http", {"port": port, "path": "healthz"}, host=host)
    assert result.data["url"] == f"{server}/healthz" and result.status is Status.OK


# --------------------------------------------------------------------------- tcp


def test_tcp_open_port_measures_connect_latency(server):
    port = int(server.rsplit(":", 1)[1])
    result = run("tcp", {"port": port})
    assert result.status is Status.OK
    assert result.msg.startswith(f"127.0.0.1:{port} accepted a connection in ")
    assert 0 < result.data["latency_ms"] < 1000


def test_tcp_closed_port_says_refused():
    port = closed_port()
    result = run("tcp", port)
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        f"expected 127.0.0.1:{port} to accept a connection, got connection refused in "
    )


def test_tcp_expect_closed(server):
    port = closed_port()
    assert run("tcp", {"port": port, "state": "closed"}).msg.startswith(
        f"127.0.0.1:{port} is closed, as expected"
    )
    open_port = int(server.rsplit(":", 1)[1])
    result = run("tcp", {"port": open_port, "state": "closed"})
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        f"expected 127.0.0.1:{open_port} to be closed, but it accepted a connection in "
    )


def test_tcp_latency_threshold(server):
    port = int(server.rsplit(":", 1)[1])
    result = run("tcp", {"port": port, "max_latency": 1e-7})
    assert result.status is Status.FAILED and result.msg.endswith("slower than max_latency 0.0 ms")


# --------------------------------------------------------------------------- icmp


@pytest.mark.skipif(shutil.which("ping") is None, reason="no ping on this machine (iputils-ping)")
def test_icmp_loopback_answers_with_latency():
    result = run("icmp", {"count": 2})
    assert result.status is Status.OK, result.msg
    assert result.msg.startswith("127.0.0.1 answers ping (2/2 replies, avg ")
    assert result.data["received"] == 2 and result.data["latency_ms"] >= 0


def test_icmp_without_ping_installed_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a controller with no ping on its PATH
    result = run("icmp", {})
    assert (
        result.msg
        == "ping is not installed on the controller (Debian: apt-get install iputils-ping)"
    )


# --------------------------------------------------------------------------- args, quorum, paths


def test_from_accepts_one_name_and_quorum_must_fit():
    spec = probe.plugin.actions["tcp"]
    args = spec.parse_args({"port": 80, "from": "web2"})
    assert [v.name for v in args.vantages()] == ["web2"]
    with pytest.raises(ValidationError, match="quorum 3 is more than the 2 vantage points"):
        spec.parse_args({"port": 80, "from": ["a", "b"], "quorum": 3})
    with pytest.raises(ValidationError, match="is not a duration"):
        spec.parse_args({"port": 80, "timeout": "soon"})
    with pytest.raises(ValidationError, match="body_regex is not a valid regular expression"):
        probe.plugin.actions["http"].parse_args({"url": "http://127.0.0.1/", "body_regex": "("})
    assert spec.parse_args({"port": 80, "from": ["a", "b", "c"]}).needed() == 2
    assert spec.parse_args({"port": 80, "from": ["a", "b", "c", "d"]}).needed() == 3


def test_verdict_applies_the_quorum_and_names_every_vantage():
    outcomes = [
        Outcome("controller", True, "ok from here", 1.0),
        Outcome("web2", False, "refused", None),
        Outcome("db1", True, "ok there", 3.0),
    ]
    result = verdict(outcomes, 2)
    assert result.status is Status.OK
    assert result.msg == (
        "2 of 3 vantage points passed (quorum 2): controller: ok from here; web2: refused; db1: ok there"
    )
    assert result.data["latency_ms"] == 1.0 and result.data["passed"] == 2
    assert verdict(outcomes, 3).status is Status.FAILED


def test_json_paths():
    assert parse_json_path("a.b[0].c") == ["a", "b", 0, "c"]
    assert parse_json_path("$.items[-1]") == ["items", -1]
    assert parse_json_path('meta."dotted.key"') == ["meta", "dotted.key"]
    doc = {"a": {"b": [{"c": 5}]}, "items": [1, 2], "meta": {"dotted.key": True}}
    assert json_path_get(doc, "a.b[0].c") == 5
    assert json_path_get(doc, "items[-1]") == 2
    with pytest.raises(LookupError, match="a.b has no item \\[2\\]"):
        json_path_get(doc, "a.b[2]")
    with pytest.raises(LookupError, match="a has no key 'x'"):
        json_path_get(doc, "a.x")
    with pytest.raises(ValueError, match="not a simple path"):
        parse_json_path("a..b")


# --------------------------------------------------------------------------- option injection


@pytest.mark.parametrize("action", ["icmp", "tcp"])
@pytest.mark.parametrize("state", ["default", "unreachable"])
def test_a_target_that_looks_like_an_option_is_refused(action, state):
    """ping and nc (probes from a vantage point) would read "-e/bin/sh" as an option."""
    args = {"host": "-e/bin/sh", "port": 9} if action == "tcp" else {"host": "-f"}
    if state == "unreachable":
        args["state"] = "closed" if action == "tcp" else "unreachable"
    result = run(action, args)
    assert result.status is Status.FAILED
    assert "is not a host name or address" in result.msg
