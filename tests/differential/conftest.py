"""Fixtures of the differential suite: ansible-core from the bench's cached venv, and one
run of every selected case by both tools (the whole batch runs once per session).

ansible-core is the bench's pinned one (bench/venvs.py: the same pin and cache folder,
${XDG_CACHE_HOME:-~/.cache}/opsbook/bench/venvs/ansible), installed on first use. Without
network the suite is skipped, except under CI, where a missing Ansible fails it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import difftool
import pytest
from opsbook_lab.pytest_plugin import skip_or_fail_in_ci

CASE_TEST = "test_case"


def _bench_venvs() -> ModuleType:
    """bench/venvs.py, loaded by path (bench/ is a folder of the repository, not installed)."""
    spec = importlib.util.spec_from_file_location("opsbook_bench_venvs", difftool.REPO / "bench" / "venvs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ansible_python() -> str:
    """The Python of the bench's ansible-core venv (installed once, then cached)."""
    venvs = _bench_venvs()
    try:
        venv = venvs.ensure("ansible", log=lambda msg: print(msg, file=sys.stderr))
    except (subprocess.CalledProcessError, OSError) as exc:
        pin = " ".join(venvs.TOOLS["ansible"])
        skip_or_fail_in_ci(f"{pin} not available (no network?): {exc}",
                           f"CI must compare opsbook with Ansible, but {pin} could not be installed: {exc}")
    return venv.exe("python")


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
    return difftool.run_cases(cases, workdir, ansible_python)
