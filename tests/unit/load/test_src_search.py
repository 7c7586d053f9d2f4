"""Where a relative `src:` of template/copy is found (opsbook.srcpath, Ansible's search path),
and a literal one found nowhere: an error of `check` that `run` and `plan` refuse."""

from __future__ import annotations

import json
from pathlib import Path

from opsbook.srcpath import SearchPath
from opsbook_lab.pytest_plugin import opsbook

RB = """
opsbook: 1
name: src
hosts: localhost
steps:
{steps}
"""


def _src(step) -> str:
    return step.action.args["src"]


def test_the_search_order_is_ansibles():
    search = SearchPath((Path("/r/roles/app"), Path("/r/roles/app/tasks")), Path("/r"))
    assert [str(p) for p in search.candidates("a.j2", "templates")] == [
        "/r/roles/app/templates/a.j2", "/r/roles/app/a.j2",
        "/r/roles/app/tasks/templates/a.j2", "/r/roles/app/tasks/a.j2",
        "/r/templates/a.j2", "/r/a.j2",
    ]


def test_templates_and_files_beside_the_runbook_come_before_the_runbook_folder(load, write, tmp_path):
    write("templates/site.j2", "in templates/\n")
    write("site.j2", "beside\n")
    write("files/motd", "in files/\n")
    write("only-beside.txt", "x\n")
    rb = load(RB.format(steps="""
  - {name: t, template: {src: site.j2, dest: /tmp/x}}
  - {name: c, copy: {src: motd, dest: /tmp/y}}
  - {name: b, ansible.builtin.copy: {src: only-beside.txt, dest: /tmp/z}}
"""))
    t, c, b = rb.steps
    assert _src(t) == str(tmp_path / "templates" / "site.j2")
    assert _src(c) == str(tmp_path / "files" / "motd")
    assert _src(b) == "only-beside.txt"  # where the action looks anyway: kept as written
    assert rb.unfound_sources == ()


def test_a_script_is_found_in_files_and_the_args_keyword_is_searched_too(load, write, tmp_path):
    write("files/deploy.sh", "echo deploy\n")
    write("templates/a.j2", "a\n")
    rb = load(RB.format(steps="""
  - {name: scalar, ssh.script: deploy.sh}
  - {name: mapping, local.script: {path: deploy.sh, args: [x]}}
  - {name: args keyword, template: null, args: {src: a.j2, dest: /tmp/a}}
"""))
    scalar, mapping, args = rb.steps
    assert scalar.action.args == mapping.action.args["path"] == str(tmp_path / "files" / "deploy.sh")
    assert _src(args) == str(tmp_path / "templates" / "a.j2")


def test_an_included_file_searches_its_own_folder_first(load, write, tmp_path):
    write("sub/tasks.yml", """
        - {name: own, template: {src: own.j2, dest: /tmp/a}}
        - {name: runbooks, template: {src: shared.j2, dest: /tmp/b}}
        - {name: rollback too, local.command: "true", rollback: {ssh.copy: {src: motd, dest: /tmp/c}}}
    """)
    write("sub/templates/own.j2", "sub\n")
    write("templates/own.j2", "top\n")
    write("templates/shared.j2", "top\n")
    write("sub/files/motd", "sub\n")
    rb = load(RB.format(steps="  - import_tasks: sub/tasks.yml"))
    own, shared, rollback = rb.steps[0].block
    assert _src(own) == str(tmp_path / "sub" / "templates" / "own.j2")
    assert _src(shared) == str(tmp_path / "templates" / "shared.j2")
    assert rollback.rollback.args["src"] == str(tmp_path / "sub" / "files" / "motd")


def test_a_role_dependency_finds_files_of_the_role_that_depends_on_it(load, write, tmp_path):
    write("roles/app/meta/main.yml", "dependencies: [base]\n")
    write("roles/app/tasks/main.yml", "- {name: app, local.command: 'true'}\n")
    write("roles/app/templates/from-app.j2", "app\n")
    write("roles/base/tasks/main.yml", "- {name: base, template: {src: from-app.j2, dest: /tmp/a}}\n")
    rb = load("opsbook: 1\nname: roles\nroles: [app]\n")
    base = next(s for s in rb.all_steps() if s.name == "base : base")
    assert _src(base) == str(tmp_path / "roles" / "app" / "templates" / "from-app.j2")


def test_check_names_a_missing_src_with_the_paths_searched_and_a_near_name(tmp_path, write):
    write("templates/site.conf.j2", "x\n")
    write("sub/tasks.yml", "- {name: inc, copy: {src: nothere, dest: /tmp/b}}\n")
    write("rb.yaml", RB.format(steps="""
  - {name: t, template: {src: site.conf.j, dest: /tmp/a}}
  - {name: templated, template: {src: "{{ which }}.j2", dest: /tmp/a}, vars: {which: nope}}
  - import_tasks: sub/tasks.yml
"""))
    done = opsbook(tmp_path, "check", "rb.yaml", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    errors = [d for d in json.loads(done.stdout)[0]["diagnostics"] if d["severity"] == "error"]
    assert [(Path(d["file"]).name, d["line"], d["message"]) for d in errors] == [
        ("rb.yaml", 6, 'template: src "site.conf.j" not found (did you mean "site.conf.j2"?)'),
        ("tasks.yml", 1, 'copy: src "nothere" not found (included from rb.yaml:8:19)'),
    ]
    assert errors[0]["hint"] == "searched templates/site.conf.j, site.conf.j"
    assert errors[1]["hint"] == "searched sub/files/nothere, sub/nothere, files/nothere, nothere"


def test_run_and_plan_refuse_a_missing_src_before_anything_starts(tmp_path, write):
    write("rb.yaml", RB.format(steps="""
  - {name: first, local.command: "touch ran"}
  - {name: t, template: {src: missing.j2, dest: /tmp/a}}
"""))
    for command in ("run", "plan"):
        done = opsbook(tmp_path, command, "rb.yaml", cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert 'rb.yaml:7:31: error: template: src "missing.j2" not found' in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()


def test_a_templated_src_is_searched_from_the_steps_folder_when_it_runs(tmp_path, write):
    write("sub/render.yml", """
        - name: own
          template: {src: "{{ which }}.j2", dest: "{{ out }}/own"}
        - name: copied
          copy: {src: "{{ which }}.txt", dest: "{{ out }}/copied"}
    """)
    write("sub/templates/own.j2", "from sub/templates/ {{ which }}\n")
    write("templates/own.j2", "from templates/ beside the runbook\n")
    write("files/own.txt", "from files/ beside the runbook\n")
    write("rb.yaml", f"""
opsbook: 1
name: templated
hosts: localhost
vars: {{which: own, out: "{tmp_path}"}}
steps:
  - include_tasks: sub/render.yml
""")
    done = opsbook(tmp_path, "run", "rb.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "own").read_text() == "from sub/templates/ own\n"
    assert (tmp_path / "copied").read_text() == "from files/ beside the runbook\n"
