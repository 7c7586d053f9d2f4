"""A plugin's data cannot silently lose a key to `register:`: declaring a key register sets
itself (`changed`, `rc`, `msg`, ...) is a PluginError when the plugin registers; returning
one with another value than register's fails the node, saying which key and why."""

from __future__ import annotations

import pytest
from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.errors import PluginError
from opsbook.execute import RunOptions
from opsbook.load import RunbookLoader
from opsbook.plugin import REGISTERED_KEYS, ActionContext, Plugin, Result, Status
from opsbook.registry import Registry
from opsbook.testing import registry_with, run_action
from opsbook_svcadm import legacy
from pydantic import BaseModel


class NoArgs(BaseModel):
    pass


def test_declaring_a_key_register_sets_itself_is_refused_when_the_plugin_registers():
    plugin = Plugin("counts", "test plugin")
    with pytest.raises(PluginError) as caught:

        @plugin.action(data=["files", "changed", "rc"])
        def tally(ctx: ActionContext, args: NoArgs) -> Result:
            return Result.ok()

    assert str(caught.value) == (
        'counts.tally declares data keys "changed", "rc", which register: sets itself (from the Result\'s own '
        'fields); the plugin must name them differently, e.g. "changed_count" or a nested mapping')
    assert "tally" not in plugin.actions


def test_no_installed_plugin_declares_one():
    registry = Registry.from_entry_points()
    plugins = registry.plugins
    assert registry.broken == {}
    assert {"docker", "k8s", "local", "probe", "ssh", "svcadm"} <= set(plugins)
    for plugin in plugins.values():
        for name, spec in plugin.actions.items():
            assert not REGISTERED_KEYS.intersection(spec.data or ()), f"{plugin.name}.{name}"
    assert {"added", "modified", "deleted"} <= set(plugins["docker"].actions["diff"].data)


def test_returning_one_fails_the_node_naming_the_key(write, tmp_path, monkeypatch, journal):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    runs_with = registry_with(legacy.plugin)
    rb = RunbookLoader(runs_with).load_file(write("rb.yaml", """
        opsbook: 1
        name: t
        steps:
          - name: count
            svcadm_legacy.restarts: web
            register: r
            ignore_errors: true
          - name: what was kept
            local.assert: {that: ["r.failed", "r.changed is false", "r.service == 'web'"]}
        """))
    plan = make_plan(rb, load_inventory_sources([]), {})
    summary = start_run(plan, runs_with, journal, RunRequest(options=RunOptions()))
    nodes = journal.nodes(summary.run_id)
    assert nodes["count@localhost"].status == "failed"
    assert nodes["count@localhost"].msg == (
        'svcadm_legacy.restarts returned data key "changed", which register: sets itself (from the Result\'s '
        'own fields); the plugin must name it differently, e.g. "changed_count" or a nested mapping; '
        "its message: web restarted twice")
    assert nodes["what-was-kept@localhost"].status == "ok"


def test_the_plugin_authors_test_kit_says_the_same():
    done = run_action(legacy.plugin, "restarts", {"service": "web"})
    assert done.result.status is Status.FAILED and 'returned data key "changed"' in done.result.msg
    assert done.result.data == {"service": "web"}


def test_a_key_with_the_value_register_gives_it_anyway_is_kept():
    done = run_action(legacy.plugin, "plan", {"service": "web"})
    assert done.result.status is Status.OK
    assert done.result.registered()["diff"] == done.result.data["diff"] == "-web: online\n+web: restarting\n"


def test_status_is_the_actions_own_and_outcome_the_engines():
    value = Result(status=Status.OK, data={"status": 418, "outcome": "mine"}).registered()
    assert (value["status"], value["outcome"]) == (418, "ok")
