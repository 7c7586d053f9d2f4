"""probe.icmp, the L3 check: the host answers ping, from the controller (a `ping` process,
cut on cancel) or from inside another host (its `ping` over that host's connection), read
from ping's own summary lines; ``state: unreachable`` passes when nothing answers (isolation).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
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
    missing_tool,
    ms_since,
    run_probe,
)
from pydantic import Field

# ping's summary: "rtt min/avg/max/mdev = 0.1/0.2/0.3/0.0 ms" and "1 packets received"
_RTT = re.compile(r"= [\d.]+/([\d.]+)/[\d.]+")
_RECEIVED = re.compile(r"(\d+) (?:packets )?received")


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

    def probe(vantage: Vantage, host: str, timeout: float) -> Outcome:
        argv = _ping_argv(host, args, timeout)
        start = time.monotonic()
        if vantage.is_controller:
            rc, out, err = _ping_controller(argv, timeout, ctx.cancelled)
        else:
            done = vantage.run(argv, timeout, None)  # type: ignore[misc]
            missing = missing_tool(vantage, done, "ping", "ICMP")
            if missing:
                return missing
            rc, out, err = done.rc, done.stdout, done.stderr
        wall = ms_since(start)
        if rc == 127 and vantage.is_controller:
            return Outcome(
                vantage.name,
                False,
                "ping is not installed on the controller (Debian: apt-get install iputils-ping)",
            )
        return _ping_outcome(vantage.name, host, args, out + err, wall)

    return run_probe(ctx, args, at_target_host(args.host, probe))


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
