"""Fixtures for inventory tests: the real ansible-core, installed once into a cached venv.

It is the pinned venv every parity test shares (tests/ansible_core.py: the benchmark's,
${XDG_CACHE_HOME:-~/.cache}/opsbook/bench/venvs/ansible). When it is missing it is created
from PyPI; without network the parity tests are skipped, except under CI (`CI` set),
where a missing Ansible is a failure: parity must be checked there.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ansible_core
import pytest

HERE = Path(__file__).parent
DATA = HERE / "data"
DRIVER = HERE / "ansible_driver.py"


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
    yield Ansible(ansible_core.ansible_python(), tmp_path_factory.mktemp("ansible-cwd"))
