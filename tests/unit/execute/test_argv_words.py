"""A command line that becomes an argv (the string form of `local.command`, `ssh.command`, any
action declaring `argv=`) keeps every templated value one word, whatever the value holds.

Issue 16, item 1: the line used to be rendered, then split, so `rm -f {{ file }}` with
file="/tmp/x/a /tmp/x/keep" removed both files.
"""

from __future__ import annotations

import json
import sys
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsbook.errors import TemplateError
from opsbook.template import render_argv

# Values an attacker (or an alert's label) could hold: spaces, quotes, shell syntax, newlines.
_HOSTILE = st.text(
    alphabet=st.sampled_from(list(" \t\n'\"\\;$()`|&<>*?#{}%=-~!") + list("ab/.\u00e9\ue000")),
    max_size=24,
)
_ANY = st.one_of(_HOSTILE, st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                                   max_size=24))


def _argv_actions(registry):
    return sorted((spec for p in registry.plugins.values() for spec in p.actions.values() if spec.argv_fields),
                  key=lambda s: s.full_name)


def test_the_reported_case_deletes_only_the_named_file(run, tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "tmpfile").write_text("")
    (folder / "keep").write_text("")
    summary = run("""
        opsbook: 1
        name: arginj
        params: {file: {type: string}}
        steps:
          - name: remove the temp file
            local.command: "rm -f {{ file }}"
        """, params={"file": f"{folder}/tmpfile {folder}/keep"})
    assert summary.status == "succeeded"  # rm -f of a name that does not exist succeeds
    assert sorted(p.name for p in folder.iterdir()) == ["keep", "tmpfile"]


@pytest.mark.parametrize(("line", "want"), [
    ("rm -f {{ f }}", ["rm", "-f", "a b; c"]),
    ('grep "{{ f }}" file', ["grep", "a b; c", "file"]),  # quotes written around a value
    ("echo '{{ f }}'", ["echo", "a b; c"]),
    ("--opt={{ f }}x", ["--opt=a b; cx"]),
    ("rm {{ empty }} z", ["rm", "", "z"]),  # an empty value is still an argument
    ("rm {% if force %}-f {% endif %}{{ f }}", ["rm", "a b; c"]),  # a block spanning words
    ("echo {{ f | default('x y') }} {{ missing | default('x y') }}", ["echo", "a b; c", "x y"]),
    ("ls {{ items }}", ["ls", "one two", "three"]),  # a list: one word per item
    ("echo {{ flags | raw }} end", ["echo", "-l", "-a", "end"]),  # the author opted out
    ('plain "a b" c', ["plain", "a b", "c"]),
])
def test_render_argv_keeps_each_value_one_word(line, want):
    ctx = {"f": "a b; c", "empty": "", "force": False, "items": ["one two", "three"], "flags": "-l -a"}
    assert render_argv(line, ctx) == want


def test_an_unclosed_quote_is_a_clear_template_error():
    with pytest.raises(TemplateError, match="cannot split the command line .* No closing quotation"):
        render_argv("echo 'oops {{ x }}", {"x": 1})


@settings(max_examples=300, deadline=None)
@given(a=_ANY, b=_ANY)
def test_every_argv_action_gives_exactly_the_intended_words(registry, a, b):
    """Property: for every action that turns a string into an argv, and any values, the argv has
    the literal words of the line and each value as exactly one word."""
    line = "prog {{ a }} --name={{ b }} \"{{ a }}\" '{{ b }}x' lit\\ eral"
    want = ["prog", a, f"--name={b}", a, f"{b}x", "lit eral"]
    actions = _argv_actions(registry)
    assert actions, "no action declares argv= fields"
    for spec in actions:
        for field in spec.argv_fields:
            assert spec.render_field(field, line, {"a": a, "b": b}) == want, spec.full_name


def test_local_and_ssh_command_render_their_string_form_as_an_argv(registry):
    names = {s.full_name for s in _argv_actions(registry)}
    assert {"local.command", "ssh.command"} <= names


def _accepts_str_and_list(annotation) -> bool:
    args = typing.get_args(annotation)
    return str in args and any(typing.get_origin(a) is list and typing.get_args(a) == (str,) for a in args)


def test_every_argument_that_is_a_command_line_or_an_argv_says_how_it_is_rendered(registry):
    """A field taking a string or a list is a command line (the list being its argv): a plain
    render of the string would let a value with spaces become several arguments."""
    undeclared = []
    for plugin in registry.plugins.values():
        for spec in plugin.actions.values():
            for name, field in spec.args_model.model_fields.items():
                if _accepts_str_and_list(field.annotation) and name not in spec.argv_fields | spec.shell_fields:
                    undeclared.append(f"{spec.full_name}.{name}")
    assert undeclared == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_HOSTILE, b=_HOSTILE)
def test_local_command_runs_the_program_with_exactly_those_words(run, tmp_path, a, b):
    """The same property through the real engine and a real process on the controller."""
    out = tmp_path / "argv.json"
    script = tmp_path / "argv.py"
    script.write_text(f"import json, sys\nopen({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    summary = run(f"""
        opsbook: 1
        name: argv
        params: {{a: {{type: string}}, b: {{type: string}}}}
        steps:
          - local.command: "{sys.executable} {script} {{{{ a }}}} x{{{{ b }}}}"
        """, params={"a": a, "b": b})
    assert summary.status == "succeeded", summary.message
    assert json.loads(out.read_text()) == [a, f"x{b}"]


def test_ssh_command_argv_is_the_rendered_words(registry):
    from opsbook_plugins.ssh import CommandArgs

    words = render_argv("printf %s {{ v }}", {"v": "a b'c\n$(d)"})
    assert CommandArgs(cmd=words).argv() == ["printf", "%s", "a b'c\n$(d)"]


def test_plan_shows_a_command_line_as_the_argv_it_runs(registry, tmp_path, write):
    from opsbook.api import load_inventory_sources, load_runbook, make_plan
    from opsbook.planview import plan_json, plan_text

    rb = load_runbook(write("rb.yaml", """
        opsbook: 1
        name: p
        params: {file: {type: string}}
        steps:
          - name: rm
            local.command: "rm -f {{ file }}"
        """), registry)
    plan = make_plan(rb, load_inventory_sources([]), {"file": "/a /b"})
    node = plan_json(plan, registry)["nodes"][0]
    assert node["args"] == ["rm", "-f", "/a /b"]
    assert '["rm", "-f", "/a /b"]' in plan_text(plan, registry)


def test_a_rollback_command_line_keeps_values_one_word(run, tmp_path):
    folder = tmp_path / "y"
    folder.mkdir()
    (folder / "keep").write_text("")
    summary = run(f"""
        opsbook: 1
        name: rb
        params: {{file: {{type: string}}}}
        steps:
          - name: act
            local.command: "true"
            rollback: {{local.command: "rm -f {{{{ file }}}}"}}
          - local.fail: stop
        """, params={"file": f"{folder}/gone {folder}/keep"})
    assert summary.status == "failed"
    assert (folder / "keep").exists()


def test_the_value_is_data_even_when_it_looks_like_a_placeholder():
    assert render_argv("echo {{ v }}", {"v": "\ue0000\ue001 x"}) == ["echo", "\ue0000\ue001 x"]
    with pytest.raises(TemplateError, match="reserved"):
        render_argv("echo \ue000", {})

