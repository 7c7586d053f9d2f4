"""A whole HTTP exchange within its timeout, and ended at once when the step is cancelled.

`http.client` and `urllib` apply a timeout to each socket operation: a server that sends
one byte every half second keeps a request with `timeout: 2` alive forever, and nothing
stops it on SIGTERM. `bounded(conn, seconds, cancel)` watches the exchange from a second
thread and shuts the connection's socket down when the time is up or the step is
cancelled; the blocked read then returns, and `expired()` says why it ended.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http import client as http_client
from typing import Any

_POLL = 0.1  # how often the watcher looks at the cancel event


class Watch:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.why = ""  # "timeout" | "cancelled" once the watcher cut the exchange

    def expired(self) -> str:
        return self.why


@contextmanager
def bounded(conns: list[http_client.HTTPConnection], seconds: float, cancel: threading.Event | None) -> Iterator[Watch]:
    """Cut every connection in `conns` (filled as they are opened) after `seconds` or on `cancel`."""
    watch = Watch()
    deadline = time.monotonic() + seconds

    def watcher() -> None:
        while not watch.done.is_set():
            left = deadline - time.monotonic()
            if cancel is not None and cancel.is_set():
                watch.why = "cancelled"
            elif left <= 0:
                watch.why = "timeout"
            if watch.why:
                for conn in list(conns):
                    # urllib drops conn.sock once the headers are read (the response keeps
                    # reading from it): the socket recorded at connect time is cut
                    sock = getattr(conn, "opsbook_sock", None) or getattr(conn, "sock", None)
                    if sock is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                return
            watch.done.wait(min(_POLL, max(left, 0.0)))

    thread = threading.Thread(target=watcher, name="http-deadline", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.done.set()
        thread.join()


def opener(conns: list[http_client.HTTPConnection]) -> urllib.request.OpenerDirector:
    """A urllib opener (proxies from the environment, redirects, as urlopen) whose HTTP(S)
    connections are added to `conns` for `bounded` to cut."""

    class _Http(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(_recording(http_client.HTTPConnection, conns), req)

    class _Https(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            extra = {"context": getattr(self, "_context", None)}
            if hasattr(self, "_check_hostname"):  # Python < 3.12
                extra["check_hostname"] = self._check_hostname
            return self.do_open(_recording(http_client.HTTPSConnection, conns), req, **extra)

    return urllib.request.build_opener(_Http, _Https)


def _recording(cls: Any, conns: list[http_client.HTTPConnection]) -> Any:
    class Recording(cls):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            self.opsbook_sock = self.sock

    def make(*args: Any, **kwargs: Any) -> Any:
        conn = Recording(*args, **kwargs)
        conns.append(conn)
        return conn

    return make


def exchange(url: str, method: str, body: Any, headers: dict[str, str], limit: float,
             cancel: threading.Event | None, cap: int) -> tuple[int, str, float]:
    """One HTTP request from the controller, the whole exchange within `limit` seconds:
    (status, the first `cap` bytes of the answer as text, seconds). A body that is not a
    string is sent as JSON. Raises TimeoutError ("cancelled" or "timed out: ..."), OSError,
    http.client.HTTPException or ValueError (a URL urllib refuses). `local.http`,
    `local.notify` and the chat webhooks all send through here."""
    import json
    import urllib.error

    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers} if not isinstance(body, str) else headers
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    start = time.monotonic()
    conns: list[Any] = []
    # the socket timeout alone is per read: the watcher cuts the exchange at `limit`, and at
    # once when the step is cancelled
    with bounded(conns, limit, cancel) as watch:
        try:
            with opener(conns).open(request, timeout=limit) as response:
                status, text = response.status, response.read(cap).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read(cap).decode(errors="replace")
        except (OSError, http_client.HTTPException) as exc:
            if watch.expired():
                raise TimeoutError(_cut(watch.expired(), limit)) from None
            raise exc
    if watch.expired():
        raise TimeoutError(_cut(watch.expired(), limit))
    return status, text, time.monotonic() - start


def _cut(why: str, limit: float) -> str:
    return "cancelled" if why == "cancelled" else f"timed out: no complete answer within {limit:g}s"
