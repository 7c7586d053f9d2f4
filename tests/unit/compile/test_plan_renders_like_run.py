"""`opsbook plan` renders exactly what `opsbook run` will: the same variable precedence
(params and -e win over runbook vars, as Ansible's extra vars do), the same built-in names,
the same shell quoting. Issue 15 item 3."""

from __future__ import annotations

from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.load import RunbookLoader
from opsbook.planview import plan_json, plan_text

INVENTORY = "[web]\nweb1 ansible_connection=local site=alpha\nweb2 ansible_connection=local site=beta\n"


def test_extra_vars_win_over_runbook_vars_in_plan_as_in_run(registry, write, journal, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    rb = RunbookLoader(registry).load_file(write("prec.yaml", """
        opsbook: 1
        name: prec
        vars: {x: from-vars}
        steps:
          - name: show
            local.command: "echo {{ x }}"
        """))
    plan = make_plan(rb, load_inventory_sources([]), {"x": "from-e"})
    assert 'localhost: local.command ["echo", "from-e"]' in plan_text(plan)
    summary = start_run(plan, registry, journal, RunRequest(options=RunOptions(), given_params={"x": "from-e"}))
    assert journal.nodes(summary.run_id)["show@localhost"].stdout == "from-e\n"


def test_extra_vars_win_over_runbook_vars_in_host_patterns(load, write):
    plan = make_plan(load("""
        opsbook: 1
        name: pattern
        vars: {target: web1}
        steps:
          - name: on the target
            hosts: "{{ target }}"
            local.noop: {}
        """), load_inventory_sources([write("inv.ini", INVENTORY)]), {"target": "web2"})
    assert plan.leaves["on-the-target"].hosts == ("web2",)


def test_plan_shows_every_node_rendered_as_the_run_renders_it(registry, write, journal, tmp_path, monkeypatch):
    """Each step asks for approval: the approver sees the arguments the run rendered."""
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    rb = RunbookLoader(registry).load_file(write("same.yaml", """
        opsbook: 1
        name: same
        hosts: web
        params:
          file: {type: string, default: "a file; rm -rf /"}
        vars:
          greeting: "hello {{ inventory_hostname }}"
          peers: "{{ groups.web | join(',') }}"
          where: "{{ runbook_dir | basename }}"
        steps:
          - name: quoted
            approve: true
            local.shell: "ls {{ params.file }} {{ greeting }} || true"
          - name: built-in names
            approve: true
            local.command: "echo {{ peers }} {{ host.name }} {{ site }} {{ hostvars['web2'].site }} {{ where }}"
          - name: step vars over runbook vars, -e over both
            approve: true
            vars: {greeting: "step {{ site }}", x: from-step}
            local.shell: {cmd: "echo {{ greeting }} {{ x }}", chdir: "{{ omit }}"}
        """))
    inventory = load_inventory_sources([write("inventory.ini", INVENTORY)])
    plan = make_plan(rb, inventory, {"x": "from-e"})
    planned = {n["id"]: n["args"] for n in plan_json(plan)["nodes"]}
    seen = {}

    def approver(request):
        seen[request.node_id] = request.args
        return True, "test"

    summary = start_run(plan, registry, journal, RunRequest(options=RunOptions(), approver=approver,
                                                            given_params={"x": "from-e"}))
    assert summary.status == "succeeded"
    assert seen == planned
    assert planned["quoted@web1"] == "ls 'a file; rm -rf /' 'hello web1' || true"
    assert planned["built-in-names@web2"] == ["echo", "web1,web2", "web2", "beta", "beta", tmp_path.name]
    assert planned["step-vars-over-runbook-vars-e-over-both@web1"] == {"cmd": "echo 'step alpha' from-e"}


def test_plan_shows_run_time_values_as_written(registry, load):
    plan = make_plan(load("""
        opsbook: 1
        name: later
        steps:
          - local.command: "echo 1"
            register: out
          - name: uses it
            local.command: "echo {{ out.stdout }} {{ run.id }}"
          - name: asserts
            local.assert: {that: ["out.rc == 0"]}
        """), load_inventory_sources([]), {})
    args = {n["id"]: n["args"] for n in plan_json(plan)["nodes"]}
    assert args["uses-it@localhost"] == "echo {{ out.stdout }} {{ run.id }}"
    assert args["asserts@localhost"] == {"that": ["out.rc == 0"]}
