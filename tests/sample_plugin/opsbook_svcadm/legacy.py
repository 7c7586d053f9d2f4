"""svcadm_legacy: a plugin as one might have been written before opsbook kept `register:`'s
own keys for itself. Its `restarts` action returns `changed` (a count) in its data, a key
`register:` sets itself; its `plan` returns `diff` in its data too, with the value
`register:` gives it anyway (allowed: nothing is lost).

No entry point installs it; a test puts it in a registry (`opsbook.testing.registry_with`)
to see what opsbook says about it (tests/unit/plugins/test_register_keys.py).
"""

from __future__ import annotations

from opsbook.plugin import ActionContext, Plugin, Result
from pydantic import BaseModel, ConfigDict, Field

plugin = Plugin("svcadm_legacy", "Sample plugin whose data reuses register's own keys.")


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="The service's name.")


@plugin.action(scalar="service", check=True, idempotent=True)
def restarts(ctx: ActionContext, args: Service) -> Result:
    """How often the service restarted (`changed` in its data: a key register: owns)."""
    return Result.ok(msg=f"{args.service} restarted twice", data={"service": args.service, "changed": 2})


@plugin.action(scalar="service", check=True, idempotent=True)
def plan(ctx: ActionContext, args: Service) -> Result:
    """What a restart would change, as a diff also kept in its data (the same value)."""
    text = f"-{args.service}: online\n+{args.service}: restarting\n"
    return Result.ok(msg="would restart", diff=text, data={"service": args.service, "diff": text})
