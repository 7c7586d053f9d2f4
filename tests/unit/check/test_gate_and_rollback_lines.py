"""`opsbook check` names the line of a faulty template inside `approve:` and `rollback:`
(outside review, item 4): it named the action's line, several lines away from the typo."""

from __future__ import annotations

from opsbook_lab.pytest_plugin import opsbook

RUNBOOK = """opsbook: 1
name: lines
params:
  target: {type: string, default: web1}
steps:
  - name: promote
    local.command: "true"
    approve: "Promote {{ nosuch }}?"
    rollback:
      local.shell:
        chdir: /tmp
        cmd: "echo {{ missing_var }}"
  - name: switch
    local.command: "true"
    approve: "Switch {{ params.target }"
    rollback:
      local.command:
        cmd:
          - echo
          - "{{ broken( }}"
  - name: guarded
    block:
      - name: inside
        local.command: "true"
    approve: "Go on {{ params.targte }}?"
"""


def test_undefined_names_and_syntax_errors_in_approve_and_rollback_point_at_their_own_line(tmp_path):
    rb = tmp_path / "lines.yaml"
    rb.write_text(RUNBOOK)
    done = opsbook(tmp_path, "check", str(rb), "--no-policy")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()

    def at(line: int, *words: str) -> bool:
        return any(text.startswith(f"{rb}:{line}:") and all(w in text for w in words) for text in lines)

    assert at(8, 'undefined variable "nosuch"'), done.stderr  # approve:, not the action's line 7
    assert at(12, 'undefined variable "missing_var"'), done.stderr  # the cmd: line, not local.shell:'s
    assert at(15, "template syntax error", "Switch {{ params.target }"), done.stderr
    assert at(20, "template syntax error", "broken("), done.stderr  # the list item's own line
    assert at(25, "params.targte"), done.stderr  # a block's approve: its own line too
    assert "Traceback" not in done.stderr


CONDITIONS = """opsbook: 1
name: conditions
steps:
  - name: guarded
    local.shell:
      cmd: "echo {{ undefined_in_arg }}"
    when:
      - true
      - undefined_in_when | bool
    failed_when: undefined_in_failed_when > 3
    changed_when: "{{ undefined_in_changed_when }}"
    until: undefined_in_until
    retries: 2
  - name: grouped
    when: undefined_on_block
    block:
      - name: inner
        local.noop: {}
"""


def test_undefined_names_in_conditions_and_arguments_point_at_their_own_line(tmp_path):
    """The same for `when`, `failed_when`, `changed_when`, `until` and an action's argument:
    each undefined name is reported at the line it is written on (a list item at its item)."""
    rb = tmp_path / "conditions.yaml"
    rb.write_text(CONDITIONS)
    done = opsbook(tmp_path, "check", str(rb), "--no-policy")
    assert done.returncode == 1, done.stdout + done.stderr
    text = done.stdout + done.stderr
    lines = {}
    for line in text.splitlines():
        if "undefined variable" in line:
            where, _, rest = line.partition(": error: ")
            name = rest.split('"')[3]
            lines[name] = int(where.split(":")[1])
    assert lines == {"undefined_in_arg": 6, "undefined_in_when": 9, "undefined_in_failed_when": 10,
                     "undefined_in_changed_when": 11, "undefined_in_until": 12, "undefined_on_block": 15}, text
