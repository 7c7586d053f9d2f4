"""The `docker` connection (commands and files in containers without sshd), the inventory
source, and what a person reads when the daemon or the container is not there."""

from __future__ import annotations

import threading
import time

import pytest
from opsbook.errors import InventoryError
from opsbook.plugin import Become, Connection, HostInfo, Status
from opsbook.registry import Registry
from opsbook_plugins import docker as dockerplugin
from opsbook_plugins.docker import (
    DaemonUnreachable,
    DockerError,
    docker_connection,
    docker_inventory,
)
from opsbook_test_sandbox import LABEL, RUN_ID, Runner

pytestmark = pytest.mark.lab


@pytest.fixture
def conn(sandbox):
    box = sandbox.server()
    connection = docker_connection(box.host())
    yield box, connection
    connection.close()


# --------------------------------------------------------------------------- connection


def test_the_connection_is_registered_for_ansible_connection_docker():
    registry = Registry.from_entry_points()
    assert registry.connection_factory("docker") is docker_connection


def test_run_argv_and_shell_strings(conn):
    _, c = conn
    assert isinstance(c, Connection)
    argv = c.run(["printf", "%s", "two words; $HOME"])
    assert (argv.rc, argv.stdout) == (0, "two words; $HOME")
    shell = c.run("echo $((1+2)) && echo oops >&2 && exit 4")
    assert (shell.rc, shell.stdout, shell.stderr) == (4, "3\n", "oops\n")
    assert shell.duration > 0


def test_run_with_stdin_become_and_live_output(conn):
    _, c = conn
    lines: list[str] = []
    result = c.run(
        "cat; id -un", stdin=b"piped\n", become=Become(user="nobody"), on_output=lines.append
    )
    assert result.stdout == "piped\nnobody\n" and lines == ["piped", "nobody"]


def test_run_timeout_and_cancel_end_the_command(conn):
    _, c = conn
    started = time.monotonic()
    result = c.run("sleep 126", timeout=1)
    assert result.rc == -1 and "timed out after 1 s" in result.stderr
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = c.run(["sleep", "127"], cancel=cancel)
    assert result.rc == -1 and "cancelled" in result.stderr
    assert time.monotonic() - started < 8
    assert "sleep 12" not in c.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout


def test_put_is_atomic_and_sets_the_mode(conn):
    _, c = conn
    c.put(b"#!/bin/sh\necho deployed\n", "/usr/local/bin/hello", mode=0o755)
    assert c.run(["/usr/local/bin/hello"]).stdout == "deployed\n"
    listing = c.run("stat -c '%a' /usr/local/bin/hello; ls -a /usr/local/bin").stdout
    assert listing.startswith("755\n") and ".opsbook-" not in listing
    c.put(b"second\n", "/usr/local/bin/hello")
    assert c.run(["cat", "/usr/local/bin/hello"]).stdout == "second\n"


def test_put_into_a_missing_directory_fails_clearly(conn):
    _, c = conn
    with pytest.raises(Exception, match="no/such/dir|Could not find|not found"):
        c.put(b"x", "/no/such/dir/file")


def test_get_copies_files_and_follows_symlinks(conn, tmp_path):
    box, c = conn
    c.run("printf 'line1\\nline2\\n' > /tmp/app.log && ln -sf /tmp/app.log /tmp/current.log")
    size = c.get("/tmp/current.log", tmp_path / "out" / "current.log")
    assert size == 12 and (tmp_path / "out" / "current.log").read_text() == "line1\nline2\n"
    with pytest.raises(DockerError, match=f"no file /tmp/nope in {box.name}"):
        c.get("/tmp/nope", tmp_path / "nope")


def test_commands_on_a_lab_host_through_the_docker_inventory_vars(lab_info):
    web2 = lab_info.hosts["web2"]
    host = HostInfo(
        "web2",
        {
            "ansible_connection": "docker",
            "ansible_host": web2.container,
            "ansible_docker_extra_args": f"-H {lab_info.docker_host}",
        },
    )
    c = docker_connection(host)
    assert c.run("hostname").stdout.strip() == "web2"
    assert "ok web2" in c.run(["curl", "-sS", "http://127.0.0.1:8080/healthz"]).stdout


def test_connection_to_a_missing_container_lists_the_containers(sandbox):
    box = sandbox.server()
    host = box.host(ansible_host=box.name + "-gone")
    with pytest.raises(DockerError) as err:
        docker_connection(host).run("true")
    assert str(err.value).startswith(
        f"no container named {box.name}-gone on {sandbox.docker_host}; containers there:"
    )
    assert f'did you mean "{box.name}"' in str(err.value)


def test_executor_style_action_runs_over_the_docker_connection(conn):
    """An ssh.command-style action only asks ctx.connection(): it works on a container too."""
    box, _ = conn
    runner = Runner(dockerplugin.plugin, box.docker_host)
    host = box.host()
    ctx = runner.context(host)
    assert ctx.connection().run(["hostname"]).stdout.strip() == box.name[-12:]
    runner.close()


# --------------------------------------------------------------------------- daemon unreachable


def test_unreachable_daemon_on_a_bogus_socket_says_what_to_check(tmp_path, monkeypatch):
    bogus = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/opsbook-lab/docker.sock")
    runner = Runner(dockerplugin.plugin, f"unix://{bogus}")
    result = runner("inspect", {"container": "web1"})
    assert result.status is Status.FAILED
    assert result.msg == (
        f"cannot reach the Docker daemon at unix://{bogus}: is dockerd running? "
        f"(host var docker_host; DOCKER_HOST=unix:///run/opsbook-lab/docker.sock; "
        f"[Errno 2] No such file or directory)"
    )


def test_unreachable_daemon_from_docker_host_env(tmp_path, monkeypatch):
    bogus = tmp_path / "gone.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{bogus}")
    host = HostInfo("web1", {"ansible_connection": "docker", "ansible_host": "web1"})
    with pytest.raises(DaemonUnreachable) as err:
        docker_connection(host).run("true")
    assert str(err.value) == (
        f"cannot reach the Docker daemon at unix://{bogus}: is dockerd running? "
        f"(DOCKER_HOST=unix://{bogus}; [Errno 2] No such file or directory)"
    )
    assert isinstance(err.value, ConnectionError)


def test_unreachable_tcp_daemon_says_connection_refused():
    runner = Runner(dockerplugin.plugin, "tcp://127.0.0.1:1")
    result = runner("container", {"name": "web1", "state": "started"})
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        "cannot reach the Docker daemon at tcp://127.0.0.1:1: is dockerd running?"
    )
    assert "Connection refused" in result.msg


# --------------------------------------------------------------------------- inventory


def test_inventory_lists_containers_by_label_with_groups_and_vars(sandbox):
    web = sandbox.server(
        labels={"opsbook.groups": "web,canary", "tier": "front", "run": RUN_ID + "-inv"}
    )
    db = sandbox.server(labels={"tier": "data", "run": RUN_ID + "-inv"}, publish=False)
    sandbox.server(labels={"tier": "front"}, publish=False)  # not in this run's label
    found = docker_inventory({"label": [f"run={RUN_ID}-inv"]}, base_url=sandbox.docker_host)
    assert set(found["_meta"]["hostvars"]) == {web.name, db.name}
    assert found["web"] == {"hosts": [web.name]} and found["canary"] == {"hosts": [web.name]}
    assert found["ungrouped"] == {"hosts": [db.name]}
    assert set(found["all"]["children"]) == {"web", "canary", "ungrouped"}
    hv = found["_meta"]["hostvars"][web.name]
    assert hv["ansible_connection"] == "docker" and hv["ansible_host"] == web.name
    assert hv["ansible_docker_host"] == sandbox.docker_host
    assert hv["tier"] == "front" and hv["docker_labels"][LABEL] == RUN_ID
    assert hv["docker_status"] == "running" and hv["docker_container_id"] == web.id[:12]


def test_inventory_label_mapping_and_stopped_containers(sandbox):
    box = sandbox.server(labels={"role": "standby", "run": RUN_ID + "-inv2"}, publish=False)
    sandbox.client.containers.get(box.name).stop(timeout=1)
    running_only = docker_inventory(
        {"label": {"run": RUN_ID + "-inv2", "role": "standby"}}, sandbox.docker_host
    )
    assert running_only["_meta"]["hostvars"] == {}
    everything = docker_inventory(
        {"label": {"run": RUN_ID + "-inv2"}}, sandbox.docker_host, include_stopped=True
    )
    assert list(everything["_meta"]["hostvars"]) == [box.name]


def test_inventory_of_the_lab_hosts_feeds_the_docker_connection(lab_info):
    labels = {"org.opsbook.lab": lab_info.name, "org.opsbook.lab.host": "db2"}  # one lab of many
    found = docker_inventory({"label": labels}, base_url=lab_info.docker_host)
    [(name, hostvars)] = found["_meta"]["hostvars"].items()
    assert name == lab_info.hosts["db2"].container
    result = docker_connection(HostInfo(name, hostvars)).run(["hostname"])
    assert result.stdout.strip() == "db2"


def test_inventory_from_an_unreachable_daemon_raises_an_inventory_error(tmp_path):
    with pytest.raises(InventoryError) as err:
        docker_inventory({"label": "x"}, base_url=f"unix://{tmp_path}/none.sock")
    assert err.value.message == (
        f"docker inventory: cannot reach the Docker daemon at unix://{tmp_path}/none.sock: "
        "is dockerd running? (base_url given; [Errno 2] No such file or directory)"
    )
