"""include_tasks / import_tasks and roles (opsbook.reuse): what they load to, how they run,
and every error naming the included file's line and the chain of includes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opsbook.errors import ValidationError
from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import opsbook

RB = """
opsbook: 1
name: reuse
steps:
{steps}
"""


def _messages(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [f"{Path(d.position.file).name}:{d.position.line}: {d.message}" for d in exc.value.diagnostics]


def test_import_tasks_is_a_block_of_the_files_steps_with_their_positions(load, write):
    write("tasks/check.yaml", """
        - name: first
          local.command: echo 1
        - name: second
          shell: echo 2
    """)
    rb = load(RB.format(steps="  - {name: checks, import_tasks: tasks/check.yaml, when: go, tags: [t]}"))
    (block,) = rb.steps
    first, second = block.block
    assert (first.name, first.pos.line, Path(first.pos.file).name) == ("first", 1, "check.yaml")
    assert second.action.name == "ssh.shell"  # an Ansible module name: the action that speaks it
    assert block.when == ("go",) and block.tags == ("t",)


def test_include_tasks_is_a_step_of_its_own_then_the_steps(load, write):
    write("tasks/check.yaml", "- {name: first, local.command: echo 1}\n")
    rb = load(RB.format(steps="  - {name: checks, include_tasks: tasks/check.yaml, when: go, tags: [t]}"))
    (block,) = rb.steps
    gate, inner = block.block
    assert gate.name == "checks" and gate.action.name == "local.noop" and gate.when == ("go",)
    assert gate.tags == ("t",) and inner.tags == ()  # Ansible: an include's tags are its own
    assert inner.when == (f"{gate.register} is not skipped",) and inner.block[0].name == "first"


def test_errors_in_an_included_file_name_its_line_and_the_chain(load, write):
    write("tasks/outer.yaml", "- {name: go deeper, include_tasks: inner.yaml}\n")
    write("tasks/inner.yaml", "- name: typo\n  local.comand: echo\n")
    with pytest.raises(ValidationError) as exc:
        load(RB.format(steps="  - {name: outer, import_tasks: tasks/outer.yaml}"))
    (message,) = _messages(exc)
    assert message.startswith('inner.yaml:2: plugin "local" has no action "comand"')
    assert "(included from " in message and "outer.yaml:1" in message and "rb.yaml:4" in message


def test_include_problems_are_one_line_each(load, write):
    write("tasks/self.yaml", "- {name: again, include_tasks: self.yaml}\n")
    write("tasks/bad.yaml", "- name: x\n  local.command: [unclosed\n")
    write("tasks/map.yaml", "name: not a list\n")
    with pytest.raises(ValidationError) as exc:
        load(RB.format(steps="""
  - {name: a, include_tasks: tasks/missing.yaml}
  - {name: b, include_tasks: "{{ os }}.yaml"}
  - {name: c, import_tasks: tasks/self.yaml, loop: [1, 2]}
  - {name: d, include_tasks: tasks/self.yaml}
  - {name: e, include_tasks: tasks/bad.yaml}
  - {name: f, include_tasks: tasks/map.yaml}
  - {name: g, include_role: {name: nowhere}}"""))
    text = "\n".join(_messages(exc))
    assert "include_tasks: no file" in text and "missing.yaml" in text
    assert 'is a template; opsbook reads included files when it loads the runbook' in text
    assert "import_tasks cannot loop (it is static); use include_tasks" in text
    assert "includes itself" in text
    assert "bad.yaml:3: invalid YAML" in text
    assert "map.yaml:1: an included file must be a list of steps" in text
    assert 'role "nowhere" not found' in text


@pytest.fixture
def roles(tmp_path, write):
    write("roles/web/tasks/main.yml", """
        - name: render
          template: {src: site.conf.j2, dest: "{{ out }}/site.conf", validate: "grep -q listen %s", backup: true}
          notify: reload web
        - name: say
          local.command: "echo {{ port }} {{ color }} {{ tier }}"
          register: said
    """)
    write("roles/web/templates/site.conf.j2", "listen {{ port }}\n")
    write("roles/web/defaults/main.yml", "port: 80\ncolor: blue\ntier: default\n")
    write("roles/web/vars/main.yml", "color: red\n")
    write("roles/web/meta/main.yml", "dependencies: [{role: base, base_msg: hi}]\n")
    write("roles/web/handlers/main.yml", "- {name: reload web, local.command: echo reload}\n")
    write("shared/base/tasks/main.yml", "- {name: base step, local.command: 'echo {{ base_msg }}'}\n")
    return tmp_path


def test_roles_run_in_order_with_their_precedence(roles, registry, monkeypatch, tmp_path):
    monkeypatch.setenv("OPSBOOK_ROLES_PATH", str(roles / "shared"))
    (tmp_path / "rb.yaml").write_text(f"""
opsbook: 1
name: roles
hosts: h
vars: {{out: "{roles}", tier: runbook}}
roles:
  - {{role: web, port: 8080}}
steps:
  - {{name: after, local.command: echo after}}
""")
    (tmp_path / "inv.ini").write_text("h ansible_connection=local color=green\n")
    done = opsbook(tmp_path, "run", "rb.yaml", "-i", "inv.ini", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    finished = [json.loads(line) for line in done.stdout.splitlines() if '"node_finished"' in line]
    assert [e["step"] for e in finished] == ["base : base step", "web : render", "web : say", "after",
                                           "web : reload web"]
    # defaults < inventory (color=green) < runbook vars (tier) < role vars (color: red) < role params (port)
    journal = Journal(tmp_path / "j.db")
    try:
        records = journal.nodes(journal.latest_run_id()).values()
        said = next(r.registered for r in records if r.step_id == "web-say")
    finally:
        journal.close()
    assert said["stdout"] == "8080 red runbook"
    assert (roles / "site.conf").read_text() == "listen 8080\n"


def test_resume_after_a_crash_inside_an_include(tmp_path):
    """opsbook is killed by a step of an included file; resume runs only what was not done."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "work.yaml").write_text(f"""
- name: before the crash
  local.shell: echo before >> {tmp_path}/log
- name: the crash
  local.shell:
    cmd: "echo crash >> {tmp_path}/log; test -e {tmp_path}/crashed || {{ touch {tmp_path}/crashed; kill -9 $PPID; sleep 5; }}"
- name: after the crash
  local.shell: echo after >> {tmp_path}/log
""")
    (tmp_path / "rb.yaml").write_text("""
opsbook: 1
name: crash-in-include
steps:
  - {name: work, include_tasks: tasks/work.yaml}
  - {name: last, local.shell: "echo last >> LOG"}
""".replace("LOG", f"{tmp_path}/log"))
    first = opsbook(tmp_path, "run", "rb.yaml", "--format", "json", cwd=tmp_path)
    assert first.returncode == -9, first.stderr
    run_id = next(json.loads(line)["run"] for line in first.stdout.splitlines() if '"run"' in line)
    resumed = opsbook(tmp_path, "resume", run_id, "--format", "json", "--confirm", "the-crash@localhost", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr
    assert (tmp_path / "log").read_text().split() == ["before", "crash", "crash", "after", "last"]


def test_ansible_module_names_are_checked_like_actions(load):
    with pytest.raises(ValidationError) as exc:
        load(RB.format(steps="""
  - name: edit
    lineinfile: {path: /etc/x, lien: y}
  - name: typo
    lineinfle: {path: /etc/x, line: y}"""))
    text = "\n".join(_messages(exc))
    assert 'rb.yaml:6: ssh.lineinfile: unknown argument "lien" (did you mean "line"?)' in text
    assert 'rb.yaml:8: unknown step key "lineinfle" (did you mean "lineinfile"?)' in text


def test_the_json_schema_knows_includes_roles_and_ansible_names(registry):
    import jsonschema
    from opsbook.schema import runbook_schema

    schema = runbook_schema(registry)
    jsonschema.validate({"opsbook": 1, "name": "x", "roles": ["web"], "steps": [
        {"name": "a", "ansible.builtin.lineinfile": {"path": "/x", "line": "y"}},
        {"name": "b", "include_tasks": "more.yaml", "when": "x"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"opsbook": 1, "name": "x", "steps": [{"lineinfle": {"path": "/x"}}]}, schema)


def test_apply_gives_keywords_to_a_dynamic_includes_steps_only(load, write):
    write("tasks/t.yaml", "- {name: inner, local.command: echo}\n")
    rb = load(RB.format(steps="  - {name: inc, include_tasks: {file: tasks/t.yaml, apply: {tags: [x], become: true}}}"))
    gate, inner = rb.steps[0].block
    (applied,) = inner.block
    assert gate.tags == () and applied.tags == ("x",) and applied.become is True
    with pytest.raises(ValidationError) as exc:
        load(RB.format(steps="  - {name: imp, import_tasks: {file: tasks/t.yaml, apply: {tags: [x]}}}"))
    assert "import_tasks does not take apply (it is static: its keywords apply already)" in "\n".join(_messages(exc))


def test_the_digest_covers_included_files_so_resume_finds_the_same_steps(load, write):
    write("tasks/t.yaml", "- {name: inner, local.command: echo 1}\n")
    text = RB.format(steps="  - {name: inc, import_tasks: tasks/t.yaml}")
    first = load(text).digest
    assert load(text).digest == first
    write("tasks/t.yaml", "- {name: inner, local.command: echo 2}\n")
    assert load(text).digest != first


def test_ansible_args_keyword_merges_into_the_modules_arguments(load):
    rb = load(RB.format(steps="""
  - name: build
    command: ./configure
    args: {chdir: /src, creates: /src/Makefile}"""))
    assert dict(rb.steps[0].action.args) == {"cmd": "./configure", "chdir": "/src", "creates": "/src/Makefile"}
    with pytest.raises(ValidationError) as exc:
        load(RB.format(steps="""
  - name: build
    ssh.command: ./configure
    args: {chdir: /src}
  - name: typo
    shell: make
    args: {chdri: /src}"""))
    text = "\n".join(_messages(exc))
    assert "rb.yaml:7: `args:` goes with an Ansible module name" in text
    assert 'rb.yaml:10: ssh.shell: unknown argument "chdri" (did you mean "chdir"?)' in text


def test_a_role_depending_on_itself_is_an_error_at_its_line(load, write):
    write("roles/a/tasks/main.yml", "- {name: a step, local.command: echo}\n")
    write("roles/a/meta/main.yml", "dependencies: [b]\n")
    write("roles/b/meta/main.yml", "dependencies: [a]\n")
    with pytest.raises(ValidationError) as exc:
        load("opsbook: 1\nname: cycle\nroles: [a]\n")
    (message,) = _messages(exc)
    assert message.startswith('main.yml:1: role "a" depends on itself')
