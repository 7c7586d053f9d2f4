"""Engine-only measurements, in process through `opsbook.api` (one scenario per process).

    python -m bench.engine_bench noop    DIR STEPS HOSTS memory|file   # local.noop nodes
    python -m bench.engine_bench compile DIR STEPS HOSTS               # compile_plan only
    python -m bench.engine_bench plan    DIR STEPS HOSTS               # plan (+ peak RSS)
    python -m bench.engine_bench needs   DIR STEPS FANIN               # check + plan of a wide graph

Writes the runbook and inventory into DIR and prints one JSON line. Times are
perf_counter around each stage; `ru_maxrss` is this process's peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def write_noop_runbook(path: Path, steps: int) -> Path:
    lines = ["opsbook: 1", f"name: bench-noop-{steps}", "hosts: all", "steps:"]
    for i in range(1, steps + 1):
        lines += [f"  - name: noop {i}", "    local.noop: {}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_local_inventory(path: Path, hosts: int) -> Path:
    lines = ["[bench]"] + [f"n{i} ansible_connection=local" for i in range(1, hosts + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _files(folder: Path, steps: int, hosts: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rb = write_noop_runbook(folder / f"noop-{steps}.yaml", steps)
    inv = write_local_inventory(folder / f"local-{hosts}.ini", hosts)
    return rb, inv


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def noop(folder: Path, steps: int, hosts: int, journal_kind: str) -> dict[str, Any]:
    os.environ.setdefault("OPSBOOK_RUNS_DIR", str(folder / "runs"))
    from opsbook.api import RunRequest, load_inventory_sources, load_runbook, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal
    from opsbook.registry import Registry

    rb_path, inv_path = _files(folder, steps, hosts)
    db = folder / f"journal-{os.getpid()}.db"
    t0 = time.perf_counter()
    registry = Registry.from_entry_points()
    runbook = load_runbook(str(rb_path), registry)
    inventory = load_inventory_sources([str(inv_path)])
    t1 = time.perf_counter()
    plan = make_plan(runbook, inventory, {})
    t2 = time.perf_counter()
    journal = Journal(":memory:" if journal_kind == "memory" else db)
    summary = start_run(plan, registry, journal, RunRequest(inventory_sources=[str(inv_path)],
                                                            options=RunOptions(forks=50)))
    t3 = time.perf_counter()
    journal.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if summary.status != "succeeded":
        raise SystemExit(f"noop run {summary.status}: {summary.message}")
    nodes = steps * hosts
    return {"nodes": nodes, "load_s": t1 - t0, "compile_s": t2 - t1, "run_s": t3 - t2,
            "run_us_per_node": (t3 - t2) / nodes * 1e6,
            "engine_us_per_node": (t3 - t1) / nodes * 1e6, "maxrss_mb": _maxrss_mb(),
            "journal": journal_kind}


def compile_only(folder: Path, steps: int, hosts: int, expand: bool = True) -> dict[str, Any]:
    from opsbook.api import load_inventory_sources, load_runbook
    from opsbook.compile import compile_plan
    from opsbook.registry import Registry

    rb_path, inv_path = _files(folder, steps, hosts)
    t0 = time.perf_counter()
    runbook = load_runbook(str(rb_path), Registry.from_entry_points())
    inventory = load_inventory_sources([str(inv_path)])
    t1 = time.perf_counter()
    plan = compile_plan(runbook, inventory, {})
    t2 = time.perf_counter()
    return {"nodes": len(plan.nodes), "load_s": t1 - t0, "compile_s": t2 - t1,
            "compile_us_per_node": (t2 - t1) / max(1, len(plan.nodes)) * 1e6,
            "maxrss_mb": _maxrss_mb()}


def wide_needs(folder: Path, steps: int, fanin: int) -> dict[str, Any]:
    """A runbook whose every step `needs:` the `fanin` steps before it (STEPS x FANIN edges):
    `check` (step graph) and `plan` (nodes, edges and the text view) must stay linear in edges."""
    from opsbook.api import load_inventory_sources, load_runbook
    from opsbook.compile import compile_plan
    from opsbook.planview import plan_text
    from opsbook.registry import Registry

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["opsbook: 1", f"name: bench-needs-{steps}x{fanin}", "steps:"]
    for i in range(steps):
        needs = ", ".join(f"s{j}" for j in range(max(0, i - fanin), i))
        lines += [f"  - name: s{i}", f"    needs: [{needs}]", "    local.noop: {}"]
    rb_path = folder / f"needs-{steps}x{fanin}.yaml"
    rb_path.write_text("\n".join(lines) + "\n")
    registry = Registry.from_entry_points()
    t0 = time.perf_counter()
    runbook = load_runbook(str(rb_path), registry)
    inventory = load_inventory_sources([])
    t1 = time.perf_counter()
    steps_only = compile_plan(runbook, inventory, {}, expand=False)
    t2 = time.perf_counter()
    plan = compile_plan(runbook, inventory, {})
    text = plan_text(plan, registry)
    t3 = time.perf_counter()
    return {"steps": steps, "edges": len(steps_only.step_edges), "load_s": t1 - t0, "check_graph_s": t2 - t1,
            "plan_s": t3 - t2, "plan_lines": text.count("\n"), "maxrss_mb": _maxrss_mb()}


def main(argv: list[str]) -> int:
    what, folder, steps, hosts = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    if what == "noop":
        out = noop(folder, steps, hosts, argv[4])
    elif what in ("compile", "plan"):
        out = compile_only(folder, steps, hosts)
    elif what == "needs":
        out = wide_needs(folder, steps, hosts)
    else:
        raise SystemExit(f"unknown scenario {what}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
