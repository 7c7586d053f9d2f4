"""What a node's results come to: its conditions, its overrides and its one outcome.

Owns the rules that turn what an action returned into what the run records, as plain
functions of the step, the results and the node's template variables (no run state):
`when` (the first false condition), `failed_when`/`changed_when` (Ansible's overrides,
and `changed_when` of a step check mode did not run), a loop's items combined into one
result (the worst item decides; a skipped item is listed too), what a condition read
(shown when it fails), and check mode's excuse of a failure caused by a change a dry run
did not make (opsbook.dryrun rule 3). opsbook.noderun calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opsbook import dryrun
from opsbook.capture import clip_text
from opsbook.errors import UserError
from opsbook.plugin import Result, Status, truthy
from opsbook.runtypes import Outcome
from opsbook.template import evaluate, expression_values, referenced_names

Redact = Callable[[Any], Any]


def false_condition(step: Any, ctx_vars: Mapping[str, Any]) -> Any:
    """The first `when` condition that is false, or None when all hold."""
    for cond in step.when:
        if not truthy(cond if isinstance(cond, bool) else evaluate(cond, ctx_vars, step.pos)):
            return cond
    return None


def seen(step: Any, conditions: Iterable[Any], view: Mapping[str, Any], redact: Redact) -> str:
    """` (out.rc = 1, out.stdout = '...')`: what a condition read, redacted and short;
    nothing for a `no_log` step."""
    if step.no_log:
        return ""
    values = expression_values(conditions, view, redact=redact)
    return f" ({values})" if values else ""


def apply_overrides(step: Any, result: Result, ctx_vars: dict[str, Any], redact: Redact) -> Result:
    """`changed_when` and `failed_when` (ANDed lists) decide over what the action said;
    the caller asks only when the step has one of them."""
    view = {**ctx_vars, "result": result.registered()}
    if step.register:
        view[step.register] = view["result"]
    if step.changed_when:
        result.changed = all(truthy(c if isinstance(c, bool) else evaluate(c, view, step.pos)) for c in step.changed_when)
    if step.failed_when:
        fail = all(truthy(c if isinstance(c, bool) else evaluate(c, view, step.pos)) for c in step.failed_when)
        if fail:
            why = "failed_when: " + " and ".join(map(str, step.failed_when)) + seen(step, step.failed_when, view, redact)
            result.msg = why + (f"; {result.msg}" if result.msg else "")
        if fail and result.status is Status.OK:
            result.status = Status.FAILED
        elif not fail and result.status is Status.FAILED:
            result.status = Status.OK
    return result


def changed_unknown(step: Any, ctx_vars: dict[str, Any]) -> bool:
    """`changed_when` of a step check mode did not run: decided when it does not read
    the step's own result (`changed_when: false`), else it may change (True)."""
    own = {"result"} | ({step.register} if step.register else set())
    for cond in step.changed_when:  # ANDed: one that is decidably false decides
        try:
            if isinstance(cond, str) and referenced_names(cond, expression=True) & own:
                continue
            if not truthy(cond if isinstance(cond, bool) else evaluate(cond, ctx_vars, step.pos)):
                return False
        except UserError:
            continue
    return True


def skipped_item(step: Any, item: Any, false: Any) -> Result:
    """A loop item whose `when` was false, as it appears in the registered results."""
    return Result(status=Status.SKIPPED, msg=f"when: {false} is false",
                  data={step.loop_var: item, "ansible_loop_var": step.loop_var})


def combine(step: Any, results: list[Result]) -> Outcome:
    """One node's outcome from its results: the one call's, or a loop's items combined
    (the first failed or timed-out item decides, then an unknown one; `results` registered)."""
    if step.loop is None:
        result = results[0]
        wanted = step.register is not None or step.run_once
        registered = result.registered() if wanted else None
    else:
        worst = next((r for r in results if r.status in (Status.TIMED_OUT, Status.FAILED)), None) or \
            next((r for r in results if r.status is Status.UNKNOWN), None)
        skipped = sum(r.status is Status.SKIPPED for r in results)
        summary = f"{len(results)} items" + (f" ({skipped} skipped)" if skipped else "")
        result = Result(status=worst.status if worst else Status.OK, changed=any(r.changed for r in results),
                        msg=worst.msg if worst else summary,
                        stdout=clip_text("\n".join(r.stdout for r in results if r.stdout)),
                        stderr=clip_text("\n".join(r.stderr for r in results if r.stderr)))
        for r in results:
            result.facts.update(r.facts)
            result.evidence.extend(r.evidence)
        registered = result.registered()
        registered["results"] = [r.registered() for r in results]
    notify = list(step.notify) if result.changed and result.status is Status.OK else []
    return Outcome(result.status, result, registered, notify)


def excuse(outcome: Outcome, unmade: list[dryrun.Unmade]) -> None:
    """Check mode: a failure that follows from changes the dry run did not make is unknown."""
    dryrun.excuse(outcome.result, unmade)
    outcome.status = Status.UNKNOWN
    outcome.notify = []
    if outcome.registered is not None:
        items = outcome.registered.get("results")
        outcome.registered = outcome.result.registered()
        if items is not None:
            outcome.registered["results"] = items
