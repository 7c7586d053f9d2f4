"""The docker plugin's pure pieces: daemon selection, state planning, inverses, numbers."""

from __future__ import annotations

import pytest
from opsbook.model import parse_duration
from opsbook.plugin import HostInfo, Result
from opsbook.registry import Registry
from opsbook_plugins import docker as d
from opsbook_plugins.docker.container import ContainerArgs, _container_inverse, _plan_container
from opsbook_plugins.docker.execute import _strip_pid
from opsbook_plugins.docker.inventory import _filters
from opsbook_plugins.docker.logs import _when
from opsbook_plugins.docker.network import NetworkArgs, _network_inverse
from opsbook_plugins.docker.update import (
    UpdateArgs,
    _describe,
    _desired_body,
    _Machine,
    _previous_args,
    _update_inverse,
)
from pydantic import ValidationError

# --------------------------------------------------------------------------- registration


def test_actions_declare_check_idempotence_inverse_and_mutation():
    registry = Registry.from_entry_points()
    assert "docker" not in registry.broken
    spec = {
        name: registry.action(f"docker.{name}")
        for name in ("container", "exec", "logs", "inspect", "network", "update", "stats")
    }
    assert all(spec.values())
    assert (
        spec["container"].supports_check and spec["container"].mutates and spec["container"].inverse
    )
    assert spec["network"].mutates and spec["network"].inverse and spec["network"].idempotent
    assert spec["update"].inverse and spec["update"].supports_check
    for read_only in ("logs", "inspect", "stats"):
        assert spec[read_only].supports_check and spec[read_only].idempotent
    assert not spec["exec"].supports_check and spec["exec"].scalar_arg == "command"
    assert spec["exec"].shell_fields == frozenset({"command"})
    assert spec["container"].doc.startswith("Start, stop, restart")


def test_args_are_validated_with_readable_errors():
    container = Registry.from_entry_points().action("docker.container")
    with pytest.raises(ValidationError, match="state"):
        container.parse_args({"name": "web1", "state": "rebooted"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        container.parse_args({"name": "web1", "stat": "started"})
    assert container.parse_args({"timeout": "1m30s"}).timeout == 90.0


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        (5, 5.0),
        ("2.5", 2.5),
        ("1m 5s", 65.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 parsecs", "s", "10s later"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


# --------------------------------------------------------------------------- daemon selection


def test_daemon_precedence_host_var_then_ansible_var_then_extra_args_then_env():
    env = {"DOCKER_HOST": "unix:///env.sock"}
    assert d.daemon_for({}, env).base_url == "unix:///env.sock"
    assert d.daemon_for({}, env).source == "DOCKER_HOST=unix:///env.sock"
    extra = {"ansible_docker_extra_args": "--tlsverify -H tcp://127.0.0.1:2376"}
    assert d.daemon_for(extra, env).base_url == "tcp://127.0.0.1:2376"
    assert d.daemon_for(extra, env).tls_verify is True
    both = {**extra, "ansible_docker_host": "unix:///ansible.sock"}
    assert d.daemon_for(both, env).base_url == "unix:///ansible.sock"
    mine = {**both, "docker_host": "/run/mine.sock"}
    daemon = d.daemon_for(mine, env)
    assert daemon.base_url == "unix:///run/mine.sock"
    assert daemon.source == "host var docker_host; DOCKER_HOST=unix:///env.sock"


def test_default_socket_when_nothing_is_set():
    daemon = d.daemon_for({}, {})
    assert daemon.base_url == "unix:///var/run/docker.sock"
    assert daemon.source == "the default socket; DOCKER_HOST is not set"
    assert not daemon.uses_tls


def test_tls_from_environment_and_host_vars():
    env = {
        "DOCKER_HOST": "tcp://127.0.0.1:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": "/certs",
    }
    daemon = d.daemon_for({}, env)
    assert daemon.tls_verify and daemon.cert_path == "/certs" and daemon.uses_tls
    off = d.daemon_for({"docker_tls_verify": "no"}, env)
    assert not off.tls_verify
    flags = d.daemon_for(
        {"ansible_docker_extra_args": "--tlscacert=/ca.pem --tlscert /c.pem --tlskey /k.pem"}, {}
    )
    assert (flags.ca_cert, flags.client_cert, flags.client_key) == ("/ca.pem", "/c.pem", "/k.pem")


def test_ssh_daemon_urls_pass_through():
    assert (
        d.daemon_for({"docker_host": "ssh://ops@127.0.0.1:2222"}, {}).base_url
        == "ssh://ops@127.0.0.1:2222"
    )


def test_container_name_resolution():
    assert d.container_name_for(HostInfo("web1", {}), "explicit") == "explicit"
    assert (
        d.container_name_for(HostInfo("web1", {"docker_container": "c1", "container": "c2"}))
        == "c1"
    )
    assert d.container_name_for(HostInfo("web1", {"container": "lab-web1"})) == "lab-web1"
    docker_host = HostInfo("web1", {"ansible_connection": "docker", "ansible_host": "ctr-web1"})
    assert d.container_name_for(docker_host) == "ctr-web1"
    assert d.container_name_for(HostInfo("web1", {"ansible_host": "10.0.0.1"})) == "web1"


# --------------------------------------------------------------------------- planning and inverses


@pytest.mark.parametrize(
    "state, status, verb",
    [
        ("started", "running", None),
        ("started", "exited", "start"),
        ("started", "created", "start"),
        ("started", "paused", "unpause"),
        ("stopped", "running", "stop"),
        ("stopped", "paused", "stop"),
        ("stopped", "exited", None),
        ("restarted", "exited", "restart"),
        ("killed", "running", "kill"),
        ("killed", "exited", None),
        ("paused", "running", "pause"),
        ("paused", "paused", None),
        ("paused", "exited", "cannot-pause"),
        ("unpaused", "paused", "unpause"),
        ("unpaused", "running", None),
        ("absent", "exited", "remove"),
        ("absent", None, None),
        ("started", None, "missing"),
    ],
)
def test_plan_container(state, status, verb):
    assert _plan_container(state, status) == verb


def _container_args(**kw):
    return ContainerArgs.model_validate(kw)


def test_container_inverse_restores_what_was_there():
    changed = lambda before: Result.ok(changed=True, data={"name": "c", "before": before})
    assert _container_inverse(_container_args(state="stopped"), changed("running")) == (
        "docker.container",
        {"name": "c", "state": "started"},
    )
    assert _container_inverse(_container_args(state="started"), changed("exited")) == (
        "docker.container",
        {"name": "c", "state": "stopped"},
    )
    assert _container_inverse(_container_args(state="started"), changed("paused")) == (
        "docker.container",
        {"name": "c", "state": "paused"},
    )
    assert (
        _container_inverse(_container_args(state="paused"), changed("running"))[1]["state"]
        == "unpaused"
    )
    assert _container_inverse(_container_args(state="restarted"), changed("running")) is None
    assert _container_inverse(_container_args(state="absent"), changed("running")) is None
    assert _container_inverse(_container_args(state="stopped"), Result.ok(changed=False)) is None


def test_network_inverse_carries_the_old_address_and_aliases():
    args = NetworkArgs.model_validate(
        {"network": "lab", "state": "disconnected", "container": "db1"}
    )
    result = Result.ok(
        changed=True,
        data={"container": "db1", "previous": {"ipv4_address": "172.29.77.21", "aliases": ["db1"]}},
    )
    assert _network_inverse(args, result) == (
        "docker.network",
        {
            "network": "lab",
            "container": "db1",
            "state": "connected",
            "aliases": ["db1"],
            "ipv4_address": "172.29.77.21",
        },
    )
    back = NetworkArgs.model_validate(
        {"network": "lab", "state": "connected", "container": "db1"}
    )
    assert (
        _network_inverse(back, Result.ok(changed=True, data={"container": "db1"}))[1]["state"]
        == "disconnected"
    )


# --------------------------------------------------------------------------- limits


def _machine():
    return _Machine(cpus=4, memory=8 * 2**30)


def test_update_body_only_what_changes_and_keeps_swap_allowance():
    current = {"Memory": 256 * 2**20, "MemorySwap": 512 * 2**20, "NanoCpus": 10**9}
    args = UpdateArgs.model_validate({"memory": "1g", "cpus": 1})
    body, notes = _desired_body(args, current, _machine)
    assert body == {"Memory": 2**30, "MemorySwap": 2**30 + 256 * 2**20} and notes == []


def test_update_body_for_quota_based_containers_uses_the_quota():
    current = {"CpuPeriod": 100000, "CpuQuota": 50000}
    body, _ = _desired_body(UpdateArgs.model_validate({"cpus": 2}), current, _machine)
    assert body == {"CpuQuota": 200000}



def test_update_says_a_quota_based_cpu_change_in_cpus():
    """A container created with --cpu-period/--cpu-quota changes its CPUs through the quota;
    the (dry-run) message still names the CPUs, not only the memory."""
    current = {"CpuPeriod": 100000, "CpuQuota": 50000, "Memory": 64 * 2**20}
    args = UpdateArgs.model_validate({"cpus": 1.5, "memory": "256m"})
    body, _ = _desired_body(args, current, _machine)
    said = _describe(body, current)
    assert "cpus=1.5 (quota 150000/100000)" in said and "Memory=256MiB" in said, said

def test_update_body_lifting_limits_uses_the_machine_and_notes_it():
    current = {"Memory": 2**30, "MemorySwap": 2 * 2**30, "NanoCpus": 5 * 10**8, "CpuShares": 512}
    args = UpdateArgs.model_validate({"memory": 0, "cpus": 0, "cpu_shares": 0, "memory_swap": -1})
    body, notes = _desired_body(args, current, _machine)
    assert body == {"NanoCpus": 4 * 10**9, "CpuShares": 1024, "Memory": 8 * 2**30, "MemorySwap": -1}
    assert len(notes) == 2 and "set it to all 4 CPUs instead" in notes[0]
    assert "machine's total memory (8.0 GiB)" in notes[1]


def test_update_previous_args_undo_the_body():
    current = {"Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "PidsLimit": None}
    body = {"Memory": 2**28, "MemorySwap": 2**29, "NanoCpus": 10**9, "PidsLimit": 100}
    assert _previous_args(body, current) == {
        "cpus": 0,
        "memory": 0,
        "memory_swap": -1,
        "pids_limit": 0,
    }


def test_update_inverse_is_none_without_change():
    args = UpdateArgs.model_validate({"memory": "1g"})
    assert _update_inverse(args, Result.ok(changed=False)) is None
    done = Result.ok(changed=True, data={"container": "c", "previous": {"memory": 5}})
    assert _update_inverse(args, done) == ("docker.update", {"container": "c", "memory": 5})


# --------------------------------------------------------------------------- facts and numbers


def test_stats_summary_computes_docker_stats_numbers():
    raw = {
        "read": "2024-01-01T00:00:00Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 300},
            "system_cpu_usage": 2000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 150, "limit": 1000, "stats": {"total_inactive_file": 50}},
        "networks": {
            "eth0": {"rx_bytes": 10, "tx_bytes": 20},
            "eth1": {"rx_bytes": 1, "tx_bytes": 2},
        },
        "blkio_stats": {
            "io_service_bytes_recursive": [{"op": "Read", "value": 7}, {"op": "Write", "value": 9}]
        },
        "pids_stats": {"current": 4},
    }
    s = d.stats_summary(raw)
    assert s["cpu_percent"] == 40.0 and s["memory_usage"] == 100 and s["memory_percent"] == 10.0
    assert (
        s["net_rx_bytes"],
        s["net_tx_bytes"],
        s["block_read_bytes"],
        s["block_write_bytes"],
    ) == (11, 22, 7, 9)
    assert s["pids"] == 4


def test_container_facts_flatten_inspect():
    attrs = {
        "Id": "0123456789abcdef",
        "Name": "/web1",
        "RestartCount": 2,
        "Config": {"Image": "nginx", "Labels": {"a": "b"}},
        "State": {
            "Status": "running",
            "Running": True,
            "Health": {
                "Status": "unhealthy",
                "FailingStreak": 3,
                "Log": [{"ExitCode": 1, "Output": "boom\n"}],
            },
        },
        "HostConfig": {
            "NanoCpus": 1_500_000_000,
            "Memory": 64,
            "RestartPolicy": {"Name": "always"},
        },
        "NetworkSettings": {
            "Networks": {"lab": {"IPAddress": "172.29.77.11", "Aliases": ["web1"]}},
            "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "24111"}], "22/tcp": None},
        },
    }
    f = d.container_facts(attrs)
    assert (f["id"], f["name"], f["status"], f["health"], f["health_failing_streak"]) == (
        "0123456789ab",
        "web1",
        "running",
        "unhealthy",
        3,
    )
    assert f["health_log"] == [{"exit_code": 1, "output": "boom"}]
    assert (
        f["resources"]["cpus"] == 1.5
        and f["restart_policy"] == "always"
        and f["restart_count"] == 2
    )
    assert f["networks"]["lab"]["ip"] == "172.29.77.11"
    assert f["ports"] == {"8080/tcp": ["127.0.0.1:24111"], "22/tcp": []}


def test_inventory_filters_accept_a_label_mapping():
    assert _filters({"label": {"role": "web", "canary": None}}) == {
        "label": ["role=web", "canary"]
    }
    assert _filters({"name": "web"}) == {"name": "web"}


def test_exec_pid_line_is_stripped_from_stderr():
    assert _strip_pid(b"OPSBOOK-PID 42\nreal error\n") == (42, b"real error\n")
    assert _strip_pid(b"other\n") == (None, b"other\n")


def test_log_times_accept_durations_epochs_and_iso():
    now = 1_700_000_000.0
    assert _when("15m", now).timestamp() == now - 900
    assert _when("1700000000", now).timestamp() == 1_700_000_000
    assert _when("2024-05-01T10:00:00Z", now).isoformat() == "2024-05-01T10:00:00+00:00"
    with pytest.raises(d.DockerError, match="neither a duration ago"):
        _when("last tuesday", now)
