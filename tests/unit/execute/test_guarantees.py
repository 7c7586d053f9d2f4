"""The guarantees opsbook is picked for, in the moments they exist for (issue 27, issue 15 item 1):
a block approval asked once per host, keep_healthy across serial batches, rollback order across
delegate_to, a stop at an approval gate, and a failed serial batch stopping the rollout."""

from __future__ import annotations

import threading

from opsbook.gates import ApprovalRequest
from opsbook_lab.pytest_plugin import statuses

WEB3 = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\nweb3 ansible_connection=local\n"


# -- 1. a block's approve is asked once per host --------------------------------------------------


def test_block_approval_is_asked_once_per_host_and_holds_for_every_step(run, journal, tmp_path):
    asked: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest):
        asked.append(request)
        return True, "alice"

    summary = run(f"""
        opsbook: 1
        name: takeover
        hosts: web
        steps:
          - name: switch
            approve: "Make {{{{ inventory_hostname }}}} active?"
            block:
              - name: first
                local.shell: "echo one >> {tmp_path}/{{{{ inventory_hostname }}}}"
              - name: second
                local.shell: "echo two >> {tmp_path}/{{{{ inventory_hostname }}}}"
        """, WEB3, approver=approver)
    assert summary.status == "succeeded"
    assert sorted(r.host for r in asked) == ["web1", "web2", "web3"], "once per host, not once per step"
    assert {(r.gate, r.step_name, r.block_name) for r in asked} == {("switch", "first", "switch")}
    for host in ("web1", "web2", "web3"):
        assert (tmp_path / host).read_text().split() == ["one", "two"]
    recorded = journal.approvals(summary.run_id)
    assert len(recorded) == 3 and all(a["approved"] and a["detail"]["block_name"] == "switch" for a in recorded)


def test_a_denied_block_approval_runs_none_of_the_block(run, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: takeover
        steps:
          - name: switch
            approve: "Switch?"
            block:
              - name: first
                local.shell: "echo one >> {tmp_path}/out"
              - name: second
                local.shell: "echo two >> {tmp_path}/out"
        """, approver=lambda request: (False, "bob"))
    assert summary.status == "failed" and summary.denied == ["first@localhost"]
    assert not (tmp_path / "out").exists()


# -- 5. a stop at an approval gate -------------------------------------------------------------------


def test_a_stop_while_a_gate_waits_cancels_it_and_the_gated_action_never_runs(run, journal, registry, tmp_path):
    """The approver keeps waiting until the run is stopped, then says yes: too late."""
    from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.load import RunbookLoader

    waiting = threading.Event()
    holder: dict = {}

    def approver(request: ApprovalRequest):
        waiting.set()
        assert request.cancelled.wait(30), "the gate was not told of the stop"
        return True, "late alice"

    path = tmp_path / "rb.yaml"
    path.write_text(f"""opsbook: 1
name: gate
steps:
  - name: prepare
    local.shell: "echo prepared"
    rollback: {{local.shell: "echo undone >> {tmp_path}/undo"}}
  - name: switch
    approve: "Switch?"
    block:
      - name: first
        local.shell: "echo one >> {tmp_path}/out"
      - name: second
        local.shell: "echo two >> {tmp_path}/out"
""")
    rb = RunbookLoader(registry).load_file(str(path))
    plan = make_plan(rb, load_inventory_sources([]), {})
    request = RunRequest(options=RunOptions(), approver=approver)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        summary=start_run(plan, registry, journal, request, on_executor=lambda ex: holder.update(ex=ex))))
    thread.start()
    assert waiting.wait(30), "the gate was never reached"
    holder["ex"].interrupt("interrupted by SIGTERM", 15)
    thread.join(30)
    assert not thread.is_alive(), "the run did not end after the stop"
    summary = result["summary"]
    assert (summary.status, summary.signal) == ("interrupted", 15)
    assert not (tmp_path / "out").exists(), "the gated action ran after the stop"
    assert (tmp_path / "undo").read_text().split() == ["undone"], "what completed is rolled back"
    (gate,) = journal.approvals(summary.run_id)
    assert gate["cancelled"] and not gate["approved"] and "interrupted by SIGTERM" in gate["who"]
    assert journal.get_run(summary.run_id).status == "interrupted"
    assert statuses(journal, summary.run_id)["first@localhost"] == "skipped"
    assert "approval gate was cancelled" in journal.nodes(summary.run_id)["first@localhost"].msg


def test_a_resume_after_a_stop_redoes_what_the_stop_rolled_back(journal, registry, tmp_path):
    """The stop at the gate undid "prepare"; the resume must not carry on as if it held."""
    from opsbook.api import RunRequest, load_inventory_sources, make_plan, resume_run, start_run
    from opsbook.execute import RunOptions
    from opsbook.load import RunbookLoader

    waiting = threading.Event()
    holder: dict = {}

    def stopped(request: ApprovalRequest):
        waiting.set()
        assert request.cancelled.wait(30), "the gate was not told of the stop"
        return False, "too late"

    path = tmp_path / "rb.yaml"
    path.write_text(f"""opsbook: 1
name: gate
steps:
  - name: prepare
    local.shell: "echo prepared >> {tmp_path}/log"
    rollback: {{local.shell: "echo undone >> {tmp_path}/log"}}
  - name: switch
    approve: "Switch?"
    local.shell: "echo switched >> {tmp_path}/log"
""")
    plan = make_plan(RunbookLoader(registry).load_file(str(path)), load_inventory_sources([]), {})
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=start_run(
        plan, registry, journal, RunRequest(options=RunOptions(), approver=stopped),
        on_executor=lambda ex: holder.update(ex=ex))))
    thread.start()
    assert waiting.wait(30), "the gate was never reached"
    holder["ex"].interrupt("interrupted by SIGINT", 2)
    thread.join(30)
    run_id = result["summary"].run_id
    assert (tmp_path / "log").read_text().split() == ["prepared", "undone"]

    again = resume_run(run_id, registry, journal, RunRequest(options=RunOptions(), approver=lambda r: (True, "bob")))
    assert again.status == "succeeded"
    assert (tmp_path / "log").read_text().split() == ["prepared", "undone", "prepared", "switched"]


def test_a_resume_asks_again_the_gate_of_a_step_the_stop_rolled_back(journal, registry, tmp_path):
    """An approval is for a change at one moment: once the stop's rollback undid the change,
    the resume that does it again asks the gate again (the old "yes" answered a world that
    no longer holds); the first decision stays in the history."""
    from opsbook.api import RunRequest, load_inventory_sources, make_plan, resume_run, start_run
    from opsbook.execute import RunOptions
    from opsbook.load import RunbookLoader

    waiting = threading.Event()
    holder: dict = {}
    asked: list[str] = []

    def first_time(request: ApprovalRequest):
        asked.append(request.step_name)
        if request.step_name == "drain":
            return True, "alice"
        waiting.set()
        assert request.cancelled.wait(30), "the gate was not told of the stop"
        return False, "too late"

    path = tmp_path / "rb.yaml"
    path.write_text(f"""opsbook: 1
name: gates
steps:
  - name: drain
    approve: "Drain?"
    local.shell: "echo drained >> {tmp_path}/log"
    rollback: {{local.shell: "echo undrained >> {tmp_path}/log"}}
  - name: switch
    approve: "Switch?"
    local.shell: "echo switched >> {tmp_path}/log"
""")
    plan = make_plan(RunbookLoader(registry).load_file(str(path)), load_inventory_sources([]), {})
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=start_run(
        plan, registry, journal, RunRequest(options=RunOptions(), approver=first_time),
        on_executor=lambda ex: holder.update(ex=ex))))
    thread.start()
    assert waiting.wait(30), "the second gate was never reached"
    holder["ex"].interrupt("interrupted by SIGINT", 2)
    thread.join(30)
    run_id = result["summary"].run_id
    assert (tmp_path / "log").read_text().split() == ["drained", "undrained"]
    assert asked == ["drain", "switch"]

    again_asked: list[str] = []

    def second_time(request: ApprovalRequest):
        again_asked.append(request.step_name)
        return True, "bob"

    again = resume_run(run_id, registry, journal, RunRequest(options=RunOptions(), approver=second_time))
    assert again.status == "succeeded"
    assert again_asked == ["drain", "switch"], "the redone drain reused alice's approval from before the stop"
    assert (tmp_path / "log").read_text().split() == ["drained", "undrained", "drained", "switched"]
    expired = [d for _, kind, node, d in journal.events(run_id) if kind == "approval expired"]
    assert expired and expired[0]["who"] == "alice", journal.events(run_id)


# -- 2. keep_healthy across serial batches ----------------------------------------------------------


def _kh_runbook(tmp_path, minimum: int, put_back: str) -> str:
    probe = f'{{local.wait: {{path: "{tmp_path}/healthy-{{{{ inventory_hostname }}}}", timeout: 0}}}}'
    return f"""
        opsbook: 1
        name: rolling-drain
        hosts: web
        steps:
          - name: one host at a time
            serial: 1
            block:
              - name: take out of the pool
                keep_healthy: {{min: {minimum}, probe: {probe}}}
                local.shell: "rm {tmp_path}/healthy-{{{{ inventory_hostname }}}}; echo out {{{{ inventory_hostname }}}} >> {tmp_path}/log"
              - name: change
                local.shell: "echo change {{{{ inventory_hostname }}}} >> {tmp_path}/log"
              - name: put back into the pool
                local.shell: "{put_back}"
        """


def test_keep_healthy_lets_every_serial_batch_through_once_the_previous_is_back(run, journal, tmp_path):
    for h in ("web1", "web2", "web3"):
        (tmp_path / f"healthy-{h}").write_text("")
    put_back = f"touch {tmp_path}/healthy-{{{{ inventory_hostname }}}}; echo back {{{{ inventory_hostname }}}} >> {tmp_path}/log"
    summary = run(_kh_runbook(tmp_path, 2, put_back), WEB3)
    assert summary.status == "succeeded", statuses(journal, summary.run_id)
    log = (tmp_path / "log").read_text().splitlines()
    assert log == [f"{what} {h}" for h in ("web1", "web2", "web3") for what in ("out", "change", "back")]


def test_keep_healthy_still_counts_a_member_whose_block_has_not_put_it_back(run, journal, tmp_path):
    """The block ends without making web1 healthy again (its 'put back' does nothing the
    probe sees): the probe judges it, and batch 2 is refused."""
    for h in ("web1", "web2", "web3"):
        (tmp_path / f"healthy-{h}").write_text("")
    summary = run(_kh_runbook(tmp_path, 2, "true"), WEB3)
    refused = journal.nodes(summary.run_id)["take-out-of-the-pool@web2"]
    assert refused.status == "failed"
    assert "unhealthy: web1" in refused.msg and "keep_healthy requires 2" in refused.msg


def test_restores_puts_a_member_back_outside_a_block(run, journal, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: drain-then-ready
        hosts: web
        steps:
          - name: drain
            keep_healthy: {{min: 2, probe: {{local.noop: {{}}}}}}
            local.shell: "echo drain {{{{ inventory_hostname }}}} >> {tmp_path}/log"
          - name: ready
            restores: drain
            local.shell: "echo ready {{{{ inventory_hostname }}}} >> {tmp_path}/log"
        """, WEB3, forks=1)
    assert summary.status == "succeeded", statuses(journal, summary.run_id)


def test_restores_naming_a_step_without_keep_healthy_is_an_error(load, registry):
    import pytest
    from opsbook.api import load_inventory_sources, make_plan
    from opsbook.errors import ValidationError

    rb = load("""
        opsbook: 1
        name: bad
        steps:
          - name: drain
            keep_healthy: 1
            local.noop: {}
          - name: ready
            restores: drian
            local.noop: {}
        """)
    with pytest.raises(ValidationError) as err:
        make_plan(rb, load_inventory_sources([]), {})
    message = str(err.value)
    assert 'restores "drian", which is not a step of this runbook' in message and 'did you mean "drain"' in message


# -- 3. keep_healthy.group is rendered and resolved ------------------------------------------------


def test_keep_healthy_group_is_rendered_and_a_bad_pattern_is_caught_at_plan_time(load, write):
    import pytest
    from opsbook.api import load_inventory_sources, make_plan
    from opsbook.errors import ValidationError

    rb = load("""
        opsbook: 1
        name: kh
        hosts: web
        params: {standby: {type: string, default: web}}
        steps:
          - name: take out
            keep_healthy: {min: 1, group: "{{ params.standby }}", probe: {local.noop: {}}}
            local.noop: {}
        """)
    inventory = load_inventory_sources([write("inv.ini", WEB3)])
    assert make_plan(rb, inventory, {"standby": "web"})
    with pytest.raises(ValidationError) as err:
        make_plan(rb, inventory, {"standby": "wbe"})
    assert 'step "take out" keep_healthy.group' in str(err.value) and '"wbe"' in str(err.value)


def test_keep_healthy_group_template_is_rendered_at_run_time(run, journal):
    summary = run("""
        opsbook: 1
        name: kh
        hosts: web1
        params: {standby: {type: string, default: "web2:web3"}}
        steps:
          - name: take out
            keep_healthy: {min: 2, group: "{{ params.standby }}", probe: {local.noop: {}}}
            local.noop: {}
        """, WEB3)
    assert summary.status == "succeeded", statuses(journal, summary.run_id)
    (event,) = [e for e in journal.events(summary.run_id) if e[1] == "preflight"]
    assert event[3]["group"] == "web2:web3" and event[3]["healthy_others"] == ["web2", "web3"]


# -- 4. rollback order across delegate_to --------------------------------------------------------------


def test_a_delegated_steps_rollback_runs_in_the_acting_hosts_reverse_order(run, journal, tmp_path):
    log = tmp_path / "rb.log"
    summary = run(f"""
        opsbook: 1
        name: rollback-order
        hosts: web
        steps:
          - name: drain at the balancer
            delegate_to: lb1
            local.shell: "echo drain"
            rollback: {{local.shell: "echo undo-drain {{{{ inventory_hostname }}}} >> {log}"}}
          - name: install new config
            local.shell: "echo install"
            rollback: {{local.shell: "sleep 0.3; echo undo-config {{{{ inventory_hostname }}}} >> {log}"}}
          - name: verify
            local.command: "false"
        """, "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"
             "[lb]\nlb1 ansible_connection=local\n")
    assert summary.status == "failed"
    lines = log.read_text().splitlines()
    for host in ("web1", "web2"):
        mine = [line.split()[0] for line in lines if line.endswith(host)]
        assert mine == ["undo-config", "undo-drain"], lines
    drains = [r for r in journal.rollbacks(summary.run_id) if r["node_id"].startswith("drain")]
    assert {(r["host"], r["target"], r["status"]) for r in drains} == {("web1", "lb1", "done"),
                                                                      ("web2", "lb1", "done")}


# -- issue 15 item 1: max_fail_percentage with serial ------------------------------------------------


def test_a_serial_batch_over_max_fail_percentage_stops_later_batches(run, journal, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: rr
        hosts: web
        steps:
          - name: rolling restart
            serial: [1, "50%"]
            max_fail_percentage: 0
            block:
              - name: drain
                local.shell: "echo {{{{ inventory_hostname }}}} >> {tmp_path}/drained"
              - name: restart
                local.command: "false"
        """, WEB3 + "web4 ansible_connection=local\n")
    assert summary.status == "aborted"
    assert "batch 1 of 3" in summary.message and "over max_fail_percentage 0%" in summary.message
    assert (tmp_path / "drained").read_text().split() == ["web1"]
    # issue 25 item 1: the summary leads with the failure that decided the outcome
    assert summary.cause == '"restart" on web1: command exited with rc=1'
    from opsbook.report import timeline_text

    header = timeline_text(journal, summary.run_id).splitlines()
    assert header[1].split() == ["cause", '"restart"', "on", "web1:", "command", "exited", "with", "rc=1"]


def test_a_serial_batch_where_every_host_failed_stops_later_batches(run, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: rr
        hosts: web
        steps:
          - name: restart
            serial: 1
            local.shell: "echo {{{{ inventory_hostname }}}} >> {tmp_path}/tried; false"
        """, WEB3)
    assert summary.status == "aborted" and "every host of batch 1 of 3" in summary.message
    assert (tmp_path / "tried").read_text().split() == ["web1"]


def test_a_serial_batch_under_its_limit_lets_the_next_batch_run(run, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: rr
        hosts: web
        steps:
          - name: restart
            serial: 2
            max_fail_percentage: 50
            local.shell: "echo {{{{ inventory_hostname }}}} >> {tmp_path}/tried; test {{{{ inventory_hostname }}}} != web1"
        """, WEB3 + "web4 ansible_connection=local\n")
    assert summary.status == "failed"  # web1 failed, 1 of 2 is not over 50%
    assert sorted((tmp_path / "tried").read_text().split()) == ["web1", "web2", "web3", "web4"]


def test_a_succeeded_runs_undo_entries_are_not_shown_as_pending(run, journal):
    """Issue 15 item 8: `show` of a succeeded run listed its rollbacks as "pending"."""
    from opsbook.report import timeline_text

    summary = run("""
        opsbook: 1
        name: ok
        steps:
          - name: change
            local.command: "true"
            rollback: {local.command: "true"}
        """)
    assert summary.status == "succeeded"
    assert [r["status"] for r in journal.rollbacks(summary.run_id)] == ["pending"]  # a failed retry may need it
    text = timeline_text(journal, summary.run_id)
    assert "1 recorded, not needed (the run succeeded)" in text and "pending" not in text
    kept = run("""
        opsbook: 1
        name: kept
        steps:
          - name: change
            local.command: "true"
            rollback: {local.command: "true"}
          - local.fail: stop
        """, rollback="never")
    assert "kept (--rollback never)" in timeline_text(journal, kept.run_id)


def test_a_rescue_that_undoes_a_change_is_not_undone_again_by_the_rollback(run, journal, tmp_path):
    """Issue 27 item 8: config-rollout's rescue restored web2's file, then the run's rollback
    tried again (and reported "rollback failed" for a healthy host)."""
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: rollout
        hosts: web
        steps:
          - name: roll out
            serial: 1
            block:
              - name: install
                local.shell: "echo install {{{{ inventory_hostname }}}} >> {log}"
                rollback: {{local.shell: "echo rollback {{{{ inventory_hostname }}}} >> {log}"}}
              - name: verify
                local.shell: "test {{{{ inventory_hostname }}}} != web2"
            rescue:
              - name: put the previous file back
                undoes: install
                local.shell: "echo rescue {{{{ inventory_hostname }}}} >> {log}"
              - name: stop the rollout
                local.fail: stop
        """, WEB3)
    assert summary.status in ("failed", "aborted")
    assert log.read_text().splitlines() == ["install web1", "install web2", "rescue web2", "rollback web1"]
    undo = {r["host"]: r for r in journal.rollbacks(summary.run_id)}
    assert undo["web2"]["status"] == "done" and undo["web2"]["msg"] == 'undone by step "put the previous file back"'
    assert undo["web1"]["status"] == "done" and undo["web1"]["msg"] == ""


def test_undoes_naming_no_step_is_an_error(load):
    import pytest
    from opsbook.api import load_inventory_sources, make_plan
    from opsbook.errors import ValidationError

    rb = load("""
        opsbook: 1
        name: bad
        steps:
          - name: install
            local.noop: {}
          - name: restore
            undoes: instal
            local.noop: {}
        """)
    with pytest.raises(ValidationError) as err:
        make_plan(rb, load_inventory_sources([]), {})
    assert 'undoes "instal", which is not a step of this runbook' in str(err.value) and 'did you mean "install"' in str(err.value)


def test_the_report_says_how_each_host_was_left(run, journal, tmp_path):
    """Issue 25 item 2 / issue 27 item 8: per host, what was rolled back, failed to roll back,
    left changed, or never touched."""
    from opsbook.report import build_report, end_state, gather

    summary = run(f"""
        opsbook: 1
        name: ends
        hosts: web
        steps:
          - name: change
            local.command: "true"
            rollback: {{local.shell: "test {{{{ inventory_hostname }}}} != web2"}}
          - name: note
            local.command: "true"
          - name: verify
            local.shell: "test {{{{ inventory_hostname }}}} != web1"
        """, WEB3 + "web4 ansible_connection=local\n", limit=frozenset({"web1", "web2", "web3"}))
    assert summary.status == "failed"
    ends = {e.host: e.text() for e in end_state(gather(journal, summary.run_id))}
    assert ends["web1"] == ("failed: verify (command exited with rc=1); rolled back: change; "
                            "left changed: note (no undo recorded)")
    assert ends["web2"].startswith("ROLLBACK FAILED: change (command exited with rc=1)")
    assert ends["web4"] == "never touched"
    html = build_report(journal, summary.run_id, "html")
    assert "State at the end" in html and "ROLLBACK FAILED: change" in html


def test_a_gate_is_decided_once_when_an_approval_races_the_timeout(tmp_path):
    """Issue 24 item 11: an approval in the last moment before --approval-timeout was
    acknowledged, then overwritten by the timeout's denial. One conditional update decides."""
    from opsbook.approve import journal_approver
    from opsbook.journal import Journal

    path = tmp_path / "j.db"
    for approve_first in (True, False):
        journal = Journal(path)
        node = f"gate@localhost-{approve_first}"
        journal.request_approval("run", node, "gate", "sure?", {"step_name": "gate"})
        if approve_first:  # lands after the approver's last poll, before it closes the gate
            assert [a["node_id"] for a in journal.decide("run", node, True, "alice")] == [node]
        request = ApprovalRequest("run", node, "gate", "gate", "localhost", "sure?", "local.noop", {})
        decision = journal_approver(lambda: Journal(path), timeout=0.0)(request)
        late = journal.decide("run", node, True, "bob")
        assert late == [], "a decision after the gate closed must be refused"
        (row,) = [a for a in journal.approvals("run") if a["node_id"] == node]
        if approve_first:
            assert decision == (True, "alice") and (row["approved"], row["who"]) == (True, "alice")
        else:
            assert decision[0] is False and "approval timed out" in decision[1]
            assert (row["approved"], row["who"]) == (False, decision[1])
        journal.close()


def test_after_a_failed_undo_the_hosts_older_undos_are_not_run(run, journal, tmp_path):
    """The balancer's put-back must not run after the host's own restore failed: the host
    would go back into service on a change that could not be undone."""
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: rollback-stops
        hosts: web
        steps:
          - name: drain
            delegate_to: lb1
            local.shell: "echo d"
            rollback: {{local.shell: "echo put-back {{{{ inventory_hostname }}}} >> {log}"}}
          - name: install
            local.shell: "echo i"
            rollback: {{local.shell: "echo restore {{{{ inventory_hostname }}}} >> {log}; test {{{{ inventory_hostname }}}} != web1"}}
          - name: verify
            local.command: "false"
        """, "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n[lb]\nlb1 ansible_connection=local\n")
    assert summary.status == "failed"
    lines = log.read_text().splitlines()
    assert "put-back web1" not in lines and lines.count("restore web1") == 1
    assert lines.index("restore web2") < lines.index("put-back web2")
    drain = {r["host"]: r for r in journal.rollbacks(summary.run_id) if r["node_id"].startswith("drain")}
    assert drain["web1"]["status"] == "skipped" and 'the undo of "install" failed before it' in drain["web1"]["msg"]
    assert drain["web2"]["status"] == "done"


def test_keep_healthy_min_may_be_a_template(run, journal, load):
    """Issue 27 item 3: every field of keep_healthy is rendered like any templated field."""
    text = """
        opsbook: 1
        name: kh
        hosts: web1
        params: {min_in_pool: {type: int, default: 2}}
        steps:
          - name: take out
            keep_healthy: {min: "{{ params.min_in_pool }}", group: web, probe: {local.noop: {}}}
            local.noop: {}
        """
    assert run(text, WEB3).status == "succeeded"
    refused = run(text, WEB3, params={"min_in_pool": 3})
    assert refused.status == "failed"
    (node,) = [n for n in journal.nodes(refused.run_id).values() if n.status == "failed"]
    assert "keep_healthy requires 3" in node.msg


def test_a_serial_rollout_is_undone_one_batch_at_a_time_newest_first(run, journal, tmp_path):
    """Found by an outside try: the rollback of a serial rollout drained every batch at once,
    taking more hosts out of service together than serial and keep_healthy ever allowed."""
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: rollout
        hosts: web
        steps:
          - name: roll out
            serial: 1
            block:
              - name: change
                local.shell: "echo change"
                rollback: {{local.shell: "echo start {{{{ inventory_hostname }}}} >> {log}; sleep 0.3; echo end {{{{ inventory_hostname }}}} >> {log}"}}
              - name: verify
                local.shell: "test {{{{ inventory_hostname }}}} != web3"
        """, WEB3)
    assert summary.status in ("failed", "aborted")
    lines = log.read_text().splitlines()
    assert lines == ["start web3", "end web3", "start web2", "end web2", "start web1", "end web1"], lines
