"""docker.update: change a running container's CPU, memory and pids limits in place, with the
memory guard (a lower memory limit must leave room for what the container uses), its check
mode and the inverse that puts the old limits back. `_bytes` (512m, 1g -> bytes) is shared
with docker.recreate and the evidence actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.plugin import ActionContext, Result
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import DockerError
from opsbook_plugins.docker.facts import _resources, stats_summary
from opsbook_plugins.docker.target import Target, _api_call, _guarded, target_for
from pydantic import BaseModel, ConfigDict, Field


class UpdateArgs(BaseModel):
    """Arguments of docker.update (any unset limit is left as it is)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    cpus: float | None = Field(None, ge=0, description="CPU limit in CPUs (1.5 = one and a half).")
    cpu_shares: int | None = Field(None, ge=0, description="Relative CPU weight (1024 = default).")
    memory: int | str | None = Field(None, description="Memory limit: bytes or 512m, 1g.")
    memory_swap: int | str | None = Field(
        None, description="Memory + swap limit: bytes, 1g, or -1 for unlimited swap."
    )
    memory_reservation: int | str | None = Field(None, description="Soft memory limit.")
    pids_limit: int | None = Field(None, description="Max processes (-1 or 0: unlimited).")
    force: bool = Field(False, description="Lower the memory limit even to within 10% of what the container "
                        "uses now (the kernel may OOM-kill it).")


_HEADROOM = 0.9  # a lower memory limit must stay above what the container uses / this


def _memory_refusal(target: Target, obj: Any, body: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """Why lowering the memory limit now would OOM the container, or None (also for a
    rollback: an undo that lowers a limit checks what is in use first)."""
    new = body.get("Memory")
    old = current.get("Memory") or 0
    if not new or new <= 0 or (old and new >= old):
        return None
    raw = _api_call(target.daemon, lambda: obj.stats(stream=False, one_shot=True))
    used = stats_summary(raw)["memory_usage"]
    if used < new * _HEADROOM:
        return None
    return (f"refusing to set {target.name}'s memory limit to {new / 1048576:.0f} MiB: it uses "
            f"{used / 1048576:.1f} MiB now ({used / new * 100:.0f}% of the new limit), and the kernel would "
            "OOM-kill it. Free memory first, keep a higher limit, or set force: true")


def _bytes(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) or str(value).lstrip("-").isdigit():
        return int(value)
    from docker.utils import parse_bytes

    try:
        return int(parse_bytes(str(value)))
    except Exception:  # noqa: BLE001 - the SDK raises DockerException or ValueError
        raise DockerError(f'"{value}" is not a size (examples: 512m, 1g, 1073741824)') from None


def _update_inverse(args: UpdateArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    previous = result.data.get("previous")
    if not result.changed or not previous:
        return None
    return "docker.update", {"container": result.data.get("container"), **previous}


@dataclass(frozen=True)
class _Machine:
    """What 'no limit' amounts to on this daemon's machine (docker update cannot unset one)."""

    cpus: int
    memory: int


def _machine(target: Target) -> _Machine:
    info = _api_call(target.daemon, target.client.api.info)
    return _Machine(cpus=int(info.get("NCPU") or 1), memory=int(info.get("MemTotal") or 0))


def _desired_body(
    args: UpdateArgs, current: Mapping[str, Any], machine: Callable[[], _Machine]
) -> tuple[dict[str, Any], list[str]]:
    """The daemon's update body for what the args ask (minus what is already so), and notes."""
    body: dict[str, Any] = {}
    notes: list[str] = []
    if args.cpus is not None:
        _cpu_body(args.cpus, current, machine, body, notes)
    shares = args.cpu_shares
    if shares == 0:
        shares = 1024  # 0 means "the default weight", which the daemon will not take back
    memory = _bytes(args.memory)
    if memory == 0 and (current.get("Memory") or 0) != 0:
        memory = machine().memory
        notes.append(
            f"docker cannot lift a memory limit from a running container: set it to the "
            f"machine's total memory ({memory / 2**30:.1f} GiB) instead"
        )
    for key, value in (
        ("CpuShares", shares),
        ("PidsLimit", args.pids_limit),
        ("Memory", memory),
        ("MemorySwap", _bytes(args.memory_swap)),
        ("MemoryReservation", _bytes(args.memory_reservation)),
    ):
        if value is not None and value != (current.get(key) or 0):
            body[key] = value
    if body.get("MemoryReservation") == 0:
        del body["MemoryReservation"]
        notes.append("docker cannot lift a memory reservation from a running container: left as is")
    if "Memory" in body and "MemorySwap" not in body:
        body["MemorySwap"] = _swap_for(body["Memory"], current)
        if body["MemorySwap"] == (current.get("MemorySwap") or 0):
            del body["MemorySwap"]
    return body, notes


def _cpu_body(
    cpus: float,
    current: Mapping[str, Any],
    machine: Callable[[], _Machine],
    body: dict[str, Any],
    notes: list[str],
) -> None:
    limited = (current.get("NanoCpus") or 0) or (current.get("CpuQuota") or 0) > 0
    if cpus == 0:
        if not limited:
            return
        cpus = float(machine().cpus)
        notes.append(
            f"docker cannot lift a CPU limit from a running container: set it to all {cpus:g} CPUs instead"
        )
    period = current.get("CpuPeriod") or 0
    if period > 0:
        # Created with --cpu-period/--cpu-quota: the daemon refuses NanoCpus on top of those.
        quota = round(cpus * period)
        if quota != (current.get("CpuQuota") or 0):
            body["CpuQuota"] = quota
        return
    nano = round(cpus * 1e9)
    if nano != (current.get("NanoCpus") or 0):
        body["NanoCpus"] = nano


def _swap_for(memory: int, current: Mapping[str, Any]) -> int:
    """The memory+swap limit to send with a new memory limit (the daemon insists on one)."""
    mem, swap = current.get("Memory") or 0, current.get("MemorySwap") or 0
    if swap == -1:
        return -1
    if swap > 0 and mem > 0:
        return memory + max(0, swap - mem)  # keep the same swap allowance
    return 2 * memory  # what docker gives a container created with only --memory


def _previous_args(body: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The docker.update arguments that put back what `body` is about to change."""
    prev: dict[str, Any] = {}
    if "NanoCpus" in body or "CpuQuota" in body:
        cpus = _resources(current)["cpus"]
        prev["cpus"] = cpus if cpus is not None else 0
    names = {
        "CpuShares": "cpu_shares",
        "PidsLimit": "pids_limit",
        "Memory": "memory",
        "MemorySwap": "memory_swap",
        "MemoryReservation": "memory_reservation",
    }
    for key, arg in names.items():
        if key in body:
            prev[arg] = current.get(key) or 0
    if prev.get("memory") == 0 or prev.get("memory_swap") == 0:
        prev["memory_swap"] = -1  # no memory limit before: no swap limit either
    return prev


@plugin.action(check=True, idempotent=True, inverse=_update_inverse, inverse_actions=["docker.update"], mutates=True)
@_guarded
def update(ctx: ActionContext, args: UpdateArgs) -> Result:
    """Change a running container's CPU and memory limits (capacity); rollback restores them."""
    target = target_for(ctx, args.container)
    obj = target.container()
    current = obj.attrs.get("HostConfig") or {}
    machine: list[_Machine] = []

    def lazy_machine() -> _Machine:
        if not machine:
            machine.append(_machine(target))
        return machine[0]

    body, notes = _desired_body(args, current, lazy_machine)
    data: dict[str, Any] = {"container": target.name, "before": _resources(current)}
    if notes:
        data["notes"] = notes
    if not body:
        data["after"] = data["before"]
        return Result.ok(msg=f"{target.name} already has these limits", data=data)
    data["previous"] = _previous_args(body, current)
    data["requested"] = dict(body)
    refusal = None if args.force else _memory_refusal(target, obj, body, current)
    if refusal:
        return Result.failed(refusal, data=data)
    tail = "".join(f"; {note}" for note in notes)
    if ctx.check_mode:
        return Result.ok(
            changed=True, msg=f"would update {target.name}: {_describe(body, current)}{tail}", data=data
        )
    # The way back before the change and its read-back: a partly applied update (two posts
    # below) or a failed read-back still rolls back; putting the previous limits back is
    # harmless when the update did not happen.
    ctx.changed(**data)
    _post_update(target, obj.id, body)
    data["after"] = _resources(target.container().attrs.get("HostConfig") or {})
    return Result.ok(changed=True, msg=f"updated {target.name}: {_describe(body, current)}{tail}", data=data)


def _post_update(target: Target, container_id: str, body: Mapping[str, Any]) -> None:
    api = target.client.api

    def post(part: Mapping[str, Any]) -> None:
        url = api._url("/containers/{0}/update", container_id)
        _api_call(target.daemon, lambda: api._result(api._post_json(url, data=dict(part)), True))

    if body.get("MemorySwap") == -1 and body.get("Memory", 0) > 0:
        # runc writes the memory limit before an unlimited swap limit, and the kernel refuses
        # a memory limit above the old memory+swap one: go through a finite swap limit first.
        post({**body, "MemorySwap": 2 * body["Memory"]})
        post({"MemorySwap": -1})
    else:
        post(body)


def _describe(body: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> str:
    """The change a body makes, in the words of `docker update` (cpus=1.5, Memory=256MiB): a
    CPU limit set through a quota (containers created with --cpu-period/--cpu-quota) is
    said in CPUs too, from the container's period."""
    words = []
    for key, value in body.items():
        if key == "NanoCpus":
            words.append(f"cpus={value / 1e9:g}")
        elif key == "CpuQuota":
            period = body.get("CpuPeriod") or (current or {}).get("CpuPeriod") or 0
            words.append(f"cpus={value / period:g} (quota {value}/{period})" if period > 0 and value > 0
                         else f"CpuQuota={value}")
        elif key == "CpuPeriod":
            continue
        elif key.startswith("Memory") and isinstance(value, int) and value > 0:
            words.append(f"{key}={value / 1048576:g}MiB")
        else:
            words.append(f"{key}={value}")
    return ", ".join(words)
