"""Two checkouts of opsbook side by side, rounds interleaved: `python -m bench.ab BASE NEW`.

    python -m bench.ab /work/wt-base /work/wt-new --rounds 7 --stem exec-split

Each checkout is imported through PYTHONPATH (a folder of symlinks `opsbook`,
`opsbook_plugins`, `opsbook_lab` to its engine/, plugins/, lab/), not installed: the
installed opsbook supplies only the entry-point metadata, whose module names are the same.
Each round runs, for A then B (B then A on odd rounds):

- the engine benchmark (`bench.engine_bench noop`, 1000 steps x 100 hosts of `local.noop`,
  journal in memory): µs per node, in process;
- the 50-host x 5-step `ssh.shell` run against the sshd fleet (`opsbook run`, durable
  journal): wall time and controller CPU of the process tree (`bench.measure`).

Writes bench/results/STEM.{json,md}: every sample and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import fleet as fleet_mod
from bench import measure
from bench.harness import REPO
from bench.workloads import Workloads


def shim(checkout: Path, into: Path) -> Path:
    """A folder whose `opsbook*` names point into `checkout` (put first on PYTHONPATH)."""
    into.mkdir(parents=True, exist_ok=True)
    for name, sub in (("opsbook", "engine"), ("opsbook_plugins", "plugins"), ("opsbook_lab", "lab")):
        link = into / name
        if not link.exists():
            link.symlink_to(checkout / sub)
    return into


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("base", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--hosts", type=int, default=50)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--noop", default="1000x100", help="engine benchmark size STEPSxHOSTS")
    p.add_argument("--stem", default="ab")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="opsbook-ab-"))
    variants = {"base": args.base.resolve(), "new": args.new.resolve()}
    envs: dict[str, dict[str, str]] = {}
    for label, checkout in variants.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSBOOK_", "PYTHONPATH"))}
        env["PYTHONPATH"] = f"{shim(checkout, work / 'shim' / label)}{os.pathsep}{REPO}"
        env["OPSBOOK_RUNS_DIR"] = str(work / "runs")
        env["SSH_AUTH_SOCK"] = ""
        envs[label] = env
    import compileall

    for checkout in variants.values():  # as pip does for an install (and bench/__main__ for opsbook)
        for folder in ("engine", "plugins", "lab"):
            compileall.compile_dir(checkout / folder, quiet=1, force=False)
    steps, hosts = args.noop.split("x")
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {v: {"engine": [], "run": []} for v in variants}
    with fleet_mod.start(args.hosts, work / "fleet", log=lambda m: print(m, file=sys.stderr)) as fleet:
        files = Workloads(fleet, work / "files")
        rb, inv = files.runbook(args.steps), files.ini_inventory(args.hosts)
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for label in order:
                env = envs[label]
                out = work / f"engine-{label}-{r}.out"
                measure.run([sys.executable, "-m", "bench.engine_bench", "noop", str(work / "engine"), steps, hosts,
                             "memory"], env=env, cwd=work, stdout_path=out)
                samples[label]["engine"].append(json.loads(out.read_text().strip().splitlines()[-1]))
                db = work / f"j-{label}-{r}.db"
                s = measure.run([sys.executable, "-c", "from opsbook.main import main; main()", "run", str(rb),
                                 "-i", str(inv), "--yes", "--format", "text", "--forks", str(args.hosts),
                                 "--journal", str(db)], env=env, cwd=work, log=work / f"run-{label}-{r}.log")
                samples[label]["run"].append({"wall_s": s.wall_s, "cpu_s": s.cpu_s, "rc": s.rc})
                print(f"round {r + 1} {label}: engine {samples[label]['engine'][-1].get('engine_us_per_node')} us/node, "
                      f"run wall {s.wall_s:.3f}s cpu {s.cpu_s:.3f}s", file=sys.stderr, flush=True)
    medians = {label: {
        "engine_us_per_node": statistics.median(e["engine_us_per_node"] for e in v["engine"]),
        "run_wall_s": statistics.median(x["wall_s"] for x in v["run"]),
        "run_cpu_s": statistics.median(x["cpu_s"] for x in v["run"]),
    } for label, v in samples.items()}
    results = REPO / "bench" / "results"
    (results / f"{args.stem}.json").write_text(json.dumps(
        {"variants": {k: str(v) for k, v in variants.items()}, "rounds": args.rounds, "hosts": args.hosts,
         "steps": args.steps, "noop": args.noop, "load": os.getloadavg(), "medians": medians,
         "samples": samples}, indent=1) + "\n")
    lines = [f"# A/B: {variants['base']} (base) against {variants['new']} (new)", "",
             f"{args.rounds} interleaved rounds; medians. Load average at the end: "
             + ", ".join(f"{x:.2f}" for x in os.getloadavg()), "",
             f"| | engine µs/node ({args.noop} local.noop, journal in memory) | {args.hosts} hosts x {args.steps} "
             "steps ssh.shell: wall s | CPU s |", "|---|---|---|---|"]
    for label, m in medians.items():
        lines.append(f"| {label} | {m['engine_us_per_node']:.1f} | {m['run_wall_s']:.3f} | {m['run_cpu_s']:.3f} |")
    b, n = medians["base"], medians["new"]
    lines.append(f"| new/base | {n['engine_us_per_node'] / b['engine_us_per_node']:.3f} | "
                 f"{n['run_wall_s'] / b['run_wall_s']:.3f} | {n['run_cpu_s'] / b['run_cpu_s']:.3f} |")
    (results / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
