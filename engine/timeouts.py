"""How long a step may take, as far as the runbook says before the run: the step's
`timeout:` (the whole node, every retry included) and its action's own `timeout:`
argument (k8s.drain, k8s.wait, ssh.wait_for, ...: one attempt), whichever ends first. Used by `opsbook check`'s RTO warning and by
the policy rule on unbounded steps (`is_bounded`), so both agree on what bounds a step.

An action argument counts when it is a literal duration or exactly one parameter
(`"{{ params.drain_timeout }}"`, its default); any other template is unknown before the
run and counts as nothing. An action's `timeout` argument left out counts with the
default the action declares (k8s.wait: 5m), when a registry is at hand.

A whole-run `timeout:` bounds no step on its own: it says when the run stops, not how
long any one step may hold it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsbook.model import Runbook, Step, duration_or_none

_ONE_PARAM = re.compile(r"^\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def action_timeout(step: Step, runbook: Runbook) -> float | None:
    """The action's own `timeout:` argument in seconds, when known before the run."""
    args = step.action.args if step.action is not None else None
    if not isinstance(args, Mapping) or "timeout" not in args:
        return None
    value: Any = args["timeout"]
    if isinstance(value, str):
        match = _ONE_PARAM.match(value.strip())
        if match:
            param = next((p for p in runbook.params if p.name == match.group(1)), None)
            value = None if param is None else param.default
        elif "{{" in value or "{%" in value:
            return None
    return duration_or_none(value)


# actions evaluated on the controller that wait for nothing: bounded by what they are
INSTANT = ("local.assert", "local.set", "local.noop", "local.fail", "local.debug", "local.meta")


def _timeout_field(step: Step, registry: Any) -> Any:
    """The action's declared `timeout` argument (its pydantic field), or None; None too when
    the action's `wait` argument says it does not wait (k8s.scale, k8s.rollout_undo: their
    timeout bounds only the wait)."""
    if registry is None or step.action is None:
        return None
    spec = registry.action(step.action.name)
    fields = {} if spec is None else getattr(spec.args_model, "model_fields", {})
    if "wait" in fields:
        args = step.action.args if isinstance(step.action.args, Mapping) else {}
        wait = args.get("wait", fields["wait"].default)
        if wait is False or (isinstance(wait, str) and wait.strip().lower() in ("false", "no")):
            return None
    return fields.get("timeout")


def declared_timeout(step: Step, registry: Any) -> float | None:
    """The action's default for its own `timeout` argument, in seconds, when the step leaves
    the argument out; None when it writes one or the action declares no default."""
    args = step.action.args if step.action is not None else None
    if isinstance(args, Mapping) and "timeout" in args:
        return None
    field = _timeout_field(step, registry)
    return None if field is None else duration_or_none(field.default)


def is_bounded(step: Step, registry: Any) -> bool:
    """Whether the step has a bound of its own before the run: its (or its block's)
    `timeout:` (the whole node, retries included), its action's own `timeout` argument
    (written, or the action's default: each attempt, and `retries` bounds how many), or an
    action evaluated on the controller. `retries`/`until` alone bound how many attempts,
    not how long one takes; a whole-run `timeout:` bounds the run, not the step."""
    if step.timeout is not None or step.action is None or step.action.name in INSTANT:
        return True
    args = step.action.args if isinstance(step.action.args, Mapping) else {}
    field = _timeout_field(step, registry)
    return field is not None and (args.get("timeout") is not None or field.default is not None)


def attempt_seconds(step: Step, runbook: Runbook, registry: Any = None) -> float:
    """One attempt's longest time as the action bounds it (its own `timeout`), 0 if unknown."""
    own = action_timeout(step, runbook)
    if own is None:
        own = declared_timeout(step, registry)
    return own or 0.0


def node_seconds(step: Step, runbook: Runbook, registry: Any = None) -> float:
    """A step's longest time on one host, as far as known before the run: its `timeout:`
    (which covers every retry and loop item, docs/language.md), or, shorter, every attempt
    at the action's own timeout plus the delays between them; 0 when neither is known."""
    own = attempt_seconds(step, runbook, registry)
    attempts = own * (1 + step.retries) + step.delay * step.retries if own else None
    known = [t for t in (step.timeout, attempts) if t is not None]
    return min(known) if known else 0.0


def _ancestors(plan: Any) -> dict[str, set[str]]:
    """Each leaf's steps that run before it (transitively), by id."""
    needs: dict[str, set[str]] = {sid: set() for sid in plan.leaves}
    for a, c in plan.step_edges:
        needs.setdefault(c, set()).add(a)
    out: dict[str, set[str]] = {}
    for sid in plan.leaves:
        seen: set[str] = set()
        stack = list(needs.get(sid, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(needs.get(current, ()))
        out[sid] = seen
    return out


def rto_ends(plan: Any) -> list[str]:
    """The steps at which the measured RTO ends, as opsbook.report measures it: the first
    step marked verification after a mitigation (else the first verification), else the
    first mitigation; empty when nothing is marked (the RTO then ends with the run)."""
    before = _ancestors(plan)
    marked = {mark: [sid for sid, leaf in plan.leaves.items() if mark in leaf.step.marks and not leaf.handler]
              for mark in ("mitigation", "verification")}
    mitigations, verifications = marked["mitigation"], marked["verification"]
    if verifications:
        after = [v for v in verifications if any(m in before[v] for m in mitigations)]
        candidates = after or verifications
    else:
        candidates = mitigations
    return [sid for sid in candidates if not any(other in before[sid] for other in candidates)]


def rto_span(plan: Any) -> set[str]:
    """The steps the measured RTO spans: every step that is, or runs before, a step where
    it ends (`rto_ends`); every step when nothing is marked."""
    ends = rto_ends(plan)
    if not ends:
        return set(plan.leaves)
    before = _ancestors(plan)
    return set(ends).union(*(before[e] for e in ends))
