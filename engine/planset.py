"""Plans of many runbooks in one process (`opsbook plan FOLDER`, `opsbook diff`), with a
parameters file for the runbooks that have required parameters.

A parameters file maps runbook names (their `name:`) or file paths to their parameters;
the key `"*"` gives parameters to every runbook that declares them:

    "*": {namespace: shop}
    k8s-drain-node: {node: worker-2}
    runbooks/kubernetes/apply-fix.yaml: {manifest: fix.yaml, deployment: checkout, replicas: 3}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.errors import Diagnostic, Position, UserError, ValidationError


@dataclass(frozen=True)
class PlanInputs:
    """What every plan of a set is made with: inventories, -e values, the parameters file."""

    inventories: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    params_file: Mapping[str, Any] = field(default_factory=dict)


def load_params_file(path: str | None) -> dict[str, Any]:
    """The parameters file as a mapping (empty without one); errors name the file:line."""
    from opsbook.yamlsrc import load_yaml_file

    if path is None:
        return {}
    data = load_yaml_file(path) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValidationError([Diagnostic(Position(path, 1), "a parameters file maps runbook names (or paths, or \"*\") "
                                          "to mappings of parameters")])
    return dict(data)


def params_for(runbook: Any, path: str, inputs: PlanInputs) -> dict[str, Any]:
    """The parameters of one runbook: the file's "*" (those it declares), its own entry
    (by name, or by path), then -e values."""
    declared = {p.name for p in runbook.params}
    table = inputs.params_file
    out = {k: v for k, v in dict(table.get("*", {})).items() if k in declared}
    for key in (runbook.name, path, str(Path(path).resolve())):
        out.update(dict(table.get(key, {})))
    out.update(inputs.extra)
    return out


def plan_one(path: str, registry: Any, inputs: PlanInputs, inventory: Any = None, text: str | None = None) -> Any:
    """The plan of one runbook file (or of `text`, read as that file), refused as `plan`
    refuses it (evidence conflicts, certain mistakes)."""
    from opsbook.api import load_inventory_sources, make_plan, refuse_evidence_conflicts
    from opsbook.check import certain_mistakes
    from opsbook.load import RunbookLoader

    loader = RunbookLoader(registry)
    runbook = loader.load_text(text, path) if text is not None else loader.load_file(path)
    if inventory is None:
        inventory = load_inventory_sources(list(inputs.inventories), registry)
    given = params_for(runbook, path, inputs)
    plan = make_plan(runbook, inventory, given)
    refuse_evidence_conflicts(plan, registry)
    problems = certain_mistakes(runbook, inventory, registry, given, bool(inputs.inventories))
    if problems:
        raise ValidationError(problems)
    return plan


@dataclass
class PlanResult:
    """One runbook of a set: its plan, or the errors that stopped it."""

    path: str
    plan: Any = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def plan_many(paths: Sequence[str], registry: Any, inputs: PlanInputs) -> list[PlanResult]:
    """Plans of runbook files and folders (searched like `check` searches them); the
    inventory is read once."""
    from opsbook.api import load_inventory_sources
    from opsbook.check import _expand

    inventory = load_inventory_sources(list(inputs.inventories), registry)
    out = []
    for path in _expand(paths):
        result = PlanResult(path)
        try:
            result.plan = plan_one(path, registry, inputs, inventory)
        except UserError as exc:
            result.diagnostics = list(exc.diagnostics)
        out.append(result)
    return out


__all__ = ["PlanInputs", "PlanResult", "load_params_file", "params_for", "plan_many", "plan_one"]
