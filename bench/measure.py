"""Run one command and measure it: wall time, controller CPU of its whole process tree, peak RSS.

CPU comes from two places:
- `os.wait4`: user+sys of the process and every descendant it reaped (what the brief asks
  for, and available everywhere);
- a cgroup-v1 `cpuacct` group the child is put in before it execs, when this machine lets
  root make one: it also counts descendants that daemonised and were never reaped by the
  tool (OpenSSH ControlPersist masters that ansible leaves behind do the crypto for every
  command). When both exist, `cpu_s` is the cgroup's number and `cpu_wait4_s` is kept.

Anything the tool left running in its cgroup (those ControlPersist masters) is stopped by
PID after the measurement, so no round inherits warm connections from the previous one.

Each command starts once the machine is quiet (`wait_quiet`): the tail of the tool before
it (sshd sessions of 50 targets closing after ansible, say) would otherwise run beside it
and inflate its CPU through preemption and cache misses, which hits a short run of
many threads hardest.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
_serial = itertools.count()
QUIET_BUSY = 0.15  # share of all CPUs busy, over QUIET_WINDOW, below which the machine is quiet
QUIET_WINDOW = 0.2  # seconds
QUIET_MAX_WAIT = 15.0  # seconds; a machine that never quiets down is measured as it is


@dataclass
class Sample:
    """One measured execution."""

    wall_s: float
    cpu_s: float
    cpu_wait4_s: float
    maxrss_mb: float
    rc: int
    cpu_source: str
    extra: dict[str, Any] = field(default_factory=dict)


class CommandFailed(RuntimeError):
    def __init__(self, cmd: Sequence[str], rc: int, tail: str) -> None:
        super().__init__(f"{' '.join(cmd)} exited {rc}: {tail}")
        self.rc = rc


def _cgroup_usable() -> bool:
    if os.geteuid() != 0 or not (CPUACCT / "cgroup.procs").exists():
        return False
    probe = CPUACCT / f"opsbook-bench-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


CGROUP_OK = _cgroup_usable()


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None without /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_quiet(busy: float = QUIET_BUSY, window: float = QUIET_WINDOW,
               max_wait: float = QUIET_MAX_WAIT) -> tuple[float, float]:
    """Wait until less than `busy` of the machine's CPUs were busy over the last `window`
    seconds (at most `max_wait`). Returns (seconds waited, busy share of the last window)."""
    start = time.monotonic()
    share = 0.0
    before = _cpu_times()
    while before is not None:
        time.sleep(window)
        after = _cpu_times()
        if after is None or after[1] == before[1]:
            break
        share = (after[0] - before[0]) / (after[1] - before[1])
        if share < busy or time.monotonic() - start >= max_wait:
            break
        before = after
    return time.monotonic() - start, share


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
        log: Path | None = None, timeout: float = 1800, check: bool = True,
        stdout_path: Path | None = None) -> Sample:
    """Run `cmd` to completion and measure it (see the module docstring)."""
    waited, busy_before = wait_quiet()
    group = None
    if CGROUP_OK:
        group = CPUACCT / f"opsbook-bench-{os.getpid()}-{next(_serial)}"
        group.mkdir()
    out = open(stdout_path or log or os.devnull, "wb")  # noqa: SIM115 - closed in finally
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115

    def enter_group() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    start = time.perf_counter()
    try:
        proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                # the harness runs one tool at a time from one thread
                                preexec_fn=enter_group if group is not None else None)  # noqa: PLW1509
        rc, ru = _wait(proc, timeout)
        wall = time.perf_counter() - start
        wait4_cpu = ru.ru_utime + ru.ru_stime
        cpu, source = wait4_cpu, "wait4"
        if group is not None:
            _stop_leftovers(group)
            cpu, source = int((group / "cpuacct.usage").read_text()) / 1e9, "cgroup"
    finally:
        out.close()
        if err is not subprocess.DEVNULL:
            err.close()
        if group is not None:
            _remove(group)
    sample = Sample(wall, cpu, wait4_cpu, ru.ru_maxrss / 1024, rc, source,
                    {"quiet_wait_s": round(waited, 3), "busy_before": round(busy_before, 3)})
    if check and rc != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise CommandFailed(cmd, rc, tail)
    return sample


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return -9, ru
        time.sleep(0.002)


def _stop_leftovers(group: Path) -> None:
    """Stop what the measured tool left running (its own descendants), by PID."""
    for _ in range(50):
        pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM if _ < 25 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _remove(group: Path) -> None:
    for _ in range(100):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.02)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Medians (and spread) of a case's rounds."""
    walls = [s.wall_s for s in samples]
    cpus = [s.cpu_s for s in samples]
    return {
        "rounds": len(samples),
        "wall_s": median(walls),
        "wall_min_s": min(walls) if walls else None,
        "wall_max_s": max(walls) if walls else None,
        "cpu_s": median(cpus),
        "cpu_wait4_s": median([s.cpu_wait4_s for s in samples]),
        "maxrss_mb": max((s.maxrss_mb for s in samples), default=None),
        "cpu_source": samples[0].cpu_source if samples else None,
        "samples": [{"wall_s": round(s.wall_s, 6), "cpu_s": round(s.cpu_s, 6),
                     "cpu_wait4_s": round(s.cpu_wait4_s, 6), "rc": s.rc, **s.extra} for s in samples],
    }
