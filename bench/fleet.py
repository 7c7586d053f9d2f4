"""The targets: N independent sshd processes on this machine, one per benchmark host.

Every tool is pointed at the same fleet. Host i listens on 127.0.1.i port 22 (or, when
binding there fails, on 127.0.0.1 port BASE+i), with its own ed25519 host key, key-only
auth (`UsePAM no`), a known_hosts file that every client checks strictly, and a dedicated
user `opsbench` whose shell is /bin/sh with an empty home, so that what is measured is the
tool and not the target's login scripts.

The sshd processes are started with `-D` (no daemonising) and stopped by the PIDs we got
from starting them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

USER = "opsbench"
HOME = Path("/var/lib/opsbench")
SSHD = "/usr/sbin/sshd"
FALLBACK_PORT_BASE = 22200


@dataclass(frozen=True)
class Target:
    """One host of the fleet as clients see it."""

    name: str
    address: str
    port: int

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass
class Fleet:
    """A running set of sshd targets and the client-side files that reach them."""

    root: Path
    targets: list[Target]
    key: Path
    known_hosts: Path
    user: str = USER
    pids: list[int] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the sshd processes we started (by PID), waiting for each."""
        for proc in self._procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        self.pids.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_openssh(log=print) -> None:
    """Install openssh-server (and the client ansible needs) with apt if missing; idempotent."""
    missing = [p for p in ("openssh-server", "openssh-client") if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"the benchmark needs {' '.join(missing)} (run as root, or install them)")
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                         capture_output=True, text=True, check=False)
    return "install ok installed" in out.stdout


def ensure_user() -> None:
    """The target login: /bin/sh, an empty home, not locked (sshd without PAM refuses '!')."""
    if subprocess.run(["id", USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--home-dir", str(HOME), "--create-home",
                        "--shell", "/bin/sh", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)
    for rc in (".profile", ".bashrc", ".bash_logout"):
        (HOME / rc).unlink(missing_ok=True)


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True)


def _authorize(pub: Path) -> None:
    ssh_dir = HOME / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    line = pub.read_text().strip()
    existing = auth.read_text().splitlines() if auth.exists() else []
    if line not in existing:
        auth.write_text("\n".join([*existing, line]) + "\n")
    auth.chmod(0o600)
    shutil.chown(ssh_dir, USER, USER)
    shutil.chown(auth, USER, USER)


def can_bind(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def plan_targets(count: int, subnet: str) -> list[Target]:
    """127.0.1.i:22 when that can be bound, else 127.0.0.1 ports (never other addresses)."""
    if not subnet.startswith("127."):
        raise ValueError("the benchmark fleet lives on loopback (127.0.0.0/8) only")
    if can_bind(f"{subnet}.1", 22) and can_bind(f"{subnet}.{count}", 22):
        return [Target(f"h{i}", f"{subnet}.{i}", 22) for i in range(1, count + 1)]
    base = FALLBACK_PORT_BASE + (int(subnet.split(".")[2]) % 10) * 1000
    return [Target(f"h{i}", "127.0.0.1", base + i) for i in range(1, count + 1)]


_SSHD_CONFIG = """\
ListenAddress {listen}
HostKey {host_key}
PidFile none
UsePAM no
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {user}
StrictModes yes
UseDNS no
X11Forwarding no
AllowAgentForwarding no
PrintMotd no
PrintLastLog no
MaxStartups 200
MaxSessions 200
LogLevel ERROR
Subsystem sftp internal-sftp
"""


def start(count: int, root: Path, subnet: str = "127.0.1", log=print) -> Fleet:
    """Start `count` sshd targets (files under `root`) and wait until each answers."""
    ensure_openssh(log)
    ensure_user()
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    key = root / "id_ed25519"
    _keygen(key, "opsbook-bench-client")
    _authorize(key.with_suffix(".pub"))
    targets = plan_targets(count, subnet)
    (root / "hostkeys").mkdir(exist_ok=True)
    (root / "sshd").mkdir(exist_ok=True)
    known: list[str] = []
    fleet = Fleet(root=root, targets=targets, key=key, known_hosts=root / "known_hosts")
    try:
        for i, t in enumerate(targets, 1):
            host_key = root / "hostkeys" / f"host{i}"
            _keygen(host_key, f"opsbook-bench-host{i}")
            pub = host_key.with_suffix(".pub").read_text().split()
            known.append(f"{t.known_hosts_name} {pub[0]} {pub[1]}")
            cfg = root / "sshd" / f"{t.name}.conf"
            cfg.write_text(_SSHD_CONFIG.format(listen=f"{t.address}:{t.port}", host_key=host_key,
                                               user=USER))
            logf = open(root / "sshd" / f"{t.name}.log", "wb")  # noqa: SIM115 - closed after Popen
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
            logf.close()
            fleet._procs.append(proc)
            fleet.pids.append(proc.pid)
        fleet.known_hosts.write_text("\n".join(known) + "\n")
        for t, proc in zip(targets, fleet._procs):
            _wait_banner(t, proc, root / "sshd" / f"{t.name}.log")
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _wait_banner(t: Target, proc: subprocess.Popen[bytes], logfile: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd for {t.name} exited (rc={proc.returncode}): "
                               + logfile.read_text(errors="replace")[-500:])
        try:
            with socket.create_connection((t.address, t.port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd for {t.name} on {t.address}:{t.port} did not answer in {timeout:g}s")
