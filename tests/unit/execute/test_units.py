"""The executor's units at their interfaces (issue 26): rollback order as a function of journal
entries, the scheduler's batches, thresholds and deadlines with a fake clock, a gate deciding
once when an approval races a cancel, and the cancel token itself."""

from __future__ import annotations

import threading

import pytest
from opsbook.api import load_inventory_sources, make_plan
from opsbook.cancel import Cancelled, CancelToken
from opsbook.gates import ApprovalGates, ApprovalRequest
from opsbook.rollback import order
from opsbook.abandon import Stragglers, claim, give_up
from opsbook.noderun import NodeTicket
from opsbook.scheduler import Deadlines, Ready, Thresholds, Workers, batch_index


def _entry(seq: int, host: str | None, node: str = "n") -> dict:
    return {"seq": seq, "host": host, "node_id": f"{node}{seq}", "target": host, "action": "local.noop",
            "args": {}, "status": "pending"}


# -- rollback order ------------------------------------------------------------------------------
def test_rollback_order_is_per_host_newest_first_hosts_side_by_side():
    entries = [_entry(1, "web1"), _entry(2, "web2"), _entry(3, "web1"), _entry(4, None), _entry(5, "web2")]
    waves = order(entries, lambda items: -1)
    assert len(waves) == 1, "no serial rollout: every host in one wave"
    assert [[e["seq"] for e in host] for host in waves[0]] == [[3, 1], [5, 2], [4]]


def test_rollback_order_undoes_the_newest_serial_batch_first_and_unbatched_hosts_last():
    batch = {"web1": 0, "web2": 0, "web3": 1, "lb": -1}
    entries = [_entry(1, "web1"), _entry(2, "web2"), _entry(3, "web3"), _entry(4, "lb"), _entry(5, "web3")]
    waves = order(entries, lambda items: batch[items[0]["host"]])
    assert [[[e["seq"] for e in h] for h in wave] for wave in waves] == [[[5, 3]], [[1], [2]], [[4]]]


def test_rollback_order_of_nothing_is_nothing():
    assert order([], lambda items: -1) == []


# -- scheduler ---------------------------------------------------------------------------------------
SERIAL = """opsbook: 1
name: serial
hosts: web
steps:
  - name: roll
    serial: 2
    max_fail_percentage: 50
    block:
      - name: change
        local.noop: {}
  - name: after
    local.noop: {}
"""
INVENTORY = "[web]\n" + "".join(f"web{i} ansible_connection=local\n" for i in range(1, 5))


@pytest.fixture
def serial_plan(load, write):
    return make_plan(load(SERIAL), load_inventory_sources([write("inv.ini", INVENTORY)]), {})


def _node(plan, step_name: str, host: str):
    return next(n for n in plan.nodes.values() if n.leaf is not None and n.step.name == step_name and n.host == host)


def test_ready_gives_nodes_in_file_order_and_releases_successors(serial_plan):
    ready = Ready(serial_plan)
    first = ready.take()
    assert serial_plan.nodes[first].index == min(n.index for n in serial_plan.nodes.values())
    taken = [first]
    while ready:
        nid = ready.take()
        taken.append(nid)
    for nid in taken:
        ready.release(nid)
    assert ready, "releasing what ran makes its successors ready"


def test_serial_batches_of_the_plan_are_what_the_thresholds_count(serial_plan):
    leaf = _node(serial_plan, "change", "web1").leaf
    assert [list(b) for b in leaf.batches] == [["web1", "web2"], ["web3", "web4"]]
    assert batch_index(leaf.batches, "web3") == 1 and batch_index(leaf.batches, "db") is None


def test_one_failed_host_of_a_batch_of_two_is_at_the_limit_two_are_over_it(serial_plan):
    thresholds = Thresholds(serial_plan, None)
    assert thresholds.host_failed(_node(serial_plan, "change", "web1")) == "", "50% is not over 50%"
    why = thresholds.host_failed(_node(serial_plan, "change", "web2"))
    assert "2 of 2 hosts of batch 1 of 2" in why and "later batches do not start" in why
    assert thresholds.run_failures == 2


def test_the_runs_max_errors_counts_failures_over_every_step(serial_plan):
    thresholds = Thresholds(serial_plan, 1)
    assert thresholds.host_failed(_node(serial_plan, "after", "web1")) == ""
    assert thresholds.host_failed(_node(serial_plan, "after", "web2")) == \
        "2 nodes failed, over the run's max_errors 1"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_deadlines_cancel_a_late_node():
    clock = FakeClock()
    deadlines = Deadlines(None, clock)
    deadlines.start("a", 10)
    deadlines.start("b", 30)
    assert deadlines.check(["a", "b"]) == (False, [])
    clock.t += 10.5
    assert deadlines.left("a") == 0.0 and deadlines.left("b") == pytest.approx(19.5)
    assert deadlines.check(["a", "b"]) == (False, ["a"])
    assert deadlines.check(["b"]) == (False, []), "a node no longer running is not cancelled"


def _ticket(node_id: str, cancel: CancelToken) -> NodeTicket:
    from types import SimpleNamespace

    step = SimpleNamespace(timeout=2.0)
    return NodeTicket(SimpleNamespace(id=node_id, step=step), cancel)  # type: ignore[arg-type]


def test_a_cancelled_node_is_given_up_once_the_grace_has_passed_since_its_cancellation_was_seen():
    clock = FakeClock()
    stragglers = Stragglers(5.0, clock)
    a, b = _ticket("a", CancelToken()), _ticket("b", CancelToken())
    inflight = {"a": a, "b": b}
    assert stragglers.due(inflight) == [], "nothing cancelled"
    b.cancel.set("interrupted")  # b waits for a thread: nothing of it runs
    a.worker = "node-0"
    a.cancel.set("timed out")
    clock.t += 100  # the grace counts from when the cancellation is first seen, not from the start
    assert stragglers.due(inflight) == []
    clock.t += 5.0
    assert stragglers.due(inflight) == [], "exactly the grace: not yet"
    clock.t += 0.1
    assert stragglers.due(inflight) == [a], "b is not counted while no thread runs it"
    assert "timed out after 2s; x.y did not stop within 5s of being cancelled: abandoned, in doubt" in \
        stragglers.why(a, "x.y")
    del inflight["a"]
    assert stragglers.due(inflight) == [] and not stragglers._since, "a node no longer in flight is forgotten"


def test_the_worker_and_the_scheduler_never_both_own_a_nodes_outcome():
    returned, stuck = _ticket("a", CancelToken()), _ticket("b", CancelToken())
    assert claim(returned) and not give_up(returned), "an action that returned is recorded by its worker"
    assert give_up(stuck) and not claim(stuck), "an abandoned action's late result is only noted"
    assert not give_up(stuck), "abandoned once"


def test_a_forsaken_worker_is_not_waited_for_and_another_takes_its_place():
    import threading

    release = threading.Event()
    started = threading.Event()
    done: list[str] = []
    holder: dict[str, threading.Thread] = {}

    def stuck() -> None:
        holder["t"] = threading.current_thread()
        started.set()
        release.wait(30)
        done.append("stuck")

    with Workers(1) as workers:
        workers.submit(stuck)
        assert started.wait(10)
        workers.forsake(holder["t"])
        workers.submit(done.append, "next")  # runs on a new thread although size is 1
    assert done == ["next"], "the end of the pool waited for the new thread only"
    assert holder["t"].is_alive() and holder["t"].daemon
    release.set()
    holder["t"].join(10)
    assert done == ["next", "stuck"]


def test_the_runs_deadline_expires_once():
    clock = FakeClock()
    deadlines = Deadlines(60, clock)
    assert deadlines.check([])[0] is False
    clock.t += 61
    assert deadlines.check([])[0] is True
    assert deadlines.check([])[0] is False, "reported once"


# -- gates -----------------------------------------------------------------------------------------
def _request(stop: CancelToken, node: str = "n1") -> ApprovalRequest:
    return ApprovalRequest("run", node, "s", "switch", "web1", "sure?", "local.noop", {}, block_id="blk",
                           block_name="switch", cancelled=stop)


def test_a_block_gate_decides_once_when_an_approval_races_a_cancel():
    """Two steps of one block on one host reach the gate together; the approver answers yes
    just after the run is stopped: the approver is asked once, the yes is refused, and
    neither step may act (the second waits on the gate's lock through the stop token)."""
    for _ in range(20):
        stop = CancelToken()
        asked: list[str] = []
        why = {"stopped": ""}
        answer = threading.Barrier(2)

        def approver(req: ApprovalRequest) -> tuple[bool, str]:
            asked.append(req.node_id)
            answer.wait()  # the stop lands now, while the approver says yes
            req.cancelled.wait(5)  # ... and the yes arrives just after it
            return True, "alice"

        def stopper() -> None:
            answer.wait()
            why["stopped"] = "interrupted by SIGTERM"
            stop.set(why["stopped"])

        gates = ApprovalGates(approver)
        results: list = []
        threads = [threading.Thread(target=lambda n=n: results.append(
            gates.decide(_request(stop, n), lambda: why["stopped"] if stop.is_set() else "", lambda r: None)))
            for n in ("n1", "n2")]
        side = threading.Thread(target=stopper)
        for t in (*threads, side):
            t.start()
        for t in (*threads, side):
            t.join(10)
        assert len(asked) == 1, "a block's gate is asked once per host"
        assert len(results) == 2
        for decision, _ in results:  # the one decision, or the stop that ended the wait for it
            assert decision.cancelled == "interrupted by SIGTERM" and not decision.approved
        assert sorted(a for _, a in results) == [False, True], "asked once; the other step is not asked"


def test_a_gate_reached_after_a_stop_is_cancelled_without_asking():
    stop = CancelToken()
    stop.set("the run's timeout expired")
    asked: list[str] = []
    gates = ApprovalGates(lambda req: (asked.append(req.node_id), (True, "bob"))[1])
    decision, _ = gates.decide(_request(stop), lambda: "the run's timeout expired", lambda r: None)
    assert decision.cancelled == "the run's timeout expired" and not decision.approved and asked == []


# -- the cancel token ------------------------------------------------------------------------------
def test_setting_a_token_sets_its_children_and_a_child_of_a_set_token_starts_set():
    run = CancelToken()
    stop = run.child()
    node = run.child()
    assert not stop.is_set() and not node.wait(0)
    stop.set("threshold")
    assert stop.is_set() and not run.is_set() and not node.is_set(), "a child does not set its parent"
    run.set("interrupted by SIGINT")
    assert node.wait(0) and node.reason == "interrupted by SIGINT"
    assert stop.reason == "threshold", "the first reason is kept"
    late = run.child()
    assert late.is_set()
    with pytest.raises(Cancelled, match="interrupted by SIGINT"):
        late.raise_if_cancelled()
    assert late.sleep(5) is False


def test_a_lock_wait_through_the_token_gives_up_when_it_is_set():
    token = CancelToken()
    lock = threading.Lock()
    lock.acquire()
    threading.Timer(0.05, token.set).start()
    assert token.acquire(lock, poll=0.01) is False
    lock.release()
    assert CancelToken().acquire(lock) is True and lock.locked()


def test_an_actions_sleep_ends_when_its_node_is_cancelled():
    from opsbook.plugin import ActionContext, HostInfo

    ctx = ActionContext(host=HostInfo("localhost", {}), step_name="poll")
    assert ctx.sleep(0) is True, "an uncancelled wait runs to its end"
    threading.Timer(0.05, ctx.cancelled.set, args=("interrupted by SIGTERM",)).start()
    assert ctx.sleep(600) is False
    with pytest.raises(Cancelled, match="SIGTERM"):
        ctx.raise_if_cancelled()
