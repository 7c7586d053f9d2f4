"""ssh.uri (Ansible's `uri`) on a `local` host, against a real HTTP server on loopback: the
same program a remote host's python3 runs, here run by the controller's Python. Pins what
ansible-core's uri does with body_format, follow_redirects, basic auth, status_code, dest,
creates, the registered keys, and the refusals (arguments opsbook does not implement, a
host without python3). Runs on a remote host are in tests/integration/ssh/test_uri_on_target.py.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook.registry import Registry
from opsbook_plugins.local import LocalConnection
from opsbook_plugins.ssh import plugin
from pydantic import ValidationError

USER, PASSWORD = "ops", "s3cret"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype="text/plain", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        sent = self.rfile.read(length).decode() if length else ""
        if self.path == "/health":
            self._send(200, json.dumps({"status": "ok"}), "application/json", [("X-Served-By", "web1")])
        elif self.path == "/problem":
            self._send(200, json.dumps({"title": "x"}), "application/problem+json")
        elif self.path.startswith("/moved"):
            code = int(self.path.rpartition("/")[2] or 302)
            self._send(code, "go away\n", extra=[("Location", "/echo")])
        elif self.path == "/echo":
            self._send(200, json.dumps({"method": self.command, "body": sent, "agent": self.headers["User-Agent"],
                                        "type": self.headers.get("Content-Type")}), "application/json")
        elif self.path == "/private":
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") == expected:
                self._send(200, "welcome\n", extra=[("Set-Cookie", "session=abc; Path=/")])
            else:
                self._send(401, "who are you\n", extra=[("WWW-Authenticate", 'Basic realm="lab"')])
        elif self.path == "/file.txt":
            self._send(200, "file body\n")
        elif self.path == "/dated.txt" and self.headers.get("If-Modified-Since"):
            self._send(304, "")
        elif self.path == "/dated.txt":
            self._send(200, "dated body\n", extra=[("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")])
        else:
            self._send(404, "no such page\n")

    do_GET = do_POST = do_PUT = do_HEAD = _answer


@pytest.fixture(scope="module")
def base():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(args: dict, check: bool = False, **host_vars):
    spec = plugin.actions["uri"]
    host = HostInfo("web1", {"ansible_connection": "local", **host_vars})
    ctx = ActionContext(host=host, step_name="t", check_mode=check, _connect=lambda h: LocalConnection(h))
    return spec.fn(ctx, spec.parse_args(args))


def test_ansible_uri_means_ssh_uri_which_runs_over_the_hosts_connection():
    assert Registry.from_entry_points().ansible_action("ansible.builtin.uri") == "ssh.uri"


def test_registers_ansibles_keys_with_header_names_lower_case(base):
    res = run({"url": f"{base}/health"})
    assert res.status is Status.OK and not res.changed
    data = res.registered()
    assert data["status"] == 200 and data["url"] == f"{base}/health" and data["redirected"] is False
    assert data["json"] == {"status": "ok"}  # a JSON answer registers json without return_content
    assert "content" not in data
    assert data["content_type"] == "application/json" and data["x_served_by"] == "web1"
    assert data["msg"].startswith("OK (") and isinstance(data["elapsed"], int)


def test_return_content_and_a_json_suffix_type(base):
    data = run({"url": f"{base}/problem", "return_content": True}).registered()
    assert data["content"] == '{"title": "x"}' and data["json"] == {"title": "x"}


def test_status_code_list_and_ansibles_failure_message(base):
    missing = run({"url": f"{base}/nothing", "status_code": [200, 201]})
    assert missing.status is Status.FAILED
    assert missing.msg.startswith("Status code was 404 and not [200, 201]: HTTP Error 404")
    assert "asked from web1" in missing.msg
    assert run({"url": f"{base}/nothing", "status_code": "200,404"}).status is Status.OK


def test_unreachable_is_status_minus_one(base):
    res = run({"url": "http://127.0.0.1:1/"})
    assert res.status is Status.FAILED and res.registered()["status"] == -1
    assert "Connection refused" in res.msg


def test_body_format_json_encodes_and_sets_the_content_type(base):
    data = run({"url": f"{base}/echo", "method": "POST", "body_format": "json", "body": {"a": [1, 2]}}).registered()
    assert data["json"]["method"] == "POST" and json.loads(data["json"]["body"]) == {"a": [1, 2]}
    assert data["json"]["type"] == "application/json" and data["json"]["agent"] == "ansible-httpget"


def test_body_format_json_keeps_a_string_and_a_given_content_type(base):
    data = run({"url": f"{base}/echo", "method": "POST", "body_format": "json", "body": '{"raw": true}',
                "headers": {"content-type": "application/vnd.x+json"}}).registered()
    assert data["json"]["body"] == '{"raw": true}' and data["json"]["type"] == "application/vnd.x+json"


def test_body_format_form_urlencoded_repeats_a_key_for_a_list(base):
    data = run({"url": f"{base}/echo", "method": "POST", "body_format": "form-urlencoded",
                "body": {"name": "web1", "tag": ["a", "b"]}}).registered()
    assert parse_qs(data["json"]["body"]) == {"name": ["web1"], "tag": ["a", "b"]}
    assert data["json"]["type"] == "application/x-www-form-urlencoded"


def test_follow_redirects_safe_follows_a_get(base):
    data = run({"url": f"{base}/moved/302"}).registered()
    assert data["status"] == 200 and data["redirected"] is True and data["url"] == f"{base}/echo"


def test_follow_redirects_safe_does_not_follow_a_post(base):
    res = run({"url": f"{base}/moved/302", "method": "POST", "body": "x"})
    data = res.registered()
    assert res.status is Status.FAILED and data["status"] == 302 and data["redirected"] is False
    assert data["location"] == f"{base}/echo"  # made absolute, as Ansible does
    assert run({"url": f"{base}/moved/302", "method": "POST", "body": "x", "status_code": 302}).status is Status.OK


def test_follow_redirects_all_turns_a_302_post_into_a_get_and_keeps_a_307_post(base):
    after_302 = run({"url": f"{base}/moved/302", "method": "POST", "body": "x", "follow_redirects": "all"})
    assert after_302.registered()["json"]["method"] == "GET"
    after_307 = run({"url": f"{base}/moved/307", "method": "POST", "body": "x", "follow_redirects": "all"})
    assert after_307.registered()["json"] == {**after_307.registered()["json"], "method": "POST", "body": "x"}


def test_follow_redirects_none_answers_the_redirect(base):
    for value in ("none", "no", False):
        data = run({"url": f"{base}/moved/301", "follow_redirects": value, "status_code": 301}).registered()
        assert data["status"] == 301 and data["redirected"] is False


def test_basic_auth_answers_the_challenge_or_is_forced(base):
    assert run({"url": f"{base}/private"}).registered()["status"] == 401
    challenged = run({"url": f"{base}/private", "url_username": USER, "url_password": PASSWORD})
    assert challenged.status is Status.OK and challenged.registered()["cookies"] == {"session": "abc"}
    forced = run({"url": f"{base}/private", "user": USER, "password": PASSWORD, "force_basic_auth": True})
    assert forced.status is Status.OK and forced.registered()["cookies_string"] == "session=abc"


def test_the_password_is_registered_as_a_secret(base):
    from opsbook.secrets import SecretStore

    store = SecretStore()
    spec = plugin.actions["uri"]
    ctx = ActionContext(host=HostInfo("web1", {"ansible_connection": "local"}), step_name="t", secrets=store,
                        _connect=lambda h: LocalConnection(h))
    spec.fn(ctx, spec.parse_args({"url": f"{base}/private", "user": USER, "password": PASSWORD}))
    assert PASSWORD not in store.redact(f"sent {PASSWORD}")


def test_dest_is_written_once_and_then_unchanged(base, tmp_path):
    target = tmp_path / "page.txt"
    first = run({"url": f"{base}/file.txt", "dest": str(target)})
    assert first.status is Status.OK and first.changed and target.read_text() == "file body\n"
    assert first.registered()["path"] == str(target)
    again = run({"url": f"{base}/file.txt", "dest": str(target)})
    assert again.status is Status.OK and not again.changed
    into_folder = run({"url": f"{base}/file.txt", "dest": str(tmp_path)})
    assert into_folder.registered()["path"] == str(tmp_path / "file.txt")
    assert not list(tmp_path.glob(".opsbook-uri-*"))


def test_dest_that_exists_sends_if_modified_since_and_a_304_is_not_200(base, tmp_path):
    target = tmp_path / "dated.txt"
    assert run({"url": f"{base}/dated.txt", "dest": str(target)}).changed
    again = run({"url": f"{base}/dated.txt", "dest": str(target)})  # as in Ansible: 304 is not in [200]
    assert again.status is Status.FAILED and again.registered()["status"] == 304
    allowed = run({"url": f"{base}/dated.txt", "dest": str(target), "status_code": [200, 304]})
    assert allowed.status is Status.OK and not allowed.changed and target.read_text() == "dated body\n"


def test_creates_skips_the_request(base, tmp_path):
    res = run({"url": "http://127.0.0.1:1/", "creates": str(tmp_path)})
    assert res.status is Status.OK and not res.changed and res.stdout == f"skipped, since {tmp_path} exists"


def test_check_mode_sends_only_get_and_head(base, tmp_path):
    assert run({"url": f"{base}/health"}, check=True).status is Status.OK
    post = run({"url": f"{base}/echo", "method": "POST"}, check=True)
    assert post.status is Status.UNKNOWN and "not sent in check mode" in post.msg
    assert run({"url": f"{base}/file.txt", "dest": str(tmp_path / "x")}, check=True).status is Status.UNKNOWN
    assert not (tmp_path / "x").exists()


def test_the_shared_body_checks_apply(base):
    assert run({"url": f"{base}/health", "json_path": "status", "json_value": "ok"}).status is Status.OK
    res = run({"url": f"{base}/health", "body_contains": "down"})
    assert res.status is Status.FAILED and "does not contain 'down'" in res.msg


def test_a_host_without_that_python_gets_a_clear_error(base):
    res = run({"url": f"{base}/health"}, ansible_python_interpreter="/nonexistent/python3")
    assert res.status is Status.FAILED
    assert res.msg.startswith("web1: uri runs on the host with /nonexistent/python3, which is not there")
    assert "delegate_to: localhost" in res.msg and "probe.http" in res.msg


def test_the_local_host_uses_the_controllers_python(base):
    res = run({"url": f"{base}/health"}, ansible_python_interpreter=sys.executable)
    assert res.status is Status.OK


@pytest.mark.parametrize(("args", "named"), [
    ({"unix_socket": "/run/docker.sock"}, "unix_socket"),
    ({"ca_path": "/etc/ca.pem", "client_cert": "/c"}, "\"ca_path\", \"client_cert\" are not implemented"),
    ({"src": "/tmp/x"}, "src"),
    ({"body_format": "form-multipart"}, "form-multipart"),
])
def test_arguments_opsbook_lacks_are_refused_by_name(args, named):
    with pytest.raises(ValidationError, match=named):
        plugin.actions["uri"].parse_args({"url": "http://x/", **args})


def test_a_method_must_be_one_word():
    with pytest.raises(ValidationError, match="one word"):
        plugin.actions["uri"].parse_args({"url": "http://x/", "method": "GET /etc"})
    assert plugin.actions["uri"].parse_args({"url": "http://x/", "method": "post"}).method == "POST"
