"""Fixtures of the probe plugin's lab tests: the docker tests' sandbox containers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_sandbox():
    name = "opsbook_test_sandbox"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "docker" / "sandbox.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


sandbox_module = _load_sandbox()
docker_lab = sandbox_module.docker_lab
sandbox = sandbox_module.sandbox
