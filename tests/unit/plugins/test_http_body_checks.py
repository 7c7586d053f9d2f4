"""uri-style answer checks of probe.http and local.http against a real HTTP server on loopback:
status_code lists, return_content, body_contains, body_regex, json_path, json_match."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook_plugins import local, probe
from pydantic import ValidationError

HEALTH = {"status": "ok", "checks": [{"name": "db", "ok": True}, {"name": "cache", "ok": False}],
          "version": "2.4.1"}
LONG = "x" * 500 + " the end"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            code, body, ctype = 200, json.dumps(HEALTH).encode(), "application/json"
        elif self.path == "/created":
            code, body, ctype = 201, b"made it\n", "text/plain"
        elif self.path == "/long":
            code, body, ctype = 200, LONG.encode(), "text/plain"
        else:
            code, body, ctype = 200, b"ok web1\nversion 2\n", "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(action: str, args: dict):
    plugin = probe.plugin if action == "probe.http" else local.plugin
    spec = plugin.actions["http"]
    ctx = ActionContext(host=HostInfo("local", {"ansible_host": "127.0.0.1"}), step_name="t")
    return spec.fn(ctx, spec.parse_args(args))


BOTH = ["probe.http", "local.http"]


@pytest.mark.parametrize("action", BOTH)
def test_status_code_takes_a_list_a_number_or_comma_separated_text(base, action):
    for codes in ([200, 201], "200,201", 201, ["201"]):
        assert run(action, {"url": f"{base}/created", "status_code": codes}).status is Status.OK, codes
    refused = run(action, {"url": f"{base}/created", "status_code": [200, 204]})
    assert refused.status is Status.FAILED and "got 201" in refused.msg


@pytest.mark.parametrize("action", BOTH)
def test_body_contains_a_string_or_every_string_of_a_list(base, action):
    assert run(action, {"url": f"{base}/", "body_contains": "ok web1"}).status is Status.OK
    assert run(action, {"url": f"{base}/", "body_contains": ["ok web1", "version 2"]}).status is Status.OK
    missing = run(action, {"url": f"{base}/", "body_contains": ["ok web1", "version 3"]})
    assert missing.status is Status.FAILED
    assert missing.msg.endswith("but the body does not contain 'version 3' (body starts: 'ok web1 version 2')")


@pytest.mark.parametrize("action", BOTH)
def test_json_match_and_json_path_name_what_differs(base, action):
    url = f"{base}/health"
    good = run(action, {"url": url, "json_match": {"status": "ok", "checks[0].ok": True, "$.version": "2.4.1"}})
    assert good.status is Status.OK, good.msg
    bad = run(action, {"url": url, "json_match": {"status": "ok", "checks[1].ok": True}})
    assert bad.status is Status.FAILED and bad.msg.endswith("but JSON checks[1].ok is false, expected true")
    gone = run(action, {"url": url, "json_path": "checks[5].name"})
    assert gone.status is Status.FAILED and "the JSON has no checks[5].name (checks has no item [5])" in gone.msg
    not_json = run(action, {"url": f"{base}/", "json_match": {"status": "ok"}})
    assert not_json.msg.endswith("but the body is not JSON (body starts: 'ok web1 version 2')")


@pytest.mark.parametrize("action", BOTH)
def test_return_content_registers_content_and_json(base, action):
    out = run(action, {"url": f"{base}/health", "return_content": True})
    assert out.data["content"] == json.dumps(HEALTH) and out.data["json"] == HEALTH
    plain = run(action, {"url": f"{base}/", "return_content": True})
    assert plain.data["content"] == "ok web1\nversion 2\n" and "json" not in plain.data
    assert "content" not in run(action, {"url": f"{base}/"}).data


@pytest.mark.parametrize("action", BOTH)
def test_a_failure_quotes_a_bounded_excerpt_of_the_body(base, action):
    out = run(action, {"url": f"{base}/long", "body_regex": "^the end"})
    assert out.status is Status.FAILED
    assert f"(body starts: '{'x' * 80}...')" in out.msg and "the end" not in out.msg.split("/^the end/")[1]


def test_bad_arguments_are_refused_with_what_was_expected():
    spec = probe.plugin.actions["http"]
    with pytest.raises(ValidationError, match=r"status_code must be HTTP status codes \(100-599\), not 'ok'"):
        spec.parse_args({"url": "http://x/", "status_code": "ok"})
    with pytest.raises(ValidationError, match="give status or status_code, not both"):
        spec.parse_args({"url": "http://x/", "status": 200, "status_code": 200})
    with pytest.raises(ValidationError, match='json_path "a..b" is not a simple path'):
        local.plugin.actions["http"].parse_args({"url": "http://x/", "json_match": {"a..b": 1}})
