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


COMMUNITY_GENERAL_FROM = "ansible==12.3.0"  # the `ansible` package of ansible-core 2.19 (PyPI)


def community_general() -> Path:
    """A collections folder holding community.general (for ANSIBLE_COLLECTIONS_PATH), taken
    once from the `ansible` package on PyPI (galaxy may be unreachable) into the bench cache;
    skip without network (fail in CI)."""
    import shutil
    import tempfile
    import zipfile

    root = _bench_venvs().cache_root() / "collections" / COMMUNITY_GENERAL_FROM.replace("==", "-")
    if (root / "ansible_collections" / "community" / "general").is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", COMMUNITY_GENERAL_FROM, "--no-deps",
                               "-q", "-d", tmp], capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("ansible-*.whl"))
        if done.returncode != 0 or not wheels:
            skip_or_fail_in_ci(f"{COMMUNITY_GENERAL_FROM} not downloadable (no network?): {done.stderr[-300:]}",
                               f"CI must compare with community.general, but {COMMUNITY_GENERAL_FROM} could not "
                               f"be downloaded: {done.stderr[-300:]}")
        staging = Path(tmp) / "out"
        prefix = "ansible_collections/community/general/"
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(staging, [n for n in wheel.namelist() if n.startswith(prefix)])
        try:
            staging.rename(root)
        except OSError:  # a parallel caller got there first
            shutil.rmtree(staging, ignore_errors=True)
    return root
