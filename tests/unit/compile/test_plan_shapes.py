"""Plan shapes: per-host pipelining, barriers, needs, implicit edges, serial, handlers, cycles."""

from __future__ import annotations

import pytest

from opsbook.api import load_inventory_sources, make_plan
from opsbook.errors import ValidationError

INV = "[web]\nweb[1:3]\n[db]\ndb1\ndb2\n"


@pytest.fixture
def plan(load, write):
    def _plan(text: str, params=None):
        return make_plan(load(text), load_inventory_sources([write("inv.ini", INV)]), params or {})

    return _plan


def preds(p, node):
    return sorted(p.graph.predecessors(node))


def test_same_hosts_pipeline_per_host(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}}
          - {name: b, local.noop: {}}
        """)
    assert preds(p, "b@web2") == ["a@web2"]
    assert len(p.graph) == 6


def test_different_hosts_meet_at_a_barrier(plan):
    p = plan("""
        opsbook: 1
        name: t
        steps:
          - {name: a, local.noop: {}, hosts: web}
          - {name: b, local.noop: {}, hosts: db}
        """)
    assert preds(p, "b@db1") == ["a/done"]
    assert preds(p, "a/done") == ["a@web1", "a@web2", "a@web3"]


def test_needs_replaces_file_order(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}}
          - {name: b, local.noop: {}}
          - {name: c, local.noop: {}, needs: [a]}
        """)
    assert preds(p, "c@web1") == ["a@web1"]


def test_reading_a_registered_result_adds_an_edge(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.command: "echo", register: first}
          - {name: b, local.noop: {}, needs: []}
          - {name: c, local.assert: {that: ["first.rc == 0"]}, needs: [b]}
        """)
    assert preds(p, "c@web1") == ["a@web1", "b@web1"]


def test_run_once_is_one_node_behind_a_barrier(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}}
          - {name: b, local.noop: {}, run_once: true}
          - {name: c, local.noop: {}}
        """)
    assert [n for n in p.nodes if n.startswith("b@")] == ["b@web1"]
    assert preds(p, "b@web1") == ["a/done"] and preds(p, "c@web3") == ["b/done"]


def test_serial_batches_wait_for_the_previous_batch(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}, serial: 1}
        """)
    assert preds(p, "a@web2") == ["a/batch1"] and preds(p, "a/batch1") == ["a@web1"]
    assert preds(p, "a@web3") == ["a/batch2"]


def test_handlers_run_after_everything(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}, notify: h}
        handlers:
          - {name: h, local.noop: {}}
        """)
    assert preds(p, "h@web1") == ["handlers/flush"]
    assert preds(p, "handlers/flush") == ["a@web1", "a@web2", "a@web3"]


def test_block_chains_block_rescue_always(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: db
        steps:
          - name: b
            block: [{name: x, local.noop: {}}]
            rescue: [{name: r, local.noop: {}}]
            always: [{name: al, local.noop: {}}]
          - {name: after, local.noop: {}}
        """)
    assert preds(p, "r@db1") == ["x@db1"] and preds(p, "al@db1") == ["r@db1"]
    assert preds(p, "after@db2") == ["al@db2"]


def test_loop_over_a_block_expands_at_plan_time(plan):
    p = plan("""
        opsbook: 1
        name: t
        hosts: db
        steps:
          - name: each
            loop: [a, b]
            block:
              - {name: step, local.command: "echo {{ item }}"}
        """)
    assert sorted(n for n in p.nodes if n.startswith("step")) == ["step[0]@db1", "step[0]@db2",
                                                                   "step[1]@db1", "step[1]@db2"]
    assert p.leaves["step[1]"].step.vars == {"item": "b"}
    assert preds(p, "step[1]@db1") == ["step[0]@db1"]


def test_cycles_are_printed(plan):
    with pytest.raises(ValidationError) as err:
        plan("""
            opsbook: 1
            name: t
            steps:
              - {name: a, local.noop: {}, needs: [c]}
              - {name: b, local.noop: {}, needs: [a]}
              - {name: c, local.noop: {}, needs: [b]}
            """)
    (d,) = err.value.diagnostics
    assert d.message.startswith("steps depend on each other in a cycle: ")
    assert all(n in d.message for n in ("a", "b", "c"))


def test_needs_unknown_step_and_unmatched_pattern(plan):
    with pytest.raises(ValidationError) as err:
        plan("""
            opsbook: 1
            name: t
            steps:
              - {name: alpha, local.noop: {}}
              - {name: b, local.noop: {}, needs: [alpah]}
              - {name: c, local.noop: {}, hosts: wbe}
            """)
    msgs = [d.message for d in err.value.diagnostics]
    assert 'step "b" needs "alpah", which is not a step of this runbook (did you mean "alpha"?)' in msgs
    assert any(m.startswith('step "c": ') and "wbe" in m and 'did you mean "web"' in m for m in msgs), msgs


def test_templated_hosts_use_params(plan):
    p = plan("""
        opsbook: 1
        name: t
        params:
          primary: {type: host, default: db1}
        steps:
          - {name: a, local.noop: {}, hosts: "db:!{{ params.primary }}"}
        """)
    assert [n for n in p.nodes] == ["a@db2"]


def test_plan_is_deterministic(plan):
    text = """
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {name: a, local.noop: {}}
          - {name: b, local.noop: {}, hosts: db}
          - {name: c, local.noop: {}, needs: [a]}
        """
    one, two = plan(text), plan(text)
    assert list(one.nodes) == list(two.nodes) and list(one.graph.edges) == list(two.graph.edges)


CYCLE = """opsbook: 1
name: t
steps:
  - {name: a, local.noop: {}, needs: [c]}
  - {name: b, local.noop: {}, needs: [a]}
  - {name: x, local.noop: {}}
  - {name: c, local.noop: {}, needs: [b]}
  - {name: y, local.noop: {}, needs: [x]}
"""


def test_a_cycle_is_reported_at_the_needs_that_closed_it_whatever_the_hash_seed(tmp_path):
    """Issue 31 item 4: the line was one of seven on seven runs; it is the step written
    last among the cycle's (its needs: closed the cycle), on every run."""
    import os
    import subprocess
    import sys

    path = tmp_path / "cycle.yaml"
    path.write_text(CYCLE)
    seen = set()
    for seed in ("1", "2", "3", "4", "5"):
        done = subprocess.run([sys.executable, "-m", "opsbook", "check", "--no-policy", str(path)], capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed}, check=False)
        seen.add(done.stderr.splitlines()[0])
    assert seen == {f'{path}:7:5: error: steps depend on each other in a cycle: c -> a -> b -> c '
                    '(closed here: step "c" needs "b")'}


def test_every_node_carries_its_leafs_step(plan):
    """A node keeps its step as a plain attribute (the run reads it per node, so it is no
    property): it must be the leaf's step on every kind of node, None on barriers."""
    p = plan("""
        opsbook: 1
        name: t
        hosts: web
        handlers:
          - {name: h, local.noop: {}}
        steps:
          - {name: a, local.noop: {}, notify: h}
          - name: blk
            block:
              - {name: b, local.noop: {}}
            rescue:
              - {name: r, local.noop: {}}
          - {name: c, local.noop: {}, hosts: db}
        """)
    kinds = set()
    for node in p.nodes.values():
        kinds.add(node.kind)
        if node.leaf is None:
            assert node.step is None
        else:
            assert node.step is node.leaf.step
    assert len(kinds) >= 3  # steps, handlers and the barrier between web and db
