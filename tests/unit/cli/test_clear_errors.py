"""Clear errors instead of internal errors (issue 16, item 11): each case used to end in exit 70
("internal error (a bug in opsbook)") or in a wrong result; now a tired on-call engineer gets
exit 2 and one line saying what is wrong."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click
import pytest

from opsbook.cli import main
from opsbook_lab.pytest_plugin import opsbook

RUNBOOK = """
opsbook: 1
name: t
params:
  d: {type: dict, required: false}
steps:
  - name: hello
    local.command: echo hi
"""


@pytest.fixture
def cli(tmp_path):
    """`opsbook ARGS` run in tmp_path, with a journal of its own."""
    return lambda *args: opsbook(tmp_path, *args, cwd=tmp_path)


def _one_clear_line(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- -e nesting


@pytest.mark.parametrize("form", ["json", "param", "file"])
def test_deeply_nested_extra_vars_are_refused_in_one_line(cli, tmp_path, form):
    deep = '{"a": ' + "[" * 20000 + "]" * 20000 + "}"
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    if form == "json":
        arg = deep
    elif form == "param":
        arg = f"d={deep}"
    else:
        (tmp_path / "deep.yaml").write_text("d: " + "[" * 5000 + "]" * 5000 + "\n")
        arg = "@deep.yaml"
    for command in ("plan", "run"):
        proc = cli(command, str(rb), "-e", arg)
        line = _one_clear_line(proc, "nested more than 64 levels deep")
        assert len(line) < 300  # the value is clipped, not printed whole


def test_nesting_up_to_the_limit_is_accepted(cli, tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    proc = cli("plan", str(rb), "-e", json.dumps({"d": {"x": [[[1]]]}}))
    assert proc.returncode == 0, proc


# --------------------------------------------------------------------------- every -o


def _output_options() -> dict[str, list[str]]:
    """Every option of every command that names a file opsbook writes."""
    found = {}
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and ({"-o", "--output", "--junit"} & set(param.opts)):
                found[name] = param.opts
    return found


def test_the_output_options_are_the_ones_tested_below():
    assert set(_output_options()) == {"check", "graph", "report", "evidence", "schema"}


@pytest.mark.parametrize("case", ["missing folder", "a folder", "a folder with a slash", "parent is a file",
                                  "unwritable"])
def test_every_output_option_refuses_a_bad_path_in_one_line(cli, tmp_path, case):
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    assert cli("run", str(rb)).returncode == 0
    (tmp_path / "a-file").write_text("")
    path = {"missing folder": str(tmp_path / "nope" / "out"), "a folder": str(tmp_path),
            "a folder with a slash": f"{tmp_path}/", "parent is a file": str(tmp_path / "a-file" / "out"),
            "unwritable": "/proc/opsbook-out"}[case]
    argv = {"check": ["check", str(rb), "--junit", path], "graph": ["graph", str(rb), "-o", path],
            "report": ["report", "last", "-o", path], "evidence": ["evidence", "last", "--archive", "-o", path],
            "schema": ["schema", "-o", path]}
    assert set(argv) == set(_output_options())
    for command, args in argv.items():
        proc = cli(*args)
        assert proc.stdout == "", (command, proc.stdout)  # refused before any work
        _one_clear_line(proc, f"error: cannot write {path}:")


def test_output_files_are_private_and_replace_the_old_one(cli, tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    assert cli("run", str(rb)).returncode == 0
    out = tmp_path / "report.md"
    out.write_text("old")
    assert cli("report", "last", "-o", str(out)).returncode == 0
    assert out.read_text().startswith("#") and (out.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temp file left


# --------------------------------------------------------------------------- evidence names


@pytest.mark.parametrize("name", ["", ".", "sub/", "sub/..", "  "])
def test_an_evidence_name_that_is_a_folder_is_refused_and_breaks_nothing(load, run, journal, tmp_path, name):
    with pytest.raises(Exception, match="is not a file name"):
        load(f"""
            opsbook: 1
            name: t
            steps:
              - local.collect: {{cmd: "echo x", name: "{name}"}}
            """)
    summary = run(f"""
        opsbook: 1
        name: t
        vars: {{n: "{name}"}}
        steps:
          - name: first
            local.collect: {{cmd: "echo first", name: first.txt}}
          - name: bad
            local.collect: {{cmd: "echo bad", name: "{{{{ n }}}}"}}
            ignore_errors: true
          - name: after
            local.collect: {{cmd: "echo after", name: after.txt}}
        """)
    nodes = journal.nodes(summary.run_id)
    assert nodes["bad@localhost"].status == "failed"
    assert f'name: Value error, "{name}" is not a file name (e.g. ps.txt)' in nodes["bad@localhost"].msg
    folder = tmp_path / "runs" / summary.run_id / "evidence" / "localhost"
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == ["after.txt", "first.txt"]
    assert summary.status == "succeeded"


@pytest.mark.parametrize("relative", ["", " ", "web1/", "web1/.", "web1/..", "web1/a/..", ".", "./"])
def test_no_action_can_write_evidence_over_a_folder(tmp_path, relative):
    """The same rule for every action (docker.logs, k8s events, ssh.fetch dest...): safe_join."""
    from opsbook.errors import UserError
    from opsbook.paths import safe_join

    (tmp_path / "web1").mkdir()
    with pytest.raises(UserError, match="names a folder|is empty|must not contain"):
        safe_join(tmp_path, relative)


def test_an_evidence_name_that_is_an_existing_folder_is_refused(run, journal, tmp_path):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - local.collect: {cmd: "echo x", name: logs/app.txt}
          - name: over the folder
            local.collect: {cmd: "echo y", name: logs}
            ignore_errors: true
        """)
    node = journal.nodes(summary.run_id)["over-the-folder@localhost"]
    assert node.status == "failed" and 'evidence path "localhost/logs" is a folder' in node.msg


# --------------------------------------------------------------------------- chdir


@pytest.mark.parametrize("action", ["local.command", "local.shell", "ssh.command", "ssh.shell"])
def test_a_missing_chdir_says_so_and_changes_nothing(run, journal, tmp_path, action):
    missing = tmp_path / "no-such-folder"
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: box
        steps:
          - name: in a folder
            {action}: {{cmd: "touch {tmp_path}/ran", chdir: "{missing}"}}
            ignore_errors: true
        """, inventory="box ansible_connection=local\n")
    node = journal.nodes(summary.run_id)["in-a-folder@box"]
    assert node.status == "failed" and not node.changed
    assert f"chdir {missing}" in node.msg and "did not run" in node.msg, node.msg
    assert "command not found" not in node.msg
    assert not (tmp_path / "ran").exists()


def test_a_chdir_that_exists_still_works(run, journal, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: box
        steps:
          - {{name: local, local.command: {{cmd: pwd, chdir: "{tmp_path}"}}, register: a}}
          - {{name: ssh, ssh.command: {{cmd: pwd, chdir: "{tmp_path}"}}, register: b}}
        """, inventory="box ansible_connection=local\n")
    nodes = journal.nodes(summary.run_id)
    assert summary.status == "succeeded"
    assert nodes["local@box"].stdout.strip() == nodes["ssh@box"].stdout.strip() == str(tmp_path)


# --------------------------------------------------------------------------- when: "{{ }}"


WHEN = """
opsbook: 1
name: t
vars: {x: 1}
steps:
  - name: runs
    local.command: echo runs
    when: "{{ x == 1 }}"
  - name: skipped
    local.command: echo skipped
    when: "{{ x == {'a': 2} }}"
  - name: asserted
    local.assert: {that: ["{{ x == 1 }}"]}
"""


def test_a_condition_in_braces_is_accepted_by_check_with_a_warning_and_by_run(cli, tmp_path):
    rb = tmp_path / "when.yaml"
    rb.write_text(WHEN)
    checked = cli("check", "--no-policy", str(rb))  # the language alone: no approvals, no rollbacks
    assert checked.returncode == 0, checked
    assert 'when.yaml:6:5: warning: when: "{{ x == 1 }}": conditions are expressions already' in checked.stderr
    assert "hint: write when: x == 1" in checked.stderr
    ran = cli("run", str(rb), "--format", "json")
    assert ran.returncode == 0, ran
    finished = {e["node"]: e["status"] for e in map(json.loads, ran.stdout.splitlines())
                if e["event"] == "node_finished"}
    assert finished == {"runs@localhost": "ok", "skipped@localhost": "skipped", "asserted@localhost": "ok"}




# --------------------------------------------------------------------------- templates that cannot compile


def test_a_misspelled_filter_stops_run_and_plan_before_anything_starts(cli, tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: t
steps:
  - name: first
    local.shell: "echo ran > {tmp_path}/marker"
  - name: second
    local.command: "echo {{{{ 'x' | uper }}}}"
""")
    for command in ("plan", "run"):
        _one_clear_line(cli(command, str(rb)), "rb.yaml:7:", 'no filter named "uper" (did you mean "upper"?)')
    assert not (tmp_path / "marker").exists(), "the first step ran before the typo was found"
