"""Fault injection helpers of the lab: kill/start, disconnect/connect, restart_sshd, pause."""

from __future__ import annotations

import urllib.request

import paramiko
import pytest
from opsbook_lab.lab import _redis_ping, _ssh_banner
from opsbook_lab.pytest_plugin import wait_for


def _backend(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return r.headers["X-Lab-Host"]


def _hostname_over_ssh(lab, name: str) -> str:
    with lab.ssh(name) as cl:
        _, o, _ = cl.exec_command("hostname", timeout=20)
        return o.read().decode().strip()


def test_kill_and_start(lab_healed):
    lab = lab_healed
    web1, lb = lab.info.hosts["web1"], lab.info.hosts["lb1"]
    lab.kill("web1")
    assert lab.status()["hosts"]["web1"]["state"] == "exited"
    with pytest.raises((paramiko.SSHException, OSError)):
        lab.ssh("web1", timeout=3)
    # the balancer notices and sends everything to web2
    wait_for("web1 DOWN on the balancer", lambda: "web1 DOWN" in lab.exec("lb1", "lb-backend list")[1])
    assert {_backend(lb.http_port) for _ in range(4)} == {"web2"}
    lab.start("web1")
    # same host keys after the restart: known_hosts still verifies
    assert _hostname_over_ssh(lab, "web1") == "web1"
    assert lab.info.hosts["web1"].ssh_port == web1.ssh_port
    wait_for("both backends serving", lambda: {_backend(lb.http_port) for _ in range(4)} == {"web1", "web2"})


def test_disconnect_and_connect(lab_healed):
    lab = lab_healed
    db1 = lab.info.hosts["db1"]
    lab.disconnect("db1")
    assert not lab.status()["hosts"]["db1"]["connected"]
    # off the network: the published ports are closed and the replica loses its primary
    assert not _ssh_banner(db1.ssh_port, timeout=2)
    assert not _redis_ping(db1.redis_port, timeout=2)
    wait_for("db2 link down", lambda: "master_link_status:down" in lab.exec("db2", "redis-cli info replication")[1])
    _, out = lab.exec("db2", "timeout 3 bash -c '</dev/tcp/db1/6379' && echo reachable || echo unreachable")
    assert "unreachable" in out
    lab.connect("db1")
    assert lab.status()["hosts"]["db1"]["connected"]
    assert _hostname_over_ssh(lab, "db1") == "db1"
    wait_for("db2 link up", lambda: "master_link_status:up" in lab.exec("db2", "redis-cli info replication")[1])


def test_restart_sshd_keeps_host_keys(lab):
    with lab.ssh("web2") as cl:
        before = cl.get_transport().get_remote_server_key()
        _, o, _ = cl.exec_command("cat /run/sshd.pid", timeout=20)
        pid_before = o.read().decode().strip()
    lab.restart_sshd("web2")
    rc, pid_after = lab.exec("web2", "cat /run/sshd.pid")
    assert rc == 0 and pid_after.strip() != pid_before
    with lab.ssh("web2") as cl:
        assert cl.get_transport().get_remote_server_key() == before


def test_pause_hangs_the_host(lab_healed):
    lab = lab_healed
    hi = lab.info.hosts["web2"]
    lab.pause("web2")
    try:
        # docker-proxy accepts the TCP connection, but nothing answers behind it
        assert not _ssh_banner(hi.ssh_port, timeout=1.5)
    finally:
        lab.unpause("web2")
    wait_for("an SSH banner", lambda: _ssh_banner(hi.ssh_port))


def test_up_heals_a_broken_lab(lab):
    lab.kill("web2")
    lab.disconnect("db2")
    lab.up()
    # The balancer needs a couple of health checks (rise 2, every 1 s) to see web2 UP again.
    wait_for("the lab up", lambda: lab.status()["up"])
    assert _hostname_over_ssh(lab, "web2") == "web2"
    wait_for("db2 link up", lambda: "master_link_status:up" in lab.exec("db2", "redis-cli info replication")[1])


@pytest.fixture
def ids_before(lab):
    return {n: h.container_id for n, h in lab.info.hosts.items()}


def test_lab_fresh_recreates_the_containers(ids_before, lab_fresh):
    lab = lab_fresh
    after = {n: h.container_id for n, h in lab.info.hosts.items()}
    assert set(after) == set(ids_before) and not set(after.values()) & set(ids_before.values())
    assert lab.status()["up"]
    assert "master_link_status:up" in lab.exec("db2", "redis-cli info replication")[1]
    assert _hostname_over_ssh(lab, "lb1") == "lb1"
