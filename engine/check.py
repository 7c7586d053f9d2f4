"""`opsbook check`: static validation of runbook files, every problem of each file at once."""

from __future__ import annotations

import graphlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import (
    Diagnostic,
    Position,
    TemplateError,
    UserError,
    ValidationError,
    did_you_mean,
)
from opsbook.model import Runbook, Step, format_duration
from opsbook.registry import Registry

# Names every template may read without declaring them.
MAGIC_NAMES = frozenset({
    "host", "hostvars", "groups", "inventory_hostname", "params", "run", "result", "item", "omit",
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection", "true", "false", "none",
    "range", "dict", "namespace", "loop", "now", "runbook_dir",
})


@dataclass
class CheckReport:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stats: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "seconds": round(self.seconds, 4), "stats": self.stats,
                "diagnostics": [{"file": d.position.file if d.position else self.path,
                                 "line": d.position.line if d.position else 0,
                                 "column": d.position.column if d.position else 0,
                                 "severity": d.severity, "message": d.message, "hint": d.hint}
                                for d in self.diagnostics]}


def check_files(paths: list[str], registry: Registry, inventories: list[str],
                extra: dict[str, Any] | None = None) -> list[CheckReport]:
    """Check each runbook file (folders are searched for *.yaml/*.yml).

    Without inventories, what only an inventory could tell is not checked: host patterns
    naming hosts or groups, and the variables of the steps that run there. Each report
    says which ones in its stats line; everything else is checked as with an inventory."""
    from opsbook.api import load_inventory_sources

    inventory = None
    inventory_error: list[Diagnostic] = []
    try:
        inventory = load_inventory_sources(inventories, registry)
    except UserError as exc:
        inventory_error = exc.diagnostics
    reports = []
    for path in _expand(paths):
        start = time.perf_counter()
        report = CheckReport(path, list(inventory_error))
        if inventory is not None:
            check_one(path, registry, _Inputs(inventory, extra or {}, given=bool(inventories)), report)
        report.seconds = time.perf_counter() - start
        reports.append(report)
    return reports


@dataclass(frozen=True)
class _Inputs:
    """What a runbook is checked against: the inventory, -e values, and whether the
    inventory was given (-i) or is the implicit one (localhost only)."""

    inventory: Any
    extra: dict[str, Any]
    given: bool


def _expand(paths: Iterable[str]) -> list[str]:
    import os

    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in sorted(os.walk(path)):
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith((".yaml", ".yml"))]
        else:
            out.append(path)
    return out


def check_one(path: str, registry: Registry, inputs: _Inputs, report: CheckReport) -> None:
    from opsbook.compile import compile_steps
    from opsbook.load import RunbookLoader

    try:
        runbook = RunbookLoader(registry).load_file(path)
    except UserError as exc:
        report.diagnostics += exc.diagnostics
        return
    inventory = inputs.inventory
    params = dict(inputs.extra)
    for p in runbook.params:
        if p.name not in params and p.default is None and p.required:
            params[p.name] = _placeholder(p.type, inventory)
    try:
        plan, problems = compile_steps(runbook, inventory, params, opaque_patterns=not inputs.given)
    except UserError as exc:  # parameters that cannot be resolved: hosts unknown
        undefined = undefined_names(runbook, inventory).errors if inputs.given else []
        report.diagnostics += undefined + exc.diagnostics
        return
    names = undefined_names(runbook, inventory, set(plan.unresolved))
    report.diagnostics += names.errors + problems
    hosts = {h for leaf in plan.leaves.values() for h in leaf.hosts}
    report.stats = f"{len(plan.leaves)} steps" + (f", {len(hosts)} hosts" if hosts or not plan.unresolved else "")
    report.stats += _unchecked(plan.unresolved, names.excused)
    if not problems:
        warning = rto_warning(runbook, plan)
        if warning:
            report.diagnostics.append(warning)


def _unchecked(patterns: dict[str, str], variables: set[str]) -> str:
    """The stats line's note on what could not be checked without an inventory."""
    if not patterns:
        return ""
    shown = ", ".join(f'"{p}"' for p in dict.fromkeys(sorted(patterns.values())))
    note = f"; no inventory (-i), so not checked: host patterns {shown}"
    if variables:
        note += "; variables their hosts may define: " + ", ".join(sorted(variables))
    return note


def _placeholder(ptype: str, inventory: Any) -> Any:
    """A value for a required parameter that `check` was not given, so patterns still resolve."""
    if ptype == "host":
        return next(iter(inventory.hosts), "localhost")
    return {"int": 1, "bool": True, "duration": 1.0, "list": [], "dict": {}}.get(ptype, "placeholder")


@dataclass
class Names:
    """Undefined names found by `undefined_names`."""

    errors: list[Diagnostic] = field(default_factory=list)
    excused: set[str] = field(default_factory=set)  # read where only an absent inventory could define them


def undefined_names(runbook: Runbook, inventory: Any, unresolved: set[str] | None = None) -> Names:
    """Names read by templates that nothing defines (Jinja2 find_undeclared_variables).

    `unresolved` holds the ids of steps whose hosts are unknown (check without -i): a name
    such a step reads, or that the runbook's vars read when any step is unresolved, may be
    one of those hosts' inventory variables, so it is excused (listed, not an error)."""
    from opsbook.compile import _templates_of, fact_names
    from opsbook.template import is_template, optional_names, referenced_names

    unresolved = unresolved or set()
    out = Names()
    known = set(MAGIC_NAMES) | {p.name for p in runbook.params} | set(runbook.vars)
    for host in inventory.hosts.values():
        known |= set(host.vars)
    steps = runbook.all_steps() + list(runbook.handlers)
    for step in steps:
        if step.register:
            known.add(step.register)
        known |= set(step.vars)
        known |= fact_names(step)
    for step in steps:
        local = known | {step.loop_var}
        sources = list(_templates_of(step)) if not step.is_block else []
        if step.until:
            sources.append((step.until, True))
        excused = _hosts_unknown(step.id, unresolved)
        for source, expression in sources:
            try:
                names = referenced_names(source, expression=expression)
            except TemplateError as exc:
                out.errors.append(Diagnostic(step.action.pos if step.action else step.pos, exc.message))
                continue
            missing = names - local
            if missing:
                missing -= optional_names(source, expression=expression)
            if excused:
                out.excused |= missing
                continue
            for name in sorted(missing):
                pos = step.action.pos if step.action else step.pos
                out.errors.append(Diagnostic(
                    pos, f'step "{step.name}": undefined variable "{name}" in {source!r}{did_you_mean(name, local)}',
                    "define it in vars:/params:, register it in an earlier step, or add it to the inventory"))
    for key, value in runbook.vars.items():
        if is_template(value):
            missing = referenced_names(value) - known - optional_names(value)
            if unresolved:
                out.excused |= missing
                continue
            for name in sorted(missing):
                out.errors.append(Diagnostic(runbook.pos, f'vars.{key}: undefined variable "{name}"{did_you_mean(name, known)}'))
    return out


def _hosts_unknown(step_id: str, unresolved: set[str]) -> bool:
    """Whether a step (or, for a block looped at compile time, one of its copies) has hosts
    that could not be resolved."""
    return step_id in unresolved or any(u.startswith(step_id + "[") for u in unresolved)


def rto_warning(runbook: Runbook, plan: Any) -> Diagnostic | None:
    """Warn when the timeouts on the longest path already exceed the RTO objective."""
    if runbook.objectives.rto is None or not plan.leaves:
        return None
    cost: dict[str, float] = {}
    for sid, leaf in plan.leaves.items():
        step: Step = leaf.step
        cost[sid] = (step.timeout or 0.0) * (1 + step.retries) + step.delay * step.retries
    needs: dict[str, list[str]] = {sid: [] for sid in plan.leaves}
    for a, c in plan.step_edges:
        needs[c].append(a)
    best: dict[str, float] = {}
    for sid in graphlib.TopologicalSorter(needs).static_order():
        best[sid] = cost[sid] + max((best[p] for p in needs[sid]), default=0.0)
    worst = max(best.values())
    if worst <= runbook.objectives.rto:
        return None
    return Diagnostic(runbook.pos, f"the timeouts on the critical path add up to {format_duration(worst)}, "
                      f"more than the RTO objective of {format_duration(runbook.objectives.rto)}",
                      "lower timeouts/retries, or revisit the objective", severity="warning")


__all__ = ["CheckReport", "Position", "ValidationError", "check_files", "check_one"]
