"""`python -m bench [--quick] [...]`: run the benchmark and write bench/results/latest.{json,md}."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import fleet as fleet_mod
from bench import measure, report, venvs
from bench.harness import REPO, Bench, Config

ALL_TOOLS = ("opsbook", "floor", "ansible", "pyinfra")
ALL_SCENARIOS = ("a", "b", "c", "d", "e", "f", "g", "j")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="few hosts, few rounds, small engine sizes")
    p.add_argument("--hosts", help="host counts, e.g. 1,10,50 (default 1,10,50; quick 1,3)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    p.add_argument("--step-rounds", type=int,
                   help="rounds of the back-to-back short/long runbook pairs that give the cost of one more "
                        "step (default 15, at least --rounds; quick: --rounds)")
    p.add_argument("--tools", default=",".join(ALL_TOOLS), help="subset of " + ",".join(ALL_TOOLS))
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help="subset of a (one command) b (5 steps) c (extra steps) d (warm) e (start-up) "
                        "f (engine) g (memory) j (journal)")
    p.add_argument("--subnet", default="127.0.1", help="fleet addresses SUBNET.1..N (loopback only)")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where latest.* go")
    p.add_argument("--stem", default="latest", help="results file name stem")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                   help="py-spy profiles of opsbook (and the floor) after the rounds (default: on unless --quick)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / ".work", help="scratch folder")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    if args.quick:
        cfg = Config(hosts=[1, 3], rounds=2, tools=tools, scenarios=scenarios, noop_steps=20, noop_hosts=50,
                     compile_steps=100, compile_hosts=50, plan_hosts=100, journal_hosts=3, warm_commands=30,
                     startup_rounds=2)
    else:
        cfg = Config(hosts=[1, 10, 50], rounds=5, tools=tools, scenarios=scenarios)
    if args.hosts:
        cfg.hosts = sorted({int(h) for h in args.hosts.split(",")})
    if args.rounds:
        cfg.rounds = args.rounds
        cfg.startup_rounds = max(args.rounds, cfg.startup_rounds if not args.quick else args.rounds)
    cfg.step_rounds = args.step_rounds or (cfg.rounds if args.quick else max(cfg.rounds, cfg.step_rounds))
    return cfg


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    osname = "?"
    try:
        osname = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": ram, "kernel": platform.release(), "os": osname,
            "hostname_hash": abs(hash(platform.node())) % 10**6}


def versions(tool_venvs: dict[str, venvs.Venv]) -> dict[str, str]:
    import opsbook
    import paramiko

    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip()
    out = {"opsbook": f"{opsbook.__version__} ({rev})" if rev else opsbook.__version__,
           "python": platform.python_version(), "paramiko (opsbook, floor)": paramiko.__version__}
    if "ansible" in tool_venvs:
        out["ansible-core"] = venvs.version_of(tool_venvs["ansible"], "ansible-core")
    if "pyinfra" in tool_venvs:
        out["pyinfra"] = venvs.version_of(tool_venvs["pyinfra"], "pyinfra")
        out["paramiko (pyinfra)"] = venvs.version_of(tool_venvs["pyinfra"], "paramiko")
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    out["OpenSSH (targets; ansible's client)"] = (ssh.stderr or ssh.stdout).strip().split(",")[0]
    return out


PROFILE_STEPS = (5, 25)  # the per-step profile is the difference of these two, over 20 steps
PROFILE_REPEAT = 2


def run_profiles(bench: Bench, cfg: Config, folder: Path, stem: str) -> dict[str, Any]:
    """py-spy (GIL holder) profiles of the opsbook cases that have targets, and of the floor."""
    from bench import profile
    from bench.harness import opsbook_exe

    folder.mkdir(parents=True, exist_ok=True)
    top = max(cfg.hosts)
    jobs: list[tuple[str, str, list[str], int]] = []  # name, title, command, repetitions
    w = bench.w
    lo, hi = PROFILE_STEPS
    if w is not None and "opsbook" in cfg.tools:
        for steps in (lo, hi):
            jobs.append((f"opsbook-run-{steps}x{top}", f"opsbook run, {steps} ssh.shell steps on {top} hosts",
                         [*opsbook_exe(), "run", str(w.runbook(steps)), "-i", str(w.ini_inventory(top)), "--yes",
                          "--format", "text", "--forks", str(top), "--journal", str(bench.work / "profile.db")],
                         PROFILE_REPEAT))
    if w is not None and "floor" in cfg.tools:
        for steps in (lo, hi):
            jobs.append((f"floor-{steps}x{top}", f"paramiko floor, the same {steps} commands on {top} hosts",
                         [sys.executable, "-m", "bench.floor", str(w.floor_spec(top, steps))], PROFILE_REPEAT))
    if "opsbook" in cfg.tools:
        for kind in ("memory", "file"):
            jobs.append((f"engine-noop-{kind}", (f"engine: {cfg.noop_steps}x{cfg.noop_hosts} local.noop nodes, "
                         f"journal {kind} (in process)"),
                         [sys.executable, "-m", "bench.engine_bench", "noop", str(bench.work / "engine"),
                          str(cfg.noop_steps), str(cfg.noop_hosts), kind], 1))
        jobs.append(("opsbook-version", "opsbook --version", [*opsbook_exe(), "--version"], 3))
    out: dict[str, Any] = {}
    texts = []
    for name, title, cmd, repeat in jobs:
        log(f"profiling: {title} (x{repeat})")
        raws = []
        try:
            for i in range(repeat):
                raws.append(profile.record(cmd, bench.work / f"profile-{name}-{i}.raw", env=bench.env,
                                           cwd=bench.work))
                for suffix in ("", "-wal", "-shm"):
                    Path(str(bench.work / "profile.db") + suffix).unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - profiling is a diagnosis aid: reported, not fatal
            out[name] = {"title": title, "error": str(exc)[-500:]}
            continue
        summary = profile.summarize(raws)
        summary["title"] = title
        out[name] = summary
        texts.append(profile.as_text(title, summary))
    if w is not None and "opsbook" in cfg.tools:
        cmd = [*opsbook_exe(), "run", str(w.runbook(5)), "-i", str(w.ini_inventory(1)), "--yes", "--format", "text",
               "--forks", "1", "--journal", str(bench.work / "profile.db")]
        imports = profile.import_times(cmd, bench.env, bench.work)
        out["imports"] = {"title": "imports of `opsbook run` (5 ssh.shell steps, 1 host)", **imports}
        texts.append(f"## {out['imports']['title']}\n\nall imports: {imports['total_ms']:.0f} ms (self times "
                     "summed)\n\n| module (first import of its package) | cumulative ms |\n|---|---|\n"
                     + "".join(f"| `{r['module']}` | {r['cumulative_ms']:.1f} |\n" for r in imports["top"]))
        for suffix in ("", "-wal", "-shm"):
            Path(str(bench.work / "profile.db") + suffix).unlink(missing_ok=True)
    for tool, key in (("opsbook-run", "per_extra_step"), ("floor", "floor_per_extra_step")):
        a, b = out.get(f"{tool}-{lo}x{top}"), out.get(f"{tool}-{hi}x{top}")
        if a and b and a.get("samples") and b.get("samples"):
            out[key] = per_step_components(a, b, hi - lo, top, tool)
            texts.append(profile_delta_text(out[key]))
    (folder / f"{stem}.md").write_text("# py-spy profiles (thread holding the GIL)\n\n" + "\n".join(texts))
    return out


def per_step_components(five: dict[str, Any], ten: dict[str, Any], extra: int, hosts: int,
                        tool: str = "opsbook-run") -> dict[str, Any]:
    """Python CPU of one more step, by component: (long profile - short profile) / extra steps."""
    from bench.profile import RATE

    def by(summary: dict[str, Any], key: str, field: str) -> dict[str, int]:
        return {c[field]: c["samples"] for c in summary[key]}

    rows = []
    for key, field in (("components", "name"), ("inclusive", "function")):
        a, b = by(five, key, field), by(ten, key, field)
        for name in set(a) | set(b):
            delta = (b.get(name, 0) - a.get(name, 0)) / extra / RATE
            rows.append({"kind": key, "name": name, "s_per_step": delta, "ms_per_node": delta / hosts * 1000})
    rows.sort(key=lambda r: -r["s_per_step"])
    what = "opsbook: one more ssh.shell step" if tool == "opsbook-run" else "paramiko floor: one more command"
    return {"title": f"{what} on {hosts} hosts ((long - short profile) / {extra} steps)",
            "total_s_per_step": (ten["samples"] - five["samples"]) / extra / RATE,
            "components": [r for r in rows if r["kind"] == "components"],
            "functions": [r for r in rows if r["kind"] == "inclusive"][:25]}


def profile_delta_text(d: dict[str, Any]) -> str:
    lines = [f"## {d['title']}", "", (f"Python CPU per extra step: {d['total_s_per_step'] * 1000:.1f} ms "
             "(one sample-run each, so ±noise)"), "", "| component | ms per step | ms per node |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['s_per_step'] * 1000:.1f} | {r['ms_per_node']:.2f} |" for r in d["components"]]
    lines += ["", "| function (inclusive) | ms per step | ms per node |", "|---|---|---|"]
    lines += [f"| `{r['name']}` | {r['s_per_step'] * 1000:.1f} | {r['ms_per_node']:.2f} |" for r in d["functions"]]
    return "\n".join(lines) + "\n"


def source_state() -> dict[str, Any]:
    """Which opsbook was measured: the commit, files changed in the work tree, a digest of them.

    The checkout is shared with people editing it; a digest that differs between the start
    and the end of a run says the code changed while it was measured.
    """
    import hashlib

    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "engine", "plugins"],
                           capture_output=True, text=True, check=False).stdout.split("\n")
    h = hashlib.sha256()
    for f in sorted([*REPO.glob("engine/**/*.py"), *REPO.glob("plugins/*.py")]):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return {"commit": rev, "uncommitted": [line[3:] for line in dirty if line.strip()],
            "digest": h.hexdigest()[:16]}


def needs_fleet(cfg: Config) -> bool:
    return bool(cfg.scenarios & {"a", "b", "c", "d"}) and bool(cfg.tools & {"opsbook", "floor", "ansible", "pyinfra"})


def byte_compile_opsbook() -> None:
    """Compile opsbook's modules to .pyc, as pip does for the tools in their venvs: an
    editable install under PYTHONDONTWRITEBYTECODE would otherwise compile every module
    from source on every start (~0.1 s) and the start-up measured would not be a user's."""
    import compileall

    for folder in ("engine", "plugins", "lab"):
        compileall.compile_dir(REPO / folder, quiet=1, force=False)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    cfg = config(args)
    started = time.time()
    load_start = os.getloadavg()
    src_start = source_state()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    byte_compile_opsbook()
    tool_venvs = {}
    for tool in ("ansible", "pyinfra"):
        if tool in cfg.tools:
            tool_venvs[tool] = venvs.ensure(tool, log=log)
    fleet = None
    top = max(cfg.hosts)
    if needs_fleet(cfg):
        log(f"starting {top} sshd targets on {args.subnet}.x")
        fleet = fleet_mod.start(top, venvs.cache_root() / f"fleet-{args.subnet}", args.subnet, log=log)
        log(f"fleet up: {fleet.targets[0].address}:{fleet.targets[0].port} .. "
            f"{fleet.targets[-1].address}:{fleet.targets[-1].port} (sshd PIDs {fleet.pids[0]}..{fleet.pids[-1]})")
    try:
        bench = Bench(cfg, fleet, work, tool_venvs, log)
        bench.build()
        log(f"{len(bench.cases)} cases, {cfg.rounds} rounds")
        bench.run_rounds()
        want_profile = args.profile if args.profile is not None else not args.quick
        profiles = run_profiles(bench, cfg, args.results / "profiles", args.stem) if want_profile else {}
    finally:
        if fleet is not None:
            fleet.stop()
            log("fleet stopped")
    cases = report.summarize_cases(bench.cases)
    derived = report.derive(cases, top, cfg.extra_steps, cfg.pair_steps)
    fleet_desc = "none"
    if fleet is not None:
        t = fleet.targets
        fleet_desc = (f"{len(t)} sshd (OpenSSH, UsePAM no, key-only, strict known_hosts, user {fleet.user} "
                      f"with /bin/sh) at {t[0].address}:{t[0].port}..{t[-1].address}:{t[-1].port}")
    result = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "mode": "quick" if args.quick else "full",
                 "rounds": cfg.rounds, "startup_rounds": cfg.startup_rounds, "hosts": cfg.hosts,
                 "tools": sorted(cfg.tools), "scenarios": sorted(cfg.scenarios), "machine": machine(),
                 "versions": versions(tool_venvs), "fleet": fleet_desc,
                 "cpu_source": "cgroup v1 cpuacct of the tool's process tree, wait4 kept beside it"
                 if measure.CGROUP_OK else "os.wait4 rusage of the tool's reaped process tree",
                 "elapsed_s": time.time() - started, "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                 "source_start": src_start, "source_end": source_state(), "argv": sys.argv[1:] if argv is None else argv},
        "cases": cases, "derived": derived,
        "notes": [
            ("ansible: ansible-playbook / ad-hoc with forks = hosts, pipelining on, ControlMaster/ControlPersist "
            "(a fresh control path per run; masters left behind are stopped after each run and their CPU counted), "
            "gather_facts false, linear strategy (the default)."),
            "pyinfra: -y --parallel N --no-wait (hosts move on without waiting for each other, like opsbook).",
            ("paramiko floor: bench/floor.py (thread per host, TCP_NODELAY, strict known_hosts, one transport per "
            "host, a channel per command)."),
            "opsbook: `opsbook run` with a fresh durable SQLite journal file per run, --forks = hosts, --yes; "
            "its modules byte-compiled first, as pip does for the other tools.",
            (f"every measured command starts once the machine is quiet: less than {measure.QUIET_BUSY:.0%} of its "
             f"CPUs busy over {measure.QUIET_WINDOW:g} s (waiting at most {measure.QUIET_MAX_WAIT:g} s), so the tail of "
             "the tool before it (sshd sessions closing on 50 targets) does not run beside it; each case's median "
             "wait and busy share before it are in latest.json (m_quiet_wait_s, m_busy_before)."),
            ("ciphers: opsbook and the floor offer AES-GCM first (paramiko's cheapest: authenticated encryption in "
             "OpenSSL); pyinfra uses paramiko's default order (aes-ctr + HMAC); ansible uses OpenSSH's."),
        ],
    }
    result["targets"] = report.targets(cases, derived)
    result["profiles"] = profiles
    js, md = report.write(result, args.results, args.stem)
    log(f"wrote {js} and {md}")
    print(md.read_text())
    failed = [c["id"] for c in cases.values() if c.get("error")]
    if failed:
        log("cases that failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
