"""`opsbook check` counts actions' own `timeout:` arguments against the RTO objective."""

from __future__ import annotations

from opsbook.check import check_files
from opsbook.registry import Registry


def _warnings(tmp_path, text: str) -> list[str]:
    rb = tmp_path / "rb.yaml"
    rb.write_text(text)
    (report,) = check_files([str(rb)], Registry.from_entry_points(), [])
    return [d.message for d in report.diagnostics if d.severity == "warning" and d.rule != "critical-path-timeout"]


def test_an_actions_timeout_argument_counts_like_a_step_timeout(tmp_path):
    found = _warnings(
        tmp_path,
        "opsbook: 1\nname: t\nobjectives: {rto: 10m}\n"
        "params:\n  drain_timeout: {type: duration, default: 8m}\n"
        "steps:\n"
        "  - k8s.drain: {node: n1, timeout: '{{ params.drain_timeout }}'}\n"
        "  - k8s.wait: {kind: deployment, name: web, condition: Available, timeout: 3m}\n",
    )
    assert found == [
        "the timeouts on the critical path add up to 11m00s, more than the RTO objective of 10m00s"
    ]


def test_the_shorter_of_step_and_action_timeout_counts(tmp_path):
    assert not _warnings(
        tmp_path,
        "opsbook: 1\nname: t\nobjectives: {rto: 2m}\nsteps:\n"
        "  - k8s.wait: {kind: deployment, name: web, condition: Available, timeout: 10m}\n"
        "    timeout: 1m\n"
        "  - {local.wait: 1, timeout: 50s}\n",
    )


def test_a_timeout_only_known_at_run_time_counts_nothing(tmp_path):
    assert not _warnings(
        tmp_path,
        "opsbook: 1\nname: t\nobjectives: {rto: 1m}\nsteps:\n"
        "  - name: n\n    local.command: 'echo 1h'\n    register: n\n"
        "  - k8s.wait: {kind: deployment, name: web, condition: Available, timeout: '{{ n.stdout }}'}\n",
    )


def test_an_actions_declared_default_counts_when_its_timeout_is_left_out(tmp_path):
    # k8s.wait declares timeout: 5m; k8s.rollout_undo's timeout bounds only a wait it does not do
    found = _warnings(
        tmp_path,
        "opsbook: 1\nname: t\nobjectives: {rto: 4m}\nsteps:\n"
        "  - k8s.wait: {kind: deployment, name: web, condition: Available}\n",
    )
    assert found == ["the timeouts on the critical path add up to 5m00s, more than the RTO objective of 4m00s"]
    assert not _warnings(
        tmp_path,
        "opsbook: 1\nname: t\nobjectives: {rto: 4m}\nsteps:\n"
        "  - k8s.rollout_undo: {kind: deployment, name: web}\n    timeout: 30s\n",
    )


def test_steps_after_the_first_verification_are_not_in_the_rto_sum(tmp_path):
    text = ("opsbook: 1\nname: t\nobjectives: {rto: 1m}\nsteps:\n"
            "  - {name: fix, local.command: 'true', timeout: 20s, marks: [mitigation]}\n"
            "  - {name: verify, local.wait: 1, timeout: 20s, marks: [verification]}\n"
            "  - {name: tidy up, local.command: 'true', timeout: 10m}\n")
    assert not _warnings(tmp_path, text)
    unmarked = text.replace("marks: [verification]", "marks: []").replace("marks: [mitigation]", "marks: []")
    assert _warnings(tmp_path, unmarked) == [  # nothing marked: the RTO ends with the run
        "the timeouts on the critical path add up to 10m40s, more than the RTO objective of 60.0s"]
