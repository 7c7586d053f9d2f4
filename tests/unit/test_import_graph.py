"""The engine's import graph has no circle: stages import lower stages, never the reverse.

The graph is read from the source with `ast` (nothing is imported). Imports under
`if TYPE_CHECKING:` are left out: they never run. Two rules, over all of engine/:

- module level: what runs when a module is first imported;
- every import, function-local ones too: no module imports, even lazily, one that imports
  it back (directly or round a longer loop). A function-local import that only keeps a
  start-up cheap (the report package, networkx) is fine: it goes one way. A circle that
  is truly justified goes in `JUSTIFIED`, with why in docs/design.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

ENGINE = Path(__file__).resolve().parents[2] / "engine"

# Circles through function-local imports that are there on purpose (each explained in
# docs/design.md, beside the rule on import circles), as "a -> b -> a" strings. None today.
JUSTIFIED: frozenset[str] = frozenset()

Import = ast.Import | ast.ImportFrom


def _module_name(path: Path, root: Path = ENGINE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["opsbook", *parts])


def _is_type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _module_level(body: list[ast.stmt]) -> Iterator[Import]:
    """Imports that run on first import: top level, in if/try/with/class bodies."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _module_level(node.body)


def _everywhere(tree: ast.Module) -> Iterator[Import]:
    """Every import in the module, function-local ones too, except TYPE_CHECKING blocks."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
            yield node


def _targets(node: Import, name: str, is_package: bool, modules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = name.split(".") if is_package else name.split(".")[:-1]
        here = here[: len(here) - node.level + 1]
        base = ".".join([*here, *([node.module] if node.module else [])])
    # `from pkg import sub` imports the submodule when there is one, else names of pkg.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph(function_local: bool, root: Path = ENGINE) -> nx.DiGraph:
    paths = {_module_name(path, root): path for path in root.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in paths.items():
        graph.add_node(name)
        tree = ast.parse(path.read_text(), str(path))
        imports = _everywhere(tree) if function_local else _module_level(tree.body)
        for node in imports:
            for target in _targets(node, name, path.name == "__init__.py", set(paths)):
                if target in paths and target != name:
                    graph.add_edge(name, target)
    return graph


def _circles(graph: nx.DiGraph) -> list[str]:
    return [" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph)]


def test_the_graph_is_read_from_the_engine() -> None:
    graph = import_graph(function_local=False)
    assert ("opsbook.inventory._sources", "opsbook.inventory.model") in graph.edges
    assert ("opsbook.inventory.model", "opsbook.inventory._patterns") in graph.edges
    assert graph.number_of_nodes() > 50


def test_no_module_level_import_circle_in_the_engine() -> None:
    assert _circles(import_graph(function_local=False)) == []


def test_the_inventory_has_no_import_circle_even_through_function_local_imports() -> None:
    graph = import_graph(function_local=True)
    inventory = graph.subgraph(n for n in graph if n.startswith("opsbook.inventory."))
    assert ("opsbook.inventory._assemble", "opsbook.inventory.model") in inventory.edges
    assert _circles(inventory) == []


def test_no_import_circle_in_the_engine_even_through_function_local_imports() -> None:
    graph = import_graph(function_local=True)
    assert ("opsbook.targets", "opsbook.planrender") in graph.edges  # a lazy import is an edge
    assert [c for c in _circles(graph) if c not in JUSTIFIED] == []


def test_a_circle_of_two_lazy_imports_is_found(tmp_path: Path) -> None:
    """Module a imports b inside a function, b imports a inside another: a circle, though
    neither runs at import time."""
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.py").write_text(f"def f():\n    from opsbook.{other} import x\n")
    graph = import_graph(function_local=True, root=tmp_path)
    assert _circles(graph) in (["opsbook.a -> opsbook.b -> opsbook.a"], ["opsbook.b -> opsbook.a -> opsbook.b"])
    assert _circles(import_graph(function_local=False, root=tmp_path)) == []


def test_a_function_local_circle_is_found() -> None:
    """The check sees lazy imports: the loop the inventory had (model -> _render -> model)."""
    tree = ast.parse("def f():\n    from opsbook.inventory._render import ansible_list\n")
    (node,) = _everywhere(tree)
    modules = {"opsbook.inventory._render", "opsbook.inventory.model"}
    assert _targets(node, "opsbook.inventory.model", False, modules) == ["opsbook.inventory._render"]
    assert list(_module_level(tree.body)) == []
