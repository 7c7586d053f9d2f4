"""docker.container against the lab's dockerd: every state, check mode, inverses, health waits."""

from __future__ import annotations

import time

import pytest
from opsbook.plugin import HostInfo, Status
from opsbook_lab.pytest_plugin import wait_for
from opsbook_plugins import docker as dockerplugin
from opsbook_test_sandbox import SERVER_SCRIPT

pytestmark = pytest.mark.lab


def status_of(sandbox, name: str) -> str:
    return sandbox.client.containers.get(name).attrs["State"]["Status"]


def test_stop_then_start_reports_change_and_declares_the_inverse(sandbox, run):
    box = sandbox.server()
    stopped = run("container", {"name": box.name, "state": "stopped", "stop_timeout": 2})
    assert stopped.status is Status.OK and stopped.changed
    assert stopped.msg == f"stopped {box.name} (was running)"
    assert stopped.data["before"] == "running" and stopped.data["after"] == "exited"
    assert status_of(sandbox, box.name) == "exited"
    spec = dockerplugin.plugin.actions["container"]
    args = spec.parse_args({"name": box.name, "state": "stopped"})
    assert spec.inverse(args, stopped) == (
        "docker.container",
        {"name": box.name, "state": "started"},
    )

    started = run("container", {"name": box.name, "state": "started"})
    assert started.changed and started.data["after"] == "running"
    args = spec.parse_args({"name": box.name, "state": "started"})
    assert spec.inverse(args, started) == (
        "docker.container",
        {"name": box.name, "state": "stopped"},
    )


def test_already_in_state_is_unchanged_and_has_no_inverse(sandbox, run):
    box = sandbox.server()
    result = run("container", {"name": box.name, "state": "started"})
    assert result.status is Status.OK and not result.changed
    assert result.msg == f"{box.name} is already running"
    spec = dockerplugin.plugin.actions["container"]
    assert spec.inverse(spec.parse_args({"name": box.name}), result) is None


def test_check_mode_reports_the_would_be_change_without_acting(sandbox, run):
    box = sandbox.server()
    result = run(
        "container", {"name": box.name, "state": "stopped"}, check_mode=True, diff_mode=True
    )
    assert result.status is Status.OK and result.changed
    assert result.msg == f"would stop {box.name} (it is running)"
    assert result.data["after"] == "exited" and result.diff == f"{box.name}: running -> exited"
    assert status_of(sandbox, box.name) == "running"
    unchanged = run("container", {"name": box.name, "state": "unpaused"}, check_mode=True)
    assert not unchanged.changed


def test_restart_changes_the_start_time(sandbox, run):
    box = sandbox.server()
    before = sandbox.client.containers.get(box.name).attrs["State"]["StartedAt"]
    result = run("container", {"name": box.name, "state": "restarted", "stop_timeout": 1})
    assert result.changed and result.msg == f"restarted {box.name} (was running)"
    after = sandbox.client.containers.get(box.name).attrs["State"]["StartedAt"]
    assert after != before and status_of(sandbox, box.name) == "running"


def test_kill_sends_the_signal_and_inverse_starts_again(sandbox, run):
    box = sandbox.server()
    result = run("container", {"name": box.name, "state": "killed"})
    assert result.changed and status_of(sandbox, box.name) == "exited"
    spec = dockerplugin.plugin.actions["container"]
    inverse = spec.inverse(spec.parse_args({"name": box.name, "state": "killed"}), result)
    assert inverse == ("docker.container", {"name": box.name, "state": "started"})
    again = run("container", {"name": box.name, "state": "killed"})
    assert not again.changed


def test_pause_and_unpause_are_each_others_inverse(sandbox, run):
    box = sandbox.server()
    paused = run("container", {"name": box.name, "state": "paused"})
    assert paused.changed and status_of(sandbox, box.name) == "paused"
    spec = dockerplugin.plugin.actions["container"]
    inverse = spec.inverse(spec.parse_args({"name": box.name, "state": "paused"}), paused)
    assert inverse == ("docker.container", {"name": box.name, "state": "unpaused"})
    unpaused = run("container", {"name": box.name, "state": "unpaused"})
    assert unpaused.changed and status_of(sandbox, box.name) == "running"
    inverse = spec.inverse(spec.parse_args({"name": box.name, "state": "unpaused"}), unpaused)
    assert inverse == ("docker.container", {"name": box.name, "state": "paused"})


def test_pausing_a_stopped_container_fails_with_its_state(sandbox, run):
    box = sandbox.server()
    run("container", {"name": box.name, "state": "stopped", "stop_timeout": 1})
    result = run("container", {"name": box.name, "state": "paused"})
    assert result.status is Status.FAILED
    assert result.msg == (
        f"cannot pause {box.name} on {sandbox.docker_host}: it is not running (it is exited)"
    )


def test_absent_removes_and_then_is_unchanged(sandbox, run):
    box = sandbox.server()
    removed = run("container", {"name": box.name, "state": "absent"})
    assert removed.changed and removed.data["after"] == "absent"
    assert box.name not in [c.name for c in sandbox.client.containers.list(all=True)]
    again = run("container", {"name": box.name, "state": "absent"})
    assert again.status is Status.OK and not again.changed


def test_missing_container_names_the_daemon_and_suggests(sandbox, run):
    box = sandbox.server()
    typo = box.name[:-1] + ("x" if box.name[-1] != "x" else "y")
    result = run("container", {"name": typo, "state": "restarted"})
    assert result.status is Status.FAILED
    assert result.msg.startswith(
        f"no container named {typo} on {sandbox.docker_host}; containers there: "
    )
    assert box.name in result.msg
    assert result.msg.endswith(f'(did you mean "{box.name}"?)')


def test_container_name_defaults_to_the_hosts_container_var(sandbox, run):
    box = sandbox.server()
    host = HostInfo("app1", {"docker_host": sandbox.docker_host, "container": box.name})
    result = run("container", {"state": "started"}, host=host)
    assert result.status is Status.OK and result.data["name"] == box.name


def test_wait_healthy_waits_for_the_healthcheck(sandbox, run):
    script = "rm -f /tmp/ready; (sleep 1.5; touch /tmp/ready) &\n" + SERVER_SCRIPT
    box = sandbox.server(
        script=script,
        wait=False,
        healthcheck={
            "test": ["CMD-SHELL", "test -f /tmp/ready"],
            "interval": 200_000_000,
            "timeout": 1_000_000_000,
            "retries": 50,
        },
    )
    # Healthy about 1.5 s after every start: the action must wait, not report early.
    started = time.monotonic()
    result = run(
        "container",
        {
            "name": box.name,
            "state": "restarted",
            "wait_healthy": True,
            "timeout": "20s",
            "stop_timeout": 1,
        },
    )
    assert result.status is Status.OK, result.msg
    assert result.data["health"] == "healthy"
    assert time.monotonic() - started >= 1.5
    assert "is healthy after" in result.msg


def test_wait_healthy_times_out_with_the_last_check_output(sandbox, run):
    box = sandbox.server(
        healthcheck={
            "test": ["CMD-SHELL", "echo database not ready; exit 1"],
            "interval": 200_000_000,
            "timeout": 1_000_000_000,
            "retries": 2,
        }
    )
    result = run(
        "container",
        {"name": box.name, "state": "started", "wait_healthy": True, "timeout": "2s"},
    )
    assert result.status is Status.FAILED
    assert result.msg.startswith(f"{box.name} did not become healthy within 2 s (health: ")
    assert "last check exit 1: 'database not ready'" in result.msg
    assert result.data["health"] in ("starting", "unhealthy")


def test_wait_healthy_without_healthcheck_waits_for_running(sandbox, run):
    box = sandbox.server()
    run("container", {"name": box.name, "state": "stopped", "stop_timeout": 1})
    result = run("container", {"name": box.name, "state": "started", "wait_healthy": True})
    assert result.status is Status.OK
    assert "running (no healthcheck)" in result.msg


def test_wait_healthy_fails_fast_when_the_container_exits(sandbox, run):
    box = sandbox.server(script="echo starting; exit 3", wait=False, publish=False)
    wait_for(f"{box.name} exited", lambda: status_of(sandbox, box.name) == "exited", timeout=15)
    started = time.monotonic()
    result = run(
        "container",
        {"name": box.name, "state": "restarted", "wait_healthy": True, "timeout": "20s"},
    )
    assert result.status is Status.FAILED
    assert "(exit code 3), not running: it will not become healthy" in result.msg
    assert time.monotonic() - started < 10
