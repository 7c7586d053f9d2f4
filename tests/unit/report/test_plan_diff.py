"""A plan a reviewer can diff (issue 31 item 3): the plan carries everything that changes
what a run does; `opsbook diff OLD NEW` shows plan-level differences per step and host in
text, Markdown and JSON, for files and git revisions; `plan` takes folders and a
parameters file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n[lb]\nlb1 ansible_connection=local\n"
OLD = """opsbook: 1
name: drain
phase: failover
objectives: {rto: 5m, rpo: 1m}
params:
  target: {type: host, default: web1}
steps:
  - name: drain
    hosts: "{{ params.target }}"
    delegate_to: lb1
    approve: "Drain {{ inventory_hostname }}?"
    marks: [mitigation]
    timeout: 20s
    keep_healthy: {min: 1, group: web}
    become: true
    max_fail_percentage: 0
    ignore_errors: true
    until: result.rc == 0
    retries: 2
    local.command: "echo drain {{ inventory_hostname }}"
    rollback:
      local.command: "echo ready {{ inventory_hostname }}"
"""


def _opsbook(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True, cwd=cwd,
                          check=False)


def _files(tmp_path: Path, new: str) -> tuple[str, str, str]:
    inv = tmp_path / "inv.ini"
    inv.write_text(INVENTORY)
    old_path, new_path = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_path.write_text(OLD)
    new_path.write_text(new)
    return str(inv), str(old_path), str(new_path)


def test_plan_json_and_text_carry_every_keyword_that_changes_a_run(tmp_path):
    inv, old, _ = _files(tmp_path, OLD)
    data = json.loads(_opsbook("plan", old, "-i", inv, "--format", "json").stdout)
    assert data["objectives"] == {"rto": 300.0, "rpo": 60.0} and data["phase"] == "failover"
    (node,) = [n for n in data["nodes"] if n["kind"] != "barrier"]
    for key, value in {"timeout": 20.0, "delegate_to": "lb1", "marks": ["mitigation"], "become": True,
                       "max_fail_percentage": 0.0, "ignore_errors": True, "until": "result.rc == 0",
                       "keep_healthy": {"min": 1, "group": "web"}, "approve": "Drain web1?", "mutates": True}.items():
        assert node[key] == value, key
    text = _opsbook("plan", old, "-i", inv).stdout
    assert 'approve: "Drain web1?"' in text
    assert 'timeout=20s' in text and 'objectives={rto: 5m, rpo: 1m}' in text and 'delegate_to="lb1"' in text and 'keep_healthy={"min": 1, "group": "web"}' in text


def test_a_timeout_change_and_a_removed_approval_show_in_every_format(tmp_path):
    new = OLD.replace("timeout: 20s", "timeout: 5m").replace('    approve: "Drain {{ inventory_hostname }}?"\n', "")
    inv, old, new_path = _files(tmp_path, new)
    text = _opsbook("diff", old, new_path, "-i", inv)
    assert text.returncode == 0, text.stderr
    assert "step drain [drain]: timeout: 20s -> 5m" in text.stdout
    assert "step drain [drain] @ web1: approve: Drain web1? -> (none)" in text.stdout
    md = _opsbook("diff", old, new_path, "-i", inv, "--format", "md").stdout
    assert "| drain [drain] |  | timeout | `20s` | `5m` |" in md
    changes = json.loads(_opsbook("diff", old, new_path, "-i", inv, "--format", "json").stdout)["changes"]
    assert {"step": "drain [drain]", "host": "web1", "what": "approve", "old": "Drain web1?", "new": None} in changes
    assert _opsbook("diff", old, new_path, "-i", inv, "--exit-code").returncode == 1
    assert _opsbook("diff", old, old, "-i", inv, "--exit-code").returncode == 0


def test_a_new_target_changes_the_hosts_and_arguments(tmp_path):
    inv, old, new_path = _files(tmp_path, OLD.replace("default: web1", "default: web2"))
    out = _opsbook("diff", old, new_path, "-i", inv).stdout
    assert "@ web1: host: runs -> (none)" in out and "@ web2: host: (none) -> runs" in out
    assert "runbook: params: " in out


def test_two_git_revisions_of_one_runbook(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "rb.yaml").write_text(OLD)
    (repo / "inv.ini").write_text(INVENTORY)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=repo, check=True)
    (repo / "rb.yaml").write_text(OLD.replace("marks: [mitigation]", "marks: []"))
    out = _opsbook("diff", "HEAD:rb.yaml", "rb.yaml", "-i", "inv.ini", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert 'step drain [drain]: marks: ["mitigation"] -> (none)' in out.stdout
    missing = _opsbook("diff", "HEAD:nope.yaml", "rb.yaml", "-i", "inv.ini", cwd=repo)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: HEAD:nope.yaml: path 'nope.yaml' does not exist in 'HEAD'")


def test_plan_takes_a_folder_and_a_parameters_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text('"*": {namespace: shop, deployment: checkout}\nk8s-drain-node: {node: worker-2}\n'
                      "runbooks/kubernetes/apply-fix.yaml: {manifest: fix.yaml, replicas: 3}\n")
    without = _opsbook("plan", "runbooks/kubernetes")
    assert without.returncode == 2
    assert 'runbooks/kubernetes/drain-node.yaml:41:3: error: missing required parameter "node"' in without.stderr
    done = _opsbook("plan", "runbooks/kubernetes", "--params-file", str(params), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [p["runbook"] for p in json.loads(done.stdout)] == ["k8s-apply-fix", "k8s-bad-rollout", "k8s-drain-node",
                                                              "k8s-deployment-first-response"]


def test_durations_in_the_diff_read_as_the_runbook_writes_them(tmp_path):
    """Outside review, item 5: the diff showed `5.0 -> 50.0` (seconds as floats); durations
    read as a runbook writes them (5s, 50s, 1m30s), a default as the default, and the JSON
    keeps numbers of seconds for programs."""
    old_text = OLD.replace("timeout: 20s", "timeout: 5s")
    new_text = (old_text.replace("timeout: 5s", "timeout: 90s").replace("retries: 2", "retries: 2\n    delay: 2.5s")
                .replace("{rto: 5m, rpo: 1m}", "{rto: 1h30m, rpo: 500ms}"))
    inv, _, new_path = _files(tmp_path, new_text)
    old_path = tmp_path / "old5.yaml"
    old_path.write_text(old_text)
    text = _opsbook("diff", str(old_path), new_path, "-i", inv).stdout
    assert "runbook: objectives: rto 5m, rpo 1m -> rto 1h30m, rpo 500ms" in text, text
    assert "step drain [drain]: timeout: 5s -> 1m30s" in text, text
    assert "step drain [drain]: delay: 1s (default) -> 2.5s" in text, text
    assert ".0" not in text.replace("127.0.0", ""), text
    md = _opsbook("diff", str(old_path), new_path, "-i", inv, "--format", "md").stdout
    assert "| timeout | `5s` | `1m30s` |" in md, md
    changes = json.loads(_opsbook("diff", str(old_path), new_path, "-i", inv, "--format", "json").stdout)["changes"]
    assert {"step": "drain [drain]", "host": None, "what": "timeout", "old": 5.0, "new": 90.0} in changes


def test_duration_text_reads_back_as_the_same_seconds():
    from opsbook.model import duration_text, parse_duration

    for seconds, text in ((5, "5s"), (50, "50s"), (90, "1m30s"), (300, "5m"), (5400, "1h30m"), (3600, "1h"),
                          (0.5, "500ms"), (2.5, "2.5s"), (0, "0s")):
        assert duration_text(seconds) == text
        assert parse_duration(text) == seconds
