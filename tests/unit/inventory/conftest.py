"""Fixtures for inventory tests: the real ansible-core, installed once into a cached venv.

The venv lives in ${XDG_CACHE_HOME:-~/.cache}/opsbook/venvs/ansible. When it is missing it
is created from PyPI; without network the parity tests are skipped, except under CI
(`CI` set), where a missing Ansible is a failure: parity must be checked there.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opsbook_lab.pytest_plugin import skip_or_fail_in_ci

ANSIBLE_CORE = "ansible-core==2.19.14"
HERE = Path(__file__).parent
DATA = HERE / "data"
DRIVER = HERE / "ansible_driver.py"


def venv_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "opsbook" / "venvs" / "ansible"


def _marker(venv: Path) -> Path:
    return venv / "opsbook-requirement.txt"


def _ready(venv: Path) -> bool:
    marker = _marker(venv)
    return (
        (venv / "bin" / "python").exists()
        and (venv / "bin" / "ansible-inventory").exists()
        and marker.exists()
        and marker.read_text().strip() == ANSIBLE_CORE
    )


def _install(venv: Path) -> str:
    """Create the venv and install ansible-core; return '' or why it failed."""
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", ANSIBLE_CORE],
    ]  # fmt: skip
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(step[:3])}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(step[:3])} failed: {(done.stderr or done.stdout)[-800:]}"
    _marker(venv).write_text(ANSIBLE_CORE + "\n")
    return ""


@dataclass(frozen=True)
class Ansible:
    """Runs ansible CLI commands with the cached ansible-core, many per process."""

    python: Path
    cwd: Path

    def run_many(self, argvs: list[list[str]]) -> list[dict[str, object]]:
        jobs = [{"argv": argv, "cwd": str(self.cwd)} for argv in argvs]
        done = subprocess.run(
            [str(self.python), str(DRIVER)],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            timeout=1200,
            env=ansible_env(self.cwd),
            check=True,
        )
        results: list[dict[str, object]] = json.loads(done.stdout)
        return results

    def run(self, argv: list[str]) -> dict[str, object]:
        return self.run_many([argv])[0]


def ansible_env(home: Path) -> dict[str, str]:
    """An environment where no user or system ansible.cfg changes what Ansible does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(home / "no-ansible.cfg"),
        ANSIBLE_HOME=str(home / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        LC_ALL="C.UTF-8",
    )
    return env


@pytest.fixture(scope="session")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ansible]:
    """The real ansible-core (see module docstring for when it is installed or skipped)."""
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "ansible.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = "" if _ready(venv) else _install(venv)
    if problem:
        skip_or_fail_in_ci(
            f"{ANSIBLE_CORE} not available (no network?): {problem}",
            f"CI must check parity with Ansible, but {ANSIBLE_CORE} could not be installed: {problem}",
        )
    yield Ansible(venv / "bin" / "python", tmp_path_factory.mktemp("ansible-cwd"))
