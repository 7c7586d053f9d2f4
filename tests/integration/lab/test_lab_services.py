"""The services in the lab are real: nginx, HAProxy with health checks, Redis replication."""

from __future__ import annotations

import itertools
import socket
import urllib.request
import uuid

import pytest
from opsbook_lab.pytest_plugin import wait_for


def _get(port: int, path: str = "/") -> tuple[int, dict, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()


def _redis(port: int, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(65536)


@pytest.mark.parametrize("name", ["web1", "web2"])
def test_web_healthz_and_page(lab_info, name):
    hi = lab_info.hosts[name]
    status, headers, body = _get(hi.http_port, "/healthz")
    assert status == 200 and body.strip() == f"ok {name}"
    status, headers, body = _get(hi.http_port, "/")
    assert status == 200 and f"served by {name}" in body
    assert headers["x-lab-host"] == name


def test_balancer_alternates_backends(lab_info):
    lb = lab_info.hosts["lb1"]
    seen = []
    for _ in range(6):
        status, headers, body = _get(lb.http_port, "/healthz")
        assert status == 200
        seen.append(headers["x-lab-backend"])
        assert body.strip() == f"ok {seen[-1]}"
    assert set(seen) == {"web1", "web2"}
    assert all(a != b for a, b in itertools.pairwise(seen)), seen   # round robin


def test_balancer_drain_over_ssh(lab):
    lb = lab.info.hosts["lb1"]
    with lab.ssh("lb1") as cl:
        def run(cmd):
            _, o, e = cl.exec_command(cmd, timeout=20)
            rc = o.channel.recv_exit_status()
            return rc, o.read().decode() + e.read().decode()

        rc, out = run("lb-backend list")
        assert rc == 0 and "web1 UP" in out and "web2 UP" in out, out
        try:
            assert run("lb-backend drain web1")[0] == 0
            assert "web1 DRAIN" in run("lb-backend list")[1]
            backends = {_get(lb.http_port)[1]["x-lab-backend"] for _ in range(6)}
            assert backends == {"web2"}
            # re-point web1's slot at web2's address: both slots now hit web2
            rc, out = run(f"lb-backend addr web1 {lab.info.hosts['web2'].lab_ip} 8080")
            assert rc == 0, out
            assert run("lb-backend ready web1")[0] == 0
            backends = {_get(lb.http_port)[1]["x-lab-host"] for _ in range(6)}
            assert backends == {"web2"}
        finally:
            run(f"lb-backend addr web1 {lab.info.hosts['web1'].lab_ip} 8080")
            run("lb-backend ready web1")
        wait_for("both backends serving", lambda: {_get(lb.http_port)[1]["x-lab-host"] for _ in range(4)} == {"web1", "web2"})


def test_balancer_health_check_takes_out_a_dead_backend(lab_healed):
    lab = lab_healed
    lb = lab.info.hosts["lb1"]
    rc, out = lab.exec("web2", "service nginx stop")
    assert rc == 0, out
    try:
        wait_for("web2 DOWN on the balancer", lambda: "web2 DOWN" in lab.exec("lb1", "lb-backend list")[1])
        assert {_get(lb.http_port)[1]["x-lab-host"] for _ in range(6)} == {"web1"}
    finally:
        lab.exec("web2", "service nginx start")
    wait_for("web2 UP on the balancer", lambda: "web2 UP" in lab.exec("lb1", "lb-backend list")[1])


def test_redis_replication(lab_info):
    db1, db2 = lab_info.hosts["db1"], lab_info.hosts["db2"]
    key, val = f"lab-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    assert _redis(db1.redis_port, "SET", key, val) == b"+OK\r\n"
    wait_for("the key replicated to db2", lambda: val.encode() in _redis(db2.redis_port, "GET", key))
    # the standby is read-only
    assert _redis(db2.redis_port, "SET", key, "x").startswith(b"-READONLY")
    info = _redis(db2.redis_port, "INFO", "replication").decode()
    assert "role:slave" in info and "master_link_status:up" in info


def test_service_restart_over_ssh(lab):
    with lab.ssh("web1") as cl:
        def run(cmd):
            _, o, e = cl.exec_command(cmd, timeout=30)
            rc = o.channel.recv_exit_status()
            return rc, o.read().decode() + e.read().decode()

        rc, pid_before = run("cat /run/nginx.pid")
        assert rc == 0
        rc, out = run("service nginx restart")
        assert rc == 0, out
        rc, pid_after = run("cat /run/nginx.pid")
        assert rc == 0 and pid_after.strip() != pid_before.strip()
        rc, out = run("service nginx status")
        assert rc == 0 and "is running" in out
        assert _get(lab.info.hosts["web1"].http_port, "/healthz")[0] == 200
        # stop -> status reports it, start -> serving again
        assert run("service nginx stop")[0] == 0
        rc, out = run("service nginx status")
        assert rc != 0 and "not running" in out
        assert run("service nginx start")[0] == 0
        wait_for("web1 healthy", lambda: _get(lab.info.hosts["web1"].http_port, "/healthz")[0] == 200)
    with lab.ssh("db1") as cl:
        _, o, _ = cl.exec_command("service redis-server status", timeout=30)
        assert o.channel.recv_exit_status() == 0
    with lab.ssh("lb1") as cl:
        _, o, _ = cl.exec_command("service haproxy reload && service haproxy status", timeout=30)
        assert o.channel.recv_exit_status() == 0


def test_redis_failover_and_fencing(lab_healed):
    """What a failover runbook does: fence db1 from db2, promote db2, then undo it."""
    lab = lab_healed
    db1, db2 = lab.info.hosts["db1"], lab.info.hosts["db2"]
    fence = f"iptables -%s INPUT -p tcp --dport 6379 -s {db2.lab_ip} -j REJECT --reject-with tcp-reset"
    try:
        rc, out = lab.exec("db1", fence % "A")
        assert rc == 0, out
        wait_for("db2 link down", lambda: "master_link_status:down" in lab.exec("db2", "redis-cli info replication")[1])
        rc, out = lab.exec("db2", "redis-cli replicaof no one")
        assert rc == 0 and "OK" in out
        assert "role:master" in _redis(db2.redis_port, "INFO", "replication").decode()
        assert _redis(db2.redis_port, "SET", "lab-failover", "db2") == b"+OK\r\n"
    finally:
        lab.exec("db1", fence % "D")
        lab.exec("db2", "redis-cli replicaof db1 6379")
    wait_for("db2 link up", lambda: "master_link_status:up" in lab.exec("db2", "redis-cli info replication")[1])
    assert _redis(db1.redis_port, "SET", "lab-failover", "db1") == b"+OK\r\n"
    wait_for("db2 following db1", lambda: b"db1" in _redis(db2.redis_port, "GET", "lab-failover"))
