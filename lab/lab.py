"""The opsbook lab: real sshd containers running real services on a private docker network.

    from opsbook_lab.lab import Lab
    lab = Lab()
    info = lab.up()            # idempotent: reuses (and heals) a running lab
    info.hosts["web1"].ssh_port
    lab.kill("web1"); lab.start("web1")
    lab.disconnect("db1"); lab.connect("db1")
    lab.down()

Topology (containers are named ``<lab name>-<host>``, e.g. ``opsbook-lab-web1``)::

    lb1   HAProxy :80 -> web1:8080, web2:8080 (health checked, runtime API)
    web1  nginx :8080 (/healthz, /whoami, index naming the host)
    web2  nginx :8080
    db1   redis :6379 primary
    db2   redis :6379 hot standby (replicaof db1)

Every host runs sshd (key-only, root allowed with the lab key, ``UsePAM no``) and
has a user ``ops`` with sudo that asks for the lab's generated password.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import ipaddress
import json
import os
import secrets
import socket
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import paths
from .daemon import DockerDaemon, LabError, _log

__all__ = ["HOSTS", "HostInfo", "Lab", "LabError", "LabInfo"]

LABEL = "org.opsbook.lab"
LABEL_HOST = "org.opsbook.lab.host"


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str
    groups: tuple[str, ...]
    ip_suffix: int
    # container port -> (offset in the lab's port block, inventory var name)
    ports: dict[int, tuple[int, str]]


HOSTS: tuple[HostSpec, ...] = (
    HostSpec("lb1", "lb", ("lb",), 10, {22: (0, "ssh_port"), 80: (10, "http_port"), 8404: (15, "stats_port")}),
    HostSpec("web1", "web", ("web",), 11, {22: (1, "ssh_port"), 8080: (11, "http_port")}),
    HostSpec("web2", "web", ("web",), 12, {22: (2, "ssh_port"), 8080: (12, "http_port")}),
    HostSpec("db1", "db_primary", ("db", "db_primary"), 21, {22: (3, "ssh_port"), 6379: (13, "redis_port")}),
    HostSpec("db2", "db_standby", ("db", "db_standby"), 22, {22: (4, "ssh_port"), 6379: (14, "redis_port")}),
)
GROUPS = ("web", "lb", "db", "db_primary", "db_standby")
PORT_BLOCK = 20
SUDO_USER = "ops"


@dataclass
class HostInfo:
    name: str
    role: str
    groups: list[str]
    container: str          # container name
    container_id: str
    lab_ip: str             # address on the lab network
    ssh_port: int           # published on 127.0.0.1
    ports: dict[str, int]   # container port -> published 127.0.0.1 port
    service_port: int | None = None   # the service's port inside the lab (8080, 80, 6379)
    http_port: int | None = None      # published HTTP port (web: 8080, lb: 80)
    redis_port: int | None = None
    stats_port: int | None = None
    address: str = "127.0.0.1"

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


@dataclass
class LabInfo:
    name: str
    docker_host: str
    network: str
    network_id: str
    subnet: str
    gateway: str
    image: str
    state_dir: str
    private_key: str
    public_key: str
    known_hosts: str
    ssh_config: str
    inventory: str              # inventory.ini (ssh)
    inventory_yaml: str
    inventory_docker: str       # ansible_connection=docker
    inventory_docker_yaml: str
    inventory_ops: str          # ssh as `ops`, become with the sudo password
    sudo_user: str
    sudo_password: str
    port_base: int
    hosts: dict[str, HostInfo]
    dockerd_pid: int | None = None
    dockerd_started_by_lab: bool = False
    dockerd_log: str | None = None
    created: float = 0.0
    lab_json: str = ""

    @property
    def docker_env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host}

    def group(self, group: str) -> list[HostInfo]:
        return [h for h in self.hosts.values() if group in h.groups]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> LabInfo:
        d = dict(d)
        d["hosts"] = {k: HostInfo(**v) for k, v in d["hosts"].items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------
def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like docker-proxy: connections in TIME_WAIT do not make a port busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def _ssh_banner(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _http_status(port: int, path: str = "/healthz", timeout: float = 2.0) -> int | None:
    import http.client

    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def _redis_ping(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _host_routes() -> list:
    """Non-default IPv4 routes of the host (from /proc/net/route)."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                d = ipaddress.IPv4Address(socket.ntohl(dest))
                m = mask.bit_count()
                out.append(ipaddress.ip_network(f"{d}/{m}", strict=False))
    except (OSError, ValueError, StopIteration):
        pass
    return out


def _files_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        root = paths.lab_files()
        for p in sorted(root.iterdir()):
            if p.is_file():
                ti = tar.gettarinfo(str(p), arcname=f"opsbook-lab/{p.name}")
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                ti.mode = 0o755 if os.access(p, os.X_OK) else 0o644
                with open(p, "rb") as f:
                    tar.addfile(ti, f)
    return buf.getvalue()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
class Lab:
    """Bring up, inspect, break and tear down the lab."""

    def __init__(self, state_dir: str | Path | None = None, name: str | None = None,
                 daemon: DockerDaemon | None = None, quiet: bool = False):
        self.state_dir = Path(state_dir) if state_dir else paths.state_dir()
        self.name = name or os.environ.get("OPSBOOK_LAB_NAME", "opsbook-lab")
        self.daemon = daemon or DockerDaemon.default()
        self.quiet = quiet
        self.started_daemon = False      # this Lab object started dockerd
        self.created_containers = False  # this Lab object created the containers
        self._client = None
        self._info: LabInfo | None = None
        self._info_mtime: int | None = None

    # -- paths ----------------------------------------------------------------
    @property
    def lab_json(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def private_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    def _log(self, msg: str) -> None:
        if not self.quiet:
            _log(msg)

    @contextlib.contextmanager
    def _lock(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- docker ------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self._client = self.daemon.client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    # -- info --------------------------------------------------------------------
    @property
    def info(self) -> LabInfo:
        """The running lab's description (from lab.json)."""
        # Reload when lab.json changed (another process may have recreated the lab).
        try:
            mtime = self.lab_json.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if self._info is None or (mtime is not None and mtime != self._info_mtime):
            info = self.load_info()
            if info is not None:
                self._info, self._info_mtime = info, mtime
            if self._info is None:
                raise LabError(f"the lab is not up (no {self.lab_json}); run `opsbook-lab up`")
        return self._info

    def load_info(self) -> LabInfo | None:
        try:
            return LabInfo.from_json(json.loads(self.lab_json.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as e:
            self._log(f"ignoring unreadable {self.lab_json}: {e}")
            return None

    def host(self, name: str) -> HostInfo:
        try:
            return self.info.hosts[name]
        except KeyError:
            raise LabError(f"no lab host {name!r}; hosts: {', '.join(self.info.hosts)}") from None

    def _container(self, name: str):
        return self.client.containers.get(self.host(name).container_id)

    # -- up / down ------------------------------------------------------------------
    def up(self, recreate: bool = False, timeout: float = 180.0) -> LabInfo:
        """Bring the lab up; reuse (and heal) a running one unless ``recreate``."""
        t0 = time.monotonic()
        with self._lock():
            started, pid = self.daemon.ensure_running()
            self.started_daemon = self.started_daemon or started
            prev = self.load_info()
            if prev is not None and prev.docker_host != self.daemon.docker_host:
                prev = None
            if prev is not None and not recreate:
                self._info = prev
                if self._heal(prev, timeout=min(timeout, 60.0)):
                    self._info = self._refresh_dockerd(prev, pid, started)
                    self._log(f"lab is up (reused) in {time.monotonic() - t0:.1f}s")
                    return self._info
                self._log("existing lab is not healthy; recreating it")
            from .image import ensure_image

            image = ensure_image(self.client, progress=not self.quiet)
            self._remove_containers(prev)
            # lab.json describes the containers just removed: drop it, or `info` would read
            # their IDs back while the new ones start (a fresh `up --recreate` failed so).
            with contextlib.suppress(FileNotFoundError):
                self.lab_json.unlink()
            self._info, self._info_mtime = None, None
            info = self._create(image, pid, timeout, prefer_ports=prev.port_base if prev else None,
                                sudo_password=prev.sudo_password if prev else None)
            self.created_containers = True
            self._info = info
            self._log(f"lab is up in {time.monotonic() - t0:.1f}s: {info.lab_json}")
            return info

    def _refresh_dockerd(self, info: LabInfo, pid: int | None, started: bool) -> LabInfo:
        if pid != info.dockerd_pid or started:
            info.dockerd_pid = pid
            info.dockerd_started_by_lab = not self.daemon.external
            self._write_json(info)
        return info

    def down(self, stop_daemon: bool | None = None) -> None:
        """Remove the lab's containers and network (by ID), then stop the lab's dockerd.

        ``stop_daemon=None`` stops dockerd if the lab started it and no other
        container is left on it; True forces it (still only the lab's own, by PID),
        False keeps it running.
        """
        t0 = time.monotonic()
        with self._lock():
            info = self.load_info()
            if self.daemon.ping():
                self._remove_containers(info)
                if stop_daemon is None:
                    stop_daemon = not self.daemon.external and (info is None or info.dockerd_started_by_lab)
                    if stop_daemon:
                        others = self.client.containers.list(all=True)
                        if others:
                            self._log(f"keeping dockerd: {len(others)} other container(s) on it")
                            stop_daemon = False
            self.close()
            if stop_daemon:
                self.daemon.stop()
            with contextlib.suppress(FileNotFoundError):
                self.lab_json.unlink()
            self._info = None
        self._log(f"lab is down in {time.monotonic() - t0:.1f}s")

    def reset(self) -> LabInfo:
        """Recreate the containers from scratch (fresh services), keeping the engine."""
        return self.up(recreate=True)

    def _remove_containers(self, info: LabInfo | None = None) -> None:
        import docker.errors

        c = self.client
        ids = set()
        if info is not None:
            ids.update(h.container_id for h in info.hosts.values())
        for ct in c.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"}):
            ids.add(ct.id)
        for cid in ids:
            with contextlib.suppress(docker.errors.NotFound):
                c.api.remove_container(cid, force=True, v=True)
                self._log(f"removed container {cid[:12]}")
        net_ids = set()
        if info is not None and info.network_id:
            net_ids.add(info.network_id)
        for n in c.networks.list(filters={"label": f"{LABEL}={self.name}"}):
            net_ids.add(n.id)
        for nid in net_ids:
            with contextlib.suppress(docker.errors.NotFound):
                c.api.remove_network(nid)
                self._log(f"removed network {nid[:12]}")

    # -- creation -------------------------------------------------------------------
    def _ensure_key(self) -> tuple[Path, str]:
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric import ed25519

        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        pub = self.private_key.with_suffix(".pub")
        if not (self.private_key.exists() and pub.exists()):
            k = ed25519.Ed25519PrivateKey.generate()
            _write(self.private_key, k.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()).decode(), 0o600)
            _write(pub, k.public_key().public_bytes(
                ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode() + " opsbook-lab\n")
        return self.private_key, pub.read_text().strip()

    def _port_base(self, prefer: int | None = None) -> int:
        base = int(os.environ.get("OPSBOOK_LAB_PORT_BASE", "24100"))
        candidates = [base + k * PORT_BLOCK for k in range(64)]
        if prefer and "OPSBOOK_LAB_PORT_BASE" not in os.environ:
            candidates.insert(0, prefer)     # keep the ports of the previous lab
        for b in candidates:
            if all(_port_free(b + off) for h in HOSTS for off, _ in h.ports.values()):
                return b
        raise LabError(f"no free block of {PORT_BLOCK} ports on 127.0.0.1 from {base}")

    def _create_network(self):
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        first = ipaddress.ip_network(os.environ.get("OPSBOOK_LAB_SUBNET", "172.29.77.0/24"))
        last_err = None
        routes = _host_routes()
        for k in range(16):
            net = ipaddress.ip_network(f"{first.network_address + k * first.num_addresses}/{first.prefixlen}")
            gw = str(net.network_address + 1)
            # Another engine (e.g. a second lab's dockerd) may already have a bridge
            # on this subnet: docker only checks its own networks, so check the host's routes.
            if any(net.overlaps(r) for r in routes):
                continue
            try:
                n = self.client.networks.create(
                    self.name, driver="bridge", check_duplicate=True,
                    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(net), gateway=gw)]),
                    labels={LABEL: self.name},
                )
                return n, net, gw
            except docker.errors.APIError as e:
                last_err = e
                if "overlap" not in str(e).lower() and "already" not in str(e).lower():
                    raise
        raise LabError(f"could not create the lab network: {last_err}")

    def _create(self, image: str, pid: int | None, timeout: float,
                prefer_ports: int | None = None, sudo_password: str | None = None) -> LabInfo:
        c = self.client
        key, pubkey = self._ensure_key()
        sudo_password = sudo_password or secrets.token_urlsafe(12)
        net, subnet, gw = self._create_network()
        base = self._port_base(prefer_ports)
        ips = {h.name: str(subnet.network_address + h.ip_suffix) for h in HOSTS}
        files = _files_tar()
        web = " ".join(f"{h.name}:{ips[h.name]}:8080" for h in HOSTS if h.role == "web")
        hosts: dict[str, HostInfo] = {}
        self._log(f"creating {len(HOSTS)} containers on network {self.name} ({subnet}), ports from {base}")
        for h in HOSTS:
            cname = f"{self.name}-{h.name}"
            port_bindings = {p: ("127.0.0.1", base + off) for p, (off, _) in h.ports.items()}
            hc = c.api.create_host_config(
                port_bindings=port_bindings,
                init=True,
                cap_add=["NET_ADMIN", "NET_RAW", "SYS_PTRACE"],
                extra_hosts={o.name: ips[o.name] for o in HOSTS},
                # Docker's embedded DNS (127.0.0.11) resolves the lab's names; names it
                # does not know are forwarded to the lab's own gateway, where nothing
                # listens: they fail within a second or two and never leave the lab.
                dns=[gw], dns_opt=["timeout:1", "attempts:1"],
                network_mode=self.name,
                # The lab runs until `down`; a crashed container stays down
                # (that is a fault the runbooks must see).
                restart_policy={"Name": "no"},
            )
            nc = c.api.create_networking_config(
                {self.name: c.api.create_endpoint_config(ipv4_address=ips[h.name], aliases=[h.name])})
            env = {
                "LAB_ROLE": h.role, "LAB_NAME": h.name, "LAB_PUBKEY": pubkey,
                "LAB_SUDO_PASSWORD": sudo_password, "LAB_WEB_BACKENDS": web,
                "LAB_REDIS_PRIMARY": "db1",
            }
            r = c.api.create_container(
                image, name=cname, hostname=h.name, environment=env,
                labels={LABEL: self.name, LABEL_HOST: h.name},
                ports=list(h.ports), host_config=hc, networking_config=nc, detach=True,
            )
            cid = r["Id"]
            c.api.put_archive(cid, "/opt", files)
            ports = {str(p): base + off for p, (off, _) in h.ports.items()}
            extra = {var: base + off for p, (off, var) in h.ports.items() if var != "ssh_port"}
            svc = next((p for p in h.ports if p != 22 and p != 8404), None)
            hosts[h.name] = HostInfo(
                name=h.name, role=h.role, groups=list(h.groups), container=cname, container_id=cid,
                lab_ip=ips[h.name], ssh_port=base + h.ports[22][0], ports=ports, service_port=svc,
                **extra,
            )
        for hi in hosts.values():
            c.api.start(hi.container_id)
        info = LabInfo(
            name=self.name, docker_host=self.daemon.docker_host, network=self.name, network_id=net.id,
            subnet=str(subnet), gateway=gw, image=image, state_dir=str(self.state_dir),
            private_key=str(key), public_key=str(key.with_suffix(".pub")),
            known_hosts=str(self.state_dir / "known_hosts"),
            ssh_config=str(self.state_dir / "ssh_config"),
            inventory=str(self.state_dir / "inventory.ini"),
            inventory_yaml=str(self.state_dir / "inventory.yaml"),
            inventory_docker=str(self.state_dir / "inventory-docker.ini"),
            inventory_docker_yaml=str(self.state_dir / "inventory-docker.yaml"),
            inventory_ops=str(self.state_dir / "inventory-ops.ini"),
            sudo_user=SUDO_USER, sudo_password=sudo_password, port_base=base, hosts=hosts,
            dockerd_pid=pid, dockerd_started_by_lab=not self.daemon.external,
            dockerd_log=None if self.daemon.external else str(self.daemon.logfile),
            created=time.time(), lab_json=str(self.lab_json),
        )
        self._info = info
        self.wait_ready(timeout=timeout)
        self._write_artifacts(info)
        return info

    # -- readiness / health -------------------------------------------------------------
    def _ready_problems(self, names: list[str] | None = None) -> list[str]:
        info = self.info
        problems = []
        for hi in info.hosts.values():
            if names is not None and hi.name not in names:
                continue
            if not _ssh_banner(hi.ssh_port):
                problems.append(f"{hi.name}: ssh :{hi.ssh_port} not answering")
                continue
            if hi.role == "web" and _http_status(hi.http_port) != 200 or hi.role == "lb" and _http_status(hi.http_port) != 200:
                problems.append(f"{hi.name}: http :{hi.http_port}/healthz not 200")
            elif hi.role.startswith("db") and not _redis_ping(hi.redis_port):
                problems.append(f"{hi.name}: redis :{hi.redis_port} not answering PING")
        # The balancer must see the web backends that were waited for as UP again
        # (health checks: 1s interval, rise 2), unless a runbook drained them.
        lb = next((h for h in info.hosts.values() if h.role == "lb"), None)
        webs = [h.name for h in info.hosts.values() if h.role == "web" and (names is None or h.name in names)]
        if lb is not None and webs and not problems:
            try:
                rc, out = self.exec(lb.name, "lb-backend list")
            except Exception as e:  # lb1 itself stopped/killed: not this wait's business  # noqa: BLE001
                rc, out = 0, f"(lb1: {e})"
            down = [ln.split()[0] for ln in out.splitlines()[1:] if " DOWN" in ln]
            if rc != 0 or any(w in down for w in webs):
                problems.append(f"{lb.name}: backends not UP: {out.strip()!r}")
        return problems

    def wait_ready(self, names: list[str] | None = None, timeout: float = 120.0) -> None:
        """Wait until sshd and the services of the given (default: all) hosts answer."""
        deadline = time.monotonic() + timeout
        problems = ["?"]
        while time.monotonic() < deadline:
            problems = self._ready_problems(names)
            if not problems:
                break
            time.sleep(0.3)
        else:
            raise LabError(f"lab not ready after {timeout:.0f}s: {'; '.join(problems)}")
        if names is None or "db2" in names:
            self._wait_replication(deadline)

    def _wait_replication(self, deadline: float) -> None:
        if "db2" not in self.info.hosts:
            return
        last = ""
        while time.monotonic() < deadline:
            _, out = self.exec("db2", "redis-cli info replication")
            last = out
            if "role:master" in out:      # promoted by a runbook: nothing to wait for
                return
            if "master_link_status:up" in out:
                return
            time.sleep(0.3)
        raise LabError(f"db2 does not replicate from db1: {last.strip()}")

    def status(self) -> dict:
        """A dict describing what runs: engine, containers, health."""
        st: dict = {"docker_host": self.daemon.docker_host, "engine": self.daemon.ping(),
                    "dockerd_pid": self.daemon.pid(), "state_dir": str(self.state_dir)}
        info = self.load_info()
        st["lab_json"] = str(self.lab_json) if info else None
        if not info or not st["engine"]:
            st["up"] = False
            return st
        self._info = info
        import docker.errors

        hosts = {}
        for hi in info.hosts.values():
            try:
                ct = self.client.containers.get(hi.container_id)
                state = ct.status
                nets = list(ct.attrs["NetworkSettings"]["Networks"])
            except docker.errors.NotFound:
                state, nets = "missing", []
            hosts[hi.name] = {"container": hi.container, "id": hi.container_id[:12], "state": state,
                              "connected": info.network in nets, "ssh_port": hi.ssh_port,
                              "ssh": _ssh_banner(hi.ssh_port, timeout=1.0), "lab_ip": hi.lab_ip}
        st["hosts"] = hosts
        st["problems"] = self._ready_problems() if all(h["state"] == "running" for h in hosts.values()) else []
        st["up"] = all(h["state"] == "running" and h["connected"] for h in hosts.values()) and not st["problems"]
        return st

    def _heal(self, info: LabInfo, timeout: float) -> bool:
        """Start stopped, unpause paused and reconnect disconnected containers."""
        import docker.errors

        c = self.client
        try:
            c.networks.get(info.network_id)
        except docker.errors.NotFound:
            return False
        touched = []
        for hi in info.hosts.values():
            try:
                ct = c.containers.get(hi.container_id)
            except docker.errors.NotFound:
                return False
            if ct.status == "paused":
                ct.unpause()
                touched.append(hi.name)
            elif ct.status != "running":
                touched.append(hi.name)
            if info.network not in ct.attrs["NetworkSettings"]["Networks"]:
                self._connect(info, hi)
                touched.append(hi.name)
            ct.reload()
            if ct.status not in ("running", "paused"):
                ct.start()
        if touched:
            self._log(f"healing: {', '.join(sorted(set(touched)))}")
        try:
            self.wait_ready(timeout=timeout)
        except LabError as e:
            self._log(str(e))
            return False
        # Host keys are generated once per container; refresh known_hosts anyway.
        self._write_artifacts(info)
        return True

    # -- fault injection ----------------------------------------------------------------
    def kill(self, name: str, signal: str = "KILL") -> None:
        """Kill the container (SIGKILL by default): the host crashes."""
        self._container(name).kill(signal=signal)
        if signal in ("KILL", "SIGKILL", 9):
            self._wait_state(name, "exited")

    def stop(self, name: str, timeout: int = 5) -> None:
        """Stop the container cleanly (docker stop)."""
        self._container(name).stop(timeout=timeout)

    def start(self, name: str, wait: bool = True, timeout: float = 60.0) -> None:
        """Start a killed/stopped container again and wait for sshd and its service."""
        ct = self._container(name)
        ct.reload()
        if ct.status == "paused":
            ct.unpause()
        elif ct.status != "running":
            ct.start()
        if wait:
            self.wait_ready([name], timeout=timeout)

    def restart(self, name: str, wait: bool = True) -> None:
        self._container(name).restart(timeout=5)
        if wait:
            self.wait_ready([name])

    def pause(self, name: str) -> None:
        """Freeze every process of the host (it hangs: TCP connects, nothing answers)."""
        self._container(name).pause()

    def unpause(self, name: str) -> None:
        self._container(name).unpause()

    def disconnect(self, name: str) -> None:
        """Take the host off the lab network: peers cannot reach it and its
        published 127.0.0.1 ports are closed (connection refused)."""
        hi = self.host(name)
        self.client.api.disconnect_container_from_network(hi.container_id, self.info.network_id, force=True)

    def connect(self, name: str, wait: bool = True, timeout: float = 60.0) -> None:
        """Put the host back on the lab network with its address and ports."""
        self._connect(self.info, self.host(name))
        if wait:
            self.wait_ready([name], timeout=timeout)

    def _connect(self, info: LabInfo, hi: HostInfo) -> None:
        import docker.errors

        try:
            self.client.api.connect_container_to_network(
                hi.container_id, info.network_id, ipv4_address=hi.lab_ip, aliases=[hi.name])
        except docker.errors.APIError as e:
            if "already exists" not in str(e):
                raise
        # A new endpoint brings docker's default route back: drop it again so the
        # host's traffic stays on the lab network (see files/entrypoint.sh).
        with contextlib.suppress(Exception):
            self.exec(hi.name, "ip route del default 2>/dev/null; true")

    def restart_sshd(self, name: str, wait: bool = True) -> None:
        """`service ssh restart` inside the host; the host keys stay the same."""
        rc, out = self.exec(name, "service ssh restart")
        if rc != 0:
            raise LabError(f"{name}: service ssh restart failed ({rc}): {out}")
        if wait:
            deadline = time.monotonic() + 30
            while not _ssh_banner(self.host(name).ssh_port):
                if time.monotonic() > deadline:
                    raise LabError(f"{name}: sshd did not come back")
                time.sleep(0.2)

    def exec(self, name: str, cmd: str | list[str], user: str = "root") -> tuple[int, str]:
        """Run a command in the container (docker exec, not ssh). Returns (rc, output)."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else cmd
        r = self._container(name).exec_run(argv, user=user)
        return r.exit_code, r.output.decode(errors="replace")

    def _wait_state(self, name: str, state: str, timeout: float = 20.0) -> None:
        ct = self._container(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ct.reload()
            if ct.status == state:
                return
            time.sleep(0.1)
        raise LabError(f"{name}: still {ct.status}, expected {state}")

    # -- ssh convenience -------------------------------------------------------------
    def ssh(self, name: str, user: str = "root", timeout: float = 10.0):
        """A connected paramiko SSHClient that verifies the lab's known_hosts."""
        import paramiko

        info, hi = self.info, self.host(name)
        cl = paramiko.SSHClient()
        cl.load_host_keys(info.known_hosts)
        cl.set_missing_host_key_policy(paramiko.RejectPolicy())
        cl.connect("127.0.0.1", port=hi.ssh_port, username=user, key_filename=info.private_key,
                   look_for_keys=False, allow_agent=False, timeout=timeout, banner_timeout=timeout,
                   auth_timeout=timeout)
        return cl

    def env(self) -> dict[str, str]:
        info = self.info
        return {
            "DOCKER_HOST": info.docker_host,
            "OPSBOOK_LAB_DIR": info.state_dir,
            "OPSBOOK_LAB_INVENTORY": info.inventory,
            "OPSBOOK_LAB_INVENTORY_YAML": info.inventory_yaml,
            "OPSBOOK_LAB_INVENTORY_DOCKER": info.inventory_docker,
            "OPSBOOK_LAB_KEY": info.private_key,
            "OPSBOOK_LAB_KNOWN_HOSTS": info.known_hosts,
            "OPSBOOK_LAB_JSON": info.lab_json,
        }

    # -- artefacts -------------------------------------------------------------------
    def _host_keys(self, name: str) -> list[str]:
        rc, out = self.exec(name, "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub "
                                  "/etc/ssh/ssh_host_rsa_key.pub")
        if rc != 0:
            raise LabError(f"{name}: cannot read host keys: {out}")
        return [" ".join(line.split()[:2]) for line in out.splitlines() if line.startswith(("ssh-", "ecdsa-"))]

    def _write_json(self, info: LabInfo) -> None:
        _write(self.lab_json, json.dumps(info.to_json(), indent=2) + "\n", 0o600)

    def _write_artifacts(self, info: LabInfo) -> None:
        from . import inventory

        sd = self.state_dir
        kh = []
        for hi in info.hosts.values():
            for k in self._host_keys(hi.name):
                kh.append(f"[127.0.0.1]:{hi.ssh_port} {k}")
                kh.append(f"{hi.lab_ip} {k}")
        _write(sd / "known_hosts", "\n".join(kh) + "\n")
        _write(sd / "ssh_config", inventory.ssh_config(info))
        _write(sd / "inventory.ini", inventory.ini(info), 0o600)
        _write(sd / "inventory.yaml", inventory.yaml_inventory(info), 0o600)
        _write(sd / "inventory-docker.ini", inventory.ini(info, connection="docker"), 0o600)
        _write(sd / "inventory-docker.yaml", inventory.yaml_inventory(info, connection="docker"), 0o600)
        _write(sd / "inventory-ops.ini", inventory.ini(info, user=SUDO_USER), 0o600)
        _write(sd / "env.sh", "".join(f"export {k}={v}\n" for k, v in self.env_for(info).items()))
        self._write_json(info)

    def env_for(self, info: LabInfo) -> dict[str, str]:
        old, self._info = self._info, info
        try:
            return self.env()
        finally:
            self._info = old or info


