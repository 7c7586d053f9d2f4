"""The hint under a YAML syntax error points at the likely mistake (issue 15 item 8)."""

from __future__ import annotations

import pytest

from opsbook.errors import LoadError
from opsbook.yamlsrc import load_yaml


@pytest.mark.parametrize("indent", [5, 6, 8])
def test_an_over_indented_key_is_called_that(indent):
    text = f"steps:\n  - name: a\n    local.command: echo hi\n{' ' * indent}timeout: 5s\n"
    with pytest.raises(LoadError) as err:
        load_yaml(text, "rb.yaml")
    assert err.value.hint.startswith('"timeout:" is indented deeper than "local.command:" above it')
    assert "quoted" not in err.value.hint


def test_a_colon_in_a_value_still_says_quote_it():
    with pytest.raises(LoadError) as err:
        load_yaml("steps:\n  - name: a\n    local.command: echo a: b\n", "rb.yaml")
    assert 'must be quoted' in err.value.hint


def test_an_alias_bomb_of_one_long_string_is_refused_at_once():
    """Issue 16 item 8: the guard counted values, not their size: nested aliases of one 100 KB
    string took `check` 110 s and a journal of 131 MB."""
    big = "x" * 100_000
    doc = (f"a: &a {big}\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n")
    with pytest.raises(LoadError) as err:
        load_yaml(doc, "bomb.yaml")
    assert "expands to more than 16 MiB of text" in err.value.message


def test_a_long_value_used_a_few_times_is_fine():
    doc = "a: &a " + "y" * 100_000 + "\nb: [*a, *a, *a]\n"
    assert len(load_yaml(doc, "ok.yaml")["b"]) == 3
