"""Small helpers shared by the inventory tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from opsbook.errors import InventoryError, Position
from opsbook.inventory import Inventory, load_inventory


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(root: Path, name: str, text: str) -> Inventory:
    return load_inventory([write(root, name, text)])


def errors(root: Path, name: str, text: str) -> list[str]:
    """Each problem as 'line:column: message', file name left out."""
    path = write(root, name, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory([path])
    found = []
    for diagnostic in caught.value.diagnostics:
        position = diagnostic.position
        assert isinstance(position, Position)
        assert position.file == str(path)
        found.append(f"{position.line}:{position.column}: {diagnostic.message}")
    return found


def names(hosts: object) -> list[str]:
    return [host.name for host in hosts]  # type: ignore[attr-defined]
