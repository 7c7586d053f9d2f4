"""`delegate_to` is rendered one way (opsbook.delegate) wherever the run needs it: before
the action runs, for the undo it records, in a block's approval prompt; one message when
it cannot be, naming the host or the template and the step's file:line."""

from __future__ import annotations

import pytest

INVENTORY = "[web]\nweb[1:3] ansible_connection=local\n"


@pytest.mark.parametrize("delegate, said, why", [
    ("{{ 'lb' ~ 9 }}", "delegate_to 'lb9': ", 'unknown host "lb9"'),  # no inventory host: named as rendered
    ("{{ balancer }}", "delegate_to '{{ balancer }}': ", "undefined variable"),  # not rendered: the template
])
def test_a_delegate_that_cannot_be_used_fails_the_step_saying_why(run, journal, tmp_path, delegate, said, why):
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: web1
        steps:
          - name: on the balancer
            delegate_to: "{delegate}"
            local.noop: {{}}
        """, INVENTORY)
    (rec,) = journal.nodes(summary.run_id).values()
    assert rec.status == "failed"
    assert rec.msg.startswith(said + why), rec.msg
    assert rec.msg.endswith(f"({tmp_path / 'rb.yaml'}:5:5)"), rec.msg


def test_a_loop_delegating_per_item_records_each_undo_on_that_items_host(run, journal):
    """The undo used to render the delegate without `item` and, failing, fell back to the
    node's own host: the undo of what ran on web2 would have run on web1."""
    summary = run("""
        opsbook: 1
        name: t
        hosts: web1
        steps:
          - name: on each peer
            loop: [web2, web3]
            delegate_to: "{{ item }}"
            local.noop: {}
            rollback: {local.noop: {}}
          - local.fail: boom
        """, INVENTORY)
    entries = journal.rollbacks(summary.run_id)
    assert sorted((e["host"], e["target"], e["status"]) for e in entries) == [
        ("web1", "web2", "done"), ("web1", "web3", "done")]
