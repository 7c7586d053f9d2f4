"""What the docker plugin says when the daemon is missing or hangs (real sockets, no lab)."""

from __future__ import annotations

import socket
import threading
import time

from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook_plugins import docker as d


def run(action: str, args, host_vars: dict) -> object:
    spec = d.plugin.actions[action]
    ctx = ActionContext(host=HostInfo("web1", host_vars), step_name="t")
    return spec.fn(ctx, spec.parse_args(args))


def test_missing_socket_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    result = run("inspect", {"container": "web1"}, {"docker_host": str(tmp_path / "d.sock")})
    assert result.status is Status.FAILED
    assert result.msg == (
        f"cannot reach the Docker daemon at unix://{tmp_path}/d.sock: is dockerd running? "
        "(host var docker_host; DOCKER_HOST=(not set); [Errno 2] No such file or directory)"
    )


def test_socket_nobody_listens_on(tmp_path, monkeypatch):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed dockerd leaves behind
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    result = run("container", {"name": "web1"}, {})
    assert result.msg == (
        f"cannot reach the Docker daemon at unix://{path}: is dockerd running? "
        f"(DOCKER_HOST=unix://{path}; [Errno 111] Connection refused)"
    )


def test_daemon_that_accepts_but_never_answers(tmp_path, monkeypatch):
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    started = time.monotonic()
    try:
        result = run(
            "inspect",
            {"container": "web1"},
            {"docker_host": f"unix://{path}", "docker_timeout": "1s"},
        )
    finally:
        stop.set()
        for conn in held:
            conn.close()
        server.close()
    assert time.monotonic() - started < 10
    assert result.status is Status.FAILED
    assert result.msg == (
        f"the Docker daemon at unix://{path} accepted the connection but did not answer within 1 s: "
        "is it overloaded or hung? (host var docker_host; DOCKER_HOST=(not set))"
    )
