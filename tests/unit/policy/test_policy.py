"""The policy layer of `opsbook check` (issue 31 item 1): each rule catches the removal of
the safety rail it guards, waivers name the rule, the project config turns rules off or
down to warnings, and `mutates` is right for shell and command actions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opsbook.check import check_files
from opsbook.errors import ValidationError
from opsbook.policy import RULE_IDS, PolicyConfig, step_mutates
from opsbook.policy_config import load_config

ROOT = Path(__file__).resolve().parents[3]

PROMOTE = """opsbook: 1
name: promote
phase: failover
objectives: {rto: 5m}
steps:
  - name: primary answers
    local.http: {url: "http://127.0.0.1:1/", timeout: 1}
    register: primary
    ignore_errors: true
  - name: promote the standby
    approve: "Promote?"
    marks: [mitigation]
    timeout: 30s
    local.command: /usr/local/bin/promote
    rollback:
      local.command: /usr/local/bin/demote
"""


def _rules(tmp_path: Path, registry, text: str, config: PolicyConfig | None = None) -> list[tuple[int, str, str]]:
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    (report,) = check_files([str(path)], registry, [], policy=config or PolicyConfig())
    return [(d.position.line, d.rule, d.severity) for d in report.diagnostics if d.rule]


def test_the_guarded_runbook_passes_the_default_policy(tmp_path, registry):
    assert _rules(tmp_path, registry, PROMOTE) == []


def test_removing_the_approval_is_caught_at_the_action(tmp_path, registry):
    text = PROMOTE.replace('    approve: "Promote?"\n', "")
    assert _rules(tmp_path, registry, text) == [(13, "mutation-gated", "error"), (13, "mitigation-approved", "error")]


def test_a_failover_mitigation_needs_an_approval_even_behind_an_assert(tmp_path, registry):
    with_assert = PROMOTE.replace('  - name: promote the standby\n    approve: "Promote?"\n',
                                  '  - name: primary is down\n    local.assert: {that: ["primary.failed"]}\n'
                                  '  - name: promote the standby\n')
    assert _rules(tmp_path, registry, with_assert) == [(15, "mitigation-approved", "error")]
    first_response = with_assert.replace("phase: failover", "phase: first-response")
    assert _rules(tmp_path, registry, first_response) == []


def test_a_when_or_an_assert_before_the_step_is_a_precondition(tmp_path, registry):
    with_when = PROMOTE.replace('    approve: "Promote?"\n', "    when: primary.failed\n").replace(
        "phase: failover", "phase: first-response")
    assert _rules(tmp_path, registry, with_when) == []
    with_assert = PROMOTE.replace('  - name: promote the standby\n    approve: "Promote?"\n',
                                  '  - name: primary is down\n    local.assert: {that: ["primary.failed"]}\n'
                                  '  - name: promote the standby\n').replace("phase: failover", "phase: first-response")
    assert _rules(tmp_path, registry, with_assert) == []


def test_removing_the_rollback_objectives_mitigation_or_timeout_is_caught(tmp_path, registry):
    no_rollback = PROMOTE.replace("    rollback:\n      local.command: /usr/local/bin/demote\n", "")
    assert _rules(tmp_path, registry, no_rollback) == [(14, "rollback", "error")]
    no_objectives = PROMOTE.replace("objectives: {rto: 5m}\n", "")
    assert _rules(tmp_path, registry, no_objectives) == [(1, "objectives", "error")]
    no_mark = PROMOTE.replace("    marks: [mitigation]\n", "")
    assert ("objectives" in {r for _, r, _ in _rules(tmp_path, registry, no_mark)})
    no_timeout = PROMOTE.replace("    timeout: 30s\n", "")
    assert _rules(tmp_path, registry, no_timeout) == [(10, "critical-path-timeout", "error")]


def test_a_stop_without_keep_healthy_and_a_serial_rollout_without_max_fail(tmp_path, registry):
    text = """opsbook: 1
name: stop
steps:
  - name: stop the web server
    approve: "Stop?"
    hosts: localhost
    docker.container: {name: web, state: stopped}
  - name: start it
    approve: "Start?"
    docker.container: {name: web, state: started}
  - name: rolling
    serial: 2
    block:
      - name: reload
        approve: "Reload?"
        ssh.service: {name: nginx, state: reloaded}
"""
    assert _rules(tmp_path, registry, text) == [(7, "keep-healthy", "error"), (11, "serial-max-fail", "error")]


def test_a_waiver_names_the_rule_and_holds_for_its_step_only(tmp_path, registry):
    text = PROMOTE.replace("    rollback:\n      local.command: /usr/local/bin/demote\n", "").replace(
        "  - name: promote the standby\n", "  - name: promote the standby  # noqa: rollback promoting twice is harmless\n")
    assert _rules(tmp_path, registry, text) == []
    other_rule = text.replace("# noqa: rollback", "# noqa: keep-healthy")
    assert _rules(tmp_path, registry, other_rule) == [(14, "rollback", "error")]


def test_a_waiver_on_a_block_holds_inside_it(tmp_path, registry):
    text = """opsbook: 1
name: blocky
steps:
  - name: changes
    # noqa: rollback scratch files in a temporary folder
    block:
      - name: one
        approve: "Go?"
        local.command: touch /tmp/x
"""
    assert _rules(tmp_path, registry, text) == []


def test_wrong_waivers_are_warnings_with_did_you_mean(tmp_path, registry):
    path = tmp_path / "rb.yaml"
    path.write_text(PROMOTE.replace("  - name: promote the standby\n",
                                    "  - name: promote the standby  # noqa: rollbak\n"))
    (report,) = check_files([str(path)], registry, [], policy=PolicyConfig())
    messages = [(d.position.line, d.severity, d.message) for d in report.diagnostics]
    assert (10, "warning", '# noqa: no policy rule "rollbak" (did you mean "rollback"?)') in messages
    assert (10, "warning", "# noqa: rollbak gives no reason") in messages


def test_the_config_disables_and_downgrades_rules(tmp_path, registry):
    text = PROMOTE.replace('    approve: "Promote?"\n', "").replace("objectives: {rto: 5m}\n", "")
    config = tmp_path / ".opsbook.yaml"
    config.write_text("policy:\n  disable: [objectives, mitigation-approved]\n  warn: [mutation-gated]\n")
    assert _rules(tmp_path, registry, text, load_config(config)) == [(12, "mutation-gated", "warning")]


def test_a_config_with_an_unknown_rule_is_an_error_at_its_line(tmp_path):
    config = tmp_path / ".opsbook.yaml"
    config.write_text("policy:\n  disable:\n    - objectivs\n  warm: []\n")
    with pytest.raises(ValidationError) as exc:
        load_config(config)
    found = [(d.position.line, d.message) for d in exc.value.diagnostics]
    assert (3, 'policy.disable: no rule "objectivs" (did you mean "objectives"?)') in found
    assert (4, 'policy: unknown key "warm" (did you mean "warn"?)') in found


@pytest.mark.parametrize("action", ["ssh.shell", "ssh.command", "ssh.script", "local.shell", "local.command",
                                    "local.script", "docker.exec"])
def test_shell_and_command_actions_mutate_unless_marked_read_only(registry, action):
    from opsbook.load import RunbookLoader

    def step(extra: str):
        text = f"opsbook: 1\nname: m\nsteps:\n  - name: s\n    {action}: x\n{extra}"
        return RunbookLoader(registry).load_text(text, "m.yaml").steps[0]

    assert step_mutates(step(""), registry)
    assert not step_mutates(step("    changed_when: false\n"), registry)
    assert not step_mutates(step("    check_mode: true\n"), registry)


def test_plugins_json_says_shell_mutates_and_service_disrupts():
    out = subprocess.run([sys.executable, "-m", "opsbook", "plugins", "--format", "json"], capture_output=True,
                         text=True, check=True)
    data = json.loads(out.stdout)
    assert data["ssh"]["actions"]["shell"]["mutates"] is True
    assert data["ssh"]["actions"]["service"]["disrupts"] is True
    assert data["probe"]["actions"]["http"]["mutates"] is False


def test_the_library_passes_the_default_policy(registry):
    reports = check_files([str(ROOT / "runbooks")], registry, [], policy=PolicyConfig())
    problems = [str(d) for r in reports for d in r.diagnostics]
    library = [p for p in (ROOT / "runbooks").rglob("*.y*ml") if "roles" not in p.parts]
    assert len(reports) == len(library) >= 18 and not problems, problems


def test_every_rule_is_documented_with_a_waiver_example():
    text = (ROOT / "docs" / "policy.md").read_text()
    for rule in RULE_IDS:
        assert f"### `{rule}`" in text and f"# noqa: {rule} " in text, rule


UNGATED = "opsbook: 1\nname: u\nsteps:\n  - name: touch\n    local.command: touch /tmp/x\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook", "check", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def test_the_cli_finds_the_project_config_upwards_and_takes_one_given(tmp_path):
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "u.yaml").write_text(UNGATED)
    (tmp_path / ".opsbook.yaml").write_text("policy:\n  disable: [serial-max-fail]\n")
    failed = _cli("u.yaml", cwd=tmp_path / "runbooks")  # with a project config, an ad-hoc runbook is held to it
    assert failed.returncode == 1
    assert "u.yaml:5:5: error: step \"touch\" changes state (local.command) and has no rollback [rollback]" \
        in failed.stderr
    (tmp_path / ".opsbook.yaml").write_text("policy:\n  warn: [rollback, mutation-gated]\n")
    relaxed = _cli("u.yaml", cwd=tmp_path / "runbooks")
    assert relaxed.returncode == 0 and "warning: step \"touch\" changes state" in relaxed.stderr
    assert _cli("--strict", "u.yaml", cwd=tmp_path / "runbooks").returncode == 1
    other = tmp_path / "only-gated.yaml"
    other.write_text("policy:\n  enable: [keep-healthy]\n")
    assert _cli("--config", str(other), "u.yaml", cwd=tmp_path / "runbooks").returncode == 0
    assert _cli("--no-policy", "runbooks/u.yaml", cwd=tmp_path).returncode == 0


def test_a_bad_config_is_a_one_line_error_with_its_line_and_no_traceback(tmp_path):
    (tmp_path / "u.yaml").write_text(UNGATED)
    (tmp_path / ".opsbook.yaml").write_text("policy:\n  disable: [rolback]\n")
    done = _cli("u.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f'{tmp_path / ".opsbook.yaml"}:2:13: error: policy.disable: no rule "rolback" '
                                  '(did you mean "rollback"?)')
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("action", "command", "disrupts"), [
    ("ssh.command", '["lb-backend", "drain", "web1"]', True),
    ("ssh.shell", '"systemctl stop nginx"', True),
    ("local.command", '"kubectl cordon worker-2"', True),
    ("docker.exec", '"nginx -s stop"', True),
    ("ssh.shell", '"lb-backend list"', False),
    ("ssh.command", '"{{ params.cmd }}"', False),  # unknown before the run: keep_healthy is the author's call
])
def test_a_command_line_that_drains_or_stops_disrupts(registry, action, command, disrupts):
    from opsbook.load import RunbookLoader
    from opsbook.policy import step_disrupts

    text = f"opsbook: 1\nname: m\nparams:\n  cmd: {{default: x}}\nsteps:\n  - name: s\n    {action}: {command}\n"
    step = RunbookLoader(registry).load_text(text, "m.yaml").steps[0]
    assert step_disrupts(step, registry) is disrupts


FENCE_THEN_PROMOTE = """opsbook: 1
name: fence-then-promote
phase: failover
objectives: {rto: 5m}
steps:
  - name: fence the old primary
    hosts: db1
    approve: "Fence db1?"
    timeout: 10s
    local.command: /usr/local/bin/fence
    rollback: {local.command: /usr/local/bin/unfence}
  - name: promote the standby
    hosts: db2
    approve: "Promote db2?"
    marks: [mitigation]
    timeout: 30s
    local.command: /usr/local/bin/promote
    rollback: {local.command: /usr/local/bin/demote}
"""


def test_an_approval_of_another_host_does_not_approve_the_mitigation(tmp_path, registry):
    """The usual failover shape: the fence of the old primary keeps its approval, the
    promotion of the standby loses its own: caught (an approval on db1 decides nothing
    about db2); an approval earlier on the standby's own host still counts."""
    inv = tmp_path / "inv.ini"
    inv.write_text("db1 ansible_connection=local\ndb2 ansible_connection=local\n")

    def rules(text: str) -> list[tuple[int, str, str]]:
        path = tmp_path / "rb.yaml"
        path.write_text(text)
        (report,) = check_files([str(path)], registry, [str(inv)], policy=PolicyConfig())
        return [(d.position.line, d.rule, d.severity) for d in report.diagnostics if d.rule]

    assert rules(FENCE_THEN_PROMOTE) == []
    removed = FENCE_THEN_PROMOTE.replace('    approve: "Promote db2?"\n', "")
    assert (16, "mitigation-approved", "error") in rules(removed)  # at its action
    earlier_on_db2 = removed.replace("  - name: promote the standby\n",
                                     '  - name: the standby is ready\n    hosts: db2\n    approve: "Go on with db2?"\n'
                                     "    local.assert: {that: [true]}\n  - name: promote the standby\n")
    assert not [r for r in rules(earlier_on_db2) if r[1] == "mitigation-approved"]
