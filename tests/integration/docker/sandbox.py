"""Throwaway containers on the lab's dockerd for the docker and probe plugin tests.

The lab's own hosts (web1, db1, ...) are shared with other test modules that inject faults
into them, so tests that stop, pause, isolate or resize something do it to containers of
their own: the lab's image running a tiny HTTP server, on a network of their own, labelled
so that a crashed run's leftovers are found and removed by the next one.
"""

from __future__ import annotations

import http.client
import ipaddress
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from opsbook.errors import PluginError
from opsbook.plugin import ActionContext, HostInfo, Result
from opsbook_lab.pytest_plugin import wait_for
from opsbook_plugins import docker as dockerplugin

LABEL = "org.opsbook.test.plugins"  # every sandbox container and network carries it
RUN_ID = uuid.uuid4().hex[:6]

SERVER_SCRIPT = r"""
mkdir -p /srv/www
printf 'ok\n' > /srv/www/healthz
printf '{"status": {"state": "ok", "checks": [{"name": "db", "ok": true}]}, "version": 3}' \
  > /srv/www/status.json
echo "sandbox $(hostname) up"
exec python3 -u -m http.server 8080 --directory /srv/www
"""


@dataclass
class Box:
    """One sandbox container."""

    name: str
    id: str
    http_port: int | None  # published on 127.0.0.1
    ip: str  # on the sandbox network
    docker_host: str

    def host(self, **extra: Any) -> HostInfo:
        """This container as an inventory host with the docker connection."""
        hostvars = {"ansible_connection": "docker", "ansible_host": self.name}
        hostvars["ansible_docker_host"] = self.docker_host
        return HostInfo(self.name, {**hostvars, **extra})


@dataclass
class Sandbox:
    """Creates sandbox containers and removes them at the end of the test."""

    client: Any
    docker_host: str
    image: str
    network: str
    created: list[str] = field(default_factory=list)

    def server(
        self,
        *,
        labels: dict[str, str] | None = None,
        healthcheck: dict[str, Any] | None = None,
        publish: bool = True,
        script: str = SERVER_SCRIPT,
        wait: bool = True,
        **kwargs: Any,
    ) -> Box:
        name = f"opsbook-t-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        obj = self.client.containers.run(
            self.image,
            entrypoint=["sh", "-c", script],
            name=name,
            hostname=name[-12:],
            detach=True,
            init=True,
            labels={LABEL: RUN_ID, **(labels or {})},
            network=self.network,
            ports={"8080/tcp": ("127.0.0.1", None)} if publish else None,
            healthcheck=healthcheck,
            **kwargs,
        )
        self.created.append(obj.id)
        obj.reload()
        port = None
        bindings = (obj.attrs["NetworkSettings"].get("Ports") or {}).get("8080/tcp")
        if publish and bindings:
            port = int(bindings[0]["HostPort"])
        ip = obj.attrs["NetworkSettings"]["Networks"].get(self.network, {}).get("IPAddress", "")
        box = Box(name, obj.id, port, ip, self.docker_host)
        if wait and port and script is SERVER_SCRIPT:
            wait_for(f"{name} answering on :{port}", lambda: http_status(port) == 200, timeout=20)
        return box

    def remove_all(self) -> None:
        for cid in self.created:
            try:
                self.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
        self.created.clear()


def http_status(port: int, path: str = "/healthz") -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except (OSError, http.client.HTTPException):
        return None


def _free_subnet(client: Any) -> ipaddress.IPv4Network:
    used = []
    for net in client.api.networks():
        for pool in (net.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet") and ":" not in pool["Subnet"]:
                used.append(ipaddress.ip_network(pool["Subnet"]))
    for third in range(180, 250):
        candidate = ipaddress.ip_network(f"172.29.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no free /24 for the sandbox network")


STALE_AFTER = 3600.0  # seconds: another test session may be running right now; leave its boxes


def _remove_leftovers(client: Any, ours: bool = False) -> None:
    """Remove this run's sandbox (ours=True), or what crashed runs left over an hour ago."""

    def doomed(labels: dict[str, str] | None, created: float) -> bool:
        mine = (labels or {}).get(LABEL) == RUN_ID
        return mine if ours else (not mine and time.time() - created > STALE_AFTER)

    for item in client.api.containers(all=True, filters={"label": LABEL}):
        if doomed(item.get("Labels"), float(item.get("Created") or 0)):
            try:
                client.api.remove_container(item["Id"], force=True)
            except docker.errors.NotFound:
                pass
    for net in client.api.networks(filters={"label": LABEL}):
        created = _epoch(net.get("Created"))
        if doomed(net.get("Labels"), created):
            try:
                client.api.remove_network(net["Id"])
            except docker.errors.APIError:
                pass


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    from datetime import UTC, datetime

    try:
        return datetime.fromisoformat(iso[:26].rstrip("Z")).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()  # unknown age: treat as fresh, never remove someone else's


@pytest.fixture(scope="session")
def docker_lab(lab):
    """(client, docker_host, image, network name) on the lab's dockerd, with a network of ours."""
    from docker.types import IPAMConfig, IPAMPool

    lab_info = lab.info  # the session's lab: its daemon and image outlive any one test
    client = docker.DockerClient(base_url=lab_info.docker_host, version="auto")
    _remove_leftovers(client)
    name = f"opsbook-t-{RUN_ID}"
    existing = client.api.networks(names=[name])
    if not existing:
        subnet = _free_subnet(client)
        client.networks.create(
            name,
            driver="bridge",
            labels={LABEL: RUN_ID},
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))]),
        )
    yield client, lab_info.docker_host, lab_info.image, name
    _remove_leftovers(client, ours=True)
    client.close()


@pytest.fixture
def sandbox(docker_lab):
    client, docker_host, image, network = docker_lab
    box = Sandbox(client, docker_host, image, network)
    yield box
    box.remove_all()


@dataclass
class Runner:
    """Calls plugin actions the way the executor does: a context per call, pooled connections."""

    plugin: Any
    docker_host: str
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    evidence_dir: Path | None = None
    _pool: dict[str, Any] = field(default_factory=dict)

    def connect(self, host: HostInfo) -> Any:
        if host.name not in self._pool:
            factory = dockerplugin.plugin.connections[host.connection_kind]
            self._pool[host.name] = factory(host)
        return self._pool[host.name]

    def lookup(self, name: str) -> HostInfo:
        if name not in self.hosts:
            raise PluginError(f"no host named {name}")
        return self.hosts[name]

    def context(self, host: HostInfo | None = None, **kw: Any) -> ActionContext:
        host = host or HostInfo("controller-side", {"docker_host": self.docker_host})
        return ActionContext(
            host=host,
            step_name="t",
            evidence_dir=kw.pop("evidence_dir", self.evidence_dir),
            _connect=self.connect,
            _lookup_host=self.lookup,
            **kw,
        )

    def __call__(self, action: str, args: Any, host: HostInfo | None = None, **kw: Any) -> Result:
        spec = self.plugin.actions[action]
        ctx = self.context(host, **kw)
        return spec.fn(ctx, spec.parse_args(args))

    def close(self) -> None:
        for conn in self._pool.values():
            conn.close()


def docker_host_info(box: Box, docker_host: str) -> HostInfo:
    return HostInfo(box.name, {"docker_host": docker_host, "docker_container": box.name})


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out
