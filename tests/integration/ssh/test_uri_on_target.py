"""`uri` runs on the target, as Ansible's uri module does: each lab host's python3 asks its
own 127.0.0.1 (nginx on :8080 inside the container, which the controller cannot reach on
that address), over ssh and over the docker connection; `delegate_to: localhost` asks from
the controller; a host without that python gets a message saying what to do instead;
`dest` writes a file on the host."""

from __future__ import annotations

import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opsbook.plugin import Status
from opsbook_lab.pytest_plugin import opsbook

NGINX = "http://127.0.0.1:8080"


def test_uri_asks_each_hosts_own_loopback_over_ssh(node):
    for name in ("web1", "web2"):
        res = node(name).act("uri", {"url": f"{NGINX}/whoami", "return_content": True})
        assert res.status is Status.OK, res.msg
        data = res.registered()
        assert data["content"] == f"{name}\n" and data["x_lab_host"] == name
        assert data["status"] == 200 and data["content_type"].startswith("text/plain")


def test_uri_over_the_docker_connection(docker_node):
    res = docker_node("web2").act("uri", {"url": f"{NGINX}/whoami", "return_content": True})
    assert res.status is Status.OK, res.msg
    assert res.registered()["content"] == "web2\n"


def test_a_host_without_that_python_is_told_what_to_do(node):
    res = node("web1", ansible_python_interpreter="/usr/bin/python-missing").act("uri", {"url": f"{NGINX}/"})
    assert res.status is Status.FAILED
    assert res.msg.startswith("web1: uri runs on the host with /usr/bin/python-missing, which is not there")
    assert "delegate_to: localhost" in res.msg


def test_dest_is_written_on_the_host_once(node):
    web1 = node("web1")
    path = "/tmp/opsbook-uri-index.html"
    web1.sh(f"rm -f {path}")
    try:
        first = web1.act("uri", {"url": f"{NGINX}/index.html", "dest": path})
        assert first.status is Status.OK and first.changed, first.msg
        assert "web1" in web1.sh(f"cat {path}")
        # If-Modified-Since is sent (the file's date); nginx's `if_modified_since exact`
        # answers 200 to a date that is not the page's own, and the same body changes nothing
        again = web1.act("uri", {"url": f"{NGINX}/index.html", "dest": path})
        assert again.status is Status.OK and not again.changed, again.msg
        assert web1.sh("ls -a /tmp").count(".opsbook-uri-") == 0
    finally:
        web1.sh(f"rm -f {path}")


@pytest.fixture
def controller_web():
    """A page on the controller's 127.0.0.1 only (the lab hosts cannot reach it there)."""

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b"controller\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_delegate_to_localhost_asks_from_the_controller(lab_info, tmp_path, controller_web):
    runbook = tmp_path / "rb.yaml"
    runbook.write_text(textwrap.dedent(f"""
        opsbook: 1
        name: uri-where
        hosts: web1
        steps:
          - name: from the controller
            delegate_to: localhost
            uri: {{url: "{controller_web}/", return_content: true}}
            register: here
          - name: from web1
            uri: {{url: "{controller_web}/", timeout: 5}}
            register: there
            ignore_errors: true
          - name: show
            debug: {{msg: "{{{{ here.content | trim }}}} {{{{ there.status }}}}"}}
        """))
    run = opsbook(tmp_path, "run", str(runbook), "-i", lab_info.inventory, "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    shown = run.stdout + run.stderr
    assert "controller -1" in shown, shown[-3000:]  # web1 could not reach the controller's page
