"""Health checks at three layers: L3 ping (probe.icmp), L4 port (probe.tcp), L7 HTTP (probe.http).

Every probe measures latency (``data.latency_ms``) and says what it expected and what it found.
Probes are read-only, so they run the same in check mode.

**Vantage points.** ``from: [controller, web2]`` runs the probe from several places and passes
when ``quorum`` of them agree (default: a majority). ``controller`` is the machine opsbook runs
on; any other name is an inventory host, probed from *inside* it over its connection (ssh,
docker exec, ...) with ``ping``, ``bash``'s ``/dev/tcp`` (or ``nc``) and ``curl``. A host seen
from inside the network usually has another address than from the controller, so an entry may
override the target for that vantage point::

    probe.http:
      url: "http://127.0.0.1:18080/healthz"
      from:
        - controller
        - {name: web2, url: "http://172.30.0.11:8080/healthz"}

Without an override, a non-controller vantage point targets the host var ``internal_address``
of the probed host if it has one, else its ``ansible_host``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import client as http_client
from typing import Any, Literal

from opsbook.plugin import ActionContext, HostInfo, Plugin, Result, Seconds
from opsbook_plugins.http_checks import BodyChecks, body_problem, content_data
from opsbook_plugins.http_checks import json_path_get, parse_json_path  # noqa: F401 - kept importable here
from opsbook_plugins.http_deadline import bounded
from pydantic import BaseModel, ConfigDict, Field, model_validator

plugin = Plugin(
    "probe", "Health checks: L3 ICMP ping, L4 TCP port, L7 HTTP; from many vantage points."
)

CONTROLLER = "controller"
_REMOTE_MARGIN = 5.0  # seconds a remote command may take beyond the probe's own timeout
BODY_CAP = 4 * 1024 * 1024  # bytes of an HTTP answer read on the controller (the rest is not read)


# --------------------------------------------------------------------------- durations


# Durations: the engine's parser and argument type (30, "30s", "1m30s", "500ms").



def fmt_ms(ms: float) -> str:
    """Latency for people: '0.4 ms', '12 ms', '1.5 s'."""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.3g} s"


def fmt_s(seconds: float) -> str:
    return fmt_ms(seconds * 1000.0)


# --------------------------------------------------------------------------- vantage points


class VantageOverride(BaseModel):
    """A vantage point with its own view of the target's address."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    url: str | None = None


class ProbeArgs(BaseModel):
    """What every probe accepts: vantage points, quorum, timeout and latency threshold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    from_: list[str | VantageOverride] = Field(
        default_factory=lambda: [CONTROLLER],
        alias="from",
        description="Vantage points: 'controller' and/or inventory hosts (name or {name, host, port, url}).",
    )
    quorum: int | None = Field(
        None, ge=1, description="How many vantage points must pass (default: majority)."
    )
    timeout: Seconds = Field(5.0, gt=0, description="Per vantage point.")
    max_latency: Seconds | None = Field(None, gt=0, description="Fail when slower than this.")

    @model_validator(mode="before")
    @classmethod
    def _one_vantage_as_list(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and isinstance(raw.get("from"), (str, Mapping)):
            raw = {**raw, "from": [raw["from"]]}
        return raw

    @model_validator(mode="after")
    def _quorum_fits(self) -> ProbeArgs:
        if self.quorum is not None and self.quorum > len(self.from_):
            raise ValueError(
                f"quorum {self.quorum} is more than the {len(self.from_)} vantage points in from:"
            )
        return self

    def vantages(self) -> list[VantageOverride]:
        return [
            v if isinstance(v, VantageOverride) else VantageOverride(name=v) for v in self.from_
        ]

    def needed(self) -> int:
        return self.quorum if self.quorum is not None else len(self.from_) // 2 + 1


@dataclass
class Outcome:
    """One vantage point's verdict."""

    vantage: str
    ok: bool
    message: str
    latency_ms: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "msg": self.message, **self.facts}


@dataclass
class Vantage:
    """Where a probe runs from, and how to run a command there when it is not the controller."""

    name: str
    override: VantageOverride
    target: HostInfo
    run: Callable[[list[str], float, bytes | None], Any] | None = None  # None = the controller

    @property
    def is_controller(self) -> bool:
        return self.run is None

    def target_host(self, explicit: str | None) -> str:
        if self.override.host:
            return self.override.host
        if explicit:
            return explicit
        if not self.is_controller and self.target.vars.get("internal_address"):
            return str(self.target.vars["internal_address"])
        return self.target.address


def _not_an_option(vantage: Vantage, host: str) -> Outcome | None:
    """A target read as a command-line option (`-e/bin/sh`) by ping or nc: refused."""
    if host.startswith("-"):
        return Outcome(vantage.name, False, f'"{host}" is not a host name or address')
    return None


def _vantage(ctx: ActionContext, override: VantageOverride) -> Vantage:
    if override.name == CONTROLLER:
        return Vantage(CONTROLLER, override, ctx.host)
    host = ctx.host if override.name == ctx.host.name else ctx.other_host(override.name)

    def run(argv: list[str], timeout: float, stdin: bytes | None = None) -> Any:
        conn = ctx.connection(host)
        return conn.run(argv, stdin=stdin, timeout=timeout + _REMOTE_MARGIN, cancel=ctx.cancelled)

    return Vantage(override.name, override, ctx.host, run)


def run_probe(
    ctx: ActionContext,
    args: ProbeArgs,
    probe: Callable[[Vantage, float], Outcome],
) -> Result:
    """Run `probe` from every vantage point (one after the other) and apply the quorum."""
    start = time.monotonic()
    outcomes: list[Outcome] = []
    for override in args.vantages():
        if ctx.cancelled.is_set():
            outcomes.append(
                Outcome(override.name, False, "cancelled before this vantage point ran")
            )
            continue
        limit = args.timeout
        if ctx.timeout is not None:
            limit = max(0.001, min(limit, ctx.timeout - (time.monotonic() - start)))
        if override.name == CONTROLLER:
            outcome = probe(_vantage(ctx, override), limit)
        else:
            try:
                outcome = probe(_vantage(ctx, override), limit)
            except Exception as exc:  # noqa: BLE001 - an unreachable vantage point is a failed vote
                outcome = Outcome(override.name, False, f"cannot probe from {override.name}: {exc}")
        outcomes.append(_apply_latency(outcome, args.max_latency))
    return _verdict(outcomes, args.needed())


def _apply_latency(outcome: Outcome, max_latency: float | None) -> Outcome:
    if not outcome.ok or max_latency is None or outcome.latency_ms is None:
        return outcome
    limit_ms = max_latency * 1000.0
    if outcome.latency_ms > limit_ms:
        outcome.ok = False
        outcome.message += f", slower than max_latency {fmt_ms(limit_ms)}"
    return outcome


def _verdict(outcomes: list[Outcome], needed: int) -> Result:
    passed = [o for o in outcomes if o.ok]
    latencies = [o.latency_ms for o in passed if o.latency_ms is not None]
    latency = _headline_latency(outcomes, latencies)
    data: dict[str, Any] = {
        "latency_ms": latency,
        "passed": len(passed),
        "quorum": needed,
        "vantage": {o.vantage: o.as_data() for o in outcomes},
    }
    if len(outcomes) == 1:
        data.update(outcomes[0].facts)
        only = outcomes[0]
        # Say where the probe ran from when it was not the controller.
        message = only.message if only.vantage == "controller" else f"from {only.vantage}: {only.message}"
    else:
        summary = f"{len(passed)} of {len(outcomes)} vantage points passed (quorum {needed})"
        message = summary + ": " + "; ".join(f"{o.vantage}: {o.message}" for o in outcomes)
    if len(passed) >= needed:
        return Result.ok(msg=message, data=data)
    return Result.failed(message, data=data)


def _headline_latency(outcomes: list[Outcome], passing: list[float]) -> float | None:
    for outcome in outcomes:
        if outcome.vantage == CONTROLLER and outcome.latency_ms is not None:
            return outcome.latency_ms
    if passing:
        return round(statistics.median(passing), 3)
    measured = [o.latency_ms for o in outcomes if o.latency_ms is not None]
    return measured[0] if measured else None


def _ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000.0, 3)


def _missing_tool(vantage: Vantage, done: Any, tool: str, layer: str) -> Outcome | None:
    if done.rc == 127 or re.search(
        rf"{tool}: (command )?not found|executable file not found", done.stderr
    ):
        return Outcome(
            vantage.name,
            False,
            f"{tool} is not installed on {vantage.name} (needed to probe {layer} from it)",
        )
    return None


# --------------------------------------------------------------------------- probe.icmp


class IcmpArgs(ProbeArgs):
    """Arguments of probe.icmp."""

    host: str | None = Field(
        None, description="Address to ping (default: the host's ansible_host)."
    )
    count: int = Field(1, ge=1, le=20, description="Echo requests to send.")
    min_replies: int = Field(1, ge=1, description="Replies needed to pass.")
    state: Literal["reachable", "unreachable"] = Field(
        "reachable", description="unreachable passes when nothing answers (isolation check)."
    )


_RTT = re.compile(r"= [\d.]+/([\d.]+)/[\d.]+")
_RECEIVED = re.compile(r"(\d+) (?:packets )?received")


def _ping_argv(host: str, args: IcmpArgs, timeout: float) -> list[str]:
    per_reply = max(1, math.ceil(timeout))
    deadline = max(1, math.ceil(timeout + 0.2 * (args.count - 1)))
    return [
        "ping",
        "-n",
        "-c",
        str(args.count),
        "-i",
        "0.2",
        "-W",
        str(per_reply),
        "-w",
        str(deadline),
        host,
    ]


def _ping_controller(
    argv: list[str], timeout: float, cancel: threading.Event
) -> tuple[int, str, str]:
    if shutil.which(argv[0]) is None:
        return 127, "", "ping: command not found"
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout + 2.0
    while proc.poll() is None:
        if cancel.is_set() or time.monotonic() > deadline:
            proc.kill()
            break
        cancel.wait(0.05)
    out, err = proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@plugin.action(check=True, idempotent=True, scalar="host", observes=True)
def icmp(ctx: ActionContext, args: IcmpArgs) -> Result:
    """L3: the host answers ping (from the controller or from other hosts)."""

    def probe(vantage: Vantage, timeout: float) -> Outcome:
        host = vantage.target_host(args.host)
        refused = _not_an_option(vantage, host)
        if refused:
            return refused
        argv = _ping_argv(host, args, timeout)
        start = time.monotonic()
        if vantage.is_controller:
            rc, out, err = _ping_controller(argv, timeout, ctx.cancelled)
        else:
            done = vantage.run(argv, timeout, None)  # type: ignore[misc]
            missing = _missing_tool(vantage, done, "ping", "ICMP")
            if missing:
                return missing
            rc, out, err = done.rc, done.stdout, done.stderr
        wall = _ms_since(start)
        if rc == 127 and vantage.is_controller:
            return Outcome(
                vantage.name,
                False,
                "ping is not installed on the controller (Debian: apt-get install iputils-ping)",
            )
        return _ping_outcome(vantage.name, host, args, out + err, wall)

    return run_probe(ctx, args, probe)


def _ping_outcome(vantage: str, host: str, args: IcmpArgs, output: str, wall_ms: float) -> Outcome:
    received_match = _RECEIVED.search(output)
    received = int(received_match.group(1)) if received_match else 0
    rtt = _RTT.search(output)
    latency = float(rtt.group(1)) if rtt else None
    facts = {"host": host, "sent": args.count, "received": received}
    answered = received >= args.min_replies
    if not received_match and not answered:
        problem = output.strip().splitlines()[-1] if output.strip() else "no output"
        found = f"ping failed: {problem}"
    elif received == 0:
        found = (
            f"no reply to {args.count} ping{'s' if args.count > 1 else ''} within {fmt_ms(wall_ms)}"
        )
    else:
        found = f"{received}/{args.count} replies, avg {fmt_ms(latency or 0.0)}"
    if args.state == "unreachable":
        if received == 0:
            return Outcome(
                vantage, True, f"{host} does not answer ping, as expected ({found})", None, facts
            )
        return Outcome(
            vantage, False, f"expected {host} not to answer ping, got {found}", latency, facts
        )
    if answered:
        return Outcome(vantage, True, f"{host} answers ping ({found})", latency, facts)
    want = f"{args.min_replies} of {args.count} replies" if args.min_replies > 1 else "a reply"
    return Outcome(
        vantage, False, f"expected {want} to ping from {host}, got {found}", latency, facts
    )


# --------------------------------------------------------------------------- probe.tcp


class TcpArgs(ProbeArgs):
    """Arguments of probe.tcp."""

    port: int = Field(..., ge=1, le=65535, description="The port that must accept a connection.")
    host: str | None = Field(None, description="Address (default: the host's ansible_host).")
    state: Literal["open", "closed"] = Field(
        "open", description="closed passes when the port refuses or ignores connections."
    )


# Prints "OPSBOOK-TCP open <µs>" or "OPSBOOK-TCP closed <reason>"; bash's /dev/tcp, else nc.
_TCP_SCRIPT = r"""
h=$1; p=$2; t=$3
now() { d=$(date +%s%N 2>/dev/null); case $d in *N|'') echo 0;; *) echo $((d/1000));; esac; }
s=$(now)
if command -v bash >/dev/null 2>&1; then
  err=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$p" 2>&1); rc=$?
elif command -v nc >/dev/null 2>&1; then
  err=$(nc -z -w "$t" "$h" "$p" 2>&1); rc=$?
else
  echo "OPSBOOK-TCP notool neither bash nor nc"; exit 0
fi
e=$(now)
if [ $rc -eq 0 ]; then echo "OPSBOOK-TCP open $((e-s))"
elif [ $rc -eq 124 ]; then echo "OPSBOOK-TCP timeout"
else echo "OPSBOOK-TCP closed $err"; fi
"""


def _tcp_controller(host: str, port: int, timeout: float) -> tuple[str, float, str]:
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open", _ms_since(start), ""
    except TimeoutError:
        return "timeout", _ms_since(start), ""
    except OSError as exc:
        return "closed", _ms_since(start), _os_reason(exc)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the name ({exc.strerror})"
    return (exc.strerror or str(exc)).lower()


def _tcp_remote(
    vantage: Vantage, host: str, port: int, timeout: float
) -> tuple[str, float, str] | Outcome:
    start = time.monotonic()
    secs = str(max(1, math.ceil(timeout)))
    done = vantage.run(["sh", "-c", _TCP_SCRIPT, "sh", host, str(port), secs], timeout, None)  # type: ignore[misc]
    wall = _ms_since(start)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("OPSBOOK-TCP ")), None)
    if line is None:
        return Outcome(
            vantage.name,
            False,
            f"could not run a TCP check on {vantage.name}: {(done.stderr or done.stdout).strip()[:200]}",
        )
    _, verdict, *rest = line.split(" ", 2)
    detail = rest[0] if rest else ""
    if verdict == "notool":
        return Outcome(
            vantage.name, False, f"{vantage.name} has neither bash nor nc to probe TCP from it"
        )
    if verdict == "open":
        micros = int(detail) if detail.isdigit() else 0
        return "open", (micros / 1000.0 if micros else wall), ""
    if verdict == "timeout":
        return "timeout", wall, ""
    reason = (
        "connection refused"
        if "refused" in detail.lower()
        else (detail.strip().split(": ")[-1].lower() or "failed")
    )
    return "closed", wall, reason


@plugin.action(check=True, idempotent=True, scalar="port", observes=True)
def tcp(ctx: ActionContext, args: TcpArgs) -> Result:
    """L4: the port accepts a TCP connection; measures the connect time."""

    def probe(vantage: Vantage, timeout: float) -> Outcome:
        host = vantage.target_host(args.host)
        refused = _not_an_option(vantage, host)
        if refused:
            return refused
        port = vantage.override.port or args.port
        found = (
            _tcp_controller(host, port, timeout)
            if vantage.is_controller
            else _tcp_remote(vantage, host, port, timeout)
        )
        if isinstance(found, Outcome):
            return found
        return _tcp_outcome(vantage.name, host, port, args.state, found, timeout)

    return run_probe(ctx, args, probe)


def _tcp_outcome(
    vantage: str, host: str, port: int, state: str, found: tuple[str, float, str], timeout: float
) -> Outcome:
    verdict, latency, reason = found
    where = f"{host}:{port}"
    facts = {"host": host, "port": port, "state": verdict}
    if verdict == "open":
        text = f"accepted a connection in {fmt_ms(latency)}"
    elif verdict == "timeout":
        text = f"no answer within {fmt_s(timeout)}"
    else:
        text = f"{reason or 'refused'} in {fmt_ms(latency)}"
    if state == "open":
        if verdict == "open":
            return Outcome(vantage, True, f"{where} {text}", latency, facts)
        return Outcome(
            vantage,
            False,
            f"expected {where} to accept a connection, got {text}",
            latency if verdict != "timeout" else None,
            facts,
        )
    if verdict == "open":
        return Outcome(
            vantage, False, f"expected {where} to be closed, but it {text}", latency, facts
        )
    return Outcome(vantage, True, f"{where} is closed, as expected ({text})", None, facts)


# --------------------------------------------------------------------------- probe.http


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


def _http_controller(url: str, args: HttpArgs, timeout: float,
                     cancel: threading.Event | None = None) -> HttpAnswer:
    body, headers = _request_body(args)
    start = time.monotonic()
    for _hop in range(6):
        left = max(0.001, timeout - (time.monotonic() - start))
        try:
            parts = urllib.parse.urlsplit(url)
            status, payload, location = _http_once(parts, args, headers, body, left, cancel)
        except TimeoutError:
            return HttpAnswer(
                url, None, b"", _ms_since(start), f"no answer within {fmt_s(timeout)}"
            )
        except (OSError, http_client.HTTPException, ssl.SSLError) as exc:
            reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__
            return HttpAnswer(url, None, b"", _ms_since(start), reason)
        except ValueError as exc:  # urllib.parse: a bad port, "Invalid IPv6 URL"
            return HttpAnswer(url, None, b"", _ms_since(start), f"not a valid URL: {exc}")
        if args.follow_redirects and location and status in (301, 302, 303, 307, 308):
            url = urllib.parse.urljoin(url, location)
            continue
        return HttpAnswer(url, status, payload, _ms_since(start))
    return HttpAnswer(url, None, b"", _ms_since(start), "too many redirects")


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
    wall = _ms_since(start)
    missing = _missing_tool(vantage, done, "curl", "HTTP")
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
