"""Fixtures of the reliability and security suite: runs in-process (with fault hooks on the
executor's events) or through the real `opsbook` command line, each with its own journal and
runs folder under the test's tmp_path (helpers in relkit.py).

    book(yaml_text, inventory=path, on=[Trigger(...)], **RunOptions) -> Book
    cli("run", path, "-i", inv, ...)                                   -> CliResult

Lab tests use the fixtures of ``opsbook_lab.pytest_plugin`` (``lab_healed`` restores what a
test broke). Develop against a separate lab:
``OPSBOOK_LAB_NAME=opsbook-rel OPSBOOK_LAB_DIR=/tmp/opsbook-rel-lab pytest tests/reliability``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opsbook.registry import Registry
from relkit import BookRunner, Cli, require_local_sshd


@pytest.fixture(scope="session")
def local_sshd() -> None:
    """Tests that start sshd targets on loopback use this (skips without root/sshd; fails in CI)."""
    require_local_sshd()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def book(registry: Registry, tmp_path: Path, monkeypatch) -> Iterator[BookRunner]:
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    runner = BookRunner(registry, tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "cli"
    home.mkdir()
    return Cli(home)
