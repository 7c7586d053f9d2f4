"""What a container is and what it uses: docker.inspect (its facts, `container_facts`,
`INSPECT_KEYS`) and docker.stats (one resource sample, `stats_summary`, `STATS_KEYS`, kept
as evidence). docker.update reads its current limits and usage from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opsbook.plugin import ActionContext, Evidence, HostInfo, Result, evidence_file
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.archive import _write_atomic
from opsbook_plugins.docker.daemons import ContainerNotFound
from opsbook_plugins.docker.target import (
    _api_call,
    _guarded,
    _status,
    container_name_for,
    target_for,
)
from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- docker.inspect


class InspectArgs(BaseModel):
    """Arguments of docker.inspect."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    missing_ok: bool = Field(
        False, description="A missing container is ok with exists: false instead of a failure."
    )
    raw: bool = Field(False, description="Also return the daemon's full inspect document.")


# What docker.inspect puts into `register` besides the common result keys (checked by
# `opsbook check`; listed with their types in docs/docker.md).
INSPECT_KEYS = ("exists", "id", "name", "image", "status", "running", "paused", "restarting", "oom_killed",
                "exit_code", "pid", "started_at", "finished_at", "health", "health_failing_streak", "health_log",
                "restart_count", "restart_policy", "resources", "networks", "ports", "labels", "raw")


def container_facts(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The facts a runbook usually needs from `docker inspect`, in a flat, stable shape."""
    state = attrs.get("State") or {}
    host_cfg = attrs.get("HostConfig") or {}
    health = state.get("Health")
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        "exists": True,
        "id": attrs.get("Id", "")[:12],
        "name": str(attrs.get("Name", "")).lstrip("/"),
        "image": (attrs.get("Config") or {}).get("Image"),
        "status": _status(attrs),
        "running": bool(state.get("Running")),
        "paused": bool(state.get("Paused")),
        "restarting": bool(state.get("Restarting")),
        "oom_killed": bool(state.get("OOMKilled")),
        "exit_code": state.get("ExitCode"),
        "pid": state.get("Pid"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "health": health.get("Status") if health else None,
        "health_failing_streak": health.get("FailingStreak") if health else None,
        "health_log": [
            {"exit_code": h.get("ExitCode"), "output": str(h.get("Output", "")).strip()}
            for h in (health.get("Log") or [])[-3:]
        ]
        if health
        else [],
        "restart_count": attrs.get("RestartCount", 0),
        "restart_policy": (host_cfg.get("RestartPolicy") or {}).get("Name") or "no",
        "resources": _resources(host_cfg),
        "networks": {
            name: {
                "ip": net.get("IPAddress") or None,
                "gateway": net.get("Gateway") or None,
                "mac": net.get("MacAddress") or None,
                "aliases": list(net.get("Aliases") or []),
            }
            for name, net in nets.items()
        },
        "ports": {
            port: [f"{b.get('HostIp')}:{b.get('HostPort')}" for b in (binds or [])]
            for port, binds in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()
        },
        "labels": dict((attrs.get("Config") or {}).get("Labels") or {}),
    }


def _resources(host_cfg: Mapping[str, Any]) -> dict[str, Any]:
    nano = host_cfg.get("NanoCpus") or 0
    quota, period = host_cfg.get("CpuQuota") or 0, host_cfg.get("CpuPeriod") or 0
    cpus = nano / 1e9 if nano else (quota / period if quota > 0 and period > 0 else None)
    return {
        "cpus": cpus,
        "nano_cpus": nano,
        "cpu_quota": quota,
        "cpu_period": period,
        "cpu_shares": host_cfg.get("CpuShares") or 0,
        "cpuset_cpus": host_cfg.get("CpusetCpus") or "",
        "memory": host_cfg.get("Memory") or 0,
        "memory_swap": host_cfg.get("MemorySwap") or 0,
        "memory_reservation": host_cfg.get("MemoryReservation") or 0,
        "pids_limit": host_cfg.get("PidsLimit") or 0,
    }


@plugin.action(check=True, idempotent=True, data=INSPECT_KEYS)
@_guarded
def inspect(ctx: ActionContext, args: InspectArgs) -> Result:
    """Read a container's state, health, restart count, resources and networks (for register)."""
    target = target_for(ctx, args.container)
    try:
        attrs = target.container().attrs
    except ContainerNotFound as exc:
        if args.missing_ok:
            return Result.ok(msg=str(exc), data={"exists": False, "name": target.name})
        raise
    facts = container_facts(attrs)
    if args.raw:
        facts["raw"] = attrs
    health = f", {facts['health']}" if facts["health"] else ""
    return Result.ok(msg=f"{target.name} is {facts['status']}{health}", data=facts)


# --------------------------------------------------------------------------- docker.stats


class StatsArgs(BaseModel):
    """Arguments of docker.stats."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    dest: str | None = Field(
        None,
        description="Evidence file, relative to the evidence folder (default: "
        "<host>/docker/<container>-stats.json); a folder (ending with /) gets <dest>/<host>/docker/<container>-stats.json.",
    )


# What docker.stats puts into `register` (see INSPECT_KEYS).
STATS_KEYS = ("read_at", "cpu_percent", "online_cpus", "memory_usage", "memory_limit", "memory_percent",
              "net_rx_bytes", "net_tx_bytes", "block_read_bytes", "block_write_bytes", "pids", "container", "path")


def stats_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """docker stats' numbers (CPU %, memory, network, block I/O, pids) from one raw sample."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    sys_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = (
        cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    )
    cpu_percent = (
        (cpu_delta / sys_delta) * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    )
    mem = raw.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    cache = stats.get("total_inactive_file", stats.get("inactive_file", stats.get("cache", 0)))
    usage = max(0, (mem.get("usage") or 0) - (cache or 0))
    limit = mem.get("limit") or 0
    nets = raw.get("networks") or {}
    blk = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "read_at": raw.get("read"),
        "cpu_percent": round(cpu_percent, 2),
        "online_cpus": online,
        "memory_usage": usage,
        "memory_limit": limit,
        "memory_percent": round(usage / limit * 100.0, 2) if limit else 0.0,
        "net_rx_bytes": sum(n.get("rx_bytes", 0) for n in nets.values()),
        "net_tx_bytes": sum(n.get("tx_bytes", 0) for n in nets.values()),
        "block_read_bytes": sum(
            b.get("value", 0) for b in blk if str(b.get("op")).lower() == "read"
        ),
        "block_write_bytes": sum(
            b.get("value", 0) for b in blk if str(b.get("op")).lower() == "write"
        ),
        "pids": (raw.get("pids_stats") or {}).get("current"),
    }


def _stats_name(container: str) -> str:
    return f"docker/{container}-stats.json"


def _stats_file(args: StatsArgs, host: HostInfo) -> list[str]:
    return [evidence_file(args.dest, host.name, _stats_name(container_name_for(host, args.container)))]


@plugin.action(check=True, idempotent=True, evidence=_stats_file, data=STATS_KEYS)
@_guarded
def stats(ctx: ActionContext, args: StatsArgs) -> Result:
    """Take one resource snapshot of a container (CPU, memory, I/O) as JSON evidence."""
    target = target_for(ctx, args.container)
    obj = target.container()
    if _status(obj.attrs) != "running":
        return Result.failed(
            f"no resource numbers for {target.where()}: it is {_status(obj.attrs)}"
        )
    raw = _api_call(target.daemon, lambda: obj.stats(stream=False))
    summary = stats_summary(raw)
    summary["container"] = target.name
    text = (
        f"{target.name}: CPU {summary['cpu_percent']:.1f}%, memory "
        f"{summary['memory_usage'] / 1048576:.1f} MiB"
        + (f" of {summary['memory_limit'] / 1048576:.0f} MiB" if summary["memory_limit"] else "")
        + f", {summary['pids']} processes"
    )
    if ctx.evidence_dir is None:
        return Result.ok(msg=text + " (no evidence folder)", data=summary)
    relative = ctx.evidence_file(args.dest, _stats_name(target.name))
    document = {"summary": summary, "raw": raw}
    _write_atomic(ctx.evidence_path(relative), json.dumps(document, indent=2, default=str).encode())
    summary["path"] = relative
    evidence = Evidence(
        path=relative,
        source=f"docker stats {target.name} ({target.daemon.base_url})",
        description=text,
    )
    return Result.ok(msg=text, data=summary, evidence=[evidence])
