"""Helpers for the end-to-end runbook tests against the lab (imported by tests/e2e/test_*.py).

- `make_opsbook` (the tests' `ob` fixture): run a runbook through the real CLI (`python -m opsbook run ... --format json`) with a
  journal and runs folder in the test's tmp_path, and read back what happened (events,
  node messages, RTO/RPO from the journal, the evidence manifest).
- `pristine_lab` (the tests' `pristine` fixture): the lab in its pristine state (db1 primary, db2 its replica, both web
  backends UP at their own addresses, no leftovers of a runbook), before and after the
  test. It checks and recreates the containers (`lab.reset()`) only when something differs,
  so tests that leave the lab as they found it do not pay for a reset.
- small readers of the lab's real state: HTTP through the balancer, Redis roles and keys,
  the balancer's pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opsbook_lab.pytest_plugin import wait_for

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "runbooks"
ARTIFACTS = REPO / "tests" / "artifacts"
WEBS = ("web1", "web2")


def runbook(relative: str) -> str:
    """Absolute path of a runbook of the library, e.g. runbook("failover/redis-promote.yaml")."""
    path = RUNBOOKS / relative
    assert path.is_file(), f"{path} is missing"
    return str(path)


# -- running opsbook --------------------------------------------------------------------------


@dataclass
class RunResult:
    """One `opsbook run`: exit code, JSON events, and access to its journal."""

    rc: int
    events: list[dict[str, Any]]
    stderr: str
    journal_path: Path
    runs_dir: Path
    seconds: float
    run_id: str = ""

    def __post_init__(self) -> None:
        self.run_id = next((e["run"] for e in self.events if e.get("run")), "")

    @property
    def status(self) -> str:
        ends = [e for e in self.events if e["event"] == "run_finished"]
        return ends[-1]["status"] if ends else "(no run_finished event)"

    def finished(self, step: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
        """node_finished events, optionally of one step (name) and host."""
        return [e for e in self.events if e["event"] == "node_finished"
                and (step is None or e.get("step") == step) and (host is None or e.get("host") == host)]

    def node(self, step: str, host: str | None = None) -> dict[str, Any]:
        found = self.finished(step, host)
        assert found, f"no node of step {step!r}{f' on {host}' if host else ''} finished:\n{self.summary()}"
        return found[-1]

    def status_of(self, step: str, host: str | None = None) -> str:
        return str(self.node(step, host)["status"])

    def msg(self, step: str, host: str | None = None) -> str:
        return str(self.node(step, host).get("msg") or "")

    def failures(self) -> list[str]:
        return [f"{e['step']} @ {e.get('host')}: {e.get('msg')}" for e in self.finished()
                if e["status"] in ("failed", "timed_out")]

    def summary(self) -> str:
        lines = [f"rc={self.rc} status={self.status} run={self.run_id} ({self.seconds:.1f}s)"]
        for e in self.events:
            if e["event"] == "node_finished":
                lines.append(f"  {e['status']:9} {e['step']} @ {e.get('host')}: {str(e.get('msg') or '')[:300]}")
            elif e["event"].startswith("rollback"):
                lines.append(f"  {e['event']}: {json.dumps({k: v for k, v in e.items() if k not in ('run', 'ts')})[:300]}")
        if self.stderr.strip():
            lines.append("stderr: " + self.stderr.strip()[-2000:])
        return "\n".join(lines)

    def journal(self) -> Any:
        from opsbook.journal import Journal

        return Journal(self.journal_path)

    def rto(self) -> dict[str, Any]:
        from opsbook.report import rto

        journal = self.journal()
        try:
            return rto(journal, self.run_id)
        finally:
            journal.close()

    @property
    def evidence_dir(self) -> Path:
        return self.runs_dir / self.run_id / "evidence"

    def manifest(self) -> dict[str, Any]:
        from opsbook.evidence import manifest

        journal = self.journal()
        try:
            return manifest(journal, self.run_id)
        finally:
            journal.close()

    def rollbacks(self) -> list[dict[str, Any]]:
        journal = self.journal()
        try:
            return journal.rollbacks(self.run_id)
        finally:
            journal.close()


class Opsbook:
    """Runs the opsbook CLI against the lab with its own journal (in tmp_path)."""

    def __init__(self, lab: Any, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp_path = tmp_path
        self.journal_path = tmp_path / "journal.db"
        self.runs_dir = tmp_path / "runs"

    def env(self) -> dict[str, str]:
        return {**os.environ, "OPSBOOK_JOURNAL": str(self.journal_path), "OPSBOOK_RUNS_DIR": str(self.runs_dir),
                "DOCKER_HOST": self.lab.info.docker_host, "PYTHONUNBUFFERED": "1"}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True,
                              env=self.env(), stdin=subprocess.DEVNULL, timeout=timeout, cwd=REPO, check=False)

    def run_args(self, relative: str, *extra: str, inventory: str | None = None,
                 incident_start: float | None = None, yes: bool = True, **params: Any) -> list[str]:
        """`run runbooks/<relative> -i <lab inventory> [--yes] --format json -e k=v ...`."""
        args = ["run", runbook(relative), "-i", inventory or self.lab.info.inventory, "--format", "json"]
        args += ["--yes"] if yes else []
        for key, value in params.items():
            args += ["-e", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
        if incident_start is not None:
            args += ["--incident-start", str(incident_start)]
        return args + list(extra)

    def run(self, relative: str, *extra: str, inventory: str | None = None, incident_start: float | None = None,
            timeout: float = 400, **params: Any) -> RunResult:
        """`opsbook run runbooks/<relative> -i <lab inventory> --yes --format json -e k=v ...`."""
        args = self.run_args(relative, *extra, inventory=inventory, incident_start=incident_start, **params)
        started = time.monotonic()
        done = self.cli(*args, timeout=timeout)
        return RunResult(done.returncode, json_events(done.stdout), done.stderr, self.journal_path, self.runs_dir,
                         time.monotonic() - started)

    def start(self, relative: str, *extra: str, **params: Any) -> BackgroundRun:
        """`opsbook run` without --yes and without a terminal, in the background: its approval
        gates wait for `opsbook approve` from another process (`BackgroundRun.approve`)."""
        args = self.run_args(relative, *extra, yes=False, **params)
        out = (self.tmp_path / f"run-{len(list(self.tmp_path.glob('run-*.out')))}.out").open("w")
        err = Path(out.name).with_suffix(".err").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "opsbook", *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=self.env(), cwd=REPO)
        return BackgroundRun(self, proc, Path(out.name), Path(err.name), time.monotonic(), (out, err))


def json_events(stdout: str) -> list[dict[str, Any]]:
    """The JSON events of `opsbook run --format json` (lines that are not JSON are skipped)."""
    events = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


class BackgroundRun:
    """A run started by `Opsbook.start`: find its id, wait for a gate as an operator would see it
    (`opsbook show`), answer it from a second process, signal it, collect its result."""

    def __init__(self, ob: Opsbook, proc: subprocess.Popen[bytes], out: Path, err: Path, started: float,
                 files: tuple[Any, Any]) -> None:
        self.ob, self.proc, self.out, self.err, self.started, self._files = ob, proc, out, err, started, files
        self._run_id = ""

    @property
    def run_id(self) -> str:
        def known() -> bool:
            self._run_id = next((e["run"] for e in json_events(self.out.read_text()) if e.get("run")), "")
            assert self.proc.poll() is None or self._run_id, f"the run ended before it started: {self.err.read_text()}"
            return bool(self._run_id)

        if not self._run_id:
            wait_for("the run to start", known, timeout=60, interval=0.1)
        return self._run_id

    def show(self) -> str:
        return self.ob.cli("show", self.run_id).stdout

    def wait_for_gate(self, gate: str, host: str, timeout: float = 120) -> str:
        """Poll `opsbook show RUN` until it shows the gate waiting; the text it showed."""
        seen: dict[str, str] = {}

        def waiting() -> bool:
            assert self.proc.poll() is None, f"the run ended (rc={self.proc.returncode}) before its gate:\n" \
                f"{self.err.read_text()[-3000:]}"
            seen["show"] = self.show()
            return f"WAITING for approval: {gate} @ {host}" in seen["show"]

        wait_for(f"the gate {gate!r} @ {host} to wait", waiting, timeout=timeout, interval=0.2)
        return seen["show"]

    def approve(self, gate: str) -> subprocess.CompletedProcess[str]:
        """`opsbook approve RUN GATE --yes` from a second process (no terminal)."""
        return self.ob.cli("approve", self.run_id, gate, "--yes", timeout=60)

    def finish(self, timeout: float = 400) -> RunResult:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(30)
            for f in self._files:
                f.close()
        return RunResult(self.proc.returncode, json_events(self.out.read_text()), self.err.read_text(),
                         self.ob.journal_path, self.ob.runs_dir, time.monotonic() - self.started)

    def __enter__(self) -> BackgroundRun:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a failed test: never leave a run waiting at a gate
            self.proc.kill()
            self.proc.wait(30)
        for f in self._files:
            f.close()


def make_opsbook(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Opsbook:
    """An `Opsbook` runner; in-process readers (manifest, rto) see the same journal and runs folder.

    Test modules wrap it in their `ob` fixture (fixtures imported from another module are
    not found under another name, and importing them by name trips the linter)."""
    monkeypatch.setenv("OPSBOOK_JOURNAL", str(tmp_path / "journal.db"))
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DOCKER_HOST", lab.info.docker_host)
    return Opsbook(lab, tmp_path)


# -- the lab's real state ---------------------------------------------------------------------


def sh(lab: Any, host: str, cmd: str) -> str:
    """Run a shell command in a lab host (docker exec, not through opsbook); its output."""
    _rc, out = lab.exec(host, cmd)
    return out


def sh_ok(lab: Any, host: str, cmd: str) -> str:
    rc, out = lab.exec(host, cmd)
    assert rc == 0, f"{host}: {cmd!r} exited {rc}: {out}"
    return out


def redis(lab: Any, host: str, *args: str) -> str:
    return sh(lab, host, "redis-cli " + " ".join(_quote(a) for a in args)).strip()


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def redis_info(lab: Any, host: str, section: str = "replication") -> dict[str, str]:
    out = redis(lab, host, "info", section)
    return dict(line.split(":", 1) for line in out.replace("\r", "").splitlines() if ":" in line)


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode(errors="replace"), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers or {})
    except OSError:
        return 0, "", {}


def lb_url(lab: Any, path: str = "/") -> str:
    return f"http://127.0.0.1:{lab.info.hosts['lb1'].http_port}{path}"


def web_url(lab: Any, host: str, path: str = "/") -> str:
    return f"http://127.0.0.1:{lab.info.hosts[host].http_port}{path}"


def pool(lab: Any) -> dict[str, str]:
    """The balancer's servers: name -> status word (UP, DOWN, DRAIN, MAINT)."""
    out = sh_ok(lab, "lb1", "lb-backend list")
    return {parts[0]: parts[1] for parts in (line.split() for line in out.splitlines()[1:]) if len(parts) > 1}


def slots(lab: Any) -> dict[str, str]:
    """The balancer's servers: name -> address (from `show servers state`)."""
    out = sh_ok(lab, "lb1", "lb-backend raw 'show servers state web'")
    return {f[3]: f[4] for f in (line.split() for line in out.splitlines()) if len(f) > 4 and f[0].isdigit()}


class SiteWatch:
    """Requests through the balancer every `interval` seconds in a thread, while a run goes on:
    every answer (time, status, body) is kept, to prove the site never stopped answering."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        import threading

        self.url, self.interval = url, interval
        self.answers: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="site-watch", daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            status, body, _headers = http_get(self.url, timeout=2.0)
            self.answers.append((time.time(), status, body.strip()))
            self._stop.wait(self.interval)

    def __enter__(self) -> SiteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def failures(self) -> list[tuple[float, int, str]]:
        return [a for a in self.answers if a[1] != 200]


def whoami_through_lb(lab: Any, n: int = 6) -> list[str]:
    """Who answers /whoami through the balancer, n requests (round robin)."""
    return [http_get(lb_url(lab, "/whoami"))[1].strip() for _ in range(n)]


def on_network(lab: Any, host: str) -> bool:
    info = lab.info
    container = lab.client.containers.get(info.hosts[host].container_id)
    return info.network in container.attrs["NetworkSettings"]["Networks"]


def container_status(lab: Any, host: str) -> str:
    container = lab.client.containers.get(lab.info.hosts[host].container_id)
    container.reload()
    return str(container.status)


def limits(lab: Any, host: str) -> tuple[float, int]:
    """(CPUs, memory bytes) a host's container is limited to; 0 means unlimited."""
    container = lab.client.containers.get(lab.info.hosts[host].container_id)
    config = container.attrs["HostConfig"]
    nano, quota, period = (int(config.get(k) or 0) for k in ("NanoCpus", "CpuQuota", "CpuPeriod"))
    cpus = nano / 1e9 if nano else (quota / period if quota > 0 and period > 0 else 0.0)
    return round(cpus, 3), int(config.get("Memory") or 0)


def starve(lab: Any, host: str, cpus: float = 0.5, memory_mb: int = 64) -> None:
    """Give a host's container tight CPU and memory limits (the starved web server of an incident)."""
    container = lab.client.containers.get(lab.info.hosts[host].container_id)
    container.update(cpu_period=100_000, cpu_quota=int(cpus * 100_000), mem_limit=f"{memory_mb}m",
                     memswap_limit=f"{memory_mb}m")


# -- a pristine lab -----------------------------------------------------------------------------

_WEB_LEFTOVERS = (
    "grep -q 'configuration version' /etc/nginx/sites-available/opsbook-lab && echo 'site file rewritten';"
    "ls /etc/nginx/conf.d/*.conf 2>/dev/null | sed 's/^/extra nginx config /';"
    "test -e /etc/default/redis-primary && echo 'client redis config present';"
    "test -e /usr/local/bin/opsbook-healthcheck && echo 'health check installed';"
    "test -e /etc/cron.d/opsbook-healthcheck && echo 'health check scheduled';"
    "ip route | grep -q '^default' && echo 'default route';"
    "service nginx status >/dev/null 2>&1 || echo 'nginx not running'; true"
)
_DB_LEFTOVERS = (
    "iptables -S INPUT | grep -v '^-P' | sed 's/^/firewall rule /';"
    "ip route | grep -q '^default' && echo 'default route'; true"
)


def lab_problems(lab: Any) -> list[str]:
    """What differs from the pristine lab (empty: pristine)."""
    status = lab.status()
    if not status.get("up"):
        hosts = {name: (h["state"], h["connected"]) for name, h in status.get("hosts", {}).items()}
        return [f"lab not up: {status.get('problems') or hosts}"]
    problems: list[str] = []
    info = lab.info
    for web in WEBS:
        problems += [f"{web}: {line}" for line in sh(lab, web, _WEB_LEFTOVERS).split("\n") if line.strip()]
        if limits(lab, web) != (0, 0):
            problems.append(f"{web}: container limits {limits(lab, web)}")
    for db in ("db1", "db2"):
        problems += [f"{db}: {line}" for line in sh(lab, db, _DB_LEFTOVERS).split("\n") if line.strip()]
    if redis_info(lab, "db1").get("role") != "master":
        problems.append("db1 is not a primary")
    standby = redis_info(lab, "db2")
    if standby.get("role") != "slave" or standby.get("master_host") != "db1":
        problems.append(f"db2 is not a replica of db1: {standby.get('role')} of {standby.get('master_host')}")
    if "replicaof db1" not in sh(lab, "db2", "grep '^replicaof' /etc/redis/redis.conf"):
        problems.append("db2's redis.conf lost its replicaof line")
    addresses = slots(lab)
    for web in WEBS:
        if addresses.get(web) != info.hosts[web].lab_ip:
            problems.append(f"balancer slot {web} points at {addresses.get(web)}")
    states = pool(lab)
    problems += [f"balancer: {name} is {state}" for name, state in states.items() if state != "UP"]
    return problems


def ensure_pristine(lab: Any, when: str, settle: float = 10.0) -> None:
    """Recreate the lab's containers when it differs from the pristine lab.

    Differences that go away by themselves within `settle` seconds (the balancer's health
    checks need two good answers to mark a restarted backend UP again) do not count."""
    problems = lab_problems(lab)
    deadline = time.monotonic() + settle
    while problems and time.monotonic() < deadline:
        time.sleep(1.0)
        problems = lab_problems(lab)
    if problems:
        print(f"{when}: lab not pristine, recreating it: {problems}")
        lab.reset()
        left = lab_problems(lab)
        assert not left, f"the lab is not pristine even after a reset: {left}"


def pristine_lab(lab: Any) -> Iterator[Any]:
    """The lab as created, before and after the test (containers recreated only when needed);
    test modules wrap it in their `pristine` fixture.

    Afterwards the lab is checked again and recreated if the test left anything behind, so
    the next test (of any module) finds it pristine. A reset is faster than healing a lab
    whose services a runbook stopped or fenced (`lab.up()` waits for them, then recreates).
    """
    ensure_pristine(lab, "before")
    yield lab
    ensure_pristine(lab, "after")


def set_keys(lab: Any, host: str, prefix: str, count: int) -> None:
    sh_ok(lab, host, f"for i in $(seq 1 {count}); do redis-cli set {prefix}:$i v$i >/dev/null; done")


def keys(lab: Any, host: str, pattern: str) -> list[str]:
    return sorted(k for k in redis(lab, host, "--scan", "--pattern", pattern).split() if k)




def started_at(result: RunResult, step: str, host: str) -> float:
    found = [e for e in result.events if e["event"] == "node_started" and e.get("step") == step
             and e.get("host") == host]
    assert found, f"{step} never started on {host}"
    return float(found[0]["ts"])
