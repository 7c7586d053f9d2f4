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
            check_one(path, registry, inventory, extra or {}, report)
        report.seconds = time.perf_counter() - start
        reports.append(report)
    return reports


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


def check_one(path: str, registry: Registry, inventory: Any, extra: dict[str, Any], report: CheckReport) -> None:
    from opsbook.compile import compile_plan
    from opsbook.load import RunbookLoader

    try:
        runbook = RunbookLoader(registry).load_file(path)
    except UserError as exc:
        report.diagnostics += exc.diagnostics
        return
    report.diagnostics += undefined_names(runbook, inventory)
    report.diagnostics += delimiter_warnings(runbook)
    params = dict(extra)
    for p in runbook.params:
        if p.name not in params and p.default is None and p.required:
            params[p.name] = _placeholder(p.type, inventory)
    try:
        plan = compile_plan(runbook, inventory, params, expand=False)
        hosts = {h for leaf in plan.leaves.values() for h in leaf.hosts}
        report.stats = f"{len(plan.leaves)} steps, {len(hosts)} hosts"
        warning = rto_warning(runbook, plan)
        if warning:
            report.diagnostics.append(warning)
    except UserError as exc:
        report.diagnostics += exc.diagnostics


def delimiter_warnings(runbook: Runbook) -> list[Diagnostic]:
    """Conditions written `when: "{{ x }}"`: accepted as `when: x` by `run` and `check` alike,
    with Ansible's warning (conditions are expressions already)."""
    from opsbook.template import has_delimiters

    out = []
    for step in runbook.all_steps():
        conditions = [("when", c) for c in step.when] + [("until", step.until)] + \
            [("failed_when", c) for c in step.failed_when] + [("changed_when", c) for c in step.changed_when]
        if step.action is not None and step.action.expression_fields:
            args = step.action.args
            for field in step.action.expression_fields:
                value = args.get(field) if isinstance(args, dict) else args
                conditions += [(field, v) for v in (value if isinstance(value, list) else [value])]
        for key, cond in conditions:
            if isinstance(cond, str) and has_delimiters(cond):
                out.append(Diagnostic(step.pos, f'{key}: "{cond.strip()}": conditions are expressions already; '
                                      "the {{ }} are ignored", f"write {key}: {cond.strip()[2:-2].strip()}",
                                      severity="warning"))
    return out


def _placeholder(ptype: str, inventory: Any) -> Any:
    """A value for a required parameter that `check` was not given, so patterns still resolve."""
    if ptype == "host":
        return next(iter(inventory.hosts), "localhost")
    if ptype == "hosts":
        return "all"
    return {"int": 1, "bool": True, "duration": 1.0, "list": [], "dict": {}}.get(ptype, "placeholder")


def undefined_names(runbook: Runbook, inventory: Any) -> list[Diagnostic]:
    """Names read by templates that nothing defines (Jinja2 find_undeclared_variables)."""
    from opsbook.compile import _templates_of
    from opsbook.template import is_template, optional_names, referenced_names

    known = set(MAGIC_NAMES) | {p.name for p in runbook.params} | set(runbook.vars)
    for host in inventory.hosts.values():
        known |= set(host.vars)
    steps = runbook.all_steps() + list(runbook.handlers)
    for step in steps:
        if step.register:
            known.add(step.register)
        known |= set(step.vars)
        if step.action is not None and step.action.name == "local.set" and isinstance(step.action.args, dict):
            known |= set(step.action.args)
    problems: list[Diagnostic] = []
    for step in steps:
        local = known | {step.loop_var}
        sources = list(_templates_of(step)) if not step.is_block else []
        if step.until:
            sources.append((step.until, True))
        for source, expression in sources:
            try:
                names = referenced_names(source, expression=expression)
            except TemplateError as exc:
                problems.append(Diagnostic(step.action.pos if step.action else step.pos, exc.message))
                continue
            missing = names - local
            if missing:
                missing -= optional_names(source, expression=expression)
            for name in sorted(missing):
                pos = step.action.pos if step.action else step.pos
                problems.append(Diagnostic(
                    pos, f'step "{step.name}": undefined variable "{name}" in {source!r}{did_you_mean(name, local)}',
                    "define it in vars:/params:, register it in an earlier step, or add it to the inventory"))
    for key, value in runbook.vars.items():
        if is_template(value):
            for name in sorted(referenced_names(value) - known - optional_names(value)):
                problems.append(Diagnostic(runbook.pos, f'vars.{key}: undefined variable "{name}"{did_you_mean(name, known)}'))
    return problems


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
