"""The benchmark: every case, measured in interleaved rounds (A B C A B C ...).

A *group* is a set of cases that are compared with each other (the same work done by
each tool). Each round runs every case of every group once, in a fixed order, so slow
drifts of the machine hit all tools alike; summaries are medians over rounds, and ratios
are taken between medians measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import measure
from bench.fleet import Fleet
from bench.measure import Sample
from bench.venvs import Venv
from bench.workloads import Workloads, commands

REPO = Path(__file__).resolve().parent.parent
# Groups that take seconds and whose differences are small: more rounds (startup_rounds).
CHEAP = ("e.", "j.")
STEP_PAIRS = "c.per-step"  # group of the short/long runbook pairs (see Bench cases)


@dataclass
class Case:
    """One thing measured: a tool doing one scenario's work."""

    id: str
    group: str
    tool: str
    run: Callable[[], Sample]
    hosts: int | None = None
    steps: int | None = None
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None


@dataclass
class Config:
    hosts: list[int]
    rounds: int
    tools: set[str]
    scenarios: set[str]
    extra_steps: tuple[int, int] = (5, 10)
    pair_steps: tuple[int, int] = (5, 25)  # short and long runbook of the per-step pairs
    noop_steps: int = 1000
    noop_hosts: int = 100
    compile_steps: int = 1000
    compile_hosts: int = 100
    plan_hosts: int = 1000
    journal_hosts: int = 50
    warm_commands: int = 200
    startup_rounds: int = 10
    step_rounds: int = 15  # rounds of the back-to-back pairs that give the cost of one more step


def opsbook_exe() -> list[str]:
    """The real console script (not a pyenv shim), so start-up is opsbook's own."""
    script = Path(sys.executable).parent / "opsbook"
    if script.is_file():
        return [str(script)]
    found = shutil.which("opsbook")
    return [found] if found else [sys.executable, "-c", "from opsbook.main import main; main()"]


class Bench:
    """Builds the cases for a config and runs them."""

    def __init__(self, cfg: Config, fleet: Fleet | None, work: Path, venvs: dict[str, Venv],
                 log: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.work = work
        self.venvs = venvs
        self.log = log
        self.logs = work / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)  # one run's logs only
        self.logs.mkdir(parents=True, exist_ok=True)
        self.files = Workloads(fleet, work / "files")
        self.w = self.files if fleet is not None else None  # the SSH workloads need the fleet
        self.cases: list[Case] = []
        self._n = 0
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("ANSIBLE_", "PYINFRA_", "OPSBOOK_", "PYTHONPATH"))}
        self.env["PYTHONPATH"] = str(REPO)  # `python -m bench.floor` from any cwd
        self.env["OPSBOOK_RUNS_DIR"] = str(work / "opsbook-runs")
        self.env["SSH_AUTH_SOCK"] = ""

    # -- running ---------------------------------------------------------------------------
    def _logfile(self, case_id: str) -> Path:
        self._n += 1
        return self.logs / f"{self._n:05d}-{case_id.replace('/', '_').replace(' ', '_')}.log"

    def _exec(self, case_id: str, cmd: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None, capture: bool = False) -> Sample:
        log = self._logfile(case_id)
        with log.open("w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
        out = log.with_suffix(".out") if capture else None
        sample = measure.run(cmd, env=env or self.env, cwd=cwd or self.work, log=log, stdout_path=out)
        if capture and out is not None:
            sample.extra["stdout"] = out.read_text()
        return sample

    # -- tools -----------------------------------------------------------------------------
    def opsbook_run(self, case_id: str, runbook: Path, inventory: Path, forks: int,
                    journal: str | None = None) -> Sample:
        jdir = self.work / "journals"
        jdir.mkdir(exist_ok=True)
        db = journal or str(jdir / f"j{self._n + 1}.db")
        cmd = [*opsbook_exe(), "run", str(runbook), "-i", str(inventory), "--yes", "--format", "text",
               "--forks", str(forks), "--journal", db]
        try:
            return self._exec(case_id, cmd)
        finally:
            if db != ":memory:":
                for suffix in ("", "-wal", "-shm"):
                    Path(db + suffix).unlink(missing_ok=True)
            shutil.rmtree(self.work / "opsbook-runs", ignore_errors=True)

    def _ansible_env(self, forks: int) -> tuple[dict[str, str], Path]:
        assert self.w is not None
        cp = Path(tempfile.mkdtemp(prefix="obb-cp-", dir="/tmp"))  # short: socket path limit
        env = {**self.env, "ANSIBLE_CONFIG": str(self.w.ansible_cfg(forks)),
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp), "ANSIBLE_HOME": str(self.work / "ansible-home"),
               "ANSIBLE_NOCOLOR": "1"}
        return env, cp

    def ansible_adhoc(self, case_id: str, hosts: int, command: str) -> Sample:
        assert self.w is not None
        env, cp = self._ansible_env(hosts)
        cmd = [self.venvs["ansible"].exe("ansible"), "bench", "-i", str(self.w.ini_inventory(hosts)),
               "-m", "ansible.builtin.command", "-a", command, "-f", str(hosts)]
        try:
            return self._exec(case_id, cmd, env=env)
        finally:
            shutil.rmtree(cp, ignore_errors=True)

    def ansible_playbook(self, case_id: str, hosts: int, steps: int) -> Sample:
        assert self.w is not None
        env, cp = self._ansible_env(hosts)
        cmd = [self.venvs["ansible"].exe("ansible-playbook"), "-i", str(self.w.ini_inventory(hosts)),
               "-f", str(hosts), str(self.w.playbook(steps))]
        try:
            return self._exec(case_id, cmd, env=env)
        finally:
            shutil.rmtree(cp, ignore_errors=True)

    def pyinfra(self, case_id: str, hosts: int, *ops: str) -> Sample:
        assert self.w is not None
        cmd = [self.venvs["pyinfra"].exe("pyinfra"), "-y", "--parallel", str(hosts), "--no-wait",
               str(self.w.pyinfra_inventory(hosts)), *ops]
        return self._exec(case_id, cmd, cwd=self.w.root)

    def floor(self, case_id: str, hosts: int, steps: int) -> Sample:
        assert self.w is not None
        return self._exec(case_id, [sys.executable, "-m", "bench.floor", str(self.w.floor_spec(hosts, steps))])

    # -- building cases --------------------------------------------------------------------
    def add(self, group: str, tool: str, run: Callable[[], Sample], hosts: int | None = None,
            steps: int | None = None, name: str | None = None) -> None:
        if tool not in self.cfg.tools and tool.split(":")[0] not in self.cfg.tools:
            return
        case_id = f"{group}/{name or tool}"
        self.cases.append(Case(case_id, group, tool, run, hosts, steps))

    def build(self) -> None:
        cfg, w = self.cfg, self.w
        sc = cfg.scenarios
        if w is not None and "a" in sc:
            for n in cfg.hosts:
                g = f"a.one-command@{n}"
                self.add(g, "ansible", lambda n=n, g=g: self.ansible_adhoc(g, n, commands(1)[0]), n, 1,
                         name="ansible (ad-hoc -m command)")
                self.add(g, "pyinfra", lambda n=n, g=g: self.pyinfra(g, n, "exec", "--", *commands(1)[0].split()),
                         n, 1, name="pyinfra (exec)")
                self.add(g, "floor", lambda n=n, g=g: self.floor(g, n, 1), n, 1, name="paramiko floor")
                self.add(g, "opsbook", lambda n=n, g=g: self.opsbook_run(g, w.runbook(1), w.ini_inventory(n), n),
                         n, 1, name="opsbook run")
        step_sets: list[tuple[str, int, list[int]]] = []
        if "b" in sc:
            step_sets.append(("b.runbook-5", 5, cfg.hosts))
        if "c" in sc:
            lo, hi = cfg.extra_steps
            top = max(cfg.hosts)
            if "b" not in sc:
                step_sets.append((f"c.steps-{lo}", lo, [top]))
            step_sets.append((f"c.steps-{hi}", hi, [top]))
        if w is not None:
            for prefix, steps, host_counts in step_sets:
                for n in host_counts:
                    g = f"{prefix}@{n}"
                    self.add(g, "ansible", lambda n=n, s=steps, g=g: self.ansible_playbook(g, n, s), n, steps,
                             name="ansible-playbook")
                    self.add(g, "pyinfra", lambda n=n, s=steps, g=g: self.pyinfra(g, n, str(w.pyinfra_deploy(s))),
                             n, steps, name="pyinfra (deploy)")
                    self.add(g, "floor", lambda n=n, s=steps, g=g: self.floor(g, n, s), n, steps,
                             name="paramiko floor")
                    self.add(g, "opsbook", lambda n=n, s=steps, g=g: self.opsbook_run(
                        g, w.runbook(s), w.ini_inventory(n), n), n, steps, name="opsbook run")
        if w is not None and "c" in sc:
            # The cost of one more step is a small difference of two noisy totals: each round
            # runs a tool's short and long runbook back to back (20 steps apart, so the signal
            # stands above the noise of a run), and the estimate is the median of those pairs
            # over more rounds (ansible's, 40x larger, comes from b and c).
            lo, hi = cfg.pair_steps
            n = max(cfg.hosts)
            g = f"{STEP_PAIRS}@{n}"
            for steps in (lo, hi):
                self.add(g, "pyinfra", lambda s=steps: self.pyinfra(g, n, str(w.pyinfra_deploy(s))), n, steps,
                         name=f"pyinfra (deploy), {steps} steps")
                self.add(g, "floor", lambda s=steps: self.floor(g, n, s), n, steps, name=f"paramiko floor, {steps} steps")
                self.add(g, "opsbook", lambda s=steps: self.opsbook_run(g, w.runbook(s), w.ini_inventory(n), n),
                         n, steps, name=f"opsbook run, {steps} steps")
        if w is not None and "d" in sc:
            spec = w.floor_spec(1, 1)
            for tool, name in (("opsbook", "opsbook SSHConnection.run"), ("floor", "paramiko channel")):
                self.add("d.warm-command", tool, lambda t=tool: self._warm(t, spec), 1, 1, name=name)
        if "e" in sc:
            self._startup_cases()
        if "f" in sc:
            self._engine_cases()
        if "g" in sc:
            self._memory_cases()
        if "j" in sc:
            self._journal_cases()

    def _warm(self, tool: str, spec: Path) -> Sample:
        which = "opsbook" if tool == "opsbook" else "paramiko"
        s = self._exec(f"d.warm-{which}", [sys.executable, "-m", "bench.warm", str(spec), which,
                                          str(self.cfg.warm_commands)], capture=True)
        s.extra.update(json.loads(s.extra.pop("stdout").strip().splitlines()[-1]))
        return s

    def _startup_cases(self) -> None:
        g = "e.startup"
        rb = self.files.runbook(5)
        ops = opsbook_exe()
        self.add(g, "opsbook", lambda: self._exec(g, [*ops, "--version"]), name="opsbook --version")
        # What every Python program here pays before its first line (site, .pth files).
        self.add(g, "opsbook:python", lambda: self._exec(g, [sys.executable, "-c", "pass"]),
                 name="python3 -c pass (interpreter start, same Python)")
        # the workload's echo steps are not a runbook a team would ship (no approvals, no undo):
        # the start-up of check is measured without the policy rules
        self.add(g, "opsbook:check", lambda: self._exec(g, [*ops, "check", "--no-policy", str(rb)]),
                 name="opsbook check")
        if "ansible" in self.venvs:
            a = self.venvs["ansible"]
            self.add(g, "ansible", lambda: self._exec(g, [a.exe("ansible"), "--version"]), name="ansible --version")
            if self.w is not None:
                self.add(g, "ansible:syntax", lambda: self._exec(g, [
                    a.exe("ansible-playbook"), "--syntax-check", "-i", str(self.w.ini_inventory(1)),
                    str(self.w.playbook(5))], env=self._ansible_env(1)[0]), name="ansible-playbook --syntax-check")
        if "pyinfra" in self.venvs:
            p = self.venvs["pyinfra"]
            self.add(g, "pyinfra", lambda: self._exec(g, [p.exe("pyinfra"), "--version"]), name="pyinfra --version")

    def _engine(self, group: str, *args: str) -> Sample:
        s = self._exec(group, [sys.executable, "-m", "bench.engine_bench", args[0],
                               str(self.work / "engine"), *args[1:]], capture=True)
        s.extra.update(json.loads(s.extra.pop("stdout").strip().splitlines()[-1]))
        return s

    def _engine_cases(self) -> None:
        c = self.cfg
        g = f"f.engine-noop-{c.noop_steps}x{c.noop_hosts}"
        for kind in ("memory", "file"):
            self.add(g, "opsbook", lambda k=kind: self._engine(g, "noop", str(c.noop_steps), str(c.noop_hosts), k),
                     c.noop_hosts, c.noop_steps, name=f"journal {kind}")
        g2 = f"f.compile-{c.compile_steps}x{c.compile_hosts}"
        self.add(g2, "opsbook", lambda: self._engine(g2, "compile", str(c.compile_steps), str(c.compile_hosts)),
                 c.compile_hosts, c.compile_steps, name="compile_plan")

    def _memory_cases(self) -> None:
        c = self.cfg
        g = f"g.memory@{c.plan_hosts}"
        inv = self.files.plan_inventory(c.plan_hosts)
        rb = self.files.runbook(5)
        ops = opsbook_exe()
        self.add(g, "opsbook", lambda: self._exec(g, [*ops, "plan", str(rb), "-i", str(inv), "--format", "json"]),
                 c.plan_hosts, 5, name="opsbook plan (CLI)")
        self.add(g, "opsbook:noop", lambda: self._engine(g, "noop", "5", str(c.plan_hosts), "file"),
                 c.plan_hosts, 5, name="opsbook run, 5 local.noop steps (in process)")
        if "ansible" in self.venvs and self.w is not None:
            a = self.venvs["ansible"]
            self.add(g, "ansible", lambda: self._exec(g, [
                a.exe("ansible-playbook"), "--list-hosts", "--list-tasks", "-i", str(inv),
                str(self.w.playbook(5))], env=self._ansible_env(1)[0]),
                c.plan_hosts, 5, name="ansible-playbook --list-hosts --list-tasks")

    def _journal_cases(self) -> None:
        c = self.cfg
        rb, inv = self.files.local_runbook(5), self.files.local_inventory(c.journal_hosts)
        g = f"j.journal-local@{c.journal_hosts}x5"
        self.add(g, "opsbook", lambda: self.opsbook_run(g, rb, inv, c.journal_hosts), c.journal_hosts, 5,
                 name="journal file (durable, default)")
        self.add(g, "opsbook:memory", lambda: self.opsbook_run(g, rb, inv, c.journal_hosts, ":memory:"),
                 c.journal_hosts, 5, name="journal :memory:")

    # -- the rounds ------------------------------------------------------------------------
    def _rounds(self, group: str) -> int:
        if group.startswith(CHEAP):
            return self.cfg.startup_rounds
        if group.startswith(STEP_PAIRS):
            return self.cfg.step_rounds
        return self.cfg.rounds

    def run_rounds(self) -> None:
        groups: dict[str, list[Case]] = {}
        for case in self.cases:
            groups.setdefault(case.group, []).append(case)
        total = max(self._rounds(g) for g in groups) if groups else 0
        for r in range(1, total + 1):
            t0 = time.monotonic()
            for group, cases in groups.items():
                if r > self._rounds(group):
                    continue
                for case in cases:
                    if case.error:
                        continue
                    try:
                        sample = case.run()
                    except Exception as exc:  # noqa: BLE001 - a failing tool is reported, the rest go on
                        case.error = f"{type(exc).__name__}: {exc}"[-1500:]
                        self.log(f"  FAILED {case.id}: {case.error[:300]}")
                        continue
                    case.samples.append(sample)
                    self.log(f"  r{r} {case.id:70s} wall {sample.wall_s:8.3f}s cpu {sample.cpu_s:8.3f}s")
            self.log(f"round {r}/{total} done in {time.monotonic() - t0:.0f}s")

