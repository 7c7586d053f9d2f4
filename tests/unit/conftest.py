"""Fixtures for unit tests of the engine: real registry, real journal (temp file)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.execute import RunOptions
from opsbook.journal import Journal
from opsbook.load import RunbookLoader
from opsbook.registry import Registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def write(tmp_path: Path):
    """write("name.yaml", yaml_text) -> path, dedented."""

    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)

    return _write


@pytest.fixture
def load(registry: Registry, write):
    def _load(text: str, name: str = "rb.yaml"):
        return RunbookLoader(registry).load_file(write(name, text))

    return _load


@pytest.fixture
def run(registry: Registry, journal: Journal, write, tmp_path: Path, monkeypatch):
    """run(yaml_text, inventory_text=None, params=None, **RunOptions) -> (summary, journal)."""
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))

    def _run(text: str, inventory: str | None = None, params: dict[str, Any] | None = None,
             listeners: list | None = None, approver=None, **options: Any):
        rb = RunbookLoader(registry).load_file(write("rb.yaml", text))
        sources = [write("inventory.ini", inventory)] if inventory else []
        plan = make_plan(rb, load_inventory_sources(sources), params or {})
        request = RunRequest(inventory_sources=sources, options=RunOptions(**options),
                             listeners=listeners or [], approver=approver, given_params=params or {})
        return start_run(plan, registry, journal, request)

    return _run
