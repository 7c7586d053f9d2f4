"""The real ansible-core that parity tests compare opsbook with: one install for all of them.

It is the benchmark's pinned venv (bench/venvs.py: the pin in TOOLS["ansible"], the folder
${XDG_CACHE_HOME:-~/.cache}/opsbook/bench/venvs/ansible), created on first use and reused
afterwards. Without network the tests that need it are skipped, except under CI, where a
missing Ansible fails them: parity must be checked there.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from opsbook_lab.pytest_plugin import skip_or_fail_in_ci

REPO = Path(__file__).resolve().parents[1]


def _bench_venvs() -> ModuleType:
    """bench/venvs.py, loaded by path (bench/ is a folder of the repository, not installed)."""
    name = "opsbook_bench_venvs"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "venvs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def pin() -> str:
    return " ".join(_bench_venvs().TOOLS["ansible"])


def ansible_python() -> Path:
    """The Python of the ansible-core venv, installing it if needed (skip, or fail in CI)."""
    venvs = _bench_venvs()
    try:
        venv = venvs.ensure("ansible", log=lambda msg: print(msg, file=sys.stderr))
    except (subprocess.CalledProcessError, OSError) as exc:
        skip_or_fail_in_ci(f"{pin()} not available (no network?): {exc}",
                           f"CI must compare opsbook with Ansible, but {pin()} could not be installed: {exc}")
    return Path(venv.exe("python"))
