"""Watch mode: monitoring with thresholds that trigger predefined runbooks.

`Watcher` runs a runbook's health checks (its `probe.*` steps and steps marked
`verification`) read-only at an interval; after N consecutive failing rounds it starts the
response runbook once, with `incident_start` set to the first failing round, then cools
down. `AlertReceiver` accepts Prometheus Alertmanager webhook POSTs on a loopback port and
maps alert labels to runbooks and parameters (opsbook.webhook). Both start runs through `opsbook.api`, so
every response is journaled, locked and reported like any other run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsbook.api import RunRequest, load_inventory_sources, load_runbook, make_plan, start_run
from opsbook.cancel import CancelToken
from opsbook.check import certain_mistakes
from opsbook.errors import OpsbookError, UserError, ValidationError
from opsbook.execute import RunOptions, RunSummary
from opsbook.journal import Journal
from opsbook.model import Runbook
from opsbook.params import check_extra_vars
from opsbook.registry import Registry
from opsbook.webhook import AlertReceiver, Route  # noqa: F401 - `opsbook watch --listen`, re-exported


def health_steps(runbook: Runbook) -> Runbook:
    """The runbook reduced to its health checks: its probe steps up to its first step
    marked `mitigation`, and its steps marked `verification`. Probes after the mitigation
    check what the response did, and may check the opposite of health (an isolated host
    no longer answers): watching them would call a healthy system sick."""
    chosen = []
    mitigated = False
    for s in runbook.all_steps():
        mitigated = mitigated or "mitigation" in s.marks
        if s.action is None:
            continue
        if "verification" in s.marks or (s.action.plugin == "probe" and not mitigated):
            chosen.append(s)
    checks = tuple(dataclasses.replace(s, needs=(), register=s.register, when=(), rollback=None, notify=(),
                                       approve=None, retries=0)
                   for s in chosen)
    if not checks:
        raise UserError(f"{runbook.path}: nothing to watch: no probe.* step and no step marked verification",
                        hint="add `marks: [verification]` to the steps that tell the service is healthy")
    return dataclasses.replace(runbook, steps=checks, handlers=(), name=f"{runbook.name} (watch)")


@dataclass
class WatchConfig:
    runbook: str
    respond: str | None = None  # default: the watched runbook itself
    inventory: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    interval: float = 10.0
    failures: int = 3
    cooldown: float = 600.0
    max_responses: int | None = None  # stop after this many responses (tests, one-shot use)
    max_rounds: int | None = None
    auto_approve: bool = False  # approve the response's gates without a human (watch --auto-approve)
    approval_timeout: float = 3600.0  # otherwise a gate waits this long for `opsbook approve`


@dataclass
class WatchState:
    consecutive: int = 0
    first_failure: float | None = None
    responses: list[RunSummary] = field(default_factory=list)
    rounds: int = 0
    cooling_until: float = 0.0


def response_approver(auto: bool, journal_path: str, timeout: float,
                      on_event: Callable[[str, dict[str, Any]], None], four_eyes: bool = False,
                      runbook: str = "") -> Any:
    """Who answers the gates of a response nobody started by hand: `--auto-approve` approves
    them as --yes does; otherwise each gate waits for a human, announced as an
    `approval_needed` event with the prompt and the command that approves it. A four-eyes
    runbook (`approved_by: another`) always waits for a person, auto-approve or not."""
    from opsbook.approve import approve_command, auto_approver, unattended_approver

    if auto and four_eyes:
        on_event("auto_approve_ignored", {"runbook": runbook, "why": "approved_by: another: its gates wait for "
                                          "a person other than the watcher's user"})
    elif auto:
        yes = auto_approver()

        def said(request: Any) -> tuple[bool, str]:
            on_event("auto_approved", {"run": request.run_id, "gate": request.gate,
                                       "host": request.host or "localhost", "prompt": request.prompt})
            return yes(request)  # type: ignore[no-any-return]

        return said

    def notify(request: Any) -> None:
        on_event("approval_needed", {"run": request.run_id, "gate": request.gate,
                                     "host": request.host or "localhost", "prompt": request.prompt,
                                     "approve": approve_command(request)})

    return unattended_approver(lambda: Journal(journal_path), timeout, notify)


class Watcher:
    """Probes at an interval; starts the response after N consecutive failures."""

    def __init__(self, config: WatchConfig, registry: Registry, journal: Journal,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.registry = registry
        self.journal = journal
        self.state = WatchState()
        self.stop = CancelToken()  # a signal stops the watcher (opsbook.cancel)
        self.on_event = on_event or (lambda kind, data: None)
        watched = load_runbook(config.runbook, registry)
        self.checks = health_steps(watched)
        self.inventory = load_inventory_sources(config.inventory, registry)
        # One set of -e serves the checks and the response: a name either runbook reads is
        # fine for both, and a typo is refused now, not when the response starts.
        responder = [load_runbook(config.respond, registry)] if config.respond else []
        check_extra_vars([watched, *responder], config.params,
                         {name for host in self.inventory.hosts.values() for name in host.vars})
        self.plan = make_plan(dataclasses.replace(self.checks, extra_vars="any"), self.inventory, config.params)
        # What `check` is certain of stops the watch now, as it stops `run`, not the response later.
        problems = certain_mistakes(responder[0] if responder else watched, self.inventory, registry,
                                    config.params, bool(config.inventory))
        if problems:
            raise ValidationError(problems)

    def probe_round(self) -> tuple[bool, list[str]]:
        """Run every health check once, read-only; (healthy, failures)."""
        from opsbook.execute import Executor

        memory = Journal(":memory:")
        try:
            from opsbook.journal import RunRecord

            run_id = f"watch-{self.state.rounds}"
            memory.create_run(RunRecord(run_id, self.checks.path, self.checks.name, self.checks.digest, {}, [], "",
                                        {}, "running", time.time(), None, "watch", "", 0, {}, None, {}))
            executor = Executor(self.plan, self.registry, memory, run_id, RunOptions(check=True, rollback="never"))
            summary = executor.run()
            # a detection probe usually has ignore_errors: its failure is what watching looks
            # for (health_steps takes checks out of their blocks, so no rescue answers one
            # here; a rescued failure would be sick as well)
            sick = set(summary.failed_nodes) | set(summary.ignored_nodes) | set(summary.rescued_nodes)
            failed = [f"{n}: {executor.messages.get(n, '')}" for n in executor.statuses if n in sick]
        finally:
            memory.close()
        return not failed, failed

    def tick(self) -> RunSummary | None:
        """One round: probe, count, maybe respond."""
        self.state.rounds += 1
        now = time.time()
        healthy, failures = self.probe_round()
        if healthy:
            if self.state.consecutive:
                self.on_event("recovered", {"after_failures": self.state.consecutive})
            self.state.consecutive, self.state.first_failure = 0, None
            self.on_event("healthy", {"round": self.state.rounds})
            return None
        self.state.consecutive += 1
        self.state.first_failure = self.state.first_failure or now
        self.on_event("unhealthy", {"round": self.state.rounds, "consecutive": self.state.consecutive,
                                    "failures": failures})
        if self.state.consecutive < self.config.failures:
            return None
        if now < self.state.cooling_until:
            self.on_event("cooling_down", {"until": self.state.cooling_until})
            return None
        return self.respond()

    def respond(self) -> RunSummary | None:
        config = self.config
        path = config.respond or config.runbook
        self.on_event("responding", {"runbook": path, "incident_start": self.state.first_failure})
        runbook = dataclasses.replace(load_runbook(path, self.registry), extra_vars="any")  # -e checked above
        plan = make_plan(runbook, self.inventory, config.params)
        request = RunRequest(inventory_sources=list(config.inventory), options=RunOptions(),
                             approver=response_approver(config.auto_approve, self.journal.path,
                                                        config.approval_timeout, self.on_event,
                                                        runbook.approved_by == "another", path),
                             incident_start=self.state.first_failure, given_params=dict(config.params))
        # The runbook's named lock (or one per response runbook) keeps a second watcher, or
        # a human, from running the same response at the same time.
        if runbook.lock is None:
            runbook = dataclasses.replace(runbook, lock=f"watch:{runbook.name}")
            plan.runbook = runbook
        try:
            summary = start_run(plan, self.registry, self.journal, request)
        except OpsbookError as exc:  # the response could not start: say why, keep watching
            self.state.cooling_until = time.time() + config.cooldown
            self.state.consecutive, self.state.first_failure = 0, None
            self.on_event("response_not_started", {"runbook": path, "why": str(exc)})
            return None
        self.state.responses.append(summary)
        self.state.cooling_until = time.time() + config.cooldown
        self.state.consecutive, self.state.first_failure = 0, None
        self.on_event("responded", {"run": summary.run_id, "status": summary.status})
        return summary

    def run(self) -> None:
        config = self.config
        while not self.stop.is_set():
            started = time.monotonic()
            self.tick()
            if config.max_responses is not None and len(self.state.responses) >= config.max_responses:
                return
            if config.max_rounds is not None and self.state.rounds >= config.max_rounds:
                return
            self.stop.wait(max(0.0, config.interval - (time.monotonic() - started)))
