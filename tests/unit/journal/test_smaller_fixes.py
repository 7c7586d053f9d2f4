"""Issue 16, item 12: a resume refused by the lock is not a resume; an approval keeps the time
it was asked; `needs:` naming a step name used twice is an error naming both places."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from opsbook.api import RunRequest, resume_run
from opsbook.approve import journal_approver
from opsbook.errors import RunError, RunLockedError, ValidationError
from opsbook.execute import RunOptions
from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import wait_for

FAILING = """
opsbook: 1
name: t
steps:
  - name: first
    local.command: echo one
  - name: gate
    local.command: [test, -e, {flag}]
"""


def test_a_resume_refused_by_the_lock_is_not_recorded_and_forgets_nothing(run, registry, journal, tmp_path):
    summary = run(FAILING.format(flag=tmp_path / "flag"))
    assert summary.status == "failed"
    other = subprocess.Popen(["sleep", "60"])  # a live process that holds the run's lock
    try:
        with journal._tx() as db:
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?,?,?)",
                       (f"run:{summary.run_id}", summary.run_id, other.pid, socket.gethostname(), time.time()))
        before = journal.nodes(summary.run_id)
        with pytest.raises(RunLockedError, match=f"held by run {summary.run_id} \\(pid {other.pid}"):
            resume_run(summary.run_id, registry, journal, RunRequest(), forget=["first@localhost"])
    finally:
        other.kill()
        other.wait()
    kinds = [kind for _, kind, _, _ in journal.events(summary.run_id)]
    assert "resumed" not in kinds
    assert journal.nodes(summary.run_id).keys() == before.keys()  # "first" was not forgotten
    assert journal.get_run(summary.run_id).status == "failed"


def test_a_resume_that_gets_the_lock_is_recorded(run, registry, journal, tmp_path):
    summary = run(FAILING.format(flag=tmp_path / "flag"))
    (tmp_path / "flag").touch()
    again = resume_run(summary.run_id, registry, journal, RunRequest(), forget=["gate@localhost"])
    assert again.status == "succeeded"
    assert [kind for _, kind, _, _ in journal.events(summary.run_id)].count("resumed") == 1


GATED = """
opsbook: 1
name: t
steps:
  - name: gate
    approve: "go?"
    local.command: echo go
"""


def test_an_approval_keeps_the_time_it_was_requested(run, journal):
    def slow_person(request):
        time.sleep(0.4)
        return True, "slow person"

    summary = run(GATED, approver=slow_person)
    (approval,) = journal.approvals(summary.run_id)
    assert approval["approved"] and approval["who"] == "slow person"
    assert approval["decided"] - approval["requested"] >= 0.35, approval


def test_a_decision_from_another_shell_keeps_both_times(run, journal, tmp_path):
    decided_at: list[float] = []

    def approve_later() -> None:
        other = Journal(tmp_path / "journal.db")

        def decided() -> bool:
            try:
                return other.decide(other.latest_run_id(), "gate", True, "alice")
            except RunError:  # no run in the journal yet
                return False

        try:
            wait_for("a run waiting at the gate to take the decision", decided, timeout=30, interval=0.3)
            decided_at.append(time.time())
        finally:
            other.close()

    thread = threading.Thread(target=approve_later)
    thread.start()
    start = time.time()
    summary = run(GATED, approver=journal_approver(lambda: Journal(tmp_path / "journal.db"), timeout=30, poll=1.0))
    thread.join()
    (approval,) = journal.approvals(summary.run_id)
    assert approval["who"] == "alice" and approval["approved"]
    assert start <= approval["requested"] < approval["decided"] <= decided_at[0]  # not the time it was read back


DUPLICATE_NAMES = """
opsbook: 1
name: t
steps:
  - name: restart
    local.command: echo a
  - name: restart
    local.command: echo b
  - name: after
    needs: [restart]
    local.command: echo c
"""


def test_needs_naming_a_name_used_twice_names_both_places(load, write, tmp_path):
    from opsbook.api import load_inventory_sources, make_plan

    rb = load(DUPLICATE_NAMES)
    with pytest.raises(ValidationError) as err:
        make_plan(rb, load_inventory_sources([]), {})
    (diag,) = err.value.diagnostics
    path = str(tmp_path / "rb.yaml")
    assert diag.message == (f'step "after" needs "restart", but 2 steps have that name: {path}:4:5 (id restart) '
                            f"and {path}:6:5 (id restart-2)")
    assert diag.position.line == 8
    assert "needs: [restart-2]" in diag.hint


def test_needs_by_id_or_by_a_written_id_still_binds(load):
    from opsbook.api import load_inventory_sources, make_plan

    rb = load(DUPLICATE_NAMES.replace("needs: [restart]", "needs: [restart-2]"))
    plan = make_plan(rb, load_inventory_sources([]), {})
    assert ("restart-2", "after") in plan.step_edges
    rb = load(DUPLICATE_NAMES.replace("  - name: restart\n    local.command: echo b",
                                      "  - name: restart\n    id: restart-b\n    local.command: echo b")
              .replace("needs: [restart]", "needs: [restart-b]"))
    plan = make_plan(rb, load_inventory_sources([]), {})
    assert ("restart-b", "after") in plan.step_edges


def test_a_looped_block_is_one_step_for_needs(load):
    from opsbook.api import load_inventory_sources, make_plan

    rb = load("""
        opsbook: 1
        name: t
        steps:
          - name: per site
            loop: [a, b]
            block:
              - name: prepare
                local.command: echo prep
          - name: after
            needs: [prepare]
            local.command: echo done
        """)
    make_plan(rb, load_inventory_sources([]), {})  # no "2 steps have that name"


