"""The ssh plugin is a package of small modules (issue 18), and stays one.

Read from the source with `ast`: every module of plugins/ssh/ under ~500 lines with a
docstring; no circle among their module-level imports (those under `if TYPE_CHECKING:`
never run); no module of the package imports a name from its `__init__` (submodules only),
so `__init__` can keep only declaring the plugin and re-exporting names for other code. And loading the plugin, as
`opsbook plugins` does, does not import paramiko: the connection modules load on first use.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "plugins" / "ssh"
NAME = "opsbook_plugins.ssh"
MODULES = {p.stem: p for p in sorted(PACKAGE.glob("*.py"))}


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(part)


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        if name == "__init__":
            continue
        graph.add_node(name)
        for node in _module_level(ast.parse(path.read_text()).body):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if node.module == NAME:
                graph.add_edges_from((name, a.name) for a in node.names if a.name in MODULES)
            elif node.module.startswith(NAME + "."):
                graph.add_edge(name, node.module.split(".")[2])
    return graph


def test_every_module_is_small_and_says_what_it_owns() -> None:
    assert {"_plugin", "common", "connection", "auth", "become", "sftp", "transfer"} <= set(MODULES)
    for path in MODULES.values():
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.name}: {lines} lines"
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name}: no docstring"


def test_no_module_level_import_circle() -> None:
    graph = _graph()
    assert graph.has_edge("connection", "auth")  # the graph is really read
    assert list(nx.simple_cycles(graph)) == []


def test_a_circle_would_be_found() -> None:
    graph = _graph()
    graph.add_edge("errors", "connection")
    assert list(nx.simple_cycles(graph))


def test_no_module_of_the_package_imports_a_name_from_its_init() -> None:
    offenders = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == NAME:
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name not in MODULES]
    assert offenders == []


def test_loading_the_plugin_does_not_import_paramiko() -> None:
    script = "import sys, opsbook_plugins.ssh as s; s.plugin.actions; print('paramiko' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
