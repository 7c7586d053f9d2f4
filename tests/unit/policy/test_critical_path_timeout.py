"""The critical-path-timeout rule (issue 31 items 1 and 2): every step the RTO is measured
through has a bound of its own; a whole-run timeout is not one."""

from __future__ import annotations

from pathlib import Path

from opsbook.check import check_files
from opsbook.policy import PolicyConfig

HEAD = "opsbook: 1\nname: t\nphase: first-response\nobjectives: {rto: 10m}\n"
STEPS = """steps:
  - name: look
    local.command: "uptime"
    changed_when: false
  - name: fix  # noqa: rollback, mutation-gated a test
    local.command: "true"
    timeout: 20s
    marks: [mitigation]
  - name: verify
    local.command: "true"
    changed_when: false
    until: result.rc == 0
    retries: 5
    marks: [verification]
    register: result
  - name: tidy up
    local.command: "true"
    changed_when: false
"""


def _unbounded(tmp_path: Path, registry, text: str, config: PolicyConfig | None = None) -> list[tuple[int, str]]:
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    (report,) = check_files([str(path)], registry, [], policy=config or PolicyConfig())
    return [(d.position.line, d.message) for d in report.diagnostics if d.rule == "critical-path-timeout"]


def test_each_unbounded_step_on_the_rtos_path_is_named_at_its_line(tmp_path, registry):
    found = _unbounded(tmp_path, registry, HEAD + STEPS)
    # "tidy up" runs after the verification that ends the RTO: not asked
    message = ('unbounded step on the critical path: "{}" has no timeout of its own, and the RTO (600s) is '
               "measured through it [critical-path-timeout]")
    assert found == [(6, message.format("look")), (13, message.format("verify"))]


def test_a_whole_run_timeout_is_not_a_per_step_bound_and_the_hint_says_why(tmp_path, registry):
    path = tmp_path / "rb.yaml"
    path.write_text(HEAD + "timeout: 30m\n" + STEPS)
    (report,) = check_files([str(path)], registry, [], policy=PolicyConfig())
    found = [d for d in report.diagnostics if d.rule == "critical-path-timeout"]
    assert [d.position.line for d in found] == [7, 14]
    assert "a whole-run timeout: is no per-step bound: one stuck step would eat the run's whole budget, and the " \
           "RTO sum cannot be computed" in found[0].hint


def test_retries_and_until_bound_the_attempts_not_one_attempt(tmp_path, registry):
    # "verify" retries 5 times, but each attempt may hang: only a timeout bounds it
    bounded = HEAD + STEPS.replace("    retries: 5\n", "    retries: 5\n    timeout: 5s\n").replace(
        '    local.command: "uptime"\n', '    local.command: "uptime"\n    timeout: 5s\n')
    assert _unbounded(tmp_path, registry, bounded) == []


def test_an_actions_own_timeout_bounds_it_unless_the_action_does_not_wait(tmp_path, registry):
    text = HEAD + """steps:
  - name: wait for it
    k8s.wait: {kind: deployment, name: web, condition: Available}
  - name: probe it
    probe.http: {url: "http://127.0.0.1:1/", timeout: 2s}
  - name: undo  # noqa: mutation-gated, mitigation-approved a test
    k8s.rollout_undo: {kind: deployment, name: web}
    marks: [mitigation]
"""
    assert [line for line, _ in _unbounded(tmp_path, registry, text)] == [10]  # wait: false, so its timeout waits for nothing
    waiting = text.replace("{kind: deployment, name: web}\n", "{kind: deployment, name: web, wait: true}\n")
    assert _unbounded(tmp_path, registry, waiting) == []


def test_a_waiver_with_a_reason_holds_and_without_the_rule_each_step_is_still_a_warning(tmp_path, registry):
    waived = HEAD + STEPS.replace("  - name: look\n", "  - name: look  # noqa: critical-path-timeout uptime returns\n")
    assert [line for line, _ in _unbounded(tmp_path, registry, waived)] == [13]
    minimal = PolicyConfig(profile="minimal")
    path = tmp_path / "rb.yaml"
    path.write_text(HEAD + STEPS)
    (report,) = check_files([str(path)], registry, [], policy=minimal)
    assert [(d.position.line, d.severity) for d in report.diagnostics if d.rule == "critical-path-timeout"] == [
        (6, "warning"), (13, "warning")]
