"""Durations and the RTO come from the monotonic clock (issue 24 item 15): a +2 h wall-clock
step while a step runs changes neither; the wall-clock stamps stay in the journal."""

from __future__ import annotations

import time

from opsbook import report
from opsbook.runtypes import RunClock

STEP = 7200.0  # seconds the wall clock jumps forward

RUNBOOK = """opsbook: 1
name: clock-step
objectives: {rto: 5m}
steps:
  - name: mitigate
    local.wait: 0.2
    marks: [mitigation]
  - name: verify
    local.noop: {}
    marks: [verification]
"""


def test_a_wall_clock_step_during_a_step_changes_no_duration_and_no_rto(run, journal, monkeypatch):
    real = time.time
    offset = {"s": 0.0}

    def stepped() -> float:
        return real() + offset["s"]

    def on_event(event) -> None:
        if event.kind == "node_started" and event.step == "mitigate":
            offset["s"] = STEP  # NTP, a resumed VM: wall time jumps while the step waits

    monkeypatch.setattr(time, "time", stepped)
    summary = run(RUNBOOK, listeners=[on_event])
    assert summary.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    mitigate = next(n for n in nodes.values() if n.step_id.startswith("mitigate"))
    assert mitigate.finished - mitigate.started > STEP, "the journal keeps the wall-clock stamps"
    assert 0.2 <= mitigate.elapsed < 60
    view = report.gather(journal, summary.run_id)
    shown = view.node(mitigate.node_id)
    assert shown is not None and 0.2 <= shown.finished - shown.started < 60
    r = report.rto_of(view)
    assert r["rto"] is not None and 0.2 <= r["rto"] < 60, r
    assert r["rto_met"] is True
    assert view.end - view.run.started < 60
    line = report.objectives_line(journal, summary.run_id)
    assert "met" in line and "missed" not in line, line


def test_the_run_clock_reads_wall_time_at_the_start_plus_monotonic_seconds():
    wall = iter([1000.0])
    mono = {"t": 50.0}
    clock = RunClock(wall=lambda: next(wall), mono=lambda: mono["t"])
    mono["t"] = 53.5
    assert clock.now() == 1003.5
    assert clock.elapsed() == 3.5
    assert clock.at(52.0) == 1002.0
