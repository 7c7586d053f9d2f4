"""probe.* against the lab: its published ports on 127.0.0.1, and from inside its containers."""

from __future__ import annotations

import shutil

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_plugins import probe as probeplugin
from opsbook_test_sandbox import Runner

pytestmark = pytest.mark.lab

needs_ping = pytest.mark.skipif(shutil.which("ping") is None, reason="no ping on the controller")


@pytest.fixture
def run(lab_info):
    runner = Runner(probeplugin.plugin, lab_info.docker_host)
    # The lab's hosts as docker-connection vantage points (their containers have curl, ping, bash).
    for name, info in lab_info.hosts.items():
        runner.hosts[name] = HostInfo(
            name,
            {
                "ansible_connection": "docker",
                "ansible_host": info.container,
                "docker_host": lab_info.docker_host,
                "internal_address": info.lab_ip,
            },
        )
    yield runner
    runner.close()


def web(lab_info, name: str = "web1") -> HostInfo:
    """A web host as the ssh inventory describes it: reached on 127.0.0.1 from the controller."""
    info = lab_info.hosts[name]
    return HostInfo(
        name,
        {"ansible_host": "127.0.0.1", "http_port": info.http_port, "internal_address": info.lab_ip},
    )


# --------------------------------------------------------------------------- from the controller


def test_http_healthz_of_a_lab_web_server(lab_info, run):
    port = lab_info.hosts["web1"].http_port
    result = run(
        "http",
        {"port": port, "path": "/healthz", "status": 200, "body_regex": "^ok web1"},
        host=web(lab_info),
    )
    assert result.status is Status.OK, result.msg
    assert result.msg.startswith(f"HTTP 200 from http://127.0.0.1:{port}/healthz in ")


def test_http_wrong_status_from_the_lab(lab_info, run):
    port = lab_info.hosts["web2"].http_port
    result = run(
        "http",
        {"url": f"http://127.0.0.1:{port}/missing", "status": 200},
        host=web(lab_info, "web2"),
    )
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        f"expected HTTP 200 from http://127.0.0.1:{port}/missing, got 404 in "
    )


def test_http_body_mismatch_from_the_lab(lab_info, run):
    port = lab_info.hosts["web2"].http_port
    result = run(
        "http",
        {"url": f"http://127.0.0.1:{port}/whoami", "body_regex": "^web1$"},
        host=web(lab_info, "web2"),
    )
    assert result.status is Status.FAILED
    assert result.msg.endswith("but the body does not match /^web1$/ (body starts: 'web2')")


def test_http_latency_threshold_exceeded(lab_info, run):
    port = lab_info.hosts["lb1"].http_port
    result = run(
        "http",
        {"url": f"http://127.0.0.1:{port}/healthz", "max_latency": 1e-6},
        host=web(lab_info, "lb1"),
    )
    assert result.status is Status.FAILED and result.msg.endswith("slower than max_latency 0.0 ms")


def test_tcp_to_the_lab_redis_and_to_a_closed_port(lab_info, run):
    redis = lab_info.hosts["db1"].redis_port
    assert run("tcp", {"port": redis}, host=web(lab_info, "db1")).status is Status.OK
    result = run("tcp", {"host": "127.0.0.1", "port": 1})
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        "expected 127.0.0.1:1 to accept a connection, got connection refused in "
    )


@needs_ping
def test_icmp_to_a_lab_container_address(lab_info, run):
    target = HostInfo("web1", {"ansible_host": lab_info.hosts["web1"].lab_ip})
    result = run("icmp", {"count": 2}, host=target)
    assert result.status is Status.OK, result.msg
    assert result.msg.startswith(f"{lab_info.hosts['web1'].lab_ip} answers ping (2/2 replies")


# --------------------------------------------------------------------------- from inside the lab


def test_http_from_several_vantage_points_with_overrides(lab_info, run):
    w1 = lab_info.hosts["web1"]
    args = {
        "url": f"http://127.0.0.1:{w1.http_port}/healthz",
        "body_regex": "ok web1",
        "from": ["controller", {"name": "web2", "url": f"http://{w1.lab_ip}:8080/healthz"}, "lb1"],
    }
    # lb1 has no override: it asks the same URL, and 127.0.0.1:<published port> is lb1 itself.
    result = run("http", args, host=web(lab_info))
    assert result.status is Status.OK, result.msg  # 2 of 3 is the default majority
    assert result.msg.startswith(
        "2 of 3 vantage points passed (quorum 2): controller: HTTP 200 from "
    )
    vantage = result.data["vantage"]
    assert vantage["controller"]["ok"] and vantage["web2"]["ok"] and not vantage["lb1"]["ok"]
    assert vantage["web2"]["url"] == f"http://{w1.lab_ip}:8080/healthz"
    assert vantage["web2"]["latency_ms"] > 0
    assert "lb1: expected HTTP 2xx from" in result.msg
    assert run("http", {**args, "quorum": 3}, host=web(lab_info)).status is Status.FAILED


def test_tcp_from_a_container_uses_the_internal_address(lab_info, run):
    result = run("tcp", {"port": 6379, "from": ["web1"]}, host=web(lab_info, "db2"))
    assert result.status is Status.OK, result.msg
    assert result.msg.startswith(f"from web1: {lab_info.hosts['db2'].lab_ip}:6379 accepted a connection in ")
    closed = run("tcp", {"port": 6380, "from": ["web1"]}, host=web(lab_info, "db2"))
    assert closed.status is Status.FAILED
    assert closed.msg.startswith(
        f"from web1: expected {lab_info.hosts['db2'].lab_ip}:6380 to accept a connection, got connection refused in "
    )


def test_icmp_from_a_container_to_another(lab_info, run):
    result = run("icmp", {"from": ["lb1"]}, host=web(lab_info, "web2"))
    assert result.status is Status.OK, result.msg
    assert result.msg.startswith(f"from lb1: {lab_info.hosts['web2'].lab_ip} answers ping (1/1 replies")


def test_unknown_vantage_point_is_a_failed_vote_with_the_reason(lab_info, run):
    redis = lab_info.hosts["db1"].redis_port
    args = {"port": redis, "from": ["controller", "nosuchhost"], "quorum": 1}
    result = run("tcp", args, host=web(lab_info, "db1"))
    assert result.status is Status.OK, result.msg
    assert result.msg.endswith("nosuchhost: cannot probe from nosuchhost: no host named nosuchhost")
    assert result.data["passed"] == 1 and result.data["quorum"] == 1
    assert run("tcp", {**args, "quorum": 2}, host=web(lab_info, "db1")).status is Status.FAILED
