"""The Docker daemon goes away and comes back while a run uses it.

The lab's dockerd is shared with other test sessions, so it is never restarted here. Each test
puts a unix socket of its own in front of it (relkit.SocketProxy) and points the hosts'
`docker_host` at that socket: stopping the proxy removes the socket file and cuts every open
connection, exactly what clients of a dockerd that exits see; starting it again is the daemon
coming back. The containers behind it keep running (as with dockerd's live-restore).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from relkit import SocketProxy, Trigger

pytestmark = pytest.mark.lab


@pytest.fixture
def proxy(lab_info, tmp_path: Path):
    p = SocketProxy(tmp_path / "docker.sock", lab_info.docker_host)
    yield p
    p.stop()


def _inventory(lab_info, proxy: SocketProxy) -> str:
    web1 = lab_info.hosts["web1"]
    return f"""
        [web]
        web1 ansible_connection=local docker_host={proxy.url} docker_container={web1.container}
        [box]
        box1 ansible_connection=docker ansible_host={web1.container} docker_host={proxy.url}
        """


def test_daemon_restarted_between_steps_the_next_call_reconnects(lab_info, proxy, book):
    b = book("""
        opsbook: 1
        name: dockerd-restart
        steps:
          - name: before
            hosts: web
            docker.inspect:
          - name: inspect after the restart
            hosts: web
            docker.inspect:
            register: facts
          - name: exec after the restart
            hosts: web
            docker.exec: hostname
          - name: over the docker connection
            hosts: box
            ssh.command: hostname
        """, inventory=_inventory(lab_info, proxy),
        on=[Trigger("node_finished", lambda: proxy.restart(down_for=0.5), step="before", blocking=True)])
    b.check_triggers()
    assert b.summary.status == "succeeded", b.summary
    for node in b.nodes().values():
        assert node.attempts == 1, node
    assert b.node("inspect-after-the-restart", "web1").registered["running"] is True
    assert b.node("exec-after-the-restart", "web1").stdout == "web1\n"
    assert b.node("over-the-docker-connection", "box1").stdout == "web1\n"
    assert proxy.accepted >= 2  # a new connection after the restart, not the dead one


def test_daemon_down_fails_with_the_socket_named_and_retries_wait_for_it(lab_info, proxy, book):
    def down_then_up() -> None:
        proxy.stop()
        import time

        time.sleep(3)
        proxy.start()

    b = book("""
        opsbook: 1
        name: dockerd-down
        hosts: web
        steps:
          - name: before
            docker.inspect:
          - name: container answers
            docker.exec: "echo alive"
            retries: 20
            delay: 0.5s
        """, inventory=_inventory(lab_info, proxy),
        on=[Trigger("node_finished", down_then_up, step="before")])
    b.check_triggers()
    assert b.summary.status == "succeeded", b.summary
    node = b.node("container-answers", "web1")
    assert node.status == "ok" and node.attempts >= 2 and node.stdout == "alive\n"
    first = next(line for line in b.output("web1") if line.startswith("attempt 1 failed"))
    assert (f"cannot reach the Docker daemon at {proxy.url}: is dockerd running? (host var docker_host;"
            in first), first


def test_daemon_down_without_retries_fails_the_host_and_names_it(lab_info, proxy, book):
    b = book("""
        opsbook: 1
        name: dockerd-gone
        hosts: web
        steps:
          - name: before
            docker.inspect:
          - name: restart the app
            docker.exec: "echo restarting"
          - name: after
            docker.inspect:
        """, inventory=_inventory(lab_info, proxy),
        on=[Trigger("node_finished", proxy.stop, step="before", blocking=True)])
    b.check_triggers()
    assert b.summary.status == "failed"
    node = b.node("restart-the-app", "web1")
    assert node.status == "failed"
    assert node.msg.startswith(f"cannot reach the Docker daemon at {proxy.url}: is dockerd running?")
    assert "No such file or directory" in node.msg
    event = b.finished("restart the app", "web1")[0]
    assert event.data["status"] == "failed"
    assert b.node("after", "web1").msg == "host failed earlier"


def test_daemon_connection_lost_during_an_exec_is_not_reported_as_an_exit_code(lab_info, proxy, book):
    b = book("""
        opsbook: 1
        name: dockerd-cut
        hosts: web
        steps:
          - name: long exec
            docker.exec: "echo started; sleep 4; echo finished"
        """, inventory=_inventory(lab_info, proxy),
        on=[Trigger("node_output", proxy.cut, step="long exec", line="started")])
    b.check_triggers()
    node = b.node("long-exec", "web1")
    # The command did not exit with -1: it was still running when the stream was lost.
    assert "exited with -1" not in node.msg, node.msg
    assert node.status == "ok" or "may still be running" in node.msg or "lost" in node.msg
