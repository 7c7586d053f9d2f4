"""The built-in plugins that are packages keep the shape docs/design.md describes: small
modules with a docstring, no module importing names from the package's `__init__`, and no
import circle among the modules at import time (imports under `if TYPE_CHECKING:` do not run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PACKAGES = sorted(p.parent for p in PLUGINS.glob("*/__init__.py"))
MAX_LINES = 550  # "under ~500 lines"


def _imports_at_load(tree: ast.Module, package: str, modules: set[str]) -> set[str]:
    """The package's modules this module imports when it is loaded (module level only)."""
    deps: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if node.module == package:
            deps |= {a.name for a in node.names if a.name in modules}
        elif node.module.startswith(package + "."):
            deps.add(node.module.split(".")[2])
    return deps


@pytest.mark.parametrize("root", PACKAGES, ids=[p.name for p in PACKAGES])
def test_plugin_package_modules_are_small_documented_and_free_of_circles(root: Path) -> None:
    package = f"opsbook_plugins.{root.name}"
    modules = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name in sorted(modules - {"__init__"}):
        tree = ast.parse((root / f"{name}.py").read_text())
        lines = len((root / f"{name}.py").read_text().splitlines())
        assert lines <= MAX_LINES, f"{package}.{name}: {lines} lines"
        assert ast.get_docstring(tree), f"{package}.{name} has no docstring"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == package:
                names = {a.name for a in node.names} - modules
                assert not names, f"{package}.{name} imports {sorted(names)} from __init__"
        graph[name] = _imports_at_load(tree, package, modules) - {name}
        assert "__init__" not in graph[name]

    def circle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    return path + [dep]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
        return None

    circles = [c for c in map(circle_from, sorted(graph)) if c]
    assert not circles, f"import circles in {package}: {circles}"
