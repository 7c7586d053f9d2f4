"""Every built-in action with an inverse declares the actions that inverse may name
(`inverse_actions=`), and each of them is installed: `opsbook check` can then vouch for
the rollback of every built-in step before a run (issue 30)."""

from __future__ import annotations

import pytest
from opsbook.errors import PluginError
from opsbook.plugin import ActionContext, Plugin, Result
from opsbook.registry import Registry
from pydantic import BaseModel

BUILT_IN = ("local", "ssh", "docker", "k8s", "probe")


def _built_in_inverses(registry: Registry):
    for pname in BUILT_IN:
        for spec in registry.plugins[pname].actions.values():
            if spec.inverse is not None:
                yield spec


def test_every_built_in_inverse_declares_what_it_may_run_and_all_of_it_is_installed():
    registry = Registry.from_entry_points()
    assert set(BUILT_IN) <= set(registry.plugins), registry.names
    specs = list(_built_in_inverses(registry))
    assert len(specs) >= 20, [s.full_name for s in specs]  # the walk found the rollbacks it is about
    undeclared = [s.full_name for s in specs if not s.inverse_actions]
    assert undeclared == [], f"built-in actions whose inverse declares no inverse_actions: {undeclared}"
    broken = {s.full_name: registry.inverse_problems(s) for s in specs if registry.inverse_problems(s)}
    assert broken == {}
    for spec in specs:
        assert all(registry.action(a) is not None for a in spec.inverse_actions or ())


class _Args(BaseModel):
    name: str = "x"


def _liar() -> Plugin:
    plugin = Plugin("liar", "declares one inverse, returns another")

    @plugin.action(mutates=True, inverse=lambda args, result: ("local.command", {"cmd": "true"}),
                   inverse_actions=["liar.restore"])
    def change(ctx: ActionContext, args: _Args) -> Result:
        """Changes something; its inverse names an action it did not declare."""
        return Result.ok(changed=True)

    return plugin


def test_an_inverse_that_names_an_undeclared_action_fails_the_step_and_the_kit_says_so(tmp_path, monkeypatch):
    from opsbook.api import RunRequest, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.api import load_inventory_sources
    from opsbook.journal import Journal
    from opsbook.load import RunbookLoader
    from opsbook.testing import run_action

    plugin = _liar()
    with pytest.raises(PluginError, match=r"liar.change's inverse named local.command, which is not among the "
                                          r"actions it declares \(inverse_actions: liar.restore\)"):
        run_action(plugin, "change", {})
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    registry = Registry.from_entry_points()
    registry.add(plugin)
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: liar\nsteps:\n  - name: change\n    liar.change: {}\n")
    journal = Journal(tmp_path / "j.db")
    plan = make_plan(RunbookLoader(registry).load_file(str(rb)), load_inventory_sources([]), {})
    summary = start_run(plan, registry, journal, RunRequest(inventory_sources=[], options=RunOptions()))
    node = journal.nodes(summary.run_id)["change@localhost"]
    assert summary.status == "failed" and node.status == "failed"
    assert ("its undo could not be computed (its inverse named local.command, which is not among the actions it "
            "declares (inverse_actions: liar.restore))") in node.msg
    assert journal.rollbacks(summary.run_id) == [], "nothing undeclared is recorded to run"


def test_inverse_actions_without_an_inverse_or_with_a_bare_name_is_refused_at_import():
    plugin = Plugin("odd")
    with pytest.raises(PluginError, match="give the inverse too"):
        plugin.action(inverse_actions=["odd.undo"])
    with pytest.raises(PluginError, match='"plugin.action", not \'undo\''):
        plugin.action(inverse=lambda a, r: None, inverse_actions=["undo"])
