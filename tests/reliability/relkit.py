"""Helpers of the reliability suite (imported by its conftest and tests): fault triggers on
the executor's events, in-process runs (Book), the real command line (Cli), small waits."""


from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
from opsbook.events import Event
from opsbook.execute import RunOptions, RunSummary
from opsbook.journal import Journal, NodeRecord
from opsbook.load import RunbookLoader
from opsbook.registry import Registry
from opsbook_lab.pytest_plugin import on_a_terminal, skip_or_fail_in_ci

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- fault triggers


@dataclass
class Trigger:
    """Call `action` (in a thread of its own) the first time an event matches.

    kind: event kind (node_started, node_output, node_finished, ...); step/host/line narrow
    it down (line: a substring of a node_output line). `delay` waits before acting.
    """

    kind: str
    action: Callable[[], Any]
    step: str | None = None
    host: str | None = None
    line: str | None = None
    delay: float = 0.0
    blocking: bool = False  # run inline on the emitting thread (holds the scheduler up)
    fired: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def matches(self, event: Event) -> bool:
        if self.fired.is_set() or event.kind != self.kind:
            return False
        if self.step is not None and event.step != self.step:
            return False
        if self.host is not None and event.host != self.host:
            return False
        return self.line is None or self.line in str(event.data.get("line", ""))

    def fire(self) -> None:
        self.fired.set()

        def go() -> None:
            try:
                if self.delay:
                    time.sleep(self.delay)
                self.action()
            except BaseException as exc:  # noqa: BLE001 - reported by Book.check_triggers
                self.error = exc

        if self.blocking:
            go()
        else:
            self.thread = threading.Thread(target=go, daemon=True)
            self.thread.start()


@dataclass
class Book:
    """An in-process run: its summary, every event, and the journal it wrote."""

    summary: RunSummary
    journal: Journal
    events: list[Event]
    triggers: list[Trigger]

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    def nodes(self) -> dict[str, NodeRecord]:
        return self.journal.nodes(self.run_id)

    def node(self, step_id: str, host: str) -> NodeRecord:
        return self.nodes()[f"{step_id}@{host}"]

    def rollbacks(self) -> list[dict[str, Any]]:
        return self.journal.rollbacks(self.run_id)

    def finished(self, step: str | None = None, host: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind == "node_finished"
                and (step is None or e.step == step) and (host is None or e.host == host)]

    def output(self, host: str) -> list[str]:
        return [str(e.data.get("line")) for e in self.events if e.kind == "node_output" and e.host == host]

    def check_triggers(self) -> None:
        for t in self.triggers:
            if t.thread is not None:
                t.thread.join(timeout=120)
            assert t.fired.is_set(), f"the fault was never injected: {t}"
            if t.error is not None:
                raise AssertionError(f"injecting the fault failed: {t.error!r}") from t.error


class BookRunner:
    """book(yaml, inventory=PATH_OR_TEXT, on=[Trigger], params={}, hook=fn, **RunOptions) -> Book.

    Runs in this process (OPSBOOK_RUNS_DIR must point into the test's folder); the journal is
    `tmp/journal.db` unless one is given.
    """

    def __init__(self, registry: Registry, tmp: Path) -> None:
        self.registry = registry
        self.tmp = tmp
        self.journals: list[Journal] = []

    def __call__(self, text: str, inventory: str | Path | None = None, on: list[Trigger] | None = None,
                 params: dict[str, Any] | None = None, journal: Journal | None = None,
                 name: str = "rb.yaml", hook: Callable[[Any], None] | None = None,
                 listeners: list[Callable[[Event], None]] | None = None, **options: Any) -> Book:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        sources: list[str] = []
        if inventory is not None:
            if isinstance(inventory, Path) or "\n" not in inventory:
                inv = Path(inventory)
            else:
                inv = self.tmp / "inventory.ini"
                inv.write_text(textwrap.dedent(inventory).lstrip("\n"))
            sources = [str(inv)]
        if journal is None:
            journal = Journal(self.tmp / "journal.db")
            self.journals.append(journal)
        events: list[Event] = []
        triggers = list(on or [])
        lock = threading.Lock()

        def listen(event: Event) -> None:
            with lock:
                events.append(event)
                due = [t for t in triggers if t.matches(event)]
                for t in due:
                    t.fired.set()
            for t in due:
                t.fire()

        rb = RunbookLoader(self.registry).load_file(str(path))
        plan = make_plan(rb, load_inventory_sources(sources), params or {})
        request = RunRequest(inventory_sources=sources, options=RunOptions(**options),
                             listeners=[listen, *(listeners or [])], given_params=dict(params or {}))
        summary = start_run(plan, self.registry, journal, request, on_executor=hook)
        return Book(summary, journal, events, triggers)

    def close(self) -> None:
        for j in self.journals:
            j.close()


# --------------------------------------------------------------------------- the CLI


@dataclass
class CliResult:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    @property
    def run_id(self) -> str:
        for e in self.events:
            if e.get("run"):
                return str(e["run"])
        for word in (self.stderr + self.stdout).replace(":", " ").split():
            if word.count("-") == 2 and word[:8].isdigit():
                return word
        raise AssertionError(f"no run id in the output of {self.args}:\n{self.stdout}\n{self.stderr}")

    def __str__(self) -> str:
        return f"opsbook {' '.join(self.args)} -> rc={self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Cli:
    """`python -m opsbook` with OPSBOOK_JOURNAL and OPSBOOK_RUNS_DIR under `home`."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.home / "journal.db"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "OPSBOOK_JOURNAL": str(self.journal), "OPSBOOK_RUNS_DIR": str(self.runs),
                "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **self.extra_env, **extra}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "opsbook", *args]

    def __call__(self, *args: str, timeout: float = 180, input: str | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              env={**self.env(), **(env or {})}, cwd=cwd or self.home)
        return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, env={**self.env(), **(env or {})}, cwd=self.home,
                                **kw)

    def write(self, name: str, text: str) -> Path:
        path = self.home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path


# --------------------------------------------------------------------------- misc


# --------------------------------------------------------------------------- a daemon that restarts


class SocketProxy:
    """A unix socket in front of a real daemon's socket (dockerd) that can "restart".

    stop(): the socket file disappears and every open connection is cut, as when dockerd
    exits; start(): it listens again, as a restarted dockerd does. The shared daemon behind it
    is never touched.
    """

    def __init__(self, path: Path, upstream: str) -> None:
        import socket as _socket

        self._socket = _socket
        self.path = Path(path)
        self.upstream = upstream.removeprefix("unix://")
        self.server: Any = None
        self.conns: list[Any] = []
        self.lock = threading.Lock()
        self.accepted = 0
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
        s = self._socket.socket(self._socket.AF_UNIX, self._socket.SOCK_STREAM)
        self.path.unlink(missing_ok=True)
        s.bind(str(self.path))
        s.listen(64)
        self.server = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            try:
                server.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        self.path.unlink(missing_ok=True)
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def cut(self) -> None:
        """Cut every open connection but keep listening (a crash and an instant restart)."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def _accept(self, server: Any) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                up = self._socket.socket(self._socket.AF_UNIX, self._socket.SOCK_STREAM)
                up.connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.accepted += 1
                self.conns += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(self._socket.SHUT_WR)
            except OSError:
                pass


# --------------------------------------------------------------------------- local sshd targets

REPO = HERE.parents[1]
SUBNET = "127.0.9"  # loopback addresses of this suite's sshd targets (bench uses 127.0.1)


def _bench_fleet() -> Any:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench import fleet

    return fleet


def ssh_available() -> str | None:
    """Why local sshd targets cannot be started here, or None."""
    if os.geteuid() != 0:
        return "local sshd targets need root (a login user, port 22 on loopback)"
    if not Path("/usr/sbin/sshd").exists():
        return "openssh-server is not installed (lab/install.sh installs it)"
    return None


def require_local_sshd() -> None:
    """Skip a test that needs local sshd targets where they cannot start; in CI, fail instead.

    Decided when the test runs, not when it is collected: a skip at collection time hid 11
    tests on a bare machine whose openssh-server came later in the same run.
    """
    reason = ssh_available()
    if reason is not None:
        skip_or_fail_in_ci(reason, f"{reason}; CI runs tests/run as root, which installs it: "
                                   "these tests must not be skipped")


def fleet_inventory(fleet: Any, group: str = "fleet", extra: str = "") -> str:
    lines = [f"[{group}]"]
    for t in fleet.targets:
        port = "" if t.port == 22 else f" ansible_port={t.port}"
        lines.append(f"{t.name} ansible_host={t.address}{port}")
    lines += ["", f"[{group}:vars]", f"ansible_user={fleet.user}", f"ansible_ssh_private_key_file={fleet.key}",
              f"opsbook_known_hosts={fleet.known_hosts}", extra]
    return "\n".join(lines) + "\n"


def start_fleet(count: int, root: Path, subnet: str = SUBNET) -> Any:
    """bench's local sshd fleet (one sshd per host on 127.0.9.i:22), stopped by PID afterwards."""
    return _bench_fleet().start(count, root, subnet=subnet, log=lambda _msg: None)


def forget_client_key(key: Path) -> None:
    """Remove our client key from the target user's authorized_keys (bench adds it there)."""
    fleet = _bench_fleet()
    auth = fleet.HOME / ".ssh" / "authorized_keys"
    pub = key.with_suffix(".pub")
    if auth.exists() and pub.exists():
        mine = pub.read_text().strip()
        auth.write_text("".join(line + "\n" for line in auth.read_text().splitlines() if line.strip() != mine))


class Sshd:
    """One sshd of our own on (address, port) with a host key we choose: start, stop, swap keys."""

    def __init__(self, root: Path, address: str, port: int = 22) -> None:
        self.fleet = _bench_fleet()
        self.root = root
        self.address, self.port = address, port
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.fleet.ensure_user()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.key = root / "id_ed25519"
        self.fleet._keygen(self.key, "opsbook-rel-client")
        self.fleet._authorize(self.key.with_suffix(".pub"))

    @property
    def known_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    def host_key(self, name: str) -> Path:
        path = self.root / f"hostkey-{name}"
        self.fleet._keygen(path, f"opsbook-rel-{name}")
        return path

    def known_line(self, name: str) -> str:
        typ, blob = self.host_key(name).with_suffix(".pub").read_text().split()[:2]
        return f"{self.known_name} {typ} {blob}"

    def start(self, key_name: str) -> None:
        self.stop()
        cfg = self.root / f"sshd-{key_name}.conf"
        cfg.write_text(self.fleet._SSHD_CONFIG.format(listen=f"{self.address}:{self.port}",
                                                      host_key=self.host_key(key_name), user=self.fleet.USER))
        log = self.root / f"sshd-{key_name}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        target = self.fleet.Target("t", self.address, self.port)
        self.fleet._wait_banner(target, self.proc, log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        forget_client_key(self.key)


def run_on_a_terminal(cli: Cli, args: list[str], answers: dict[str, str], timeout: float = 120) -> CliResult:
    """Run opsbook on a pseudo-terminal, typing each answer after its prompt appears."""
    rc, text = on_a_terminal(cli.argv(*args), cli.env(TERM="xterm"), cli.home, answers, timeout)
    return CliResult(args, rc, text, "")
