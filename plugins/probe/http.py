"""probe.http, the L7 check: a request returns the expected status and body, fast enough.

From the controller through `http.client` (no proxy from the environment, the whole exchange
bounded by `http_deadline.bounded`, at most `BODY_CAP` bytes read); from inside another host
through its ``curl``. The answer checks (status codes, body text, JSON paths) are
`http_checks.BodyChecks`, shared with local.http; `judge_http` turns an answer into a vote.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http import client as http_client
from typing import Any, Literal

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.http_checks import BodyChecks, body_problem, content_data
from opsbook_plugins.http_deadline import bounded
from opsbook_plugins.probe._plugin import plugin
from opsbook_plugins.probe.vantage import (
    Outcome,
    ProbeArgs,
    Vantage,
    fmt_ms,
    fmt_s,
    missing_tool,
    ms_since,
    os_reason,
    run_probe,
)
from pydantic import Field

BODY_CAP = 4 * 1024 * 1024  # bytes of an HTTP answer read on the controller (the rest is not read)


class HttpArgs(ProbeArgs, BodyChecks):
    """Arguments of probe.http (the answer checks: opsbook_plugins.http_checks)."""

    url: str | None = Field(
        None, description="Full URL; default built from scheme, host, port, path."
    )
    scheme: Literal["http", "https"] = "http"
    host: str | None = Field(None, description="Default: the host's ansible_host.")
    port: int | None = Field(None, ge=1, le=65535, description="Default: 80 / 443.")
    path: str = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    data: str | None = Field(None, description="Request body (text).")
    json_body: Any = Field(None, alias="json", description="Request body as JSON.")
    follow_redirects: bool = False
    validate_certs: bool = True


@dataclass
class HttpAnswer:
    """What came back (status None when nothing did)."""

    url: str
    status: int | None
    body: bytes
    latency_ms: float
    error: str = ""


def _request_body(args: HttpArgs) -> tuple[bytes | None, dict[str, str]]:
    headers = dict(args.headers)
    if "json_body" in args.model_fields_set:
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(args.json_body).encode(), headers
    if args.data is not None:
        return args.data.encode(), headers
    return None, headers


def _url_for(vantage: Vantage, args: HttpArgs) -> str:
    if vantage.override.url:
        return vantage.override.url
    if args.url and not vantage.override.host and not vantage.override.port:
        return args.url
    if args.url:  # an override of host/port on top of a full URL
        parts = urllib.parse.urlsplit(args.url)
        host = vantage.override.host or parts.hostname or ""
        port = vantage.override.port or parts.port
        netloc = f"{host}:{port}" if port else host
        return urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path, parts.query, parts.fragment)
        )
    host = vantage.target_host(args.host)
    port = vantage.override.port or args.port
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    path = args.path if args.path.startswith("/") else "/" + args.path
    return f"{args.scheme}://{netloc}{path}"


def _http_controller(
    url: str, args: HttpArgs, timeout: float, cancel: threading.Event | None = None
) -> HttpAnswer:
    body, headers = _request_body(args)
    start = time.monotonic()
    for _hop in range(6):
        left = max(0.001, timeout - (time.monotonic() - start))
        try:
            parts = urllib.parse.urlsplit(url)
            status, payload, location = _http_once(parts, args, headers, body, left, cancel)
        except TimeoutError:
            return HttpAnswer(url, None, b"", ms_since(start), f"no answer within {fmt_s(timeout)}")
        except (OSError, http_client.HTTPException, ssl.SSLError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__
            return HttpAnswer(url, None, b"", ms_since(start), reason)
        except ValueError as exc:  # urllib.parse: a bad port, "Invalid IPv6 URL"
            return HttpAnswer(url, None, b"", ms_since(start), f"not a valid URL: {exc}")
        if args.follow_redirects and location and status in (301, 302, 303, 307, 308):
            url = urllib.parse.urljoin(url, location)
            continue
        return HttpAnswer(url, status, payload, ms_since(start))
    return HttpAnswer(url, None, b"", ms_since(start), "too many redirects")


def _http_once(
    parts: urllib.parse.SplitResult,
    args: HttpArgs,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    cancel: threading.Event | None = None,
) -> tuple[int, bytes, str | None]:
    """One request; the whole exchange within `timeout` (not per read), cut on `cancel`."""
    # http.client, not urllib: no proxy from the environment may redirect a health check.
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not args.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http_client.HTTPConnection = http_client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    elif parts.scheme == "http":
        conn = http_client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    else:
        raise http_client.HTTPException(f"unsupported URL scheme {parts.scheme!r}")
    try:
        with bounded([conn], timeout, cancel) as watch:
            try:
                target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
                conn.request(args.method, target, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read(BODY_CAP)  # a health check judges the start of a body
            except (OSError, http_client.HTTPException):
                if watch.expired():
                    raise TimeoutError(watch.expired()) from None
                raise
        if watch.expired():
            raise TimeoutError(watch.expired())
        return response.status, payload, response.getheader("Location")
    finally:
        conn.close()


_CURL_MARK = "\nOPSBOOK-HTTP "


def _http_remote(
    vantage: Vantage, url: str, args: HttpArgs, timeout: float
) -> HttpAnswer | Outcome:
    body, headers = _request_body(args)
    argv = ["curl", "-sS", "--max-time", f"{timeout:g}", "--noproxy", "*"]
    argv += ["--head", "-o", "/dev/null"] if args.method == "HEAD" else ["-X", args.method]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    if body is not None:
        argv += ["--data-binary", "@-"]
    if args.follow_redirects:
        argv += ["-L", "--max-redirs", "5"]
    if not args.validate_certs:
        argv += ["-k"]
    argv += ["-w", _CURL_MARK + "%{http_code} %{time_total}\n", "--", url]
    start = time.monotonic()
    done = vantage.run(argv, timeout, body)  # type: ignore[misc]
    wall = ms_since(start)
    missing = missing_tool(vantage, done, "curl", "HTTP")
    if missing:
        return missing
    head, mark, tail = done.stdout.rpartition(_CURL_MARK)
    if not mark:
        return HttpAnswer(
            url, None, b"", wall, (done.stderr.strip() or f"curl exited {done.rc}")[:200]
        )
    code, _, total = tail.strip().partition(" ")
    latency = round(float(total) * 1000.0, 3) if _is_number(total) else wall
    if done.rc == 28:
        return HttpAnswer(url, None, b"", latency, f"no answer within {fmt_s(timeout)}")
    if done.rc != 0 or code in ("", "000"):
        reason = (
            done.stderr.strip().removeprefix("curl: ").split(": ")[-1][:200]
            or f"curl exited {done.rc}"
        )
        if "refused" in reason.lower():
            reason = "connection refused"
        return HttpAnswer(url, None, b"", latency, reason)
    return HttpAnswer(url, int(code), head.encode(), latency)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@plugin.action(check=True, idempotent=True, scalar="url", observes=True)
def http(ctx: ActionContext, args: HttpArgs) -> Result:
    """L7: an HTTP request returns the expected status, body, JSON value, fast enough."""

    def probe(vantage: Vantage, timeout: float) -> Outcome:
        url = _url_for(vantage, args)
        answer = (
            _http_controller(url, args, timeout, ctx.cancelled)
            if vantage.is_controller
            else _http_remote(vantage, url, args, timeout)
        )
        if isinstance(answer, Outcome):
            return answer
        return judge_http(vantage.name, args, answer)

    return run_probe(ctx, args, probe)


def _expected_status(args: HttpArgs) -> str:
    if args.status is None:
        return "HTTP 2xx"
    return "HTTP " + " or ".join(str(c) for c in args.status)


def _status_ok(args: HttpArgs, status: int) -> bool:
    if args.status is None:
        return 200 <= status < 300
    return status in args.status


def judge_http(vantage: str, args: HttpArgs, answer: HttpAnswer) -> Outcome:
    """Compare an answer with what the args expect; the message names both."""
    took = fmt_ms(answer.latency_ms)
    facts: dict[str, Any] = {"url": answer.url, "status": answer.status}
    if answer.status is None:
        text = f"expected {_expected_status(args)} from {answer.url}, got no answer: {answer.error}"
        return Outcome(vantage, False, text, None, facts)
    body = answer.body.decode(errors="replace")
    facts["body"] = body[:4096]
    facts.update(content_data(body, args.return_content))
    if not _status_ok(args, answer.status):
        text = f"expected {_expected_status(args)} from {answer.url}, got {answer.status} in {took}"
        return Outcome(vantage, False, text, answer.latency_ms, facts)
    problem = body_problem(args, body)
    if problem:
        text = f"HTTP {answer.status} from {answer.url} in {took}, but {problem}"
        return Outcome(vantage, False, text, answer.latency_ms, facts)
    return Outcome(
        vantage, True, f"HTTP {answer.status} from {answer.url} in {took}", answer.latency_ms, facts
    )
