"""Where a node's action runs: its own host, or the host its step's `delegate_to` names.

One rendering of `delegate_to` for every unit that needs it (the node runner before it
acts, the undo it records, an approval gate's "runs on"), with one error message:
`delegate_to '<name or template>': <why> (<file:line>)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opsbook.compile import Node
from opsbook.errors import UserError
from opsbook.model import Step
from opsbook.template import render


def delegate_host(step: Step, ctx_vars: Mapping[str, Any], known: Callable[[str], object] | None = None) -> str:
    """The host `step.delegate_to` names, rendered with `ctx_vars`; with `known` (a host
    lookup raising UserError for a name no inventory holds), a host that exists.

    Raises UserError `delegate_to '...': why (file:line)` naming the rendered host, or the
    template when it could not be rendered."""
    assert step.delegate_to is not None
    shown = step.delegate_to
    try:
        shown = str(render(step.delegate_to, ctx_vars, pos=step.pos))
        if known is not None:
            known(shown)
    except UserError as exc:
        raise UserError(f"delegate_to {shown!r}: {exc.message}", exc.position or step.pos, exc.hint) from exc
    return shown


def acting_host(node: Node, ctx_vars: Mapping[str, Any]) -> str | None:
    """Where the node's action really runs: the delegate when its step delegates, else its
    host. Raises UserError as `delegate_host` does."""
    return delegate_host(node.step, ctx_vars) if node.step.delegate_to else node.host
