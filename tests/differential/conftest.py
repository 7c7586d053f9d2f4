"""Fixtures of the differential suite: the pinned ansible-core (tests/ansible_core.py: the
bench's cached venv, installed on first use; skipped without network, failed in CI), and
one run of every selected case by both tools (the whole batch runs once per session; the
lab cases only when the lab comes up).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ansible_core
import difftool
import pytest

CASE_TEST = "test_case"


@pytest.fixture(scope="session")
def ansible_python() -> str:
    """The Python of the pinned ansible-core venv (tests/ansible_core.py)."""
    return str(ansible_core.ansible_python())


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the cases' files, journals and scratch folders go: memory (/dev/shm) when the
    machine has it, as a loaded CI disk makes every SQLite commit and temp file slow;
    OPSBOOK_DIFF_KEEP=1 keeps the folder (it is named in failure messages)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="opsbook-differential-", dir=shm))
        yield root
        if not os.environ.get("OPSBOOK_DIFF_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("differential")


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, ansible_python: str, workdir: Path) -> dict[str, difftool.Outcome]:
    """Both tools' observations of every case this session selected, run in one batch."""
    wanted = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "originalname", "") == CASE_TEST and hasattr(item, "callspec")}
    cases = [c for c in difftool.load_cases() if c.id in wanted]
    lab = None
    if any(c.lab for c in cases):
        try:
            lab = request.getfixturevalue("lab")  # the lab cases need it; the others run without
        except pytest.skip.Exception:
            lab = None
    return difftool.run_cases(cases, workdir, ansible_python, lab)
