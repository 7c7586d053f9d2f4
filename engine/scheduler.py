"""Scheduling: what is ready to run, serial batches, failure thresholds, deadlines, workers.

Owns the dependency counts of a plan's nodes and the ready list (`Ready`), the failure
thresholds that stop a run (`Thresholds`: a step's `max_fail_percentage` / `max_errors`,
the run's `max_errors`, Ansible's rule for a `serial` batch), the node and run deadlines
on an injectable monotonic clock (`Deadlines`), tag selection, and the worker threads
(`Workers`). It decides nothing about a node's action: that is `noderun`'s.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any


class Ready:
    """Nodes whose dependencies are all done; `take()` gives them in file order."""

    def __init__(self, plan: Any) -> None:
        nodes = plan.nodes
        self._waiting, self._succ = plan.adjacency()
        ready = sorted((n for n, d in self._waiting.items() if d == 0), key=lambda n: nodes[n].index)
        ready.reverse()  # pop() from the end gives file order
        self._ready: list[str] = ready
        self.ids: list[str] = ready  # read-only for callers: truthy while a node is ready
        self.take: Callable[[], str] = ready.pop  # the next ready node (list.pop: no call of ours per node)

    def __bool__(self) -> bool:
        return bool(self._ready)

    def peek(self) -> str | None:
        return self._ready[-1] if self._ready else None

    def release(self, node_id: str) -> None:
        """A node is done: its successors with nothing else to wait for become ready."""
        waiting, ready = self._waiting, self._ready
        for s in self._succ[node_id]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)


class Thresholds:
    """The failure counts of a run and the thresholds that stop it."""

    def __init__(self, plan: Any, run_max_errors: int | None) -> None:
        self._plan = plan
        self._limits = plan.step_failure_limits()  # step id -> (max_fail_percentage, max_errors)
        self._run_max = run_max_errors if run_max_errors is not None else plan.runbook.max_errors
        self._serial_owners = {s.id: s for s in plan.runbook.all_steps() if s.serial}
        self.step_failures: dict[str, int] = {}
        self.run_failures = 0
        self._batch_failed: dict[tuple[str, int], set[str]] = {}  # (serial owner, batch) -> failed hosts

    def host_failed(self, node: Any) -> str:
        """A node's host failed (not rescued): why the run must stop now, or ""."""
        step = node.step
        self.step_failures[step.id] = self.step_failures.get(step.id, 0) + 1
        self.run_failures += 1
        why = self._batch_limit(node) if node.leaf.serial_owner else ""
        pct, max_err = self._limits[step.id]
        total = max(1, len(node.leaf.hosts))
        failures = self.step_failures[step.id]
        if why:
            pass
        elif pct is not None and 100.0 * failures / total > pct:
            why = f'step "{step.name}" failed on {failures} of {total} hosts, over max_fail_percentage {pct:g}%'
        elif max_err is not None and failures > max_err:
            why = f'step "{step.name}" failed on {failures} hosts, over max_errors {max_err}'
        if self._run_max is not None and self.run_failures > self._run_max:
            why = f"{self.run_failures} nodes failed, over the run's max_errors {self._run_max}"
        return why

    def _batch_limit(self, node: Any) -> str:
        """Ansible's rule for a serial batch: the run stops when more than max_fail_percentage
        of the batch's hosts failed (the owner's, else the runbook's), or when every host of
        the batch failed. The reason, or ""."""
        leaf = node.leaf
        index = batch_index(leaf.batches, node.host)
        if index is None:
            return ""
        batch = leaf.batches[index]
        failed = self._batch_failed.setdefault((leaf.serial_owner, index), set())
        failed.add(node.host)
        owner = self._serial_owners.get(leaf.serial_owner)
        pct = owner.max_fail_percentage if owner is not None and owner.max_fail_percentage is not None \
            else self._plan.runbook.max_fail_percentage
        name = owner.name if owner is not None else leaf.serial_owner
        where = f'batch {index + 1} of {len(leaf.batches)} of "{name}"'
        if pct is not None and 100.0 * len(failed) / len(batch) > pct:
            return (f"{len(failed)} of {len(batch)} hosts of {where} failed ({', '.join(sorted(failed))}), "
                    f"over max_fail_percentage {pct:g}%: later batches do not start")
        if len(failed) == len(batch):
            return f"every host of {where} failed ({', '.join(sorted(failed))}): later batches do not start"
        return ""


def batch_index(batches: Iterable[Collection[str | None]], host: str | None) -> int | None:
    """Which serial batch a host is in (None: in none)."""
    return next((k for k, hosts in enumerate(batches) if host in hosts), None)


class Deadlines:
    """The run's deadline and each running node's, on a monotonic clock (injectable)."""

    def __init__(self, run_timeout: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.run = clock() + run_timeout if run_timeout else None
        self._nodes: dict[str, float] = {}
        self.pending: Mapping[str, float] = self._nodes  # read-only view: nodes with a deadline now
        self.get: Callable[[str], float | None] = self._nodes.get  # a node's deadline (dict.get: no call of ours)
        self.run_expired = False

    def start(self, node_id: str, seconds: float) -> float:
        """A node's `timeout:` starts now: its deadline."""
        deadline = self._nodes[node_id] = self.clock() + seconds
        return deadline

    def left(self, node_id: str) -> float | None:
        deadline = self._nodes.get(node_id)
        return None if deadline is None else max(0.0, deadline - self.clock())

    def done(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    def check(self, running: Iterable[str]) -> tuple[bool, list[str]]:
        """(the run's deadline passed just now, running nodes past their deadline: cancel
        them). A cancelled action that does not return is opsbook.abandon's."""
        now = self.clock()
        expired = False
        if self.run is not None and now > self.run and not self.run_expired:
            self.run_expired = expired = True
        running = set(running)
        cancel = [nid for nid, deadline in self._nodes.items() if nid in running and now > deadline]
        return expired, cancel


def tags_select(tags: Iterable[str], only: frozenset[str], skip: frozenset[str]) -> bool:
    """Ansible's tag selection: `always` runs unless skipped by name, `never` only when asked
    for by one of its tags; `all`, `tagged` and `untagged` select as in Ansible (a step with no
    tags is `untagged`)."""
    have = set(tags) or {"untagged"}
    only = only or frozenset({"all"})
    if "always" in have:
        run = True
    elif "all" in only and "never" not in have:
        run = True
    elif not have.isdisjoint(only):
        run = True
    elif "tagged" in only and have != {"untagged"} and "never" not in have:
        run = True
    else:
        run = False
    if run and skip:
        if "all" in skip:
            run = "always" in have and "always" not in skip
        elif not have.isdisjoint(skip):
            run = False
        elif "tagged" in skip and have != {"untagged"}:
            run = False
    return run


class Workers:
    """Up to `size` threads that run submitted calls, started as the work needs them.

    ThreadPoolExecutor's futures are not needed here (a node hands its outcome back
    through the run state), and a node is the engine's unit of work, so each submit is
    a queue put, nothing more. Nor could its shutdown leave a thread behind: a thread
    whose action ignores cancellation is forsaken (`forsake`), and the end of the run
    does not wait for it (see opsbook.abandon)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._forsaken: set[threading.Thread] = set()
        self._started = 0
        self._busy = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._busy += 1
            if self._busy > len(self._threads) and len(self._threads) < self._size:
                thread = threading.Thread(target=self._loop, name=f"node-{self._started}", daemon=True)
                self._started += 1
                self._threads.append(thread)
                thread.start()
        self._tasks.put((fn, args))

    def forsake(self, thread: threading.Thread | None) -> None:
        """Stop counting on `thread`, whose task was abandoned: it no longer counts towards
        `size` (another thread may start in its place), the end of the run does not wait
        for it, and when its task returns at last it ends without taking another."""
        with self._lock:
            if thread is not None and thread in self._threads:
                self._threads.remove(thread)
                self._forsaken.add(thread)
                self._busy -= 1

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            finally:
                with self._lock:
                    forsaken = me in self._forsaken
                    if forsaken:
                        self._forsaken.discard(me)
                    else:
                        self._busy -= 1
            if forsaken:
                return

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        """Wait for what runs, then stop the threads; a forsaken thread is not waited for
        (a daemon thread: the interpreter's exit does not wait for it either)."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)
        for thread in threads:
            thread.join()
