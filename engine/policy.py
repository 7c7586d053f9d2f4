"""The policy layer of `opsbook check`: rules that guard a runbook's safety rails.

`check` says whether a runbook *can* run; a policy says whether it *should* be merged:
a mutating step with no approval or precondition in front of it, a drain without
`keep_healthy`, a failover without objectives, a change without a rollback, an unbounded
step on the path an RTO is measured on. Each rule has an id; a project turns rules off or
down to warnings in its config file (`opsbook.policy_config`), and a runbook waives one
rule for one step with a comment that names it and says why:

    - name: fence the old primary   # noqa: keep-healthy the primary is down already

A waiver on a block holds for the steps inside it; one above the first step (the
runbook's header) holds for rules about the runbook as a whole.

This module owns the rules, the question "does this step change anything" (`step_mutates`)
and the waivers. It reads the compiled plan (for what runs before what) and never
contacts a host.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import Diagnostic, Position, did_you_mean
from opsbook.model import Runbook, Step
from opsbook.registry import Registry

PHASES_WITH_OBJECTIVES = ("failover", "permanent-fix", "disaster-recovery")
# the sections of a block that run as compensation: neither gated nor rolled back themselves
_COMPENSATION = ("rescue", "always")
_WAIVER = re.compile(r"(?:^|\s)#\s*noqa\b(?P<colon>:?)\s*(?P<ids>[A-Za-z0-9_-]+(?:\s*,\s*[A-Za-z0-9_-]+)*)?"
                     r"[ \t]*(?P<why>.*)$")


def step_mutates(step: Step, registry: Registry) -> bool:
    """Whether a step may change state on a target.

    The action says so (`mutates=` of `Plugin.action`; shell, command, script and exec
    actions do, whatever their command line), unless the step marks itself read-only:
    `check_mode: true` (always a dry run) or `changed_when: false`."""
    if step.action is None:
        return False
    spec = registry.action(step.action.name)
    if spec is None or step.check_mode is True:
        return False
    if step.changed_when and all(_is_false(c) for c in step.changed_when):
        return False
    return spec.mutates_with(step.action.args)


def step_disrupts(step: Step, registry: Registry) -> bool:
    """Whether a step may take capacity out of service (drain, stop, isolate)."""
    if step.action is None or step.check_mode is True:
        return False
    spec = registry.action(step.action.name)
    return spec is not None and spec.disrupts_with(step.action.args)


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no"))


# -- the rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One breach of a rule: where, what, how to fix it, and the step it is about (None:
    the runbook as a whole)."""

    rule: str
    position: Position | None
    message: str
    hint: str
    step: Step | None = None


@dataclass(frozen=True)
class Rule:
    """A policy rule: its id (what waivers and the config name), a one-line summary, why
    it exists, and the function that finds breaches."""

    id: str
    summary: str
    rationale: str
    find: Callable[[_Subject], Iterable[Finding]]


class _Subject:
    """What the rules look at: the runbook, its plan's leaf steps (after block keywords
    were inherited), which run before which, and the registry's capabilities."""

    def __init__(self, runbook: Runbook, plan: Any, registry: Registry) -> None:
        self.runbook = runbook
        self.plan = plan
        self.registry = registry
        seen: set[Position] = set()
        self.leaves: list[tuple[str, Any]] = []  # (step id, Leaf), one per written step
        for sid, leaf in plan.leaves.items():
            if leaf.step.pos not in seen:
                seen.add(leaf.step.pos)
                self.leaves.append((sid, leaf))
        self.needs: dict[str, set[str]] = {sid: set() for sid in plan.leaves}
        for a, c in plan.step_edges:
            self.needs.setdefault(c, set()).add(a)
        self._ancestors: dict[str, frozenset[str]] = {}

    def ancestors(self, sid: str) -> frozenset[str]:
        """Every step that runs before this one (transitively), by id."""
        if sid in self._ancestors:
            return self._ancestors[sid]
        out: set[str] = set()
        stack = list(self.needs.get(sid, ()))
        while stack:
            current = stack.pop()
            if current not in out:
                out.add(current)
                stack.extend(self.needs.get(current, ()))
        self._ancestors[sid] = frozenset(out)
        return self._ancestors[sid]

    def leaf(self, sid: str) -> Any:
        return self.plan.leaves[sid]


def _compensation(leaf: Any) -> bool:
    return leaf.handler or any(s.part in _COMPENSATION for s in leaf.sections) or bool(leaf.step.undoes) \
        or bool(leaf.step.restores)


def _where(step: Step) -> Position:
    return step.action.pos if step.action is not None else step.pos


def _gated(step: Step) -> bool:
    return step.approve is not None or step.approve_scope is not None or bool(step.when) \
        or step.keep_healthy is not None


def _precondition(step: Step) -> bool:
    return step.action is not None and step.action.name in ("local.assert", "local.fail")


def _mutation_gated(s: _Subject) -> Iterator[Finding]:
    for sid, leaf in s.leaves:
        step = leaf.step
        if _compensation(leaf) or not step_mutates(step, s.registry) or _gated(step):
            continue
        if any(_gated(s.leaf(a).step) or _precondition(s.leaf(a).step) for a in s.ancestors(sid)):
            continue
        yield Finding("mutation-gated", _where(step),
                      f'step "{step.name}" changes state ({step.action.name}) with no approval or '  # type: ignore[union-attr]
                      "precondition before it",
                      "add approve:, a when: condition, keep_healthy:, or a local.assert step it needs; "
                      "a read-only step says changed_when: false", step)


PHASES_WITH_APPROVED_MITIGATION = ("failover", "disaster-recovery")


def _approved(step: Step) -> bool:
    return step.approve is not None or step.approve_scope is not None


def _mitigation_approved(s: _Subject) -> Iterator[Finding]:
    if s.runbook.phase not in PHASES_WITH_APPROVED_MITIGATION:
        return
    for sid, leaf in s.leaves:
        step = leaf.step
        if "mitigation" not in step.marks or not step_mutates(step, s.registry) or _approved(step):
            continue
        # An approval before it counts when a person approved acting on the mitigation's own
        # hosts (a fence of the old primary approved says nothing about promoting the standby).
        if any(_approved(s.leaf(a).step) and _same_hosts(s.leaf(a), leaf) for a in s.ancestors(sid)):
            continue
        yield Finding("mitigation-approved", _where(step),
                      f'step "{step.name}" is the {s.runbook.phase}\'s mitigation and no approval on its hosts '
                      "comes before it",
                      "add approve: to it (or to an earlier step on the same hosts); automation answers with --yes",
                      step)


def _same_hosts(before: Any, leaf: Any) -> bool:
    """Whether an earlier step acts on (some of) the mitigation's hosts; unknown hosts (check
    without an inventory) are given the benefit of the doubt."""
    if not before.hosts or not leaf.hosts:
        return True
    return bool(set(before.hosts) & set(leaf.hosts))


def _keep_healthy(s: _Subject) -> Iterator[Finding]:
    for _, leaf in s.leaves:
        step = leaf.step
        if step.keep_healthy is None and step_disrupts(step, s.registry):
            yield Finding("keep-healthy", _where(step),
                          f'step "{step.name}" takes capacity out of service ({step.action.name}) '  # type: ignore[union-attr]
                          "without keep_healthy:",
                          "add keep_healthy: {min: N} so the run refuses to go below N healthy members", step)


def _objectives(s: _Subject) -> Iterator[Finding]:
    rb = s.runbook
    if rb.phase not in PHASES_WITH_OBJECTIVES:
        return
    if rb.objectives.rto is None:
        yield Finding("objectives", rb.pos, f"a {rb.phase} runbook declares no RTO objective",
                      "add objectives: {rto: 5m} (and rpo: where data can be lost)")
    if not any("mitigation" in leaf.step.marks for _, leaf in s.leaves):
        yield Finding("objectives", rb.pos, f"a {rb.phase} runbook marks no step as its mitigation",
                      "add marks: [mitigation] to the step that restores service (the RTO ends there)")


def _rollback(s: _Subject) -> Iterator[Finding]:
    for _, leaf in s.leaves:
        step = leaf.step
        if _compensation(leaf) or step.rollback is not None or not step_mutates(step, s.registry):
            continue
        spec = s.registry.action(step.action.name)  # type: ignore[union-attr]
        if spec is not None and spec.inverse is not None:
            continue
        yield Finding("rollback", _where(step),
                      f'step "{step.name}" changes state ({step.action.name}) and has no rollback',  # type: ignore[union-attr]
                      "add rollback: with the action that undoes it, or say why there is none", step)


def critical_path(runbook: Runbook, plan: Any, registry: Registry) -> list[tuple[str, Any]]:
    """The leaves an RTO is measured through (opsbook.timeouts `rto_span`: from the run's
    start to the first verification after the mitigation; every step when nothing is
    marked), once per written step. Handlers are not on it."""
    from opsbook.timeouts import rto_span

    span = rto_span(plan)
    return [(sid, leaf) for sid, leaf in _Subject(runbook, plan, registry).leaves if sid in span and not leaf.handler]


def unbounded_on_critical_path(runbook: Runbook, plan: Any, registry: Registry) -> list[Step]:
    """The steps on the RTO's critical path with no bound of their own (opsbook.timeouts
    `is_bounded`). Empty without an RTO objective. A whole-run `timeout:` does not bound a
    step: one stuck step would use the run's whole budget, and the RTO sum of the steps'
    timeouts could not be added up."""
    from opsbook.timeouts import is_bounded

    if runbook.objectives.rto is None:
        return []
    return [leaf.step for _, leaf in critical_path(runbook, plan, registry) if not is_bounded(leaf.step, registry)]


UNBOUNDED_HINT = ("add timeout: to the step (or its action's own timeout: argument); a whole-run timeout: is no "
                  "per-step bound: one stuck step would eat the run's whole budget, and the RTO sum cannot be computed")


def unbounded_finding(runbook: Runbook, step: Step) -> Finding:
    """The finding for one unbounded step on the critical path, at the step's line."""
    rto = f"{runbook.objectives.rto:g}s"
    return Finding("critical-path-timeout", step.pos,
                   f'unbounded step on the critical path: "{step.name}" has no timeout of its own, and the RTO '
                   f"({rto}) is measured through it", UNBOUNDED_HINT, step)


def _critical_path_timeout(s: _Subject) -> Iterator[Finding]:
    for step in unbounded_on_critical_path(s.runbook, s.plan, s.registry):
        yield unbounded_finding(s.runbook, step)


def _serial_max_fail(s: _Subject) -> Iterator[Finding]:
    if s.runbook.max_fail_percentage is not None:
        return
    for step in s.runbook.all_steps():
        if step.serial and step.max_fail_percentage is None and step.max_errors is None \
                and any(size != 1 for size in step.serial):  # a batch of one stops when its host fails
            yield Finding("serial-max-fail", step.pos,
                          f'step "{step.name}" rolls out in serial batches with no max_fail_percentage',
                          "add max_fail_percentage: 0 so a failed batch stops the rollout", step)


RULES: tuple[Rule, ...] = (
    Rule("mutation-gated", "a step that changes state runs behind an approval or a precondition",
         "a change made while the situation is not what the runbook assumes (the primary still up, the "
         "wrong host) turns an incident into two; an approval, a when: condition, a keep_healthy "
         "pre-flight or a local.assert step before it makes the assumption explicit",
         _mutation_gated),
    Rule("mitigation-approved", "the mitigation of a failover or disaster recovery runs behind an approval",
         "promoting a standby or restoring data is a decision a person takes: a local.assert checks what the "
         "author foresaw, an approval what they did not; --yes and `opsbook watch` answer it in automation",
         _mitigation_approved),
    Rule("keep-healthy", "a drain, stop or isolate keeps keep_healthy",
         "taking members out of service one after the other is how an outage is made out of a "
         "degraded service; keep_healthy refuses to go below the minimum", _keep_healthy),
    Rule("objectives", "a failover, permanent-fix or disaster-recovery runbook declares an RTO and marks its mitigation",
         "without an objective nothing says whether a run met it, and without a mitigation mark the "
         "measured RTO has no end", _objectives),
    Rule("rollback", "every step that changes state has a rollback, or says why not",
         "a run that fails half-way rolls back what it did; a step with nothing to undo says so in a waiver, "
         "so a reviewer sees the decision", _rollback),
    Rule("critical-path-timeout", "every step on the path an RTO is measured on has a timeout of its own",
         "an unbounded step can hold the recovery forever, and the RTO check of `opsbook check` cannot "
         "add up what has no bound; a whole-run timeout: does not help: one stuck step eats the whole budget",
         _critical_path_timeout),
    Rule("serial-max-fail", "a rolling change in serial batches stops on failure (max_fail_percentage)",
         "without max_fail_percentage, Ansible's rule continues to the next batch unless every host of a "
         "batch failed: a bad change rolls on to the whole fleet", _serial_max_fail),
)
RULE_IDS = tuple(r.id for r in RULES)


# -- configuration and waivers ------------------------------------------------------------


# Profiles, in the spirit of ansible-lint's: each holds the one before it. `minimal` guards
# the rails an incident runbook must not lose (approval of a failover's mitigation,
# keep_healthy, objectives and the mitigation mark, max_fail_percentage); `safety` adds
# that every change is gated and every step on the RTO's path is bounded; `production`
# (the default) adds that every change can be rolled back or says why not.
PROFILES: dict[str, tuple[str, ...]] = {
    "minimal": ("mitigation-approved", "keep-healthy", "objectives", "serial-max-fail"),
    "safety": ("mitigation-approved", "keep-healthy", "objectives", "serial-max-fail", "mutation-gated",
               "critical-path-timeout"),
    "production": RULE_IDS,
}
DEFAULT_PROFILE = "production"


def is_incident_runbook(runbook: Runbook) -> bool:
    """Whether a runbook says it is an incident procedure: a phase other than `other`, or
    objectives. The policy's findings are errors there; on an ad-hoc runbook (neither) they
    are warnings unless the project asked for the policy (`PolicyConfig.everywhere`)."""
    return runbook.phase != "other" or runbook.objectives.rto is not None or runbook.objectives.rpo is not None


@dataclass(frozen=True)
class PolicyConfig:
    """Which rules run (a profile, less what is disabled), which of them only warn, and
    where findings are errors: on every runbook (`everywhere`: a config file, `--profile`,
    or the library API's default), or on incident runbooks only (a bare `opsbook check`)."""

    disabled: frozenset[str] = frozenset()
    warn: frozenset[str] = frozenset()
    source: str | None = None  # the config file, None for the default policy
    profile: str = DEFAULT_PROFILE
    everywhere: bool = True
    enabled: frozenset[str] | None = None  # the config's enable: list, instead of the profile's rules

    @property
    def rules(self) -> frozenset[str]:
        """The ids of the rules that run."""
        chosen = self.enabled if self.enabled is not None else frozenset(PROFILES[self.profile])
        return chosen - self.disabled

    def severity(self, rule: str, runbook: Runbook | None = None) -> str:
        if rule in self.warn:
            return "warning"
        if not self.everywhere and runbook is not None and not is_incident_runbook(runbook):
            return "warning"
        return "error"


AD_HOC_NOTE = ("only a warning here: an ad-hoc runbook (no phase: or objectives:); a project .opsbook.yaml, "
               "--profile or --strict makes it an error")


@dataclass
class Waiver:
    """`# noqa: rule-id[, rule-id] why` on a line of a runbook."""

    line: int
    rules: tuple[str, ...]
    why: str
    used: set[str] = field(default_factory=set)


def parse_waivers(text: str) -> dict[int, Waiver]:
    """The waivers of a file by line (1-based)."""
    out: dict[int, Waiver] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if "noqa" not in line:
            continue
        match = _WAIVER.search(line)
        if match is None:
            continue
        ids = tuple(i.strip() for i in (match["ids"] or "").split(",") if i.strip())
        out[number] = Waiver(number, ids, match["why"].strip())
    return out


def _spans(runbook: Runbook) -> tuple[dict[Position, tuple[int, int]], dict[Position, list[Position]], int]:
    """Each written step's lines (up to the next step's first line), the blocks around
    each step, and the first line of the first step (the header ends before it)."""
    parents: dict[Position, list[Position]] = {}

    def walk(steps: tuple[Step, ...], chain: list[Position]) -> None:
        for step in steps:
            parents[step.pos] = chain
            walk(step.block + step.rescue + step.always, chain + [step.pos])

    walk(runbook.steps, [])
    walk(runbook.handlers, [])
    starts = sorted({p.line for p in parents})
    spans = {}
    for pos in parents:
        later = [line for line in starts if line > pos.line]
        spans[pos] = (pos.line, (later[0] - 1) if later else 1 << 30)
    return spans, parents, starts[0] if starts else 1 << 30


class _Waivers:
    def __init__(self, runbook: Runbook, text: str) -> None:
        self.by_line = parse_waivers(text)
        self.spans, self.parents, self.first_step = _spans(runbook)

    def find(self, finding: Finding) -> Waiver | None:
        if finding.step is None:
            ranges = [(1, self.first_step - 1)]
        else:
            ranges = [self.spans[p] for p in [finding.step.pos, *self.parents.get(finding.step.pos, [])]
                      if p in self.spans]
        for first, last in ranges:
            for line in range(first, min(last, first + 400) + 1):
                waiver = self.by_line.get(line)
                if waiver is not None and finding.rule in waiver.rules:
                    waiver.used.add(finding.rule)
                    return waiver
        return None


def evaluate(runbook: Runbook, plan: Any, registry: Registry, config: PolicyConfig | None = None,
             text: str | None = None) -> list[Diagnostic]:
    """The policy's diagnostics for a compiled runbook: breaches not waived (errors, or
    warnings for the rules the config says only warn), and waivers that are wrong (a
    rule that does not exist, no rule named, no reason given)."""
    config = config or PolicyConfig()
    if text is None:
        with open(runbook.path, encoding="utf-8") as f:
            text = f.read()
    waivers = _Waivers(runbook, text)
    subject = _Subject(runbook, plan, registry)
    out: list[Diagnostic] = []
    for rule in RULES:
        if rule.id not in config.rules:
            continue
        severity = config.severity(rule.id, runbook)
        for finding in rule.find(subject):
            if waivers.find(finding) is not None:
                continue
            hint = finding.hint + f"; or waive it: # noqa: {rule.id} <why>"
            if severity == "warning" and rule.id not in config.warn:
                hint += f"; {AD_HOC_NOTE}"
            out.append(Diagnostic(finding.position, f"{finding.message} [{rule.id}]", hint, severity, rule=rule.id))
    out += _waiver_problems(runbook.path, waivers.by_line.values())
    return sorted(out, key=lambda d: (d.position.line if d.position else 0, d.message))


def _waiver_problems(path: str, waivers: Iterable[Waiver]) -> list[Diagnostic]:
    out = []
    for w in waivers:
        pos = Position(path, w.line)
        if not w.rules:
            out.append(Diagnostic(pos, "# noqa names no rule, so it waives nothing",
                                  "write # noqa: RULE why; rules: " + ", ".join(RULE_IDS), "warning"))
            continue
        for rule in w.rules:
            if rule not in RULE_IDS:
                out.append(Diagnostic(pos, f'# noqa: no policy rule "{rule}"{did_you_mean(rule, RULE_IDS)}',
                                      "rules: " + ", ".join(RULE_IDS), "warning"))
        if not w.why:
            out.append(Diagnostic(pos, f"# noqa: {', '.join(w.rules)} gives no reason",
                                  "say why the rule does not apply after the rule's id", "warning"))
    return out


__all__ = ["DEFAULT_PROFILE", "PROFILES", "RULES", "RULE_IDS", "PolicyConfig", "Rule", "critical_path", "evaluate",
           "is_incident_runbook", "parse_waivers", "step_disrupts", "step_mutates", "unbounded_on_critical_path"]
