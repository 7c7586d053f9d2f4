"""`keep_healthy` bookkeeping: which members this run has taken out and not yet put back.

A step with `keep_healthy` takes a member out when its action succeeds on it. The member
counts as out (unhealthy, whatever its probe says) until this run puts it back, which is:

- the end of the block the step is in: the last step of that block's body succeeded on the
  member (drain -> change -> verify -> ready, one host at a time: after "ready" the host is
  back, so the next serial batch is judged by the probe alone); or
- a step that declares `restores: STEP` succeeded on the member (for a step outside a
  block, or to put a member back before its block ends).

A member whose block failed stays out for the rest of the run: nothing put it back.

`PreFlights` runs the check itself: each other member's probe (observing the run's cancel
token), the minimum, and the journal's `preflight` event.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opsbook.cancel import CancelToken
from opsbook.errors import Diagnostic, did_you_mean


def pool_releases(leaves: Mapping[str, Any]) -> tuple[dict[str, frozenset[str]], list[Diagnostic]]:
    """For every leaf id, the `keep_healthy` steps whose members it puts back when it succeeds;
    and the problems of `restores:` links (a name that is no step, or a step without keep_healthy)."""
    releases: dict[str, set[str]] = {}
    problems: list[Diagnostic] = []
    keeping = [sid for sid, leaf in leaves.items() if leaf.step.keep_healthy is not None]
    for sid in keeping:
        body = [s.block_id for s in leaves[sid].sections if s.part == "block"]
        if not body:
            continue
        innermost = body[-1]
        in_body = [lid for lid, leaf in leaves.items()
                   if any(s.block_id == innermost and s.part == "block" for s in leaf.sections)]
        last = max(in_body, key=lambda lid: leaves[lid].order)
        if last != sid:  # a block that ends with the step itself never puts the member back
            releases.setdefault(last, set()).add(sid)
    by_name: dict[str, list[str]] = {}
    for sid, leaf in leaves.items():
        for name in {leaf.step.name, leaf.step.id, sid}:
            by_name.setdefault(name, []).append(sid)
    for sid, leaf in leaves.items():
        for name in leaf.step.restores:
            named = by_name.get(name, [])
            kept = [n for n in named if leaves[n].step.keep_healthy is not None]
            if not kept:
                known = sorted({leaves[k].step.name for k in keeping})
                why = (f'step "{leaf.step.name}" restores "{name}", which is not a step of this runbook'
                       if not named else
                       f'step "{leaf.step.name}" restores "{name}", which has no keep_healthy')
                problems.append(Diagnostic(leaf.step.pos, why + did_you_mean(name, known),
                                           "restores: names a step with keep_healthy whose members this step "
                                           "puts back" + (f" ({', '.join(known)})" if known else "")))
                continue
            releases.setdefault(sid, set()).update(kept)
    return {sid: frozenset(keep) for sid, keep in releases.items()}, problems


class OutOfPool:
    """Members taken out per `keep_healthy` step, put back as `pool_releases` says."""

    def __init__(self, releases: Mapping[str, frozenset[str]]) -> None:
        self._releases = releases
        self._out: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def take_out(self, step_id: str, host: str) -> None:
        """A `keep_healthy` step's action succeeded on `host` (under the step's pre-flight lock,
        so the next host's pre-flight already counts it)."""
        with self._lock:
            self._out.setdefault(step_id, set()).add(host)

    def succeeded(self, step_id: str, host: str) -> None:
        """A step succeeded on `host`: the members it puts back are back."""
        keeps = self._releases.get(step_id)
        if keeps:
            with self._lock:
                for keep in keeps:
                    self._out.get(keep, set()).discard(host)

    def out(self, step_id: str) -> set[str]:
        with self._lock:
            return set(self._out.get(step_id, ()))


class PreFlights:
    """The `keep_healthy` pre-flights of one run: judge a step's pool before it takes a
    member out, under one lock per step (two hosts of a step never both pass and both go)."""

    def __init__(self, svc: Any, context_for: Callable[[Any], Mapping[str, Any]]) -> None:
        self._svc = svc
        self._context_for = context_for  # a node's template variables
        self.out_of_pool = OutOfPool(svc.plan.releases)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, step_id: str) -> threading.Lock:
        """The lock a step's pre-flight and action run under (take it through the cancel token)."""
        with self._guard:
            return self._locks.setdefault(step_id, threading.Lock())

    def check(self, node: Any, ctx_vars: Mapping[str, Any], cancel: CancelToken) -> str | None:
        """Why the step must not act on its host now (fewer than the minimum of healthy members
        would remain), or None. Members are judged by their probe now; those this run took out
        and has not put back count as out whatever the probe says."""
        from opsbook.errors import UserError
        from opsbook.runtypes import user_message
        from opsbook.template import render

        step = node.step
        keep = step.keep_healthy
        assert keep is not None and node.host is not None
        try:
            group, members = self.members(node, ctx_vars)
        except UserError as exc:
            return f"keep_healthy: {user_message(exc)}"
        taken = self.out_of_pool.out(step.id)
        others = [m for m in members if m != node.host and m not in taken]
        healthy: list[str] = []
        unhealthy: list[str] = []
        for member in others:
            ok, why = self._probe(node, member, cancel)
            (healthy if ok else unhealthy).append(member if ok else f"{member} ({why})")
        total = len(members)
        minimum, percent = keep.minimum, keep.percent
        if keep.template is not None:  # `min: "{{ params.min_in_pool }}"`
            from opsbook.keyvalues import count_or_percent

            try:
                minimum, percent = count_or_percent(str(render(keep.template, ctx_vars, pos=step.pos)))
            except UserError as exc:
                return f"keep_healthy.min: {user_message(exc)}"
            if minimum is None and percent is None:
                return (f"keep_healthy.min {keep.template!r} must render to a count like 2 or "
                        f"a percentage like '50%' ({step.pos})")
        needed = int(minimum if minimum is not None else -(-total * (percent or 0) // 100))
        taken_here = sorted(taken & set(members))
        detail = {"group": group, "members": total, "healthy_others": healthy,
                  "unhealthy": unhealthy, "taken_out": taken_here, "required": needed}
        self._svc.journal.event(self._svc.run_id, "preflight", node.id, detail)
        if len(healthy) >= needed:
            return None
        why = (f"refusing to take {node.host} out: only {len(healthy)} other healthy member(s) of "
               f"{group} would remain ({', '.join(healthy) or 'none'}); keep_healthy requires {needed}")
        if unhealthy:
            why += f"; unhealthy: {', '.join(unhealthy)}"
        if taken_here:
            why += f"; taken out by this step and not yet put back: {', '.join(taken_here)}"
        return why

    def members(self, node: Any, ctx_vars: Mapping[str, Any]) -> tuple[str, list[str]]:
        """(how the group reads, its members): `keep_healthy.group` rendered like any
        templated field, or the step's own hosts."""
        from opsbook.template import render

        keep = node.step.keep_healthy
        assert keep is not None
        if not keep.group:
            return "the step's hosts", list(node.leaf.hosts)
        pattern = str(render(keep.group, ctx_vars, pos=node.step.pos))
        return pattern, [h.name for h in self._svc.plan.inventory.match(pattern, position=node.step.pos)]

    def _probe(self, node: Any, member: str, cancel: CancelToken) -> tuple[bool, str]:
        from opsbook.plugin import ActionContext, Status
        from opsbook.template import render

        svc = self._svc
        keep = node.step.keep_healthy
        assert keep is not None
        info = svc.hostinfo(member)
        if keep.probe is not None:
            name, raw_args = keep.probe.name, keep.probe.args
        elif info.vars.get("health_url"):
            name, raw_args = "probe.http", {"url": info.vars["health_url"]}
        else:
            return False, "no probe: set keep_healthy.probe or the host var health_url"
        spec = svc.registry.action(name)
        if spec is None:
            return False, f"{name} is not installed"
        if cancel.is_set():
            return False, "not probed: the run is stopping"
        member_node = dataclasses.replace(node, host=member)  # the same step on the member
        try:
            args = render(raw_args, self._context_for(member_node), pos=keep.probe.pos if keep.probe else None)
            ctx = ActionContext(host=info, step_name=f"pre-flight of {node.step.name}", timeout=10.0,
                                secrets=svc.secrets, run_id=svc.run_id, _connect=svc.pool.get,
                                _lookup_host=svc.hostinfo, check_mode=True, cancelled=cancel)
            result = spec.fn(ctx, spec.parse_args(args))
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run means "not known healthy"
            return False, str(exc)
        return result.status is Status.OK, result.msg or result.status.value
