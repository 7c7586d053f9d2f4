"""Check mode's rule for steps whose outcome depends on a change the dry run did not make.

`opsbook run --check` changes nothing, so a step that comes after a change cannot see
it: the verification after a restart that was not done would fail, a fact computed
from a command that did not run has no value. Such a step is `unknown`, with the reason,
instead of failed or run on values that do not exist. The executor asks this module;
the rule, in the order it is applied to a node:

1. **Values**: a node that reads (arguments, `when`, `loop`, `vars`, `until`,
   `failed_when`/`changed_when`) a registered result or a fact that check mode could
   not know, on its host or on another one through `hostvars[h].name`, is `unknown`
   without running ("depends on ...").
2. **Observations**: a node that observes the state a change would alter — it is marked
   `marks: [verification]`, waits with `until:`, or its action declares `observes=True`
   (the `probe.*` actions, waits) — is `unknown` without running when an *unmade
   change* comes before it in the graph (below).
3. **Failures**: any other node that fails while an unmade change comes before it is
   `unknown` ("fails without ..."), since the failure may be what the change would have
   prevented. A failure of the runbook itself (a template that does not render,
   arguments its action refuses) is not excused.

An **unmade change** is a node run in check mode that would change something (`ok`
with `changed`), or that is `unknown` and could change something: not a node whose
action only observes or only computes (`local.set`, `local.assert`, `local.noop`,
`local.fail`), nor one whose `changed_when:` says it changes nothing, nor a step with
`check_mode:` of its own (`true`: a real run does not make its change either; `false`:
it ran for real); a step marked `mitigation` always counts. It *comes before* node N when it is upstream of N in the
plan's graph and either runs on N's host, or is marked `mitigation` (the response
itself: whatever is verified after it, anywhere, depends on it), or N names what it
waits for with `needs:` (the author said N depends on it).

So the dry run of a correct runbook never ends `failed` because of what it did not do,
while a node with nothing unmade before it (a detection probe at the start) still runs
and still fails for real.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from opsbook.compile import Node, _templates_of
from opsbook.model import Step
from opsbook.plugin import ActionSpec, Result, Status

# Actions of the built-in local plugin that only compute on the controller: never a change.
COMPUTE_ONLY = frozenset({"local.noop", "local.set", "local.assert", "local.fail"})


class Unmade(NamedTuple):
    """A change check mode did not make: which step, on which host."""

    order: int  # the step's place in the file: messages list steps in that order
    step: str  # its name, for messages
    host: str | None
    mitigation: bool


def observes(step: Step, spec: ActionSpec | None) -> bool:
    """Whether a step observes state a change would alter (rule 2)."""
    return "verification" in step.marks or bool(step.until) or (spec is not None and spec.observes)


def leaves_unmade(step: Step, spec: ActionSpec | None, status: Status, changed: bool) -> bool:
    """Whether a node run in check mode with this outcome is an unmade change."""
    if status is Status.OK:
        return changed
    if status is not Status.UNKNOWN:
        return False  # failed or skipped: nothing would have been done
    if "mitigation" in step.marks:
        return True
    if observes(step, spec) or (spec is not None and spec.full_name in COMPUTE_ONLY):
        return False
    if step.changed_when:
        return changed  # what changed_when decided (see Executor._attempts)
    return True


def before(node: Node, upstream: Iterable[Unmade]) -> list[Unmade]:
    """The unmade changes of `upstream` (upstream of `node` in the graph) that come before it."""
    explicit = bool(node.step.needs)
    found = {u for u in upstream if explicit or u.mitigation or u.host == node.host}
    return sorted(found, key=lambda u: (u.order, u.host or ""))


def input_names(step: Step) -> frozenset[str]:
    """Names a step reads (rule 1). In `failed_when`, `changed_when` and `until`, its own
    `register` name and `result` are the step's own result, not an earlier one."""
    import dataclasses

    before_run = dataclasses.replace(step, failed_when=(), changed_when=())
    conditions = [c for c in step.failed_when + step.changed_when if isinstance(c, str)]
    conditions += [step.until] if step.until else []
    own = {"result"} | ({step.register} if step.register else set())
    return frozenset(_names(_templates_of(before_run)) | (_names((c, True) for c in conditions) - own))


def hostvars_names(step: Step) -> frozenset[str]:
    """Variables a step reads from other hosts through `hostvars` (rule 1 looks at every host)."""
    from opsbook.template import hostvars_names as read

    sources = list(_templates_of(step)) + ([(step.until, True)] if step.until else [])
    return frozenset(name for source, expression in sources for name in read(source, expression))


def _names(sources: Iterable[tuple[str, bool]]) -> set[str]:
    from opsbook.template import referenced_names

    names: set[str] = set()
    for source, expression in sources:
        try:
            names |= referenced_names(source, expression=expression)
        except Exception:  # noqa: BLE001, S112 - a syntax error fails the node when it renders
            continue
    return names


def names_of(items: Iterable[Unmade], limit: int = 3) -> str:
    """'"a", "b" and 2 more' for messages."""
    names = list(dict.fromkeys(u.step for u in items))
    shown = ", ".join(f'"{n}"' for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def observation_reason(unmade: list[Unmade]) -> str:
    return (f"not run: it observes what {names_of(unmade)} would change, "
            "and check mode did not make that change")


def excuse(result: Result, unmade: list[Unmade]) -> None:
    """Turn a failed result `unknown` (rule 3), keeping what it said."""
    result.status = Status.UNKNOWN
    result.msg = (f"fails without {names_of(unmade)}, which check mode did not do, so a real run "
                  "may pass" + (f": {result.msg}" if result.msg else ""))
