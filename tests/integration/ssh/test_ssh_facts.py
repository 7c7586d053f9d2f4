"""ssh.setup (facts) on the lab's sshd containers: one round trip, values the host itself states."""

from __future__ import annotations

import pytest
from opsbook.plugin import Status

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _count_round_trips(web):
    calls = []
    run = web.conn.run

    def counted(command, **kw):
        calls.append(command)
        return run(command, **kw)

    web.conn.run = counted
    return calls


def test_setup_gathers_every_fact_in_one_round_trip(node):
    web1 = node("web1")
    calls = _count_round_trips(web1)
    result = web1.act("setup", {})
    assert result.status is Status.OK, result.msg
    assert len(calls) == 1  # one shell script, parsed on the controller
    facts = result.facts["ansible_facts"]
    assert result.facts["ansible_hostname"] == facts["hostname"] == web1.sh("hostname").strip().split(".")[0]
    meminfo = dict(line.split(":", 1) for line in web1.sh("cat /proc/meminfo").splitlines())
    assert facts["memtotal_mb"] == int(meminfo["MemTotal"].split()[0]) // 1024
    assert facts["processor_vcpus"] == int(web1.sh("grep -c ^processor /proc/cpuinfo"))
    release = dict(line.split("=", 1) for line in web1.sh("cat /etc/os-release").splitlines() if "=" in line)
    assert facts["distribution"].lower() == release["ID"].strip('"')
    assert facts["distribution_major_version"] == release["VERSION_ID"].strip('"').split(".")[0]
    assert facts["os_family"] == "Debian"
    assert facts["uptime_seconds"] >= 0
    assert abs(int(facts["date_time"]["epoch"]) - int(web1.sh("date +%s"))) < 120
    assert facts["service_mgr"]  # PID 1's name, or what is installed
    route = web1.sh("ip -4 route get 8.8.8.8 2>/dev/null || true").split()
    if "src" in route:  # the lab's networks may have no default route
        assert facts["default_ipv4"]["address"] == route[route.index("src") + 1]
        assert facts["default_ipv4"]["address"] in facts["all_ipv4_addresses"]
    for mount in facts["mounts"]:
        size, blocks = web1.sh(f"stat -f -c '%S %b' -- {mount['mount']}").split()
        assert mount["size_total"] == int(size) * int(blocks)
        assert 0 <= mount["size_available"] <= mount["size_total"]
        assert mount["device"].startswith("/") or ":/" in mount["device"]


def test_setup_filter_and_check_mode(node):
    web1 = node("web1")
    result = web1.act("setup", {"filter": "ansible_distribution*,ansible_memtotal_mb"}, check=True)
    assert result.status is Status.OK and not result.changed  # read-only: runs in check mode
    injected = {k for k in result.facts if k != "ansible_facts"}
    assert injected == {"ansible_distribution", "ansible_distribution_version", "ansible_distribution_major_version",
                        "ansible_distribution_release", "ansible_memtotal_mb"}
    assert result.data["ansible_facts"]["ansible_memtotal_mb"] == result.facts["ansible_memtotal_mb"]


def test_setup_over_a_container_connection_gathers_what_the_container_has(docker_node):
    web1 = docker_node("web1")
    result = web1.act("setup", {})
    assert result.status is Status.OK, result.msg
    facts = result.facts["ansible_facts"]
    assert facts["hostname"] == web1.sh("hostname").strip().split(".")[0]
    assert facts["memtotal_mb"] > 0 and facts["processor_vcpus"] >= 1
