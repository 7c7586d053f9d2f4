"""`keep_healthy` bookkeeping: which members this run has taken out and not yet put back.

A step with `keep_healthy` takes a member out when its action succeeds on it. The member
counts as out (unhealthy, whatever its probe says) until this run puts it back, which is:

- the end of the block the step is in: the last step of that block's body succeeded on the
  member (drain -> change -> verify -> ready, one host at a time: after "ready" the host is
  back, so the next serial batch is judged by the probe alone); or
- a step that declares `restores: STEP` succeeded on the member (for a step outside a
  block, or to put a member back before its block ends).

A member whose block failed stays out for the rest of the run: nothing put it back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

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
