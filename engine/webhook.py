"""The Alertmanager webhook receiver of `opsbook watch --listen`: who may start a runbook.

A POST starts response runbooks as the watcher's user, approved, so every request is
checked before anything is read or started, in this order:

- the Host header names the loopback address it listens on (403): a web page in the
  operator's browser reaching 127.0.0.1 through a DNS name of its own (rebinding) is refused;
- no Origin header (403): Alertmanager sends none, a browser always does;
- `Authorization: Bearer <token>` with the shared token (401), compared in constant time
  (Alertmanager: `http_config.authorization.credentials_file`);
- `Content-Type: application/json` (415): a `text/plain` POST is a CORS "simple request"
  any page can send;
- a Content-Length, a number from 0 to 1 MiB (411, 400, 413), before the body is read;
- a JSON object with a list of alert objects (400).

Only then are alerts matched to routes. A route fills only the parameters it maps
(`--route 'WebDown:restart.yaml:instance=target'`), never others from labels. A run is
reported started (202, with its id) only once it is in the journal and holds its lock;
one that cannot start (bad parameters, the runbook's lock held by another run) is a 409/422
naming why, and nothing is left behind.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opsbook.errors import RunLockedError, UserError

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Route:
    """alertname (or label=value) -> runbook, and which labels fill which parameters."""

    label: str
    value: str
    runbook: str
    params: tuple[tuple[str, str], ...] = ()  # (label, parameter)

    @classmethod
    def parse(cls, text: str) -> Route:
        """`ALERTNAME:RUNBOOK`, `LABEL=VALUE:RUNBOOK`, either with `:label=param,label=param`."""
        match, _, rest = text.partition(":")
        runbook, mapping = rest, ""
        head, sep, tail = rest.rpartition(":")
        if sep and "=" in tail and "/" not in tail:
            runbook, mapping = head, tail
        label, _, value = match.partition("=")
        if not runbook or not label:
            raise UserError(f"--route {text!r}: expected ALERTNAME:RUNBOOK or LABEL=VALUE:RUNBOOK, "
                            "optionally followed by :label=param,label=param")
        pairs = []
        for item in filter(None, (m.strip() for m in mapping.split(","))):
            source, _, param = item.partition("=")
            if not source or not param:
                raise UserError(f"--route {text!r}: {item!r} must be label=param")
            pairs.append((source, param))
        if not value:
            label, value = "alertname", label
        return cls(label, value, runbook, tuple(pairs))

    def given(self, labels: dict[str, Any]) -> dict[str, Any]:
        return {param: labels[label] for label, param in self.params if label in labels}


class Refused(Exception):
    """A request answered with an HTTP error and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


# starter(route, alert) -> the run id, journaled and holding its lock; UserError/RunLockedError if not
Starter = Callable[[Route, dict[str, Any]], str]


@dataclass
class AlertReceiver:
    """Alertmanager webhook receiver on a loopback address, behind a shared token."""

    host: str
    port: int
    routes: list[Route]
    starter: Starter
    token: str
    cooldown: float = 600.0
    recent: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.host).is_loopback:
            raise UserError(f"refusing to listen on {self.host}: the webhook receiver binds to loopback only",
                            hint="use 127.0.0.1 and let a local proxy forward to it")
        if len(self.token) < 16:
            raise UserError("the webhook token must be at least 16 characters (from --token-file or "
                            "OPSBOOK_WEBHOOK_TOKEN)", hint="e.g. openssl rand -hex 32 > token; chmod 600 token")
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    payload = receiver.admit(dict(self.headers.items()), self.rfile)
                    status, body = 202, {"started": receiver.handle(payload)}
                except Refused as exc:
                    status, body = exc.status, {"error": str(exc)}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self.server.server_address[1]

    def admit(self, headers: dict[str, str], body: Any) -> dict[str, Any]:
        """The checks of the module docstring, in order; the parsed payload."""
        h = {k.lower(): v for k, v in headers.items()}
        allowed = {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]", self.host)}
        if h.get("host", "").lower() not in allowed:
            raise Refused(403, f"Host {h.get('host', '(none)')!r} is not this receiver ({self.host}:{self.port})")
        if "origin" in h:
            raise Refused(403, "requests from a web page (with an Origin header) are refused")
        scheme, _, given = h.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise Refused(401, "missing or wrong bearer token")
        if h.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise Refused(415, "Content-Type must be application/json")
        length = h.get("content-length")
        if length is None:
            raise Refused(411, "Content-Length is required")
        if not length.strip().isdigit():
            raise Refused(400, f"Content-Length {length!r} is not a number of bytes")
        if int(length) > MAX_BODY:
            raise Refused(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            payload = json.loads(body.read(int(length)) or b"null")
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list) \
                or not all(isinstance(a, dict) and isinstance(a.get("labels", {}), dict) for a in payload["alerts"]):
            raise Refused(400, 'expected an Alertmanager webhook: {"alerts": [{"labels": {...}}, ...]}')
        return payload

    def handle(self, payload: dict[str, Any]) -> list[dict[str, str]]:
        """Start the runbook of every firing alert that matches a route (once per cool-down)."""
        started = []
        for alert in payload["alerts"]:
            if alert.get("status", payload.get("status")) != "firing":
                continue
            labels = alert.get("labels", {})
            for route in self.routes:
                if labels.get(route.label) != route.value:
                    continue
                key = f"{route.runbook}|{alert.get('fingerprint') or json.dumps(labels, sort_keys=True)}"
                with self.lock:
                    if time.time() - self.recent.get(key, 0) < self.cooldown:
                        continue  # the same incident: never start twice
                    self.recent[key] = time.time()
                try:
                    run_id = self.starter(route, alert)
                except RunLockedError as exc:
                    raise Refused(409, f"{route.runbook}: {exc}") from None
                except UserError as exc:
                    with self.lock:
                        self.recent.pop(key, None)  # nothing started: a corrected alert may try again
                    raise Refused(422, f"{route.runbook}: {exc}") from None
                started.append({"runbook": route.runbook, "run": run_id})
        return started

    def serve(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
