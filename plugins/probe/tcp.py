"""probe.tcp, the L4 check: the port accepts a TCP connection, and how long connecting took.

From the controller a socket connect; from inside another host a small shell script over that
host's connection (bash's ``/dev/tcp``, else ``nc``) that prints one ``OPSBOOK-TCP`` line.
``state: closed`` passes when the port refuses or ignores connections.
"""

from __future__ import annotations

import math
import socket
import time
from typing import Literal

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.probe._plugin import plugin
from opsbook_plugins.probe.vantage import (
    Outcome,
    ProbeArgs,
    Vantage,
    at_target_host,
    fmt_ms,
    fmt_s,
    ms_since,
    os_reason,
    run_probe,
)
from pydantic import Field


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
            return "open", ms_since(start), ""
    except TimeoutError:
        return "timeout", ms_since(start), ""
    except OSError as exc:
        return "closed", ms_since(start), os_reason(exc)


def _tcp_remote(
    vantage: Vantage, host: str, port: int, timeout: float
) -> tuple[str, float, str] | Outcome:
    start = time.monotonic()
    secs = str(max(1, math.ceil(timeout)))
    done = vantage.run(["sh", "-c", _TCP_SCRIPT, "sh", host, str(port), secs], timeout, None)  # type: ignore[misc]
    wall = ms_since(start)
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

    def probe(vantage: Vantage, host: str, timeout: float) -> Outcome:
        port = vantage.override.port or args.port
        found = (
            _tcp_controller(host, port, timeout)
            if vantage.is_controller
            else _tcp_remote(vantage, host, port, timeout)
        )
        if isinstance(found, Outcome):
            return found
        return _tcp_outcome(vantage.name, host, port, args.state, found, timeout)

    return run_probe(ctx, args, at_target_host(args.host, probe))


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
