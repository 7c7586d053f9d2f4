"""The example CI gate of docs/ci.md passes on the library as shipped (issue 31 item 4):
check --strict with the default policy, plans of every runbook with the example
parameters file, and the plan diff for a pull request."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GATE = ROOT / "examples" / "ci" / "opsbook-gate.sh"


def test_the_gate_passes_on_the_library(tmp_path):
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("BASE_REF", None)
    done = subprocess.run(["bash", str(GATE), "runbooks", "inventories/example.ini", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(json.loads((tmp_path / "plans.json").read_text())) == len(list((ROOT / "runbooks").rglob("*.yaml")))
    assert 'failures="0"' in (tmp_path / "check.xml").read_text()


def test_the_docs_show_the_gate_and_both_ci_snippets():
    text = (ROOT / "docs" / "ci.md").read_text()
    for needle in ("examples/ci/opsbook-gate.sh", "runs-on:", ".gitlab-ci", "--strict", "# noqa:", "opsbook diff",
                   "--junit", "--params-file"):
        assert needle in text, needle
