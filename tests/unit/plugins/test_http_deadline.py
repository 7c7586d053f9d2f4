"""An HTTP timeout is for the whole exchange, and a stop ends it (issue 24 item 12): a server
that sends one byte every 0.2 s kept `local.http`/`probe.http` with `timeout: 1` busy for as
long as it liked, and SIGTERM did not stop them."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from opsbook.plugin import ActionContext, HostInfo, Status
from opsbook.registry import Registry


@pytest.fixture
def dripping():
    """A server answering headers, then one body byte every 0.2 s for a minute."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn: socket.socket) -> None:
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n")
            for _ in range(300):
                if stop.wait(0.2):
                    break
                conn.sendall(b"x")
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    server.close()


def _call(action: str, args: dict, cancel: threading.Event | None = None):
    spec = Registry.from_entry_points().action(action)
    ctx = ActionContext(host=HostInfo("localhost", {}), step_name="t", cancelled=cancel or threading.Event())
    start = time.monotonic()
    result = spec.fn(ctx, spec.parse_args(args))
    return result, time.monotonic() - start


@pytest.mark.parametrize("action", ["local.http", "probe.http"])
def test_a_dripping_server_is_cut_at_the_timeout(dripping, action):
    result, took = _call(action, {"url": dripping, "timeout": 1})
    assert result.status is Status.FAILED and took < 3, (took, result.msg)
    assert "within 1" in result.msg, result.msg


@pytest.mark.parametrize("action", ["local.http", "probe.http"])
def test_a_stop_ends_the_request_at_once(dripping, action):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result, took = _call(action, {"url": dripping, "timeout": 30}, cancel)
    assert result.status is not Status.OK and took < 2.5, (took, result.msg)
