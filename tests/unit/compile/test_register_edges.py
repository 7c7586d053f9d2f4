"""A step reading a registered name waits for the nearest step before it that registers it
(a looped block's or include's copies each read their own copy's result)."""

from __future__ import annotations

from opsbook.api import load_inventory_sources, make_plan


def test_each_copy_of_a_looped_block_reads_its_own_register(load):
    rb = load("""
        opsbook: 1
        name: loop-register
        steps:
          - name: per item
            loop: [a, b, c]
            block:
              - {name: probe, local.command: "echo {{ item }}", register: out}
              - {name: use, local.command: "echo {{ out.stdout }}"}
          - {name: later, local.command: "echo {{ out.stdout }}"}
    """)
    plan = make_plan(rb, load_inventory_sources([]), {})
    assert ("probe[1]", "use[1]") in plan.step_edges and ("probe[2]", "use[1]") not in plan.step_edges
    assert ("probe[2]", "later") in plan.step_edges


def test_two_steps_registering_the_same_name(load):
    rb = load("""
        opsbook: 1
        name: twice
        steps:
          - {name: first, local.command: echo 1, register: out}
          - {name: reads first, local.command: "echo {{ out.stdout }}"}
          - {name: second, local.command: echo 2, register: out}
          - {name: reads second, local.command: "echo {{ out.stdout }}"}
    """)
    plan = make_plan(rb, load_inventory_sources([]), {})  # no cycle: "reads first" reads "first"
    assert ("first", "reads-first") in plan.step_edges and ("second", "reads-first") not in plan.step_edges
    assert ("second", "reads-second") in plan.step_edges
