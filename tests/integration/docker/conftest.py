"""Fixtures of the docker plugin's lab tests (shared with tests/integration/probe)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from opsbook_plugins import docker as dockerplugin


def _load_sandbox():
    name = "opsbook_test_sandbox"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("sandbox.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


sandbox_module = _load_sandbox()
docker_lab = sandbox_module.docker_lab
sandbox = sandbox_module.sandbox


@pytest.fixture
def run(docker_lab, tmp_path):
    """Calls docker actions the way the executor does (sandbox.Runner) against the lab's
    dockerd; evidence goes to tmp_path/evidence."""
    runner = sandbox_module.Runner(dockerplugin.plugin, docker_lab[1], evidence_dir=tmp_path / "evidence")
    yield runner
    runner.close()
