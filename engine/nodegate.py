"""The approval gate in front of one node's action: what the approver is shown, and the
decision recorded.

Owns asking: the prompt and the action's arguments rendered for the node (for each item
of a loop that will run), hidden for a `no_log` step and redacted otherwise; for a block's
gate, the block's steps and where each runs; the request handed to opsbook.gates (which
decides once per gate and host, and observes the run's stop), and the journal rows and
events of the request and the decision. Returns None when the step may act, else the
node's outcome: denied (failed), or not run because the gate was cancelled.
"""

from __future__ import annotations

from typing import Any

from opsbook.compile import Node
from opsbook.delegate import acting_host, delegate_host
from opsbook.errors import UserError
from opsbook.gates import ApprovalGates, ApprovalRequest
from opsbook.plugin import ActionSpec, Status
from opsbook.runtypes import NOT_RUN, Outcome, RunServices, outcome_of, user_message
from opsbook.secrets import HIDDEN
from opsbook.template import render
from opsbook.variables import render_args


class GateAsker:
    """Asks the approval gates of one run's nodes; `denied` lists the nodes refused."""

    def __init__(self, svc: RunServices, gates: ApprovalGates, control: Any) -> None:
        self.svc = svc
        self.gates = gates
        self.control = control  # the run's stop and why nothing new starts (noderun.RunControl)
        self.denied: list[str] = []  # nodes whose approval was refused
        self.started_by = ""  # who started the run (shown to approvers)
        self._blocks = {s.id: s for s in svc.plan.runbook.all_steps() if s.is_block}

    def ask(self, node: Node, spec: ActionSpec, ctx_vars: dict[str, Any],
            items: list[tuple[Any, Any]]) -> Outcome | None:
        """None when the step may act; else its outcome (denied, cancelled by a stop).

        A block's approval is asked once per host (see opsbook.gates); the block's later
        steps on that host reuse the decision. A loop is approved once per node, the
        approver shown the action rendered for each item that will run."""
        svc, step = self.svc, node.step
        try:
            prompt = str(render(step.approve, ctx_vars, pos=step.pos)) if step.approve else f"Run {step.name} on {node.host}?"
            args = (render_args(spec, step.action.args, ctx_vars, step.pos) if step.loop is None  # type: ignore[union-attr]
                    else [render_args(spec, step.action.args, {**ctx_vars, step.loop_var: item}, step.pos)  # type: ignore[union-attr]
                          for item, false in items if false is None])
        except UserError as exc:
            return outcome_of(Status.FAILED, user_message(exc))
        if step.no_log:  # neither shown to the approver nor recorded
            prompt, args = HIDDEN, HIDDEN
        block = self._blocks.get(step.approve_scope) if step.approve_scope else None
        request = ApprovalRequest(svc.run_id, node.id, step.id, step.name, node.host, svc.secrets.redact(prompt),
                                  spec.full_name, svc.secrets.redact_any(args),
                                  block_id=step.approve_scope, block_name=block.name if block else None,
                                  started_by=self.started_by, cancelled=self.control.stop,
                                  runs_on=acting_host(node, ctx_vars) if step.delegate_to else None,
                                  steps=gate_steps(block, ctx_vars) if block else ())

        def announce(req: ApprovalRequest) -> None:
            svc.journal.request_approval(svc.run_id, req.node_id, req.step_id, req.prompt, req.detail())
            svc.emit("approval_requested", node, prompt=req.prompt, action=req.action, args=req.args,
                     gate=req.gate, started_by=req.started_by, runs_on=req.runs_on, steps=list(req.steps))

        decision, asked = self.gates.decide(request, lambda: self.control.aborted, announce)
        if asked:
            who = decision.who if not decision.cancelled else f"cancelled: {decision.cancelled}"
            svc.journal.record_decision(svc.run_id, node.id, step.id, request.prompt,
                                        decision.approved, who, cancelled=bool(decision.cancelled))
            svc.emit("approval_decided", node, approved=decision.approved, who=who, gate=request.gate,
                     cancelled=bool(decision.cancelled))
        if decision.cancelled:
            if asked:  # kept in the events too: a resume asks the gate again and replaces its row
                svc.journal.event(svc.run_id, "gate cancelled", node.id, {"gate": request.gate, "why": decision.cancelled})
            return outcome_of(Status.SKIPPED, f"{NOT_RUN}the approval gate was cancelled ({decision.cancelled})")
        if not decision.approved:
            if asked:
                self.denied.append(node.id)
            return outcome_of(Status.FAILED, f"not approved ({decision.who})")
        return None


def gate_steps(block: Any, ctx_vars: dict[str, Any]) -> tuple[str, ...]:
    """What a block's approval covers: each of its steps, its action and where it runs."""
    out = []
    for child in block.block:
        where = ""
        if child.delegate_to:
            try:
                where = f" on {delegate_host(child, ctx_vars)}"
            except UserError:  # shown as written; the step fails with why when it runs
                where = f" on {child.delegate_to}"
        out.append(f"{child.name}: {child.action.name if child.action else 'block'}{where}")
    return tuple(out)
