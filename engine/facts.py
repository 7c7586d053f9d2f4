"""Facts gathered before a node: `gather_facts:` on a step, or on the runbook.

A node whose step (or runbook) asks for facts, on a host the run has no gathered facts
of yet, first runs the action that speaks Ansible's `setup` module (`ssh.setup` of the
built-in plugins: one round trip over the host's connection) with `cache: true`. The
facts become the node's own template variables at once, and its outcome's facts, so that
the executor records them on the host (later nodes read them, `hostvars[h]` shows them)
and the journal keeps them with the node: a resumed run reads them back and does not
gather again. The engine knows no connection: it asks the registry who speaks `setup`.
A runbook's `gather_facts: true` is also a first step, `Gathering Facts` (`with_gathering`,
added when the runbook loads), which compile makes a barrier (see opsbook.flow). That step,
and any `setup` step, gathers by running (`gathers_itself`): nothing is gathered before it.
A node's duration includes the gathering done for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opsbook.errors import Position
from opsbook.flow import GATHERING_ID
from opsbook.plugin import ActionContext, Result
from opsbook.yamlsrc import PosDict, PosList


# The variables gathering defines (what `opsbook check` accepts after gather_facts or a setup step).
FACTS = ("hostname", "nodename", "fqdn", "domain", "default_ipv4", "all_ipv4_addresses", "interfaces",
         "mounts", "memtotal_mb", "memfree_mb", "swaptotal_mb", "swapfree_mb", "processor_vcpus",
         "distribution", "distribution_version", "distribution_major_version", "distribution_release",
         "os_family", "system", "kernel", "architecture", "machine", "date_time", "uptime_seconds", "service_mgr")
FACT_NAMES = frozenset({"ansible_facts", *(f"ansible_{name}" for name in FACTS)})
SETUP_ACTION = "ssh.setup"  # the built-in action that speaks Ansible's setup


def gathers(runbook: Any) -> bool:
    """Whether a run of the runbook may gather facts (gather_facts anywhere, or a setup step)."""
    steps = runbook.all_steps() + list(runbook.handlers)
    return runbook.gather_facts or any(s.gather_facts or (s.action is not None and s.action.name == SETUP_ACTION)
                                       for s in steps)


def wanted(step: Any, runbook: Any, facts: Mapping[str, Any]) -> bool:
    """Whether a node of `step` must gather on a host whose facts are `facts`."""
    asked = step.gather_facts if step.gather_facts is not None else runbook.gather_facts
    known = facts.get("ansible_facts")
    return bool(asked) and not (isinstance(known, Mapping) and known.get("module_setup"))


def gathers_itself(step: Any, registry: Any) -> bool:
    """Whether the step's own action is the one that gathers (the `Gathering Facts` step, a
    `setup` step): it gathers when it runs, and its duration is the gathering's."""
    return step.action is not None and step.action.name == registry.ansible_action("setup")


def gather(svc: Any, host: str, cancel: Any, deadline: float | None) -> Result:
    """Gather `host`'s facts with the registry's `setup` action (a failed Result says why)."""
    name = svc.registry.ansible_action("setup")
    spec = svc.registry.action(name) if name else None
    if spec is None:
        return Result.failed("gather_facts: no installed plugin gathers facts (Ansible's setup module)")
    ctx = ActionContext(host=svc.hostinfo(host), step_name="Gathering Facts", check_mode=False,
                        timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
                        cancelled=cancel, secrets=svc.secrets, run_id=svc.run_id,
                        runbook_dir=svc.runbook_dir, variables={}, _connect=svc.pool.get,
                        _lookup_host=svc.hostinfo)
    try:
        result = spec.fn(ctx, spec.parse_args({"cache": True}))
    except Exception as exc:  # noqa: BLE001 - a connection problem is the node's failure
        return Result.failed(f"gathering facts on {host} failed: {exc}")
    if result.failed_:
        result.msg = f"gather_facts: {result.msg}"
    return result


def landed(outcome: Any, gathered: Mapping[str, Any] | None) -> Any:
    """The node's outcome with the facts gathered for it: recorded on the host and in the journal."""
    if gathered:
        outcome.result.facts = {**gathered, **outcome.result.facts}
    return outcome


GATHERING = "Gathering Facts"


def with_gathering(steps: PosList, pos: Position) -> PosList:
    """`gather_facts: true`: the steps after a first step gathering facts on the runbook's hosts."""
    step, args = PosDict(pos), PosDict(pos)
    args["cache"] = True
    args.key_pos["cache"] = args.value_pos["cache"] = pos
    for key, value in (("name", GATHERING), ("id", GATHERING_ID), ("setup", args)):
        step[key] = value
        step.key_pos[key] = step.value_pos[key] = pos
    out = PosList(steps.pos)
    for item, where in [(step, pos), *zip(steps, steps.item_pos)]:
        out.append(item)
        out.item_pos.append(where)
    return out
