"""Hostile or broken input: generated and mutated runbooks, inventories and templates.

Every document ends in success or a clean opsbook error that names the file (and a line
where there is one) — never a Python traceback, never a hang. Example counts are modest
in the default run; OPSBOOK_FUZZ_EXAMPLES raises them (CI's soak job uses 20000).
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsbook.errors import UserError
from opsbook.inventory import ansible_list, load_inventory
from opsbook.keywords import RUNBOOK_KEYWORDS, STEP_KEYWORDS
from opsbook.load import RunbookLoader
from opsbook.registry import Registry
from opsbook.template import evaluate, render

EXAMPLES = int(os.environ.get("OPSBOOK_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=list(HealthCheck),
                derandomize=os.environ.get("CI") is not None)

REGISTRY = Registry.from_entry_points()
LOADER = RunbookLoader(REGISTRY)

SEED_RUNBOOK = """opsbook: 1
name: seed
phase: failover
objectives: {rto: 5m, rpo: 1m}
params:
  primary: {type: host, default: web1}
  count: 3
vars: {url: "http://{{ inventory_hostname }}:8080/"}
steps:
  - name: probe
    local.http: {url: "{{ url }}", status: 200}
    register: r
    retries: 3
    delay: 1s
    ignore_errors: true
  - name: fix
    when: r.failed
    needs: [probe]
    local.shell: "echo {{ params.primary }}"
    rollback: {local.shell: "echo undo"}
  - block:
      - local.noop: {}
    rescue:
      - local.fail: boom
    always:
      - local.wait: 0
handlers:
  - name: h
    local.noop: {}
"""

SEED_INI = """# inventory
[web]
web[01:03] ansible_host=127.0.0.1 ansible_port=2201 http_port=8080
db1:2222 role=primary

[web:vars]
tier=front

[all:children]
web

[db]
db[a:c].example.
"""

YAML_NOISE = list(":-[]{}&*!|>'\"%@`#,?\n\t ") + ["{{", "}}", "<<", "---", "...", "\n  ", "\n- "]


def mutate(seed: str, edits: list[tuple[int, int, str]]) -> str:
    text = seed
    for kind, where, piece in edits:
        pos = where % (len(text) + 1)
        if kind == 0:
            text = text[:pos] + piece + text[pos:]
        elif kind == 1:
            text = text[:pos] + text[pos + len(piece):]
        else:
            text = text[:pos] + piece + text[pos + 1:]
    return text


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000),
                           st.one_of(st.sampled_from(YAML_NOISE), st.text(min_size=1, max_size=6))),
                 min_size=1, max_size=8)


def assert_clean(exc: BaseException, filename: str) -> None:
    assert isinstance(exc, UserError), f"{type(exc).__name__}: {exc}"
    for diag in exc.diagnostics:
        assert diag.position is not None and diag.position.file == filename, str(exc)
    assert str(exc).startswith(filename), str(exc)


def load_or_error(text: str, filename: str = "fuzz.yaml") -> None:
    try:
        LOADER.load_text(text, filename)
    except UserError as exc:
        assert_clean(exc, filename)


@FUZZ
@given(edits)
def test_mutated_runbooks_load_or_fail_cleanly(edit_list):
    load_or_error(mutate(SEED_RUNBOOK, edit_list))


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["{{ x }}", "{{ r.failed }}", "5m", "50%", "web:&db"]))
keys = st.one_of(st.sampled_from(sorted(STEP_KEYWORDS) + sorted(RUNBOOK_KEYWORDS) +
                                 ["local.noop", "local.shell", "local.http", "ssh.command", "nope.x", "retires"]),
                 st.text(min_size=1, max_size=10))
documents = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=5),
                                                               st.dictionaries(keys, children, max_size=6)),
                         max_leaves=40)


@FUZZ
@given(documents)
def test_generated_structures_load_or_fail_cleanly(doc):
    load_or_error(yaml.safe_dump(doc))


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "steps", "phase", "params", "objectives", "vars"]), documents),
       st.lists(st.dictionaries(keys, documents, max_size=5), max_size=5))
def test_generated_runbooks_with_steps_load_or_fail_cleanly(top, steps):
    doc = {"opsbook": 1, **top, "steps": steps}
    load_or_error(yaml.safe_dump(doc))


def test_deep_nesting_and_huge_files_fail_cleanly():
    load_or_error("a: " + "[" * 5000 + "]" * 5000)
    load_or_error("a:\n" + "".join("  " * i + "- \n" for i in range(1, 400)))
    load_or_error("steps:\n" + "  - {name: x, local.noop: {}}\n" * 50_000)


@FUZZ
@given(edits)
def test_mutated_ini_inventories_load_or_fail_cleanly(edit_list):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inv.ini"
        path.write_text(mutate(SEED_INI, edit_list))
        try:
            inv = load_inventory([str(path)])
            ansible_list(inv)
        except UserError as exc:
            assert exc.position is not None and exc.position.file.endswith("inv.ini"), str(exc)


@FUZZ
@given(documents)
def test_generated_yaml_inventories_load_or_fail_cleanly(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inv.yaml"
        path.write_text(yaml.safe_dump({"all": doc}))
        try:
            ansible_list(load_inventory([str(path)]))
        except UserError as exc:
            assert exc.position is not None and exc.position.file.endswith("inv.yaml"), str(exc)


TEMPLATE_PIECES = ["{{", "}}", "{%", "%}", "x", ".", "__class__", "__globals__", "__init__", "mro", "()", "[0]",
                   "|", "default(", ")", "'", '"', "lipsum", "cycler", "range(10**9)", "format", "%s", "+", "*",
                   " ", "item", "params", "for i in", "endfor", "namespace", "self", "__builtins__", "join"]


@FUZZ
@given(st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=14), st.booleans())
def test_generated_templates_render_or_fail_cleanly(pieces, shell):
    source = "".join(pieces)
    try:
        result = render(source, {"x": "value", "item": [1, 2], "params": {"a": 1}}, shell=shell)
    except UserError:
        return
    assert "<class" not in str(result) and "<function" not in str(result) and "<module" not in str(result)


SANDBOX_ESCAPES = [
    "{{ x.__class__ }}",
    "{{ x.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ params.__class__.__base__ }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '%s' % x.__class__ }}",
    "{{ x|attr('__class__') }}",
    "{{ range.__self__ }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ '{a.__class__}'.format_map({'a': x}) }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_refuses_python_internals(source):
    with pytest.raises(UserError) as err:
        render(source, {"x": "s", "params": {}})
    message = err.value.message
    assert "not allowed" in message or "undefined" in message, message


def test_sandbox_blocks_huge_ranges_and_expressions():
    with pytest.raises(UserError):
        evaluate("range(10**12) | list | length", {})


@pytest.mark.parametrize("name", ["broken-yaml", "unknown-key", "bomb"])
def test_cli_never_prints_a_traceback(tmp_path, name):
    texts = {"broken-yaml": "opsbook: 1\nsteps: [\n", "unknown-key": "opsbook: 1\nname: x\nsteps:\n  - foo: 1\n",
             "bomb": "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
                 f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip(string.ascii_lowercase, string.ascii_lowercase[1:10]))}
    path = tmp_path / f"{name}.yaml"
    path.write_text(texts[name])
    proc = subprocess.run([sys.executable, "-m", "opsbook", "check", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and str(path) in proc.stderr


@FUZZ
@given(st.integers(1, 200_000), st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_alias_amplification_is_bounded_in_values_and_text(length, fanouts):
    """Issue 16 item 8: whatever the string length and the fan-out of nested aliases, a
    document either loads within the limits (values and expanded text) or is refused
    cleanly, without ever being expanded."""
    from opsbook.errors import LoadError
    from opsbook.yamlsrc import MAX_EXPANDED, MAX_NODES, load_yaml

    lines = [f"l0: &l0 {'z' * length}"]
    for level, fan in enumerate(fanouts, start=1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * fan)}]")
    level_values, level_text = 1, length  # one level, expanded
    expanded_values, expanded_text = level_values, level_text  # the whole document: every level
    for fan in fanouts:
        level_values, level_text = level_values * fan + 1, level_text * fan
        expanded_values += level_values
        expanded_text += level_text
    try:
        data = load_yaml("\n".join(lines) + "\n", "amplified.yaml")
    except LoadError as exc:
        assert "expands to more than" in exc.message
        assert expanded_text > MAX_EXPANDED // 2 or expanded_values > MAX_NODES // 2
        return
    assert expanded_text <= MAX_EXPANDED * 2 and data["l0"] == "z" * length
