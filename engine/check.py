"""`opsbook check`: static validation of runbook files, every problem of each file at once."""

from __future__ import annotations

import graphlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the policy and the action timeouts are loaded by `check`, not by `run`'s pre-check
    from opsbook.policy import PolicyConfig

# Names every template may read without declaring them.
MAGIC_NAMES = frozenset({
    "host", "hostvars", "groups", "inventory_hostname", "params", "run", "result", "item", "omit",
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection", "true", "false", "none",
    "range", "dict", "namespace", "loop", "now", "runbook_dir",
    # Ansible's magic variables
    "group_names", "inventory_hostname_short", "ansible_check_mode", "ansible_play_hosts",
    "ansible_play_hosts_all", "ansible_play_batch", "play_hosts",
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

    def to_json(self, timings: bool = False) -> dict[str, Any]:
        """The report as data; the same for the same input unless `timings` adds `seconds`."""
        out: dict[str, Any] = {"path": self.path, "ok": self.ok, "stats": self.stats,
                               "diagnostics": [{"file": d.position.file if d.position else self.path,
                                                "line": d.position.line if d.position else 0,
                                                "column": d.position.column if d.position else 0,
                                                "severity": d.severity, "rule": d.rule or None,
                                                "message": d.message, "hint": d.hint}
                                               for d in self.diagnostics]}
        if timings:
            out["seconds"] = round(self.seconds, 4)
        return out


def check_files(paths: list[str], registry: Registry, inventories: list[str],
                extra: dict[str, Any] | None = None, policy: PolicyConfig | None = None) -> list[CheckReport]:
    """Check each runbook file (folders are searched for *.yaml/*.yml, except in roles/); with
    a policy, its rules too (opsbook.policy).

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
            check_one(path, registry, _Inputs(inventory, extra or {}, given=bool(inventories), policy=policy), report)
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
    policy: PolicyConfig | None = None  # None: no policy rules (the language alone)


def _expand(paths: Iterable[str]) -> list[str]:
    import os

    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found: list[tuple[str, list[str]]] = []
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if d != "roles"]  # roles hold task files, not runbooks
                found.append((root, files))
            for root, files in sorted(found):
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith((".yaml", ".yml"))]
        else:
            out.append(path)
    return out


def check_one(path: str, registry: Registry, inputs: _Inputs, report: CheckReport) -> None:
    from opsbook.compile import compile_steps
    from opsbook.evidence import static_conflicts
    from opsbook.load import RunbookLoader

    try:
        runbook = RunbookLoader(registry).load_file(path)
    except UserError as exc:
        report.diagnostics += exc.diagnostics
        return
    inventory = inputs.inventory
    report.diagnostics += runbook.unfound_sources
    report.diagnostics += certain_findings(KeySources(runbook, inventory, registry, frozenset(inputs.extra),
                                                      inputs.given))
    report.diagnostics += delimiter_warnings(runbook)
    params = dict(inputs.extra)
    for p in runbook.params:
        if p.name not in params and p.default is None and p.required:
            params[p.name] = _placeholder(p.type, inventory)
    try:
        plan, problems = compile_steps(runbook, inventory, params, opaque_patterns=not inputs.given)
    except UserError as exc:  # parameters that cannot be resolved: hosts unknown
        undefined = undefined_names(runbook, inventory, extra=inputs.extra).errors if inputs.given else []
        report.diagnostics += undefined + exc.diagnostics
        return
    names = undefined_names(runbook, inventory, set(plan.unresolved), extra=inputs.extra)
    report.diagnostics += names.errors + problems
    if not problems:
        report.diagnostics += static_conflicts(plan, registry)
    hosts = {h for leaf in plan.leaves.values() for h in leaf.hosts}
    report.stats = f"{len(plan.leaves)} steps" + (f", {len(hosts)} hosts" if hosts or not plan.unresolved else "")
    report.stats += _unchecked(plan.unresolved, names.excused)
    if not problems:
        warning = rto_warning(runbook, plan, registry)
        if warning:
            report.diagnostics.append(warning)
        report.diagnostics += _policy(runbook, plan, registry, inputs.policy)


def inverse_targets(runbook: Runbook, registry: Registry) -> list[Diagnostic]:
    """A step whose rollback would run an action that is not installed: the action's
    inverse declares the actions it may name (`inverse_actions=`, see docs/plugins.md),
    so this is known before the run, not found when the rollback fails. A step with its own
    `rollback:` does not use the inverse."""
    out = []
    for step in runbook.all_steps():
        if step.action is None or step.rollback is not None:
            continue
        spec = registry.action(step.action.name)
        if spec is None or not spec.inverse_actions:
            continue
        for problem in registry.inverse_problems(spec):
            out.append(Diagnostic(step.pos, f"{spec.full_name}: {problem}; a failed run could not undo this step",
                                  "install the plugin that provides it, or give the step its own rollback: "
                                  "(a step's rollback replaces the action's inverse)"))
    return out


def _policy(runbook: Runbook, plan: Any, registry: Registry, policy: PolicyConfig | None) -> list[Diagnostic]:
    """The policy's findings; when the policy does not run its rule on unbounded steps
    (--no-policy, a profile without it, disabled), each such step is still a warning at
    its line (issue 31 item 2), and a waiver of the rule still silences it."""
    from opsbook.policy import RULE_IDS, PolicyConfig, evaluate

    out = evaluate(runbook, plan, registry, policy) if policy is not None else []
    if policy is None or "critical-path-timeout" not in policy.rules:
        only = PolicyConfig(disabled=frozenset(RULE_IDS) - {"critical-path-timeout"},
                            warn=frozenset({"critical-path-timeout"}))
        out += [d for d in evaluate(runbook, plan, registry, only) if d.rule == "critical-path-timeout"]
    return out


def _unchecked(patterns: dict[str, str], variables: set[str]) -> str:
    """The stats line's note on what could not be checked without an inventory."""
    if not patterns:
        return ""
    shown = ", ".join(f'"{p}"' for p in dict.fromkeys(sorted(patterns.values())))
    note = f"; no inventory (-i), so not checked: host patterns {shown}"
    if variables:
        note += "; variables their hosts may define: " + ", ".join(sorted(variables))
    return note


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


@dataclass
class Names:
    """Undefined names found by `undefined_names`."""

    errors: list[Diagnostic] = field(default_factory=list)
    excused: set[str] = field(default_factory=set)  # read where only an absent inventory could define them


def undefined_names(runbook: Runbook, inventory: Any, unresolved: set[str] | None = None,
                    extra: Iterable[str] = ()) -> Names:
    """Names read by templates that nothing defines (Jinja2 find_undeclared_variables).

    `unresolved` holds the ids of steps whose hosts are unknown (check without -i): a name
    such a step reads, or that the runbook's vars read when any step is unresolved, may be
    one of those hosts' inventory variables, so it is excused (listed, not an error)."""
    from opsbook.compile import fact_names
    from opsbook.facts import FACT_NAMES, gathers
    from opsbook.template import is_template, optional_names, referenced_names

    unresolved = unresolved or set()
    out = Names()
    known = set(MAGIC_NAMES) | {p.name for p in runbook.params} | set(runbook.vars) | set(extra)
    for host in inventory.hosts.values():
        known |= set(host.vars)
    if gathers(runbook):
        known |= FACT_NAMES
    steps = runbook.all_steps() + list(runbook.handlers)
    for step in steps:
        if step.register:
            known.add(step.register)
        known |= set(step.vars)
        known |= fact_names(step)
    for step in steps:
        local = known | {step.loop_var}
        excused = _hosts_unknown(step.id, unresolved)
        for source, expression, pos in _template_sources(step):
            try:
                names = referenced_names(source, expression=expression)
            except TemplateError as exc:
                out.errors.append(Diagnostic(pos, exc.message))
                continue
            missing = names - local
            if missing:
                missing -= optional_names(source, expression=expression)
            if excused:
                out.excused |= missing
                continue
            for name in sorted(missing):
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


def _template_sources(step: Step) -> list[tuple[str, bool, Position | None]]:
    """(source, is_bare_expression, position) of every template a step evaluates. A block's
    own when/vars/approve are templates too (its children inherit the when at compile time,
    but a typo in it is the block's, at the block's line)."""
    from opsbook.compile import _templates_of

    where = step.action.pos if step.action else step.pos
    sources = [(t, e, _written_at(step, t, where)) for t, e in _templates_of(step)]
    if step.until:
        sources.append((step.until, True, _written_at(step, step.until, where)))
    if step.rollback is not None:  # rendered only while rolling back: the worst time to learn of a typo
        sources += list(placed_strings(step.rollback.args, step.rollback.pos))
    return sources


def template_errors(runbook: Runbook) -> list[Diagnostic]:
    """Templates that cannot compile (a syntax error, a filter or test that does not exist):
    certain to fail wherever they are rendered."""
    from opsbook.template import referenced_names

    out: list[Diagnostic] = []
    for step in runbook.all_steps() + list(runbook.handlers):
        for source, expression, pos in _template_sources(step):
            try:
                referenced_names(source, expression=expression)
            except TemplateError as exc:
                out.append(Diagnostic(pos, exc.message))
    return out


def _hosts_unknown(step_id: str, unresolved: set[str]) -> bool:
    """Whether a step (or, for a block looped at compile time, one of its copies) has hosts
    that could not be resolved."""
    return step_id in unresolved or any(u.startswith(step_id + "[") for u in unresolved)


# What `register:` stores whatever the action is (Result.registered): the outcome flags, and
# the command fields (present when the action had a command's output).
REGISTERED_KEYS = frozenset({
    "status", "outcome", "changed", "failed", "skipped", "unknown", "timed_out", "ok", "msg",
    "duration", "attempts", "rc", "stdout", "stderr", "stdout_lines", "stderr_lines",
})
_CONDITIONS_ON_RESULT = ("until", "failed_when", "changed_when")


@dataclass(frozen=True)
class KeySources:
    """What `check` knows about the shape of the variables it checks keys of."""

    runbook: Runbook
    inventory: Any
    registry: Registry
    extra: frozenset[str] = frozenset()  # -e names given to check
    inventory_given: bool = False  # groups and hosts are the real ones (-i)


def certain_mistakes(runbook: Runbook, inventory: Any, registry: Registry, extra: Iterable[str],
                     inventory_given: bool) -> list[Diagnostic]:
    """What `run` and `plan` refuse before anything starts: the errors of `certain_findings`,
    reported by `check` in the same words, a template that cannot compile (`| uper`, `is
    succeded`), and a literal `src:` that no search folder holds (opsbook.srcpath).
    Undefined bare names are left to `check` (a plugin may set facts it cannot see)."""
    findings = certain_findings(KeySources(runbook, inventory, registry, frozenset(extra), inventory_given))
    return [*runbook.unfound_sources, *template_errors(runbook), *(d for d in findings if d.severity == "error")]


def certain_findings(sources: KeySources) -> list[Diagnostic]:
    """The findings of `check` that the runbook, the inventory and the installed plugins
    settle alone; `run` and `plan` refuse their errors (docs/reliability.md, "What run
    refuses"). The other errors `check` reports are refused by `run` on their own path: the
    loader's (unknown action or argument, bad value), the compiler's (cycles, hosts,
    parameters) and evidence conflicts (`api.start_run`). Not refused: undefined bare
    names (a plugin may set facts `check` cannot see) and the policy's rules (a project's
    rules, which `check` loads and `run` does not)."""
    return unknown_keys(sources) + inverse_targets(sources.runbook, sources.registry)


def unknown_keys(sources: KeySources) -> list[Diagnostic]:
    """`params.targt`, `out.stdot`, `groups.webb`, `hostvars['web9']`: a key that the value
    certainly does not have, read without `| default` or an `is defined` guard."""
    return _KeyChecker(sources).check()


class _KeyChecker:
    def __init__(self, src: KeySources) -> None:
        self.src = src
        rb = src.runbook
        self.params = {p.name for p in rb.params} | set(src.extra)
        self.steps = rb.all_steps() + list(rb.handlers)
        self.shapes = self._register_shapes()
        # Names defined some other way too: their shape is not the one checked here.
        self.shadowed = set(rb.vars) | {p.name for p in rb.params} | set(src.extra)
        for step in self.steps:
            self.shadowed |= set(step.vars) | {step.loop_var}
            if step.action is not None and step.action.name == "local.set" and isinstance(step.action.args, dict):
                self.shadowed |= set(step.action.args)
        for host in src.inventory.hosts.values():
            self.shadowed |= set(host.vars)
        self.problems: list[Diagnostic] = []

    def check(self) -> list[Diagnostic]:
        self._walk(self.src.runbook.steps, frozenset())
        self._walk(self.src.runbook.handlers, frozenset())
        rb = self.src.runbook
        for key, value in rb.vars.items():
            for source, _ in _strings(value):
                self._source(source, False, frozenset(), rb.pos, f"vars.{key}")
        for label, value in [("hosts", rb.hosts), ("lock", rb.lock)] + [(f"params.{p.name}.default", p.default)
                                                                        for p in rb.params]:
            for source, _ in _strings(value):
                self._source(source, False, frozenset(), rb.pos, label)
        return self.problems

    def _register_shapes(self) -> dict[str, frozenset[str] | None]:
        shapes: dict[str, frozenset[str] | None] = {}
        for step in self.steps:
            if step.register:
                shape = REGISTERED_KEYS | {"results"} if step.loop is not None else self._own_shape(step)
                known = shapes.get(step.register, frozenset())
                shapes[step.register] = None if shape is None or known is None else known | shape
        return shapes

    def _own_shape(self, step: Step) -> frozenset[str] | None:
        """One attempt's registered keys (`result` in until/failed_when), when declared."""
        spec = self.src.registry.action(step.action.name) if step.action is not None else None
        return None if spec is None or spec.data is None else REGISTERED_KEYS | spec.data

    def _walk(self, steps: tuple[Step, ...], guards: frozenset[tuple[str, str]]) -> None:
        from opsbook.compile import _templates_of
        from opsbook.template import guarded_keys

        for step in steps:
            own = guards.union(*(guarded_keys(c, expression=True) for c in step.when if isinstance(c, str)))
            where = step.action.pos if step.action else step.pos
            label = f'step "{step.name}"'
            for source, expression in _templates_of(step):
                self._source(source, expression, own, _written_at(step, source, where), label)
            for source, expression in _extra_strings(step):
                self._source(source, expression, own, where, label)
            if step.rollback is not None:
                for source, expression, pos in placed_strings(step.rollback.args, step.rollback.pos):
                    self._source(source, expression, own, pos, label)
            own_shape = self._own_shape(step) if step.action is not None else None
            for key in _CONDITIONS_ON_RESULT:
                for cond in _as_list(getattr(step, key)):
                    if isinstance(cond, str):
                        self._source(cond, True, own, where, label, own_shape, step.register)
            self._walk(step.block + step.rescue + step.always, own)

    def _source(self, source: str, expression: bool, guards: frozenset[tuple[str, str]], pos: Any,
                label: str, result_shape: frozenset[str] | None = None, register: str | None = None) -> None:
        from opsbook.template import DICT_METHODS, key_reads, short_value

        for read in key_reads(source, expression):
            if read.guarded or (read.name, read.key) in guards or read.key in DICT_METHODS:
                continue
            if read.name in ("result", register):  # this attempt's result, in its own conditions
                problem = (_near_miss(read.name, read.key) if result_shape is None
                           else self._registered(read.name, read.key, result_shape))
            else:
                problem = self._problem(read.name, read.key)
            if problem is not None:
                message, hint, severity = problem
                self.problems.append(Diagnostic(pos, f"{label}: {message} in {short_value(source, 60)}", hint, severity))

    def _problem(self, name: str, key: str) -> tuple[str, str, str] | None:
        src = self.src
        if name == "params" and src.runbook.extra_vars != "any" and key not in self.params:
            return (f'params.{key}: no parameter "{key}"{did_you_mean(key, self.params)}',
                    "declare it under params:, or read it as params.x | default(...) if it is optional", "error")
        if name in self.shadowed or name in ("params", "result"):
            return None
        if name == "groups" and src.inventory_given and key not in src.inventory.groups:
            return (f'groups.{key}: no group "{key}" in the inventory{did_you_mean(key, src.inventory.groups)}',
                    "groups known: " + ", ".join(sorted(src.inventory.groups)), "error")
        if name == "hostvars" and src.inventory_given and not self._is_host(key):
            return (f'hostvars[{key!r}]: no host "{key}" in the inventory{did_you_mean(key, src.inventory.hosts)}',
                    "hostvars takes an inventory host name", "error")
        if name not in self.shapes:
            return None
        shape = self.shapes[name]
        return _near_miss(name, key) if shape is None else self._registered(name, key, shape)

    def _registered(self, name: str, key: str, shape: frozenset[str]) -> tuple[str, str, str] | None:
        if key in shape:
            return None
        return (f'{name}.{key}: a registered result has no key "{key}"{did_you_mean(key, shape)}',
                "registered keys: " + ", ".join(sorted(shape)), "error")

    def _is_host(self, name: str) -> bool:
        try:
            self.src.inventory.host(name)
        except UserError:
            return False
        return True


def _near_miss(name: str, key: str) -> tuple[str, str, str] | None:
    """A key of a result whose action does not declare its data: only a near miss of a
    standard key is worth a word, and only a warning (the action may have such a key)."""
    from difflib import get_close_matches

    if key in REGISTERED_KEYS or key == "results":
        return None
    close = get_close_matches(key, sorted(REGISTERED_KEYS), n=1, cutoff=0.8)
    if not close:
        return None
    hint = "the action does not declare its registered keys, so this is only a warning"
    return f'{name}.{key}: probably a typo of "{close[0]}"', hint, "warning"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _strings(value: Any) -> Iterable[tuple[str, bool]]:
    from opsbook.template import is_template

    if isinstance(value, str):
        if is_template(value):
            yield value, False
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def placed_strings(value: Any, pos: Position) -> Iterable[tuple[str, bool, Position]]:
    """The templates in an argument value, each with the position it is written at (the
    value's own line inside a mapping or list as loaded, else `pos`)."""
    from opsbook.template import is_template

    if isinstance(value, str):
        if is_template(value):
            yield value, False, pos
    elif isinstance(value, dict):
        where = getattr(value, "value_pos", {})
        for key, item in value.items():
            yield from placed_strings(item, where.get(key) or pos)
    elif isinstance(value, (list, tuple)):
        items = getattr(value, "item_pos", [])
        for i, item in enumerate(value):
            yield from placed_strings(item, items[i] if i < len(items) and items[i] else pos)


def _written_at(step: Step, source: str, where: Position) -> Position:
    """Where `source` is written: the line of the step's `approve:` message (a block's, if
    inherited) when it is that, else the line of the condition or argument that holds it
    (Step.text_pos), else `where` (a condition inherited from a block: the step's action)."""
    if step.approve_pos is not None and source == step.approve:
        return step.approve_pos
    return step.text_pos.get(source, where)


def _extra_strings(step: Step) -> Iterable[tuple[str, bool]]:
    """Templates a step evaluates besides _templates_of's and its rollback's: its hosts pattern."""
    if step.hosts:
        yield from _strings(step.hosts)
    if step.keep_healthy is not None:
        yield from _strings(step.keep_healthy.group)
        if step.keep_healthy.probe is not None:
            yield from _strings(step.keep_healthy.probe.args)


def rto_warning(runbook: Runbook, plan: Any, registry: Registry | None = None) -> Diagnostic | None:
    """Warn when the timeouts of the steps the RTO is measured through (opsbook.timeouts
    `rto_ends`: up to the first verification after the mitigation) exceed the objective."""
    if runbook.objectives.rto is None or not plan.leaves:
        return None
    from opsbook.timeouts import node_seconds, rto_ends

    cost: dict[str, float] = {}
    for sid, leaf in plan.leaves.items():
        step: Step = leaf.step
        # the step's timeout, or its action's own `timeout:` argument or default (opsbook.timeouts)
        cost[sid] = node_seconds(step, runbook, registry)
    needs: dict[str, list[str]] = {sid: [] for sid in plan.leaves}
    for a, c in plan.step_edges:
        needs[c].append(a)
    best: dict[str, float] = {}
    for sid in graphlib.TopologicalSorter(needs).static_order():
        best[sid] = cost[sid] + max((best[p] for p in needs[sid]), default=0.0)
    # the RTO ends at the first verification after the mitigation (opsbook.report): what runs after is not measured
    ends = rto_ends(plan)
    worst = max(best[sid] for sid in ends) if ends else max(best.values())
    if worst <= runbook.objectives.rto:
        return None
    return Diagnostic(runbook.pos, f"the timeouts on the critical path add up to {format_duration(worst)}, "
                      f"more than the RTO objective of {format_duration(runbook.objectives.rto)}",
                      "lower timeouts/retries, or revisit the objective", severity="warning")


__all__ = ["CheckReport", "KeySources", "Position", "ValidationError", "certain_findings", "certain_mistakes",
           "check_files", "check_one", "unknown_keys"]
