"""The lab's own Docker engine.

The lab never touches the machine's default docker socket. It starts `dockerd`
with its own data root, exec root, pid file, containerd namespace and unix
socket, and stops it again by PID. What works in the sandbox this was written
in (Debian bookworm's docker.io 20.10, kernel 6.x, cgroup v1, no systemd):

* storage driver overlay2 (vfs is the fallback if overlay2 cannot start);
* ``--iptables=false --ip-masq=false --ip-forward=false --bridge=none``: no host
  firewall rules are added, containers cannot reach beyond the lab network,
  and there is no default docker0 bridge. Containers on the lab's user-defined
  bridge reach each other directly; the host reaches them through the
  bridge's gateway address;
* published ports work through the userland ``docker-proxy`` bound on
  127.0.0.1 (no iptables DNAT needed).

``OPSBOOK_LAB_DOCKER_HOST`` points the lab at an existing engine instead
(never started nor stopped by the lab).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths


class LabError(RuntimeError):
    """The lab could not be brought up / used."""


def _log(msg: str) -> None:
    print(f"opsbook-lab: {msg}", file=sys.stderr, flush=True)


def engine_installed() -> bool:
    return shutil.which("dockerd") is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


@dataclass
class DockerDaemon:
    """A dockerd owned by the lab (or an external engine when ``external``)."""

    socket: Path
    data_root: Path
    exec_root: Path
    pidfile: Path
    logfile: Path
    external_host: str | None = None

    @classmethod
    def default(cls) -> DockerDaemon:
        ext = os.environ.get("OPSBOOK_LAB_DOCKER_HOST")
        run = paths.docker_run_dir()
        root = paths.docker_root()
        return cls(
            socket=run / "docker.sock",
            data_root=root / "docker",
            exec_root=run / "exec",
            pidfile=run / "dockerd.pid",
            logfile=root / "dockerd.log",
            external_host=ext or None,
        )

    # -- identity -----------------------------------------------------------
    @property
    def external(self) -> bool:
        return self.external_host is not None

    @property
    def docker_host(self) -> str:
        return self.external_host or f"unix://{self.socket}"

    def pid(self) -> int | None:
        """PID of the lab's running dockerd, checked against its command line."""
        if self.external:
            return None
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        cmd = _cmdline(pid)
        if not cmd or "dockerd" not in os.path.basename(cmd[0]) or not any(
            str(self.socket) in a for a in cmd
        ):
            return None
        return pid

    def client(self, timeout: int = 120):
        """A docker client of this engine; a LabError (one line) when it does not answer."""
        import docker

        try:
            return docker.DockerClient(base_url=self.docker_host, version="auto", timeout=timeout)
        except docker.errors.DockerException as exc:
            host = self.docker_host
            gone = host.startswith("unix://") and not Path(host[len("unix://"):]).exists()
            reason = "no such socket" if gone else str(exc).split(": ", 1)[-1][:200]
            raise LabError(f"the lab's docker engine does not answer on {host} ({reason}); "
                           "is the lab up? `opsbook-lab up` starts it") from None

    def ping(self) -> bool:
        try:
            c = self.client(timeout=5)
            try:
                return bool(c.ping())
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    # -- lifecycle ----------------------------------------------------------
    def ensure_running(self, timeout: float = 90.0) -> tuple[bool, int | None]:
        """Make sure the engine answers. Returns (started_now, pid)."""
        if self.external:
            if not self.ping():
                raise LabError(f"OPSBOOK_LAB_DOCKER_HOST={self.external_host} does not answer")
            return False, None
        pid = self.pid()
        if pid is not None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.ping():
                    return False, pid
                if self.pid() is None:
                    break
                time.sleep(0.3)
            if self.pid() is not None:
                raise LabError(f"the lab's dockerd (pid {pid}) runs but its API does not answer")
        if not engine_installed():
            raise LabError(
                "dockerd is not installed: run `bash lab/install.sh` as root "
                "(apt-get install docker.io debootstrap ...)"
            )
        driver = os.environ.get("OPSBOOK_LAB_STORAGE_DRIVER")
        drivers = [driver] if driver else ["overlay2", "vfs"]
        errors = []
        for d in drivers:
            try:
                return True, self._start(d, timeout)
            except LabError as e:
                errors.append(f"{d}: {e}")
                _log(f"dockerd with storage driver {d} failed; {'trying next' if d != drivers[-1] else 'giving up'}")
        raise LabError("could not start dockerd:\n" + "\n".join(errors))

    def _start(self, storage_driver: str, timeout: float) -> int:
        for d in (self.data_root, self.exec_root, self.socket.parent, self.logfile.parent):
            d.mkdir(parents=True, exist_ok=True)
        for stale in (self.socket, self.pidfile):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
        dockerd = shutil.which("dockerd")
        assert dockerd
        cmd = [
            dockerd,
            f"--host=unix://{self.socket}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--storage-driver={storage_driver}",
            "--containerd-namespace=opsbook-lab",
            "--containerd-plugins-namespace=opsbook-lab-plugins",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--bridge=none",
            "--userland-proxy=true",
            "--log-level=warn",
        ]
        extra = os.environ.get("OPSBOOK_LAB_DOCKERD_ARGS")
        if extra:
            cmd += extra.split()
        _log(f"starting dockerd ({storage_driver}) on {self.socket}, log {self.logfile}")
        logf = open(self.logfile, "ab")  # noqa: SIM115 - handed to dockerd, closed below
        logf.write(f"\n==== {time.ctime()} {' '.join(cmd)}\n".encode())
        logf.flush()
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "NOTIFY_SOCKET")}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        for p in ("/usr/sbin", "/sbin"):
            if p not in env["PATH"].split(":"):
                env["PATH"] += ":" + p
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(
                    f"dockerd exited with {proc.returncode}; last log lines:\n{self.log_tail()}"
                )
            if self.socket.exists() and self.ping():
                info = self.client(timeout=10).info()
                if info.get("Driver") != storage_driver:
                    _log(f"dockerd uses storage driver {info.get('Driver')}")
                return proc.pid
            time.sleep(0.2)
        self._kill(proc.pid)
        raise LabError(f"dockerd API did not answer in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the lab's dockerd by PID. Returns True if one was running."""
        if self.external:
            return False
        pid = self.pid()
        if pid is None:
            return False
        _log(f"stopping dockerd pid {pid}")
        self._kill(pid, timeout)
        return True

    @staticmethod
    def _kill(pid: int, timeout: float = 30.0) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # Reap it if it is our child; ignore if not.
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _pid_alive(pid):
                return
            time.sleep(0.2)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
