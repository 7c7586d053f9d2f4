"""docker.network (isolating a node really cuts it off) and docker.update (limits, restored)."""

from __future__ import annotations

import pytest
from opsbook.plugin import Status
from opsbook_lab.pytest_plugin import wait_for
from opsbook_plugins import docker as dockerplugin
from opsbook_plugins import probe as probeplugin
from opsbook_test_sandbox import Runner

pytestmark = pytest.mark.lab


@pytest.fixture
def probe(docker_lab):
    runner = Runner(probeplugin.plugin, docker_lab[1])
    yield runner
    runner.close()


def test_disconnect_isolates_and_connect_restores_the_node(sandbox, run, probe):
    server, client = sandbox.server(), sandbox.server(publish=False)
    probe.hosts[client.name] = client.host()
    target = server.host()
    # Addressed by name: Docker's DNS answers for it only while it is on the network.
    check = {"url": f"http://{server.name}:8080/healthz", "from": [client.name], "timeout": "2s"}
    assert probe("http", check, host=target).status is Status.OK
    ping = {"host": server.ip, "from": [client.name]}
    assert probe("icmp", ping, host=target).status is Status.OK

    cut = run(
        "network", {"container": server.name, "network": sandbox.network, "state": "disconnected"}
    )
    assert cut.status is Status.OK and cut.changed
    assert cut.msg == f"disconnected {server.name} from {sandbox.network}"
    assert cut.data["previous"]["ip"] == server.ip
    pinged = probe(
        "icmp",
        {"host": server.ip, "from": [client.name], "state": "unreachable", "timeout": "1s"},
        host=target,
    )
    assert pinged.status is Status.OK, pinged.msg
    assert pinged.msg.startswith(
        f"from {client.name}: {server.ip} does not answer ping, as expected (no reply to 1 ping"
    )
    isolated = probe("http", check, host=target)
    assert isolated.status is Status.FAILED
    assert isolated.msg.startswith(
        f"from {client.name}: expected HTTP 2xx from http://{server.name}:8080/healthz, got no answer"
    )

    spec = dockerplugin.plugin.actions["network"]
    back_action, back_args = spec.inverse(
        spec.parse_args(
            {"container": server.name, "network": sandbox.network, "state": "disconnected"}
        ),
        cut,
    )
    assert back_action == "docker.network" and back_args["state"] == "connected"
    joined = run("network", back_args)
    assert joined.changed and joined.msg == f"connected {server.name} to {sandbox.network}"
    wait_for(
        f"{target} answering over http",
        lambda: probe("http", check, host=target).status is Status.OK,
        timeout=10,
    )


def test_network_is_idempotent_and_check_mode_only_reports(sandbox, run):
    box = sandbox.server(publish=False)
    args = {"container": box.name, "network": sandbox.network, "state": "disconnected"}
    would = run("network", args, check_mode=True)
    assert would.changed and would.msg == f"would disconnect {box.name} from {sandbox.network}"
    assert (
        sandbox.network
        in sandbox.client.containers.get(box.name).attrs["NetworkSettings"]["Networks"]
    )
    assert run("network", args).changed
    again = run("network", args)
    assert again.status is Status.OK and not again.changed
    assert again.msg == f"{box.name} is already disconnected from {sandbox.network}"
    spec = dockerplugin.plugin.actions["network"]
    assert spec.inverse(spec.parse_args(args), again) is None
    assert spec.mutates


def test_reconnect_restores_a_static_address_and_aliases(sandbox, run):
    box = sandbox.server(publish=False)
    net = sandbox.client.networks.get(sandbox.network)
    net.disconnect(box.id)
    subnet = net.attrs["IPAM"]["Config"][0]["Subnet"]
    static = subnet.rsplit(".", 1)[0] + ".200"
    net.connect(box.id, ipv4_address=static, aliases=["primary-db"])
    args = {"container": box.name, "network": sandbox.network, "state": "disconnected"}
    cut = run("network", args)
    assert cut.data["previous"]["ipv4_address"] == static
    assert "primary-db" in cut.data["previous"]["aliases"]
    spec = dockerplugin.plugin.actions["network"]
    _, back = spec.inverse(spec.parse_args(args), cut)
    assert back["ipv4_address"] == static and "primary-db" in back["aliases"]
    run("network", back)
    endpoint = sandbox.client.containers.get(box.name).attrs["NetworkSettings"]["Networks"][
        sandbox.network
    ]
    assert endpoint["IPAddress"] == static and "primary-db" in endpoint["Aliases"]


def test_unknown_network_lists_the_networks_there(sandbox, run):
    box = sandbox.server(publish=False)
    result = run(
        "network", {"container": box.name, "network": sandbox.network + "x", "state": "connected"}
    )
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        f"no network named {sandbox.network}x on {sandbox.docker_host}; networks there: "
    )
    assert result.msg.endswith(f'(did you mean "{sandbox.network}"?)')


def test_update_changes_limits_and_the_inverse_restores_them(sandbox, run):
    box = sandbox.server(mem_limit="256m", nano_cpus=1_000_000_000)
    args = {"container": box.name, "memory": "512m", "cpus": 1.5}
    would = run("update", args, check_mode=True)
    assert (
        would.changed
        and would.msg == f"would update {box.name}: cpus=1.5, Memory=512MiB, MemorySwap=768MiB"
    )
    host_cfg = sandbox.client.containers.get(box.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == 256 * 2**20

    result = run("update", args)
    assert result.status is Status.OK and result.changed, result.msg
    host_cfg = sandbox.client.containers.get(box.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == 512 * 2**20 and host_cfg["NanoCpus"] == 1_500_000_000
    assert result.data["after"]["cpus"] == 1.5
    assert result.data["previous"] == {
        "cpus": 1.0,
        "memory": 256 * 2**20,
        "memory_swap": 512 * 2**20,
    }

    spec = dockerplugin.plugin.actions["update"]
    action, back = spec.inverse(spec.parse_args(args), result)
    assert action == "docker.update"
    restored = run("update", back)
    assert restored.changed
    host_cfg = sandbox.client.containers.get(box.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == 256 * 2**20 and host_cfg["NanoCpus"] == 1_000_000_000

    same = run("update", back)
    assert not same.changed and same.msg == f"{box.name} already has these limits"


def test_rollback_to_no_limit_uses_the_whole_machine_and_says_why(sandbox, run):
    box = sandbox.server()
    args = {"container": box.name, "memory": "300m", "cpus": 0.5, "pids_limit": 200}
    result = run("update", args)
    assert result.changed, result.msg
    assert result.data["previous"] == {"cpus": 0, "memory": 0, "memory_swap": -1, "pids_limit": 0}
    host_cfg = sandbox.client.containers.get(box.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == 300 * 2**20 and host_cfg["PidsLimit"] == 200

    spec = dockerplugin.plugin.actions["update"]
    _, back = spec.inverse(spec.parse_args(args), result)
    restored = run("update", back)
    assert restored.status is Status.OK and restored.changed, restored.msg
    info = sandbox.client.info()
    host_cfg = sandbox.client.containers.get(box.name).attrs["HostConfig"]
    assert host_cfg["Memory"] == info["MemTotal"]
    assert host_cfg["NanoCpus"] == info["NCPU"] * 10**9
    assert not host_cfg["PidsLimit"] or host_cfg["PidsLimit"] <= 0
    assert (
        "docker cannot lift a memory limit from a running container: set it to the machine's total memory"
        in restored.msg
    )
    assert "set it to all" in restored.msg


def test_update_with_a_bad_size_explains(sandbox, run):
    box = sandbox.server(publish=False)
    result = run("update", {"container": box.name, "memory": "lots"})
    assert result.status is Status.FAILED
    assert result.msg == '"lots" is not a size (examples: 512m, 1g, 1073741824)'
