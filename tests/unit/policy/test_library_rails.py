"""The issue's own scenario (issue 31, "Done means"): removing a safety rail from a library
runbook fails a bare `opsbook check` (no config file, no flag), at the line of the step,
naming the rule; the runbook as shipped passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROMOTE = "runbooks/failover/redis-promote.yaml"
ISOLATE = "runbooks/first-response/isolate-host.yaml"
KEEP_HEALTHY = ("    keep_healthy:\n      min: 1\n      group: web\n      probe: {probe.http: {url: \"http://{{ host.address }}:"
                "{{ http_port | default(8080) }}/healthz\", status: 200, timeout: 3s}}\n")


def _check(tmp_path: Path, source: str, old: str, new: str) -> subprocess.CompletedProcess[str]:
    text = (ROOT / source).read_text()
    assert text.count(old) == 1, old
    path = tmp_path / Path(source).name
    path.write_text(text.replace(old, new))
    return subprocess.run([sys.executable, "-m", "opsbook", "check", str(path), "-i",
                           str(ROOT / "inventories" / "example.ini")], capture_output=True, text=True,
                          cwd=tmp_path, check=False)


@pytest.mark.parametrize(("source", "old", "new", "rule"), [
    (PROMOTE, '    approve: "{{ params.primary }} is down and fenced. Promote {{ params.standby }} to Redis primary?"\n',
     "", "mitigation-approved"),
    (PROMOTE, "    ssh.shell: \"redis-cli replicaof no one && redis-cli config rewrite\"\n    marks: [mitigation]\n",
     "    ssh.shell: \"redis-cli replicaof no one && redis-cli config rewrite\"\n", "objectives"),
    (PROMOTE, "  - name: promote the standby\n    timeout: 5s\n", "  - name: promote the standby\n",
     "critical-path-timeout"),
    (ISOLATE, KEEP_HEALTHY + "    docker.network:", "    docker.network:", "keep-healthy"),
    (ISOLATE, KEEP_HEALTHY + "    # HAProxy's status word", "    # HAProxy's status word",
     "keep-healthy"),  # a balancer drain (haproxy.server state: drain)
])
def test_removing_a_rail_from_a_library_runbook_fails_a_bare_check(tmp_path, source, old, new, rule):
    shipped = _check(tmp_path, source, "opsbook: 1\n", "opsbook: 1\n")
    assert shipped.returncode == 0 and shipped.stderr == "", shipped.stderr
    broken = _check(tmp_path, source, old, new)
    assert broken.returncode == 1, broken.stderr
    assert "error: " in broken.stderr and f"[{rule}]" in broken.stderr, broken.stderr
