"""A real Kubernetes control plane for the opsbook test lab.

Upstream binaries built from pinned Go modules by ``lab/k8s/build.sh`` (versions in
``lab/k8s/versions.env``): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok simulating nodes and kubelets so that Deployments really
roll out and Pods become Running/Ready. Everything listens on 127.0.0.1 only.

State lives under ``${OPSBOOK_LAB_DIR:-${XDG_STATE_HOME:-~/.local/state}/opsbook/lab}/k8s/``::

    pki/          CA, serving and client certificates, service-account key pair
    kubeconfig/   admin.yaml, restricted.yaml, and one per component
    etcd/         etcd data
    logs/         <component>.log
    run/          <component>.pid
    state.json    ports and binary dir, chosen on first start and then kept

``up()`` is idempotent: it starts whatever component is not running (reusing a
healthy control plane as it is), waits for ``/readyz``, seeds the workload and
waits for it to be Available. ``down()`` stops the components by PID.

Command line: ``python -m opsbook_lab.k8s build|up|down|status|restart-apiserver``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "k8s"
VERSIONS_FILE = HERE / "versions.env"
BUILD_SCRIPT = HERE / "build.sh"

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
ADMIN_USER = "opsbook-admin"
RESTRICTED_USER = "opsbook-restricted"
RESTRICTED_GROUP = "opsbook:restricted"
FIELD_MANAGER = "opsbook-lab"
SERVICE_CIDR = "10.96.0.0/16"  # virtual, never routed: only API objects carry these
POD_CIDR = "10.244.0.0/16"  # kwok hands out fake pod IPs from here; nothing sends to them


class K8sLabError(RuntimeError):
    """The k8s lab could not be built, started or used."""


def _log(msg: str) -> None:
    print(f"opsbook-lab k8s: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def state_dir() -> Path:
    """Root of the k8s lab's state (certs, kubeconfigs, etcd data, logs, pids)."""
    base = os.environ.get("OPSBOOK_LAB_DIR")
    if base:
        return Path(base) / "k8s"
    xdg = os.environ.get("XDG_STATE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return root / "opsbook" / "lab" / "k8s"


@dataclass(frozen=True)
class _Paths:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfigs(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def kubeconfig(self, name: str) -> Path:
        return self.kubeconfigs / f"{name}.yaml"

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def mkdirs(self) -> None:
        for d in (self.root, self.pki, self.kubeconfigs, self.etcd_data, self.logs, self.run):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.pki, 0o700)
        os.chmod(self.etcd_data, 0o700)


# ----------------------------------------------------------------------- versions/build


def versions() -> dict[str, str]:
    """The pinned versions from lab/k8s/versions.env."""
    out: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def bin_dir() -> Path:
    """Where build.sh puts (or put) the binaries for the pinned versions."""
    override = os.environ.get("OPSBOOK_K8S_BIN_DIR")
    if override:
        return Path(override)
    try:
        res = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-bindir"],
            check=True,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as e:
        raise K8sLabError(f"build.sh --print-bindir failed: {e.stderr.strip()}") from e
    return Path(res.stdout.strip())


def binaries_present(bindir: Path | None = None) -> bool:
    """True when every control-plane binary for the pinned versions is built."""
    try:
        d = bindir or bin_dir()
    except K8sLabError:
        return False
    return all(os.access(d / c, os.X_OK) for c in COMPONENTS)


def build(force: bool = False) -> Path:
    """Build (or find cached) binaries with lab/k8s/build.sh; returns the bin dir."""
    cmd = ["bash", str(BUILD_SCRIPT)] + (["--force"] if force else [])
    t0 = time.monotonic()
    res = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise K8sLabError(f"lab/k8s/build.sh failed (exit {res.returncode})")
    _log(f"binaries ready in {time.monotonic() - t0:.0f}s")
    return bin_dir()


# ------------------------------------------------------------------------------ PKI


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


@dataclass(frozen=True)
class _CertSpec:
    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    server: bool = False


_CLIENT_CERTS = (
    _CertSpec("admin", ADMIN_USER, ("system:masters",)),
    _CertSpec("restricted", RESTRICTED_USER, (RESTRICTED_GROUP,)),
    _CertSpec("controller-manager", "system:kube-controller-manager"),
    _CertSpec("scheduler", "system:kube-scheduler"),
    # kwok plays every kubelet and updates any node/pod status: give it admin rights
    _CertSpec("kwok", "system:kwok-controller", ("system:masters",)),
    _CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    # aggregation-layer client; its CA is published for the components' delegated authn
    _CertSpec("front-proxy-client", "front-proxy-client"),
)


def _ensure_pki(p: _Paths) -> None:
    """Create the CA, certificates and SA key pair once; later calls keep them."""
    ca_crt, ca_key = p.pki / "ca.crt", p.pki / "ca.key"
    needed = [ca_crt, p.pki / "sa.key", p.pki / "apiserver.crt"]
    needed += [p.pki / f"{s.name}.crt" for s in _CLIENT_CERTS]
    if all(f.exists() for f in needed):
        return
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    later = now + _dt.timedelta(days=3650)

    def name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    if ca_crt.exists() and ca_key.exists():
        ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        cakey = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    else:
        cakey = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(name("opsbook-lab-ca"))
            .issuer_name(name("opsbook-lab-ca"))
            .public_key(cakey.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(cakey.public_key()), False)
            .sign(cakey, hashes.SHA256())
        )
        _write(ca_key, _pem_key(cakey))
        _write(ca_crt, _pem_cert(ca), 0o644)

    def issue(spec: _CertSpec) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if spec.server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = (
            x509.CertificateBuilder()
            .subject_name(name(spec.common_name, spec.organizations))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(cakey.public_key()), False
            )
        )
        if spec.server:
            dns = [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
            ips = ["127.0.0.1", "10.96.0.1"]
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(d) for d in dns]
                    + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
                ),
                critical=False,
            )
        cert = b.sign(cakey, hashes.SHA256())
        _write(p.pki / f"{spec.name}.key", _pem_key(key))
        _write(p.pki / f"{spec.name}.crt", _pem_cert(cert), 0o644)

    for spec in (_CertSpec("apiserver", "kube-apiserver", server=True), *_CLIENT_CERTS):
        if not (p.pki / f"{spec.name}.crt").exists():
            issue(spec)
    if not (p.pki / "sa.key").exists():
        sakey = ec.generate_private_key(ec.SECP256R1())
        pub = sakey.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write(p.pki / "sa.pub", pub, 0o644)
        _write(p.pki / "sa.key", _pem_key(sakey))


def _write_kubeconfig(p: _Paths, name: str, cert: str, server: str) -> Path:
    """A self-contained kubeconfig (certificates embedded) for one client cert."""
    import yaml

    def b64(f: Path) -> str:
        return base64.b64encode(f.read_bytes()).decode()

    user = f"opsbook-lab-{name}"
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "opsbook-lab",
                "cluster": {"server": server, "certificate-authority-data": b64(p.pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(p.pki / f"{cert}.crt"),
                    "client-key-data": b64(p.pki / f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {
                "name": f"opsbook-lab-{name}",
                "context": {"cluster": "opsbook-lab", "user": user, "namespace": "default"},
            }
        ],
        "current-context": f"opsbook-lab-{name}",
    }
    path = p.kubeconfig(name)
    _write(path, yaml.safe_dump(cfg, sort_keys=False).encode())
    return path


# ------------------------------------------------------------------------ processes


def _free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range (so client sockets never take it)."""
    import random

    for _ in range(200):
        port = random.randrange(20000, 32000)
        if _port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _pid_is(pid: int, exe: Path) -> bool:
    """True if pid is alive (not a zombie) and runs the given binary (guards PID reuse)."""
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0 == str(exe)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class _State:
    ports: dict[str, int] = field(default_factory=dict)
    bin_dir: str = ""

    @classmethod
    def load(cls, p: _Paths) -> _State:
        try:
            data = json.loads(p.state.read_text())
        except (OSError, ValueError):
            return cls()
        return cls(ports=dict(data.get("ports", {})), bin_dir=str(data.get("bin_dir", "")))

    def save(self, p: _Paths) -> None:
        _write(p.state, json.dumps(asdict(self), indent=2).encode(), 0o644)


_PORT_NAMES = ("etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")


def _ensure_ports(st: _State, running: Mapping[str, int | None]) -> None:
    """Keep ports across restarts; re-pick one only if its owner is down and it is taken."""
    owner = {
        "etcd-client": "etcd",
        "etcd-peer": "etcd",
        "apiserver": "kube-apiserver",
        "controller-manager": "kube-controller-manager",
        "scheduler": "kube-scheduler",
        "kwok": "kwok",
    }
    for n in _PORT_NAMES:
        port = st.ports.get(n)
        if port and (running.get(owner[n]) or _port_free(port)):
            continue
        st.ports[n] = _free_port()


def _read_pid(p: _Paths, component: str) -> int | None:
    try:
        return int(p.pidfile(component).read_text().strip())
    except (OSError, ValueError):
        return None


def _running(p: _Paths, bindir: Path) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for c in COMPONENTS:
        pid = _read_pid(p, c)
        out[c] = pid if pid and _pid_is(pid, bindir / c) else None
    return out


def _argv(component: str, p: _Paths, st: _State, bindir: Path) -> list[str]:
    exe = str(bindir / component)
    port = st.ports
    pki = p.pki
    etcd_url = f"http://127.0.0.1:{port['etcd-client']}"
    if component == "etcd":
        peer = f"http://127.0.0.1:{port['etcd-peer']}"
        return [
            exe,
            "--name=opsbook-lab",
            f"--data-dir={p.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=opsbook-lab={peer}",
            "--initial-cluster-state=new",
            "--auto-compaction-retention=1",
            "--quota-backend-bytes=2147483648",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        return [
            exe,
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port['apiserver']}",
            f"--cert-dir={pki / 'apiserver-generated'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # the `kubernetes` Endpoints may not hold a loopback address: don't reconcile it
            "--endpoint-reconciler-type=none",
            # kwok's nodes report their name as Hostname address; only 127.0.0.1 reaches
            # kwok's kubelet server (logs, exec through the API server)
            "--kubelet-preferred-address-types=InternalIP",
            # close watches on SIGTERM instead of waiting out --request-timeout (60s)
            "--shutdown-watch-termination-grace-period=2s",
            "--profiling=false",
            "--v=0",
        ]
    if component in ("kube-controller-manager", "kube-scheduler"):
        short = "controller-manager" if component == "kube-controller-manager" else "scheduler"
        kc = p.kubeconfig(short)
        args = [
            exe,
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port[short]}",
            "--leader-elect=false",
            "--v=0",
        ]
        if component == "kube-controller-manager":
            args += [
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allocate-node-cidrs=false",
                "--profiling=false",
            ]
        return args
    if component == "kwok":
        return [
            exe,
            f"--kubeconfig={p.kubeconfig('kwok')}",
            f"--config={_kwok_config_path(p)}",
            "--manage-all-nodes=true",
            "--node-ip=127.0.0.1",
            f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{port['kwok']}",
            f"--node-port={port['kwok']}",
            "--node-lease-duration-seconds=40",
            "--v=INFO",
        ]
    raise ValueError(component)


# ------------------------------------------------------------- kwok's simulated kubelet

# Container names of the seeded workload and of the tests' pods ("app"): each has its own
# log file, served by kwok (ClusterLogs) as `kubectl logs` through the API server.
LOG_CONTAINERS = ("frontend", "cart", "api", "prometheus", "app")


def container_log(container: str, previous: bool = False) -> Path:
    """The file kwok serves as a lab container's log (CRI format: `<RFC3339Nano> stdout F
    <line>`); tests append lines to it. Containers not in LOG_CONTAINERS share default.log."""
    name = container if container in LOG_CONTAINERS else "default"
    return _Paths(state_dir()).root / "kwok" / "logs" / f"{name}{'.previous' if previous else ''}.log"


def cri_line(text: str, when: _dt.datetime | None = None, stream: str = "stdout") -> str:
    """One line in the CRI log format kwok (like the kubelet) reads."""
    stamp = (when or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {stream} F {text}\n"


def _seed_logs(p: _Paths) -> Path:
    logs = p.root / "kwok" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=10)
    for name in (*LOG_CONTAINERS, "default"):
        for previous in (False, True):
            f = logs / f"{name}{'.previous' if previous else ''}.log"
            if f.exists():
                continue
            if previous:
                lines = [
                    cri_line(f"{name}: starting", start - _dt.timedelta(minutes=5)),
                    cri_line(f"{name}: panic: connection pool exhausted", start, "stderr"),
                ]
            else:
                lines = [
                    cri_line(f"{name}: starting", start),
                    cri_line(f"{name}: listening on :8080", start + _dt.timedelta(seconds=1)),
                    cri_line(f"{name}: ready", start + _dt.timedelta(seconds=2)),
                ]
            f.write_text("".join(lines))
    return logs


def _kwok_config(p: _Paths) -> str:
    """kwok's configuration: its default stages, plus ClusterLogs (each container's log
    file) and ClusterExec (commands run on this machine, in kwok/exec, as the user kwok
    runs as: the lab's own) so `kubectl logs`/`kubectl exec` work through the API server."""
    import yaml

    logs = _seed_logs(p)
    workdir = p.root / "kwok" / "exec"
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    (workdir / "VERSION").write_text("opsbook-lab kwok container\n")
    os.chmod(workdir / "VERSION", 0o644)
    local: dict[str, Any] = {
        "workDir": str(workdir),
        "envs": [{"name": "OPSBOOK_LAB", "value": "kwok"}],
    }
    entries = [
        {
            "containers": [c],
            "logsFile": str(logs / f"{c}.log"),
            "previousLogsFile": str(logs / f"{c}.previous.log"),
        }
        for c in LOG_CONTAINERS
    ]
    entries.append(
        {
            "logsFile": str(logs / "default.log"),
            "previousLogsFile": str(logs / "default.previous.log"),
        }
    )
    docs = [
        {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration", "options": {}},
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "opsbook-lab"},
            "spec": {"logs": entries},
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterExec",
            "metadata": {"name": "opsbook-lab"},
            "spec": {"execs": [{"local": local}]},
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _kwok_config_path(p: _Paths) -> Path:
    """Named after its content, so a changed configuration changes kwok's flags (restart)."""
    import hashlib

    text = _kwok_config(p)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return p.root / f"kwok-{digest}.yaml"


def _write_kwok_config(p: _Paths) -> None:
    path = _kwok_config_path(p)
    if not path.exists():
        for old in p.root.glob("kwok-*.yaml"):
            old.unlink()
        path.write_text(_kwok_config(p))


def _spawn(component: str, p: _Paths, st: _State, bindir: Path) -> int:
    argv = _argv(component, p, st, bindir)
    log = p.logs / f"{component}.log"
    with contextlib.suppress(OSError):
        if log.stat().st_size > 20 * 2**20:  # keep one previous log, bounded
            log.replace(log.with_suffix(".log.1"))
    with open(log, "ab") as out:
        out.write(f"\n=== {_dt.datetime.now().isoformat()} starting: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=p.root,
        )
    p.pidfile(component).write_text(f"{proc.pid}\n")
    _CHILDREN[component] = proc
    return proc.pid


# Components this process started: their liveness is the child's own exit status, not a
# reading of /proc (which once reported a just-started, healthy etcd as gone).
_CHILDREN: dict[str, subprocess.Popen[bytes]] = {}


def _stop_pid(pid: int, exe: Path, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after timeout; only if pid still runs exe."""
    if not _pid_is(pid, exe):
        _reap(pid)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _pid_is(pid, exe):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not _pid_is(pid, exe):
            return
        time.sleep(0.1)


@contextlib.contextmanager
def _locked(p: _Paths) -> Iterator[None]:
    p.root.mkdir(parents=True, exist_ok=True)
    with open(p.lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------ API client


class _Api:
    """Minimal HTTPS client for the lab apiserver (admin client cert); stdlib only."""

    def __init__(self, p: _Paths, port: int, cert: str = "admin") -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(p.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(p.pki / f"{cert}.crt"), str(p.pki / f"{cert}.key"))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.ctx, timeout=timeout
        )
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise K8sLabError(f"GET {path}: HTTP {status}: {body}")
        return body

    def apply(self, obj: Mapping[str, Any]) -> Any:
        """Server-side apply (idempotent; fields set by other managers are left alone)."""
        path = _resource_path(obj)
        status, body = self.request(
            "PATCH",
            f"{path}?fieldManager={FIELD_MANAGER}&force=true",
            obj,
            content_type="application/apply-patch+yaml",
        )
        if status not in (200, 201):
            raise K8sLabError(
                f"apply {obj['kind']}/{obj['metadata']['name']}: HTTP {status}: {body}"
            )
        return body


_KINDS = {  # kind -> (api prefix, plural, namespaced)
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


def _resource_path(obj: Mapping[str, Any]) -> str:
    prefix, plural, namespaced = _KINDS[obj["kind"]]
    meta = obj["metadata"]
    if namespaced:
        return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return f"{prefix}/{plural}/{meta['name']}"


class _Died(K8sLabError):
    """A component exited while we waited for it: no point waiting longer."""


def _wait(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except _Died:
            raise
        except (OSError, http.client.HTTPException, K8sLabError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise K8sLabError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _apiserver_ready(api: _Api) -> bool:
    status, _ = api.request("GET", "/readyz", timeout=5)
    return status == 200


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/health")
        body = conn.getresponse().read()
    finally:
        conn.close()
    return b'"health":"true"' in body


def _healthz_tls(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert made by the component itself
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=3)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


# ----------------------------------------------------------------------------- seed

NODES = (  # name, zone (None = no zone label), instance type
    ("kwok-node-0", "lab-zone-a", "m5.xlarge"),
    ("kwok-node-1", "lab-zone-a", "m5.xlarge"),
    ("kwok-node-2", "lab-zone-b", "m5.2xlarge"),
    ("kwok-node-3", None, "c5.large"),
)

# namespace, name, replicas, image, pdb minAvailable (or None)
DEPLOYMENTS = (
    ("shop", "frontend", 3, "nginx:1.27", 2),
    ("shop", "cart", 2, "ghcr.io/opsbook-lab/cart:2.3.1", None),
    ("payments", "api", 3, "ghcr.io/opsbook-lab/payments-api:5.0.2", None),
    ("monitoring", "prometheus", 1, "prom/prometheus:v2.54.1", None),
)


def _node(name: str, zone: str | None, itype: str) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "node.kubernetes.io/instance-type": itype,
        "topology.kubernetes.io/region": "lab-region-1",
        "node-role.kubernetes.io/worker": "",
    }
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return kwok_node(name, labels)


def kwok_node(
    name: str, labels: dict[str, str], taints: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """A Node object that kwok takes over (annotation kwok.x-k8s.io/node: fake): it
    becomes Ready and runs the pods scheduled onto it, on paper."""
    res = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": res,
            "allocatable": res,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "kwok",
                "osImage": "kwok",
                "kernelVersion": "kwok",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def _deployment(ns: str, name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": ns}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "envFrom": [
                                {"configMapRef": {"name": f"{name}-config", "optional": True}}
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        }
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                        }
                    ],
                    "terminationGracePeriodSeconds": 5,
                },
            },
        },
    }


def workload() -> list[dict[str, Any]]:
    """The seeded objects, in apply order (namespaces and nodes first)."""
    objs: list[dict[str, Any]] = []
    for ns in ("shop", "payments", "monitoring"):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"opsbook.dev/lab": "true", "team": ns}},
            }
        )
    objs += [_node(*n) for n in NODES]
    for ns, name, replicas, image, pdb in DEPLOYMENTS:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{name}-config", "namespace": ns},
                "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "checkout-v2=false"},
            }
        )
        objs.append(_deployment(ns, name, replicas, image))
        if pdb is not None:
            objs.append(
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "minAvailable": pdb,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                    },
                }
            )
    for ns, name in (("shop", "frontend"), ("shop", "cart"), ("payments", "api")):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "selector": {"app.kubernetes.io/name": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            }
        )
    # the restricted user may read the shop namespace and nothing else
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "opsbook-restricted-view", "namespace": "shop"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": RESTRICTED_USER}
            ],
        }
    )
    return objs


def _deployments_available(api: _Api) -> bool:
    for ns, name, *_ in DEPLOYMENTS:
        d = api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
        want = d["spec"].get("replicas", 1)
        st = d.get("status", {})
        if (
            st.get("observedGeneration", 0) < d["metadata"]["generation"]
            or st.get("updatedReplicas", 0) != want
            or st.get("availableReplicas", 0) != want
            or st.get("replicas", 0) != want
        ):
            return False
    return True


def _nodes_ready(api: _Api) -> bool:
    items = api.get("/api/v1/nodes")["items"]
    names = {
        n["metadata"]["name"]
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    }
    return all(n[0] in names for n in NODES)


# --------------------------------------------------------------------------- public


@dataclass(frozen=True)
class K8sInfo:
    """How to reach the running lab control plane."""

    kubeconfig: Path
    restricted_kubeconfig: Path
    server: str
    ca_file: Path
    pids: Mapping[str, int]
    versions: Mapping[str, str]
    state_dir: Path
    started: bool = False  # True if this up() started at least one component
    restricted_user: str = RESTRICTED_USER
    namespaces: tuple[str, ...] = ("shop", "payments", "monitoring")


@dataclass(frozen=True)
class K8sStatus:
    """What is running, and whether the apiserver answers /readyz."""

    pids: Mapping[str, int | None]
    ready: bool
    server: str | None
    state_dir: Path

    @property
    def running(self) -> bool:
        return all(self.pids.get(c) for c in COMPONENTS)


def _info(p: _Paths, st: _State, pids: Mapping[str, int | None], started: bool) -> K8sInfo:
    return K8sInfo(
        kubeconfig=p.kubeconfig("admin"),
        restricted_kubeconfig=p.kubeconfig("restricted"),
        server=f"https://127.0.0.1:{st.ports['apiserver']}",
        ca_file=p.pki / "ca.crt",
        pids={c: pid for c, pid in pids.items() if pid},
        versions=versions(),
        state_dir=p.root,
        started=started,
    )


def up(
    *, seed: bool = True, wait_workload: bool = True, fresh: bool = False, timeout: float = 180.0
) -> K8sInfo:
    """Start (or reuse) the control plane, seed the workload, return how to reach it.

    A running control plane is reused as it is. With ``fresh``, a control plane that
    has to be started (etcd not running) starts from empty etcd data, so state left
    by an earlier run (cordoned nodes, scaled deployments) does not leak in.
    """
    p = _Paths(state_dir())
    with _locked(p):
        return _up_locked(p, seed=seed, wait_workload=wait_workload, fresh=fresh, timeout=timeout)


def _up_locked(
    p: _Paths, *, seed: bool, wait_workload: bool, fresh: bool, timeout: float
) -> K8sInfo:
    bindir = bin_dir()
    if not binaries_present(bindir):
        raise K8sLabError(
            f"k8s lab binaries missing in {bindir}: run lab/k8s/build.sh "
            "(or python -m opsbook_lab.k8s build)"
        )
    t0 = time.monotonic()
    p.mkdirs()
    st = _State.load(p)
    if st.bin_dir and st.bin_dir != str(bindir):
        # a different version set is running: stop the old binaries by PID first
        _stop_all(p, Path(st.bin_dir))
    running = _running(p, bindir)
    _ensure_ports(st, running)
    st.bin_dir = str(bindir)
    st.save(p)
    _ensure_pki(p)
    server = f"https://127.0.0.1:{st.ports['apiserver']}"
    for name, cert in (
        ("admin", "admin"),
        ("restricted", "restricted"),
        ("controller-manager", "controller-manager"),
        ("scheduler", "scheduler"),
        ("kwok", "kwok"),
    ):
        _write_kubeconfig(p, name, cert, server)
    _write_kwok_config(p)
    for c in COMPONENTS:  # running with other flags (older lab code): restart it
        pid = running[c]
        if pid and _cmdline(pid) != _argv(c, p, st, bindir):
            _log(f"{c} (pid {pid}) runs with different flags: restarting it")
            _stop_pid(pid, bindir / c)
            running[c] = None
    if fresh and not running["etcd"] and any(p.etcd_data.iterdir()):
        _log("fresh start: clearing etcd data left by an earlier run")
        _stop_all(p, bindir)  # components without their etcd are stale anyway
        running = {c: None for c in COMPONENTS}
        import shutil

        shutil.rmtree(p.etcd_data)
        p.mkdirs()
    api = _Api(p, st.ports["apiserver"])
    started = [c for c in COMPONENTS if not running[c]]
    try:
        for c in COMPONENTS:
            if not running[c]:
                running[c] = _spawn(c, p, st, bindir)
            if c == "etcd":
                _wait(
                    "etcd /health",
                    lambda c=c: _alive_or_fail(p, c, bindir) and _etcd_healthy(st.ports["etcd-client"]),
                    timeout,
                )
            elif c == "kube-apiserver":
                _wait(
                    "kube-apiserver /readyz",
                    lambda c=c: _alive_or_fail(p, c, bindir) and _apiserver_ready(api),
                    timeout,
                )
        for c, port in (
            ("kube-controller-manager", "controller-manager"),
            ("kube-scheduler", "scheduler"),
        ):
            _wait(
                f"{c} /healthz",
                lambda c=c, port=port: _alive_or_fail(p, c, bindir) and _healthz_tls(st.ports[port]),
                timeout,
            )
        if started:
            _log(
                f"started {', '.join(started)}; control plane ready in "
                f"{time.monotonic() - t0:.1f}s at {server}"
            )
        if seed:
            for obj in workload():
                api.apply(obj)
            _wait(
                "kwok nodes Ready",
                lambda: _alive_or_fail(p, "kwok", bindir) and _nodes_ready(api),
                timeout,
            )
            if wait_workload:
                _wait("seeded Deployments Available", lambda: _deployments_available(api), timeout)
                _log(f"workload Available {time.monotonic() - t0:.1f}s after up()")
    except BaseException:
        # Leave nothing behind that this call started and did not get ready.
        for c in reversed(started):
            child = _CHILDREN.pop(c, None)
            pid = _read_pid(p, c)
            if child is not None and child.pid == pid:
                child.terminate()
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            elif pid:
                _stop_pid(pid, bindir / c)
            with contextlib.suppress(FileNotFoundError):
                p.pidfile(c).unlink()
        raise
    return _info(p, st, running, bool(started))


def _alive_or_fail(p: _Paths, component: str, bindir: Path) -> bool:
    pid = _read_pid(p, component)
    child = _CHILDREN.get(component)
    if child is not None and pid == child.pid:
        if child.poll() is None:
            return True
    elif pid and _pid_is(pid, bindir / component):
        return True
    _reap(pid or 0)
    tail = ""
    with contextlib.suppress(OSError):
        tail = "\n".join(
            (p.logs / f"{component}.log").read_text(errors="replace").splitlines()[-25:]
        )
    raise _Died(f"{component} exited during start-up; last log lines:\n{tail}")


def _stop_all(p: _Paths, bindir: Path) -> None:
    for c in reversed(COMPONENTS):
        pid = _read_pid(p, c)
        if pid:
            _stop_pid(pid, bindir / c)
        with contextlib.suppress(FileNotFoundError):
            p.pidfile(c).unlink()


@contextlib.contextmanager
def session(
    *, seed: bool = True, wait_workload: bool = True, fresh: bool = True, timeout: float = 180.0
) -> Iterator[K8sInfo]:
    """``up()`` for the length of a with block, shared by concurrent users (xdist workers).

    Each user registers its PID; the last one out stops the control plane if any
    session started it. A control plane started by hand (``up``) is never stopped.
    ``fresh`` (default here) empties etcd when the control plane has to be started.
    """
    p = _Paths(state_dir())
    me = p.run / "users" / str(os.getpid())
    marker = p.run / "started-by-session"
    with _locked(p):
        p.mkdirs()
        me.parent.mkdir(exist_ok=True)
        me.touch()
        try:
            info = _up_locked(
                p, seed=seed, wait_workload=wait_workload, fresh=fresh, timeout=timeout
            )
        except BaseException:
            me.unlink(missing_ok=True)
            raise
        if info.started:
            marker.touch()
    try:
        yield info
    finally:
        with _locked(p):
            me.unlink(missing_ok=True)
            others = [
                u
                for u in me.parent.iterdir()
                if u.name.isdigit() and _proc_state(int(u.name)) not in (None, "Z", "X")
            ]
            if not others and marker.exists():
                st = _State.load(p)
                if st.bin_dir:
                    _stop_all(p, Path(st.bin_dir))
                marker.unlink(missing_ok=True)


def down(*, purge: bool = False) -> None:
    """Stop every lab component by PID; with purge, also delete the state dir."""
    p = _Paths(state_dir())
    if not p.root.exists():
        return
    with _locked(p):
        st = _State.load(p)
        if st.bin_dir:
            _stop_all(p, Path(st.bin_dir))
        if purge:
            for child in p.root.iterdir():
                if child.name != ".lock":
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()


def status() -> K8sStatus:
    """Which components run (by PID) and whether the apiserver is ready."""
    p = _Paths(state_dir())
    st = _State.load(p)
    if not st.bin_dir:
        return K8sStatus({c: None for c in COMPONENTS}, False, None, p.root)
    pids = _running(p, Path(st.bin_dir))
    ready = False
    if pids["kube-apiserver"] and "apiserver" in st.ports:
        with contextlib.suppress(OSError, http.client.HTTPException, ssl.SSLError):
            ready = _apiserver_ready(_Api(p, st.ports["apiserver"]))
    server = f"https://127.0.0.1:{st.ports['apiserver']}" if "apiserver" in st.ports else None
    return K8sStatus(pids, ready, server, p.root)


def info() -> K8sInfo:
    """K8sInfo for the running lab (raises if it is not up)."""
    p = _Paths(state_dir())
    st = _State.load(p)
    s = status()
    if not (s.running and s.ready):
        raise K8sLabError(f"k8s lab is not up (pids: {dict(s.pids)}, ready: {s.ready})")
    return _info(p, st, s.pids, False)


def restart_apiserver(*, down_for: float = 0.0, timeout: float = 120.0) -> K8sInfo:
    """Fault helper: stop kube-apiserver by PID, optionally stay down, start it again."""
    p = _Paths(state_dir())
    with _locked(p):
        st = _State.load(p)
        bindir = Path(st.bin_dir)
        pid = _read_pid(p, "kube-apiserver")
        if not pid or not _pid_is(pid, bindir / "kube-apiserver"):
            raise K8sLabError("kube-apiserver is not running")
        _stop_pid(pid, bindir / "kube-apiserver")
        if down_for:
            time.sleep(down_for)
        _spawn("kube-apiserver", p, st, bindir)
        api = _Api(p, st.ports["apiserver"])
        _wait(
            "kube-apiserver /readyz",
            lambda: _alive_or_fail(p, "kube-apiserver", bindir) and _apiserver_ready(api),
            timeout,
        )
        return _info(p, st, _running(p, bindir), False)


def stop_component(component: str) -> None:
    """Fault helper: stop one component by PID (``up()`` starts it again)."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; one of {COMPONENTS}")
    p = _Paths(state_dir())
    with _locked(p):
        st = _State.load(p)
        pid = _read_pid(p, component)
        if pid and st.bin_dir:
            _stop_pid(pid, Path(st.bin_dir) / component)


# ------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m opsbook_lab.k8s build|up|down|status|restart-apiserver``."""
    ap = argparse.ArgumentParser(
        prog="python -m opsbook_lab.k8s", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or find cached) binaries")
    b.add_argument("--force", action="store_true")
    u = sub.add_parser("up", help="start or reuse the control plane and seed it")
    u.add_argument("--no-seed", action="store_true")
    u.add_argument("--build", action="store_true", help="build binaries first if missing")
    d = sub.add_parser("down", help="stop the control plane by PID")
    d.add_argument("--purge", action="store_true", help="also delete certs, etcd data, logs")
    sub.add_parser("status", help="print component PIDs and readiness (JSON)")
    sub.add_parser("restart-apiserver", help="fault: restart kube-apiserver")
    sub.add_parser("env", help="print KUBECONFIG=... for eval in a shell")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(build(force=args.force))
        elif args.cmd == "up":
            if args.build and not binaries_present():
                build()
            i = up(seed=not args.no_seed)
            print(json.dumps(_jsonable(asdict(i)), indent=2))
        elif args.cmd == "down":
            down(purge=args.purge)
        elif args.cmd == "status":
            s = status()
            print(
                json.dumps(
                    {
                        "pids": dict(s.pids),
                        "ready": s.ready,
                        "server": s.server,
                        "state_dir": str(s.state_dir),
                    },
                    indent=2,
                )
            )
            return 0 if s.running and s.ready else 3
        elif args.cmd == "restart-apiserver":
            print(json.dumps(_jsonable(asdict(restart_apiserver())), indent=2))
        elif args.cmd == "env":
            print(f"export KUBECONFIG={_Paths(state_dir()).kubeconfig('admin')}")
    except K8sLabError as e:
        print(f"opsbook-lab k8s: error: {e}", file=sys.stderr)
        return 1
    return 0


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (
            str(v)
            if isinstance(v, Path)
            else dict(v)
            if isinstance(v, Mapping)
            else list(v)
            if isinstance(v, tuple)
            else v
        )
        for k, v in d.items()
    }


if __name__ == "__main__":
    sys.exit(main())
