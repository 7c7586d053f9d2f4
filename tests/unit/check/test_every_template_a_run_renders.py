"""`check` reads every template a run will render (issue 31 items 2 and 4): a typo inside a
`rollback:` is found at the rollback's line, not while rolling back; `approve:` messages
and `when:` too; unbounded steps on an RTO's critical path are a warning."""

from __future__ import annotations

from opsbook.check import check_files

RB = """opsbook: 1
name: t
vars: {primary_addr: 10.0.0.1}
steps:
  - name: promote
    approve: "Promote {{ primary_adr }}?"
    when: standby_redy
    local.command: echo promote
    rollback:
      local.command: "echo {{ primary_adrr }}"
"""


def _errors(tmp_path, registry, text):
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    (report,) = check_files([str(path)], registry, [])
    return [(d.position.line, d.position.column, d.severity, d.message) for d in report.diagnostics]


def test_a_typo_in_a_rollback_an_approval_or_a_when_is_an_error_at_its_place(tmp_path, registry):
    found = _errors(tmp_path, registry, RB)
    typo = ('step "promote": undefined variable "primary_adrr" in \'echo {{ primary_adrr }}\' '
            '(did you mean "primary_addr"?)')
    assert (10, 7, "error", typo) in found
    assert any(line == 6 and "primary_adr\"" in msg for line, _, _, msg in found), found  # approve:'s own line
    assert any("standby_redy" in msg for *_, msg in found), found


def test_an_unbounded_step_on_the_rto_path_is_a_warning_without_the_policy(tmp_path, registry):
    text = """opsbook: 1
name: t
phase: first-response
objectives: {rto: 1m}
steps:
  - name: restart
    marks: [mitigation]
    local.command: echo restart
  - name: later
    local.command: echo later
"""
    found = _errors(tmp_path, registry, text)
    # one warning per unbounded step, at the step's line; "later" runs after the RTO ends
    message = ('unbounded step on the critical path: "restart" has no timeout of its own, '
               "and the RTO (60s) is measured through it [critical-path-timeout]")
    assert found == [(6, 5, "warning", message)]
