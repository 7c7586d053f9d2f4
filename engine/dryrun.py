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

`DryRun` is one run's bookkeeping of these rules (the node runner asks it; the executor
tells it each node's outcome).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from opsbook.compile import BARRIER, Node, _templates_of
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


class DryRun:
    """Check mode's bookkeeping (see opsbook.dryrun): each done node's unmade changes upstream
    of it and its own, nodes whose failure is the runbook's own, the names steps read."""

    def __init__(self, svc: Any, spec_of: Any) -> None:
        self._svc = svc
        self._spec_of = spec_of
        self.deps = svc.plan.dependencies() if svc.opts.check else {}
        self._unmade: dict[str, frozenset[Unmade]] = {}
        self.own_fault: set[str] = set()
        self._inputs: dict[str, frozenset[str]] = {}
        self._remote_inputs: dict[str, frozenset[str]] = {}  # read through hostvars[...]

    def upstream(self, node_id: str) -> frozenset[Unmade]:
        deps = self.deps.get(node_id, ())
        if len(deps) == 1:
            return self._unmade.get(deps[0], frozenset())
        return frozenset().union(*(self._unmade.get(d, frozenset()) for d in deps))

    def note(self, node: Any, outcome: Any) -> None:
        """Remember the unmade changes upstream of a done node, and its own (lock held)."""
        unmade = self.upstream(node.id)
        if node.kind != BARRIER and node.host is not None:
            step = node.step
            # a step always run in check mode (check_mode: true) makes no change in a real run
            # either: nothing after it waits for one
            dry = self._svc.opts.check if step.check_mode is None else False
            if dry and leaves_unmade(step, self._spec_of(step), outcome.status, outcome.result.changed):
                own = Unmade(node.leaf.order, step.name, node.host, "mitigation" in step.marks)  # type: ignore[union-attr]
                unmade = unmade | {own}
        self._unmade[node.id] = unmade

    def reads_unknown(self, node: Any, states: Any) -> Any:
        """Rule 1: a node reading a value check mode could not know, on its host or (through
        hostvars) on another."""
        step = node.step
        inputs = self._inputs.get(step.id)
        if inputs is None:  # workers may do this at once for one step: same values, set remote first
            inputs = input_names(step)
            self._remote_inputs[step.id] = hostvars_names(step) if "hostvars" in inputs else frozenset()
            self._inputs[step.id] = inputs
        state = states.view(node.host or "")
        steps = dict.fromkeys(state.unknown[d] for d in sorted(inputs & set(state.unknown)))
        remote = self._remote_inputs[step.id]
        if remote:
            for other in states.all():
                steps.update(dict.fromkeys(other.unknown[d] for d in sorted(remote & set(other.unknown))))
        if not steps:
            return None
        return _unknown("depends on " + ", ".join(f'"{s}"' for s in steps) + " (unknown in check mode)")

    def observes_unmade(self, node: Any, spec: Any) -> Any:
        """Rule 2: a node observing what an unmade change would alter."""
        if not observes(node.step, spec):
            return None
        unmade = before(node, self.upstream(node.id))
        return _unknown(observation_reason(unmade)) if unmade else None


def _unknown(reason: str) -> Any:
    from opsbook.runtypes import unknown_outcome

    return unknown_outcome(reason)
