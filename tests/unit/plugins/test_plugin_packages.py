"""The built-in plugins that are packages keep the shape docs/design.md describes: small
modules with a docstring, no module importing names from the package's `__init__`, and no
import circle among the modules at import time (imports under `if TYPE_CHECKING:` do not run).
Each `__init__` only declares (imports, `__all__`, no function or class of its own), each
package is listed in pyproject.toml's packages (else a wheel would leave it out) and its entry
point names the package's `plugin`."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "plugins"
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


def test_the_packages_are_the_ones_split_so_far() -> None:
    assert {p.name for p in PACKAGES} >= {"docker", "kubernetes", "probe", "ssh"}


@pytest.mark.parametrize("root", PACKAGES, ids=[p.name for p in PACKAGES])
def test_plugin_package_init_only_declares(root: Path) -> None:
    tree = ast.parse((root / "__init__.py").read_text())
    own = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert own == [], f"opsbook_plugins.{root.name}.__init__ defines {own}"
    assert ast.get_docstring(tree), f"opsbook_plugins.{root.name}.__init__ has no docstring"


@pytest.mark.parametrize("root", PACKAGES, ids=[p.name for p in PACKAGES])
def test_a_name_the_package_re_exports_is_not_also_one_of_its_modules(root: Path) -> None:
    """`opsbook_plugins.kubernetes.session` once meant a function here and a module there."""
    package = f"opsbook_plugins.{root.name}"
    modules = {p.stem for p in root.glob("*.py")}
    tree = ast.parse((root / "__init__.py").read_text())
    hidden = sorted(
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + ".")
        for alias in node.names
        if (alias.asname or alias.name) in modules
    )
    assert hidden == [], f"{package} re-exports {hidden}, which hide its modules of that name"


@pytest.mark.parametrize("root", PACKAGES, ids=[p.name for p in PACKAGES])
def test_plugin_package_is_installed_and_its_entry_point_is_its_plugin(root: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package = f"opsbook_plugins.{root.name}"
    assert package in project["tool"]["setuptools"]["packages"]
    points = project["project"]["entry-points"]["opsbook.plugins"]
    named = [name for name, target in points.items() if target == f"{package}:plugin"]
    assert len(named) == 1, f"no entry point names {package}:plugin"
    plugin = importlib.import_module(package).plugin
    assert plugin.name == named[0] and plugin.actions


def test_probe_is_the_shared_machinery_and_one_module_per_layer() -> None:
    root = PLUGINS / "probe"
    assert {p.stem for p in root.glob("*.py")} == {"__init__", "_plugin", "vantage", "icmp", "tcp", "http"}
    for layer in ("vantage", "icmp", "tcp", "http"):
        lines = len((root / f"{layer}.py").read_text().splitlines())
        assert lines <= 400, f"opsbook_plugins.probe.{layer}: {lines} lines"
    probe = importlib.import_module("opsbook_plugins.probe")
    assert sorted(probe.plugin.actions) == ["http", "icmp", "tcp"]
    for layer in ("icmp", "tcp", "http"):  # each layer module holds its own action
        assert probe.plugin.actions[layer].fn.__module__ == f"opsbook_plugins.probe.{layer}"
