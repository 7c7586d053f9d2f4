"""ActionContext.deadline_left counts down: it is the time left before the step's timeout
*now*, not the time that was left when the action started (docs/plugins.md, ActionContext)."""

from __future__ import annotations

import opsbook.plugin as plugin_module
from opsbook.plugin import ActionContext, HostInfo


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_deadline_left_shrinks_as_the_action_runs(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(plugin_module.time, "monotonic", clock)
    ctx = ActionContext(host=HostInfo("db1", {}), step_name="wait", timeout=60.0)
    assert ctx.deadline_left() == 60.0
    clock.now += 45.0
    assert ctx.deadline_left() == 15.0
    assert ctx.deadline_left(5.0) == 15.0  # the default is for a step without a timeout
    clock.now += 30.0
    assert ctx.deadline_left() == 0.0  # past the deadline: nothing left, never negative
    assert ctx.timeout == 60.0  # the field keeps what was left when the action started


def test_deadline_left_without_a_timeout_is_the_default() -> None:
    ctx = ActionContext(host=HostInfo("db1", {}), step_name="wait")
    assert ctx.deadline_left() is None
    assert ctx.deadline_left(10.0) == 10.0
