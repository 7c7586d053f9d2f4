"""How long one attempt of a step may take, as far as the runbook says before the run:
the step's `timeout:` and its action's own `timeout:` argument (k8s.drain, k8s.wait,
ssh.wait_for, ...), whichever ends first. Used by `opsbook check`'s RTO warning.

An action argument counts when it is a literal duration or exactly one parameter
(`"{{ params.drain_timeout }}"`, its default); any other template is unknown before the
run and counts as nothing, as does an action's built-in default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsbook.model import Runbook, Step, parse_duration

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
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


def attempt_seconds(step: Step, runbook: Runbook) -> float:
    """One attempt's longest time: the step's timeout and the action's, whichever is shorter."""
    known = [t for t in (step.timeout, action_timeout(step, runbook)) if t is not None]
    return min(known) if known else 0.0
