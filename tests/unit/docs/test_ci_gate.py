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


def test_on_a_pull_request_the_gate_diffs_changed_runbooks_and_passes_when_none_changed(tmp_path):
    """BASE_REF set: a pull request that touches no runbook passes (it once failed on an empty
    grep under pipefail); a modified runbook gets its plan diff, a new one a note."""
    repo = tmp_path / "repo"
    (repo / "runbooks").mkdir(parents=True)
    (repo / "inv.ini").write_text("[web]\nweb1 ansible_connection=local\n")
    (repo / "params.yaml").write_text("{}\n")
    book = repo / "runbooks" / "hello.yaml"
    book.write_text("opsbook: 1\nname: hello\nhosts: web\nsteps:\n  - name: say hello\n    local.command: echo hello\n"
                    "    changed_when: false\n    timeout: 5s\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
    subprocess.run([*git, "checkout", "-qb", "pr"], cwd=repo, check=True)  # the pull request's branch
    env = {**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}", "BASE_REF": "main",
           "OPSBOOK_PARAMS_FILE": "params.yaml"}

    def gate(out: str) -> subprocess.CompletedProcess[str]:
        subprocess.run([*git, "add", "-A", "--", ".", f":!{out}"], cwd=repo, check=True)  # the PR's commit
        subprocess.run([*git, "commit", "-qm", "pr", "--allow-empty"], cwd=repo, check=True)
        return subprocess.run(["bash", str(GATE), "runbooks", "inv.ini", out], cwd=repo, capture_output=True,
                              text=True, env=env, check=False)

    (repo / "README").write_text("docs only\n")
    docs_only = gate("out1")
    assert docs_only.returncode == 0, docs_only.stdout + docs_only.stderr
    assert (repo / "out1" / "plan-diff.md").read_text() == ""

    book.write_text(book.read_text().replace("timeout: 5s", "timeout: 50s"))
    (repo / "runbooks" / "new.yaml").write_text(book.read_text().replace("name: hello", "name: new"))
    changed = gate("out2")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    diff = (repo / "out2" / "plan-diff.md").read_text()
    assert "| timeout | `5s` | `50s` |" in diff, diff
    assert "runbooks/new.yaml" in diff and "A new runbook" in diff, diff
