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
    assert err.value.hint.startswith(f'"timeout:" is indented {indent} spaces, deeper than "local.command:" above it (4)')
    assert "quoted" not in err.value.hint


def test_a_colon_in_a_value_still_says_quote_it():
    with pytest.raises(LoadError) as err:
        load_yaml("steps:\n  - name: a\n    local.command: echo a: b\n", "rb.yaml")
    assert 'must be quoted' in err.value.hint
