"""Templates cannot change the run's state (issue 16, item 6): `{{ groups.lb.reverse() }}` in
one step used to reverse `groups.lb` for the rest of the run, so a later
`delegate_to: "{{ groups['lb'][0] }}"` went to another host."""

from __future__ import annotations

import pytest

from opsbook.errors import TemplateError
from opsbook.template import evaluate, render

INVENTORY = """
[lb]
lb1 ansible_connection=local
lb2 ansible_connection=local
[web]
web1 ansible_connection=local backends='["a", "b"]' limits='{"cpu": 1}'
"""

# (what a template tries, the expression that must be unchanged afterwards, its value)
MUTATIONS = [
    ("groups.lb.reverse()", "groups.lb", ["lb1", "lb2"]),
    ("groups.lb.append('evil')", "groups.lb", ["lb1", "lb2"]),
    ("groups.lb.pop()", "groups.lb", ["lb1", "lb2"]),
    ("groups.lb.clear()", "groups.lb", ["lb1", "lb2"]),
    ("groups.lb.sort(reverse=true)", "groups.lb", ["lb1", "lb2"]),
    ("groups.update({'lb': ['web1']})", "groups.lb", ["lb1", "lb2"]),
    ("groups.pop('lb')", "groups.lb", ["lb1", "lb2"]),
    ("hostvars.web1.backends.reverse()", "hostvars.web1.backends", ["a", "b"]),
    ("hostvars.web1.limits.update({'cpu': 99})", "hostvars.web1.limits", {"cpu": 1}),
    ("hostvars.web1.first.update({'rc': 99})", "hostvars.web1.first.rc", 0),
    ("backends.insert(0, 'evil')", "backends", ["a", "b"]),
    ("host.vars.backends.remove('a')", "backends", ["a", "b"]),
    ("params.update({'target': 'lb2'})", "params.target", "lb1"),
    ("params.setdefault('extra', 1)", "params.extra | default('none')", "none"),
    ("first.update({'rc': 99})", "first.rc", 0),
    ("first.stdout_lines.append('x')", "first.stdout_lines", ["one"]),
    ("kept.items_.append(3)", "kept.items_", [1, 2]),
    ("run.update({'check': true})", "run.check", False),
]


@pytest.mark.parametrize(("attempt", "probe", "value"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_template_cannot_change_run_state(run, journal, attempt, probe, value):
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: web1
        params: {{target: {{type: string, default: lb1}}}}
        steps:
          - name: first
            local.command: echo one
            register: first
          - name: keep
            local.set: {{kept: {{items_: [1, 2]}}}}
          - name: tries
            local.set: {{x: "{{{{ {attempt} }}}}"}}
            ignore_errors: true
          - name: reads
            local.assert: "({probe}) == {value!r}"
        """, INVENTORY)
    nodes = journal.nodes(summary.run_id)
    tried = nodes["tries@web1"]
    assert tried.status == "failed"
    assert "cannot change" in tried.msg and "returns a new value" in tried.msg, tried.msg
    assert nodes["reads@web1"].status == "ok", nodes["reads@web1"].msg
    assert summary.status == "succeeded"


def test_the_reported_case_delegates_to_the_first_balancer(run, journal, tmp_path):
    summary = run("""
        opsbook: 1
        name: t
        hosts: web1
        steps:
          - name: reverse
            local.set: {x: "{{ groups.lb.reverse() }}"}
            ignore_errors: true
          - name: on the first balancer
            local.command: echo hi
            delegate_to: "{{ groups['lb'][0] }}"
            register: where
          - local.assert: "groups['lb'][0] == 'lb1'"
        """, INVENTORY)
    assert summary.status == "succeeded"


@pytest.mark.parametrize("source", ["{{ x.append(1) }}", "{{ x.reverse() }} and text", "{% if x.pop() %}{% endif %}"])
def test_render_and_evaluate_refuse_mutations(source):
    data = {"x": [1, 2]}
    with pytest.raises(TemplateError, match="cannot change"):
        render(source, data)
    with pytest.raises(TemplateError, match="cannot change"):
        render(source, data, shell=True)
    assert data == {"x": [1, 2]}


def test_a_when_condition_cannot_mutate_either():
    data = {"x": [1, 2]}
    with pytest.raises(TemplateError, match="cannot change"):
        evaluate("x.pop() == 2", data)
    assert data == {"x": [1, 2]}


def test_filters_that_return_new_values_still_work():
    data = {"x": [2, 1], "d": {"a": 1}}
    assert render("{{ x | reverse | list }}", data) == [1, 2]
    assert render("{{ x | sort }}", data) == [1, 2]
    assert render("{{ d | combine({'b': 2}) }}", data) == {"a": 1, "b": 2}
    assert render("{{ x + [3] }}", data) == [2, 1, 3]
    assert data == {"x": [2, 1], "d": {"a": 1}}


def test_an_expression_ending_with_a_dict_literal_is_evaluated():
    """Found on the way: evaluate() wrapped the expression in {{ }}, and `== {'a': 1}` closed
    the braces early ("'Template' object is not callable")."""
    assert evaluate("x == {'a': 1}", {"x": {"a": 1}}) is True


@pytest.mark.parametrize("source", ["{{ namespace }}", "a {{ dict }}", "{{ range }}", "{{ x.append }}"])
def test_a_function_or_class_is_no_value(source):
    """The fuzz suite printed `<class 'jinja2.utils.Namespace'>` for `{{ namespace }}`."""
    for shell in (False, True):
        with pytest.raises(TemplateError, match="is a function or a class, not a value|cannot change"):
            render(source, {"x": [1]}, shell=shell)
