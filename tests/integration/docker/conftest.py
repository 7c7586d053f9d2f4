"""Fixtures of the docker plugin's lab tests (shared with tests/integration/probe)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


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
