"""local.debug and local.meta: Ansible's `debug:` and `meta:` tasks.

`local.debug` shows a message or a variable's value in the run's normal output (the
plain lines, the live table's last line of the step) and in the journal, as Ansible's
debug prints `ok: [web1] => {"msg": ...}`; `verbosity: N` hides it (the node is skipped)
unless the run was started with at least N `-v`. `var` names an expression evaluated on
the host's variables; an undefined one shows "VARIABLE IS NOT DEFINED!", as in Ansible.

`local.meta` does nothing itself: the engine gives its values their meaning (see
opsbook.flow): `flush_handlers` is compiled into the handlers' nodes at that point of the
graph, `end_host`, `end_play` and `clear_host_errors` change the run state when the node
succeeds (so `when:` decides whether they apply), `noop` does nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from opsbook.plugin import ActionContext, Result, Status
from opsbook_plugins.local import _Args, plugin
from pydantic import model_validator

NOT_DEFINED = "VARIABLE IS NOT DEFINED!"


class DebugArgs(_Args):
    """Show a message, or a variable's value, in the run's output (Ansible's debug)."""

    msg: Any = "Hello world!"
    var: str | None = None  # an expression: the host variable to show
    verbosity: int = 0  # shown only when the run has at least this many -v

    @model_validator(mode="after")
    def _one_of(self) -> DebugArgs:
        if self.var is not None and "msg" in self.model_fields_set:
            raise ValueError("msg and var are mutually exclusive")
        return self


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


@plugin.action(scalar="msg", check=True, idempotent=True, reads=["var"])  # data: the var name (any key)
def debug(ctx: ActionContext, args: DebugArgs) -> Result:
    """Show `msg`, or `var`'s value, in the run's output and the journal; read-only."""
    wanted = int(ctx.variables.get("ansible_verbosity", 0) or 0) if ctx.variables else 0
    if args.verbosity > wanted:
        return Result(status=Status.SKIPPED, msg=f"verbosity threshold not met ({args.verbosity} > {wanted})")
    if args.var is None:
        # (register's own `msg` holds the text; a list or a mapping is shown as JSON)
        return Result.ok(msg=_text(args.msg), show=True)
    from opsbook.errors import UserError
    from opsbook.template import evaluate, render

    try:
        value = (render(args.var, ctx.variables) if "{{" in args.var
                 else evaluate(args.var, ctx.variables))
    except UserError as exc:
        if "undefined" not in str(exc).lower():
            raise
        value = NOT_DEFINED
    from opsbook.plugin import REGISTERED_KEYS

    data = {} if args.var in REGISTERED_KEYS else {args.var: value}  # register's own keys stay register's
    return Result.ok(msg=f"{args.var}: {_text(value)}", data=data, show=True)


MetaValue = Literal["flush_handlers", "end_host", "end_play", "clear_host_errors", "noop"]


class MetaArgs(_Args):
    """Ansible's meta task: flush_handlers, end_host, end_play, clear_host_errors, noop."""

    free_form: MetaValue


@plugin.action(scalar="free_form", check=True, idempotent=True, data=())
def meta(ctx: ActionContext, args: MetaArgs) -> Result:
    """Change how the run goes on (the engine applies it when this node succeeds)."""
    return Result.ok(msg=f"meta: {args.free_form}")


for _module in ("debug", "meta"):
    plugin.ansible_module(_module, _module)
