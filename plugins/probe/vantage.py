"""What every probe shares: where it runs from, how the votes of its vantage points become one
verdict, and the words for latency.

``from: [controller, web2]`` runs a probe from several places and passes when ``quorum`` of
them agree (default: a majority). ``controller`` is the machine opsbook runs on; any other
name is an inventory host, probed from *inside* it over its connection. `ProbeArgs` holds the
arguments every probe accepts, `Vantage` is one place to probe from (with the target address
as seen from there), `Outcome` is one vantage point's vote and `run_probe` asks each in turn
and applies the quorum and `max_latency`. The layer modules (`icmp`, `tcp`, `http`) only say
how to probe once from one vantage point.
"""

from __future__ import annotations

import re
import socket
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsbook.plugin import ActionContext, HostInfo, Result, Seconds
from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTROLLER = "controller"
_REMOTE_MARGIN = 5.0  # seconds a remote command may take beyond the probe's own timeout


def fmt_ms(ms: float) -> str:
    """Latency for people: '0.4 ms', '12 ms', '1.5 s'."""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.3g} s"


def fmt_s(seconds: float) -> str:
    """A duration in seconds in the words of `fmt_ms`."""
    return fmt_ms(seconds * 1000.0)


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


def at_target_host(
    explicit: str | None, probe: Callable[[Vantage, str, float], Outcome]
) -> Callable[[Vantage, float], Outcome]:
    """A probe of the target's address as each vantage point sees it (`explicit` first, see
    `Vantage.target_host`); an address that ping or nc would read as a command-line option
    (`-e/bin/sh`) is a failed vote, never run."""

    def at(vantage: Vantage, timeout: float) -> Outcome:
        host = vantage.target_host(explicit)
        if host.startswith("-"):
            return Outcome(vantage.name, False, f'"{host}" is not a host name or address')
        return probe(vantage, host, timeout)

    return at


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
    return verdict(outcomes, args.needed())


def _apply_latency(outcome: Outcome, max_latency: float | None) -> Outcome:
    if not outcome.ok or max_latency is None or outcome.latency_ms is None:
        return outcome
    limit_ms = max_latency * 1000.0
    if outcome.latency_ms > limit_ms:
        outcome.ok = False
        outcome.message += f", slower than max_latency {fmt_ms(limit_ms)}"
    return outcome


def verdict(outcomes: list[Outcome], needed: int) -> Result:
    """One result from the votes: ok when `needed` passed; the message names every vantage point."""
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
        message = (
            only.message if only.vantage == "controller" else f"from {only.vantage}: {only.message}"
        )
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


def ms_since(start: float) -> float:
    """Milliseconds since the `time.monotonic()` reading `start`."""
    return round((time.monotonic() - start) * 1000.0, 3)


def missing_tool(vantage: Vantage, done: Any, tool: str, layer: str) -> Outcome | None:
    """A failed vote naming `tool` when the command `done` on `vantage` could not find it."""
    if done.rc == 127 or re.search(
        rf"{tool}: (command )?not found|executable file not found", done.stderr
    ):
        return Outcome(
            vantage.name,
            False,
            f"{tool} is not installed on {vantage.name} (needed to probe {layer} from it)",
        )
    return None


def os_reason(exc: OSError) -> str:
    """An OS error in the words of a health check: "connection refused", "cannot resolve the name"."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the name ({exc.strerror})"
    return (exc.strerror or str(exc)).lower()
