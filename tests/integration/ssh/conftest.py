"""Helpers for the ssh plugin's lab tests: host vars from the lab, connections, action runs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opsbook.plugin import ActionContext, Become, HostInfo, Result
from opsbook_lab.inventory import inventory_dict
from opsbook_plugins.ssh import plugin, ssh_connection
from opsbook_plugins.ssh.connection import SSHConnection


def lab_host_vars(lab_info: Any, name: str, user: str = "root") -> dict[str, Any]:
    """A host's effective vars in the lab's own inventory (all:vars, then host vars)."""
    inv = inventory_dict(lab_info, user=user)["all"]
    merged = dict(inv["vars"])
    for group in inv["children"].values():
        merged.update(group["hosts"].get(name) or {})
    return merged


@dataclass
class Node:
    """One lab host reached through the ssh plugin, as the executor would set it up."""

    host: HostInfo
    conn: SSHConnection
    evidence_dir: Path
    lines: list[str] = field(default_factory=list)

    def act(
        self,
        action: str,
        args: Any,
        *,
        check: bool = False,
        diff: bool = False,
        become: Become | None = None,
        timeout: float | None = None,
        cancelled: threading.Event | None = None,
    ) -> Result:
        spec = plugin.actions[action]
        ctx = ActionContext(
            host=self.host,
            step_name=f"test {action}",
            check_mode=check,
            diff_mode=diff,
            timeout=timeout,
            cancelled=cancelled or threading.Event(),
            evidence_dir=self.evidence_dir,
            become=become,
            run_id="test",
            _connect=lambda _host: self.conn,
            _output=self.lines.append,
        )
        return spec.fn(ctx, spec.parse_args(args))

    def sh(self, command: str, **kw: Any) -> str:
        """Run a helper command that must succeed; its stdout."""
        res = self.conn.run(command, **kw)
        assert res.rc == 0, res
        return res.stdout


@pytest.fixture
def node(lab_info, tmp_path) -> Callable[..., Node]:
    """node(name, user="root", **extra_vars) -> Node; connections are closed after the test."""
    made: list[Node] = []

    def make(name: str = "web1", user: str = "root", **extra: Any) -> Node:
        host = HostInfo(name, {**lab_host_vars(lab_info, name, user), **extra})
        made.append(Node(host, ssh_connection(host), tmp_path / "evidence"))
        return made[-1]

    yield make
    for n in made:
        n.conn.close()


@pytest.fixture
def docker_node(lab_info, tmp_path):
    """docker_node(name) -> Node over the docker plugin's connection (docker exec), or skip."""
    from opsbook.registry import Registry

    factory = Registry.from_entry_points().connection_factory("docker")
    if factory is None:
        pytest.skip("the docker plugin is not installed")
    made: list[Node] = []

    def make(name: str) -> Node:
        inv = inventory_dict(lab_info, connection="docker")["all"]
        merged = dict(inv["vars"])
        for group in inv["children"].values():
            merged.update(group["hosts"].get(name) or {})
        host = HostInfo(name, merged)
        made.append(Node(host, factory(host), tmp_path / "evidence"))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for n in made:
        n.conn.close()


@pytest.fixture
def ops_become(lab_info) -> Become:
    return Become(user="root", password=lab_info.sudo_password)


class Forwarder:
    """A TCP forwarder on 127.0.0.1 whose destination port can be switched (a MITM stand-in)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.5)
        try:
            while not self.stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.server.close()
        for t in self.threads:
            t.join(timeout=2)


@pytest.fixture
def forwarder():
    made: list[Forwarder] = []

    def make(target_port: int) -> Forwarder:
        made.append(Forwarder(target_port))
        return made[-1]

    yield make
    for f in made:
        f.close()
