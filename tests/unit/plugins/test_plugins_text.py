"""`opsbook plugins NAME` tells what a runbook writes for every argument of every installed
action (issue 25 item 8): the name as written (`from:`, not `from_`), the allowed values of a
Literal, the real default (also one made by a default factory), required marked; and the
text, the JSON and `opsbook schema` are one schema."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from opsbook.argdoc import args_schema, argument_lines
from opsbook.registry import Registry
from opsbook.schema import runbook_schema

REGISTRY = Registry.from_entry_points()
ACTIONS = sorted(REGISTRY.action_names())


def opsbook(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True, timeout=120,
                          check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("plugin", sorted(REGISTRY.plugins))
def test_every_argument_is_shown_as_a_runbook_writes_it(plugin):
    text = opsbook("plugins", plugin)
    assert "PydanticUndefined" not in text and "Literal" not in text and "typing." not in text
    for aname, spec in REGISTRY.plugins[plugin].actions.items():
        model = spec.args_model
        block = text.split(f"  {plugin}.{aname}  ", 1)[1].split(f"\n  {plugin}.", 1)[0]
        shown = {line.strip().split(":", 1)[0]: line.strip() for line in block.splitlines()[1:]}
        for fname, field in model.model_fields.items():
            written = field.alias or fname
            assert written in shown, f"{plugin}.{aname}: {written!r} missing from\n{block}"
            if field.alias and field.alias != fname:
                assert fname not in shown, f"{plugin}.{aname} shows the Python name {fname!r}"
            line = shown[written]
            if field.is_required():
                assert "(required)" in line, line
            else:
                default = field.get_default(call_default_factory=True)
                assert f"(default {json.dumps(default, default=str)})" in line, line
            prop = args_schema(spec)["properties"][written]
            for choice in [*prop.get("enum", ()), *(v for sub in prop.get("anyOf", ()) for v in sub.get("enum", ()))]:
                assert str(choice) in line, f"allowed value {choice!r} not shown: {line}"


def test_text_json_and_schema_are_one_schema():
    data = json.loads(opsbook("plugins", "--format", "json"))
    schema = runbook_schema(REGISTRY)
    for full in ACTIONS:
        plugin, aname = full.split(".", 1)
        spec = REGISTRY.action(full)
        arguments = data[plugin]["actions"][aname]["arguments"]
        assert arguments == args_schema(spec)
        step_variant = schema["$defs"]["step"]["properties"][full]["anyOf"][0]
        assert set(step_variant.get("properties", {})) == set(arguments.get("properties", {}))
        for name, prop in arguments.get("properties", {}).items():
            if "default" in prop:  # `opsbook schema` tells editors the same default
                variant = step_variant["properties"][name]
                assert prop["default"] == variant.get("default", variant.get("anyOf", [{}])[0].get("default")), name


def test_known_lines_read_as_written():
    lines = {full: "\n".join(argument_lines(REGISTRY.action(full))) for full in ("ssh.service", "ssh.command", "probe.http")}
    assert "state: one of: started, stopped, restarted, reloaded (required)" in lines["ssh.service"]
    assert "env: map of string (default {})" in lines["ssh.command"]
    assert "ok_rc: list of int (default [0])" in lines["ssh.command"]
    assert "cmd: string | list of string (required) [argv] [short form: ssh.command: <cmd>]" in lines["ssh.command"]
    assert '      from: list of string | {name (required), host, port, url} (default ["controller"])' in lines["probe.http"]
    assert 'method: one of: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH (default "GET")' in lines["probe.http"]
