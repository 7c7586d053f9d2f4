"""docs/plugins.md's list of what is public in `opsbook.plugin` stays true: every name it
lists is importable from `opsbook.plugin` (where each piece lives is the engine's business;
this module is the import path plugins use)."""

from __future__ import annotations

import re
from pathlib import Path

import opsbook.plugin

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"


def _listed_names() -> list[str]:
    text = DOC.read_text()
    start = text.index("**What is public**")
    listed = text[start:text.index("`opsbook.cancel`", start)]
    listed = re.sub(r"\([^()]*\)", "", listed.replace("()", ""))  # decorators and ActionContext's fields
    return re.findall(r"`([A-Za-z][A-Za-z0-9_]*)`", listed)


def test_every_name_the_plugin_docs_list_as_public_is_in_opsbook_plugin():
    names = _listed_names()
    assert {"Result", "ActionContext", "command_result", "telling_line", "arg_in"} <= set(names)
    assert [name for name in names if not hasattr(opsbook.plugin, name)] == []
