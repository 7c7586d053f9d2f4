"""The benchmark harness runs end to end in its reduced form and writes well-formed results.

No timing is asserted here (timing on a shared CI machine is noise); the numbers live in
bench/results/, written by a full `python -m bench` run. What this pins: the sshd fleet
comes up and goes down, every tool (ansible-core and pyinfra from their cached venvs,
the paramiko floor, opsbook over SSH) does the same work successfully, and the JSON and
Markdown reports have every scenario and target in them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sshd fleet needs root (sshd, a dedicated user)"),
    pytest.mark.skipif(shutil.which("apt-get") is None and not Path("/usr/sbin/sshd").exists(),
                       reason="needs openssh-server or apt-get to install it"),
]

GROUPS = {"a.one-command@1", "a.one-command@2", "b.runbook-5@1", "b.runbook-5@2", "c.steps-10@2",
          "d.warm-command", "e.startup"}
TOOLS = {"opsbook", "floor", "ansible", "pyinfra"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "bench", "--quick", "--hosts", "1,2", "--rounds", "1",
           "--subnet", "127.0.2", "--results", str(out), "--stem", "quick", "--work", str(out / "work")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500,
                          stdin=subprocess.DEVNULL, check=False)
    return proc, out


def test_quick_bench_completes(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "quick.json").is_file() and (out / "quick.md").is_file()


def test_every_scenario_and_tool_has_samples(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    result = json.loads((out / "quick.json").read_text())
    cases = result["cases"]
    groups = {c["group"] for c in cases.values()}
    assert GROUPS <= groups, sorted(groups)
    assert {g.split("@")[0] for g in groups} >= {"f.engine-noop-20x50", "f.compile-100x50", "g.memory",
                                                  "j.journal-local"}
    for case in cases.values():
        assert case["error"] is None, case
        assert case["rounds"] >= 1 and case["wall_s"] > 0 and case["cpu_s"] >= 0, case
    for group in ("a.one-command@2", "b.runbook-5@2", "c.steps-10@2"):
        assert {c["tool"] for c in cases.values() if c["group"] == group} == TOOLS
        others = [c for c in cases.values() if c["group"] == group and c["tool"] != "opsbook"]
        assert all(c["wall_x_opsbook"] > 0 for c in others)
    warm = [c for c in cases.values() if c["group"] == "d.warm-command"]
    assert all(c["m_median_s"] > 0 for c in warm)
    noop = [c for c in cases.values() if c["group"].startswith("f.engine-noop")]
    assert {c["m_nodes"] for c in noop} == {1000} and all(c["m_run_us_per_node"] > 0 for c in noop)


def test_results_name_the_machine_and_every_version(
        quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    result = json.loads((out / "quick.json").read_text())
    meta = result["meta"]
    assert meta["machine"]["nproc"] >= 1 and meta["machine"]["kernel"] and meta["machine"]["cpu"]
    assert {"opsbook", "python", "ansible-core", "pyinfra", "paramiko (opsbook, floor)"} <= set(meta["versions"])
    assert result["derived"]["per_extra_step"].keys() == TOOLS


def test_targets_are_all_judged_and_shown(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    result = json.loads((out / "quick.json").read_text())
    targets = result["targets"]
    assert len(targets) == 9
    assert all(t["status"] in ("PASS", "MISS") for t in targets), targets
    md = (out / "quick.md").read_text()
    assert "## Targets" in md and "## All cases" in md
    for t in targets:
        assert t["target"] in md
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) >= 4
    for table in tables:  # every row has as many cells as the header, and a separator row
        assert set(table[1].replace("|", "")) <= {"-"}, table[:2]
        assert {row.count("|") for row in table} == {table[0].count("|")}, table
