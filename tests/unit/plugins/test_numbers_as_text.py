"""A template that renders a number where an action wants text passes the number's text,
as Ansible does (found by a newcomer: `labels: {n: "{{ item }}"}` over `loop: [1, 2]` failed
at run time with "Input should be a valid string"); a bool is never turned into text."""

from __future__ import annotations

import pytest
from opsbook.plugin import ActionContext, Plugin, Result, Status
from opsbook.testing import ArgumentError, run_action
from opsbook_plugins import local
from pydantic import BaseModel, ConfigDict, ValidationError


plugin = Plugin("t", "test")


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: dict[str, str]
    names: list[str] = []


@plugin.action()
def act(ctx: ActionContext, args: Args) -> Result:
    raise AssertionError("not run")


def test_a_number_rendered_into_a_text_argument_is_its_text():
    done = run_action(local.plugin, "assert", {"that": "true", "success_msg": "{{ n }}"}, variables={"n": 3})
    assert done.result.status is Status.OK and done.result.msg == "3"
    argv = run_action(local.plugin, "command", {"cmd": ["echo", "{{ n }}", "{{ x }}"]}, variables={"n": 7, "x": 1.5})
    assert argv.args.cmd == ["echo", "7", "1.5"] and argv.result.stdout == "7 1.5\n"


def test_numbers_nested_in_maps_and_lists_too_but_never_a_bool():
    spec = plugin.actions["act"]
    parsed = spec.parse_args({"labels": {"n": 2, "s": "x"}, "names": [1, "b"]})
    assert parsed.labels == {"n": "2", "s": "x"} and parsed.names == ["1", "b"]
    with pytest.raises(ValidationError):
        spec.parse_args({"labels": {"flag": True}})
    with pytest.raises(ArgumentError):
        run_action(plugin, "act", {"labels": {"flag": "{{ b }}"}}, variables={"b": False})
