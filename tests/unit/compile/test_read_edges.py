"""Names a step reads without a template also order it after the step that registers them:
debug's `var:` (a bare variable name, Ansible's semantics: `var: out`, `var: out.stdout`,
`var: hostvars[h].out`), and a registered name read through `hostvars` in any template or
condition (outside review: `debug: var: x` ran before the step registering `x`)."""

from __future__ import annotations

import pytest
from opsbook.api import load_inventory_sources, make_plan

INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"


def _edges(load, write, steps: str) -> set[tuple[str, str]]:
    rb = load("opsbook: 1\nname: reads\nhosts: web\nsteps:\n" + steps)
    return make_plan(rb, load_inventory_sources([write("inv.ini", INVENTORY)]), {}).step_edges


# "show" comes first in the file and "produce" says needs: []: only the read orders them.
@pytest.mark.parametrize("read", [
    "debug: {var: out}",
    "debug: {var: out.stdout}",
    "debug: {var: \"out['stdout']\"}",
    "debug: {var: \"{{ out.stdout }}\"}",
    "debug: {var: \"hostvars['web1'].out.stdout\"}",
    "debug: {var: \"hostvars[inventory_hostname]['out']\"}",
    "debug: {var: \"hostvars[h].out\"}\n    vars: {h: web1}",
    "local.debug: {var: out.rc}",
    "debug: {msg: \"{{ hostvars['web1'].out.stdout }}\"}",
    "local.command: \"echo {{ hostvars[inventory_hostname]['out']['stdout'] }}\"",
    "local.assert: {that: \"hostvars['web1'].out.rc == 0\"}",
])
def test_a_read_without_a_bare_template_name_orders_the_step_after_the_register(load, write, read: str):
    edges = _edges(load, write, f"""  - name: show
    {read}
  - name: produce
    needs: []
    local.command: echo hello
    register: out
""")
    assert ("produce", "show") in edges


def test_a_var_naming_nothing_registered_adds_no_edge(load, write):
    edges = _edges(load, write, """  - name: show
    debug: {var: inventory_hostname}
  - name: produce
    needs: []
    local.command: echo hello
    register: out
""")
    assert ("produce", "show") not in edges and ("show", "produce") not in edges


def test_debug_var_waits_for_the_step_that_registers_it(run, journal):
    """The debug is first in the file and nothing else orders the two steps: without the
    edge it ran first and showed VARIABLE IS NOT DEFINED!"""
    summary = run("""
        opsbook: 1
        name: debug-order
        hosts: web
        steps:
          - name: show
            debug: {var: out.stdout}
          - name: show other
            debug: {var: "hostvars['web1'].out.rc"}
          - name: produce
            needs: []
            local.shell: "sleep 0.2; echo made on {{ inventory_hostname }}"
            register: out
        """, inventory=INVENTORY)
    assert summary.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    assert nodes["show@web1"].msg == "out.stdout: made on web1"
    assert nodes["show@web2"].msg == "out.stdout: made on web2"
    assert nodes["show-other@web2"].msg == "hostvars['web1'].out.rc: 0"


@pytest.mark.parametrize("condition", [
    "until: out.rc == 0",
    "failed_when: out.rc != 0",
    "changed_when: \"'made' in out.stdout\"",
    "when: out is succeeded",
    "until: \"hostvars['web1'].out.rc == 0\"",
    "failed_when: [\"hostvars[inventory_hostname].out.rc != 0\"]",
])
def test_a_condition_reading_a_register_orders_the_step_after_it(load, write, condition: str):
    """until/failed_when/changed_when are bare Jinja (no braces): their names count too."""
    edges = _edges(load, write, f"""  - name: act
    local.command: "true"
    {condition}
  - name: produce
    needs: []
    local.command: echo hello
    register: out
""")
    assert ("produce", "act") in edges


def test_a_condition_on_the_steps_own_register_adds_no_edge(load, write):
    edges = _edges(load, write, """  - name: act
    local.command: "true"
    register: mine
    until: mine.rc == 0
    retries: 2
    failed_when: mine.rc > 1
    changed_when: false
""")
    assert edges == set()


def test_a_read_through_hostvars_waits_for_every_host_of_the_register(load, write):
    rb = load("opsbook: 1\nname: reads\nhosts: web\nsteps:\n" + """  - name: produce
    local.command: echo hello
    register: out
  - name: compare
    debug: {var: "hostvars['web1'].out.stdout"}
  - name: own
    debug: {var: out.stdout}
""")
    plan = make_plan(rb, load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    assert ("produce/done", "compare@web2") in plan.edges  # a barrier: web1's value
    assert ("produce@web2", "own@web2") in plan.edges or ("compare@web2", "own@web2") in plan.edges


def test_a_read_through_hostvars_inside_one_serial_rollout_stays_per_host(load, write):
    """A barrier there would wait for a later batch, which waits for this one: a deadlock."""
    rb = load("opsbook: 1\nname: reads\nhosts: web\nsteps:\n" + """  - name: rollout
    serial: 1
    block:
      - name: produce
        local.command: echo hello
        register: out
      - name: compare
        debug: {var: "hostvars['web1'].out.stdout"}
""")
    plan = make_plan(rb, load_inventory_sources([write("inv.ini", INVENTORY)]), {})
    assert ("produce@web2", "compare@web2") in plan.edges
    assert "produce/done" not in plan.nodes
