"""Faults injected into the lab while a run is in the middle of a step, through the whole engine:
a host powered off during a long ssh.shell, sshd restarted between steps, a network partition
during a probe and a command, a hung command and a frozen host.

Each test asserts what the person on call sees (status, a message naming the host, the event
naming the step), what the journal records, that retries happen as configured and that
rollback runs where it was asked for. `lab_healed` restarts/reconnects/thaws what a test broke.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from opsbook_lab.pytest_plugin import wait_for
from relkit import Book, Trigger

pytestmark = pytest.mark.lab


def _pool_spy(book_conns: dict[str, Any]):
    """An executor hook that remembers every connection the run's pool hands out."""

    def hook(executor: Any) -> None:
        original = executor.pool.get

        def get(host: Any) -> Any:
            conn = original(host)
            book_conns[host.name] = conn
            return conn

        executor.pool.get = get

    return hook


def _finished(b: Book, step: str, host: str):
    events = b.finished(step, host)
    assert len(events) == 1, events
    return events[0]


# --------------------------------------------------------------------------- power off


def test_host_powered_off_during_a_long_shell_fails_that_node_and_rolls_back(lab_healed, lab_info, book):
    token = secrets.token_hex(4)
    b = book(f"""
        opsbook: 1
        name: power-off
        hosts: web
        steps:
          - name: mark
            ssh.shell: "echo {token} > /tmp/rel-mark-{token}"
            rollback: {{ssh.shell: "rm -f /tmp/rel-mark-{token}"}}
          - name: long work
            ssh.shell: "echo started; sleep 20; echo finished"
        """, inventory=lab_info.inventory,
        on=[Trigger("node_output", lambda: lab_healed.kill("web1"), step="long work", host="web1",
                    line="started")])
    b.check_triggers()
    assert b.summary.status == "failed"
    web1 = b.node("long-work", "web1")
    assert web1.status == "failed"
    assert web1.msg.startswith("web1: connection to root@127.0.0.1:") and "was lost while a command ran" in web1.msg
    assert web1.finished - web1.started < 15, "the lost host must not wait for the command's end"
    event = _finished(b, "long work", "web1")
    assert (event.step, event.host, event.data["status"]) == ("long work", "web1", "failed")
    assert b.node("long-work", "web2").status == "ok"
    # Rollback: web2's mark is undone; web1's rollback fails with a reason naming the host.
    rollbacks = {r["host"]: r for r in b.rollbacks()}
    assert rollbacks["web2"]["status"] == "done"
    assert rollbacks["web1"]["status"] == "failed"
    assert "web1: cannot connect to 127.0.0.1" in rollbacks["web1"]["msg"]
    assert lab_healed.exec("web2", f"test -e /tmp/rel-mark-{token}")[0] == 1
    assert b.summary.rolled_back == 1


def test_host_powered_off_and_back_is_retried_as_configured(lab_healed, lab_info, book):
    def crash_and_reboot() -> None:
        lab_healed.kill("web1")
        time.sleep(1)
        lab_healed.start("web1")

    b = book("""
        opsbook: 1
        name: power-cycle
        hosts: web1
        steps:
          - name: work
            ssh.shell: "echo started; sleep 2; echo finished"
            retries: 20
            delay: 1s
            register: work
          - name: after
            ssh.command: hostname
        """, inventory=lab_info.inventory,
        on=[Trigger("node_output", crash_and_reboot, step="work", line="started")])
    b.check_triggers()
    assert b.summary.status == "succeeded", b.summary
    work = b.node("work", "web1")
    assert work.status == "ok" and work.attempts >= 2
    assert work.registered["stdout"] == "started\nfinished"  # registered without the trailing newline (Ansible)
    retries = [line for line in b.output("web1") if line.startswith("attempt ")]
    assert retries[0].startswith("attempt 1 failed, retrying in 1s: web1: connection to root@127.0.0.1:")
    assert len(retries) == work.attempts - 1
    assert b.node("after", "web1").status == "ok"


# --------------------------------------------------------------------------- sshd restarts


def test_sshd_restarted_between_steps_the_pooled_connection_reconnects(lab_healed, lab_info, book):
    conns: dict[str, Any] = {}
    seen: dict[str, int] = {}

    def kill_every_sshd() -> None:
        seen["before"] = conns["web1"].connects
        # sessions included: our transport dies with them
        rc, out = lab_healed.exec("web1", "pkill -KILL -x sshd; sleep 0.3; service ssh start")
        assert rc == 0, out
        wait_for("sshd back", lambda: lab_healed.exec("web1", "pgrep -x sshd")[0] == 0)

    b = book("""
        opsbook: 1
        name: sshd-restarts
        hosts: web1
        steps:
          - name: one
            ssh.command: hostname
          - name: two
            ssh.command: hostname
          - name: three
            ssh.command: hostname
        """, inventory=lab_info.inventory, hook=_pool_spy(conns),
        on=[Trigger("node_finished", lambda: lab_healed.restart_sshd("web1"), step="one", blocking=True),
            Trigger("node_finished", kill_every_sshd, step="two", blocking=True)])
    b.check_triggers()
    assert b.summary.status == "succeeded", b.summary
    for step in ("one", "two", "three"):
        node = b.node(step, "web1")
        assert (node.status, node.attempts, node.stdout) == ("ok", 1, "web1\n"), node
    # `service ssh restart` keeps sessions: the same transport served step two; killing every
    # sshd dropped it, and step three reconnected once without any retries configured.
    assert seen["before"] == 1
    assert conns["web1"].connects == 2


# --------------------------------------------------------------------------- partitions


def test_partition_during_a_probe_is_retried_until_the_host_is_back(lab_healed, lab_info, book):
    def heal_later() -> None:
        time.sleep(3)
        lab_healed.connect("web1")

    b = book("""
        opsbook: 1
        name: partition-probe
        hosts: web1
        steps:
          - name: before
            local.noop:
          - name: web1 answers
            probe.http: {url: "http://127.0.0.1:{{ http_port }}/healthz", status: 200, timeout: 2s}
            retries: 30
            delay: 1s
        """, inventory=lab_info.inventory,
        on=[Trigger("node_finished", lambda: lab_healed.disconnect("web1"), step="before", blocking=True),
            Trigger("node_finished", heal_later, step="before")])
    b.check_triggers()
    assert b.summary.status == "succeeded", b.summary
    probe = b.node("web1-answers", "web1")
    assert probe.status == "ok" and probe.attempts >= 2
    first = next(line for line in b.output("web1") if line.startswith("attempt 1 failed"))
    assert "127.0.0.1:" in first and ("refused" in first or "reset" in first or "closed" in first), first


def test_partition_during_a_command_ends_with_a_clear_failure_not_a_hang(lab_healed, lab_info, book):
    """The command's connection goes through the published port, which the partition closes."""
    b = book("""
        opsbook: 1
        name: partition-command
        hosts: web1
        steps:
          - name: long work
            ssh.shell: "echo started; sleep 30; echo finished"
            timeout: 20s
          - name: after
            ssh.command: hostname
        """, inventory=lab_info.inventory,
        on=[Trigger("node_output", lambda: lab_healed.disconnect("web1"), step="long work", line="started")])
    b.check_triggers()
    assert b.summary.status == "failed"
    node = b.node("long-work", "web1")
    assert node.status in ("failed", "timed_out")
    assert "web1" in node.msg and ("lost" in node.msg or "timed out" in node.msg), node.msg
    assert node.finished - node.started < 20 + 6
    assert b.node("after", "web1").status == "skipped"
    assert b.node("after", "web1").msg == "host failed earlier"


def test_partition_seen_from_a_vantage_point_is_a_failed_vote_naming_it(lab_healed, lab_info, book):
    web1 = lab_info.hosts["web1"]
    b = book(f"""
        opsbook: 1
        name: partition-vantage
        hosts: web1
        steps:
          - name: before
            local.noop:
          - name: web1 from lb1
            probe.tcp:
              port: 8080
              host: {web1.lab_ip}
              from: [lb1]
              timeout: 2s
        """, inventory=lab_info.inventory,
        on=[Trigger("node_finished", lambda: lab_healed.disconnect("web1"), step="before", blocking=True)])
    b.check_triggers()
    node = b.node("web1-from-lb1", "web1")
    assert node.status == "failed"
    assert f"from lb1: expected {web1.lab_ip}:8080 to accept a connection, got no answer within 2 s" == node.msg
    assert node.registered["vantage"]["lb1"]["ok"] is False


def test_a_single_remote_vantage_point_is_named_in_the_failure(lab_info, book):
    b = book(f"""
        opsbook: 1
        name: one-vantage
        hosts: web1
        steps:
          - name: closed port from lb1
            probe.tcp: {{port: 9, host: {lab_info.hosts["web1"].lab_ip}, from: [lb1], timeout: 2s}}
        """, inventory=lab_info.inventory)
    node = b.node("closed-port-from-lb1", "web1")
    assert node.status == "failed"
    assert "lb1" in node.msg, node.msg


# --------------------------------------------------------------------------- hangs


def test_hung_command_times_out_is_stopped_on_the_host_and_rolls_back(lab_healed, lab_info, book):
    token = secrets.token_hex(4)
    b = book(f"""
        opsbook: 1
        name: hung
        hosts: web1
        steps:
          - name: mark
            ssh.shell: "touch /tmp/rel-hung-{token}"
            rollback: {{ssh.command: "rm -f /tmp/rel-hung-{token}"}}
          - name: hangs
            ssh.shell: "sleep 300; echo rel-hung-{token}"
            timeout: 2s
          - name: after
            ssh.command: hostname
        """, inventory=lab_info.inventory)
    assert b.summary.status == "failed"
    node = b.node("hangs", "web1")
    assert node.status == "timed_out"
    assert node.msg == "timed out after 2s"
    assert node.finished - node.started < 2 + 5
    assert b.node("after", "web1").status == "skipped"
    assert [r["status"] for r in b.rollbacks()] == ["done"]
    assert lab_healed.exec("web1", f"test -e /tmp/rel-hung-{token}")[0] == 1
    # [r]el-...: the pattern does not match the command line of the pgrep that looks for it
    _rc, out = lab_healed.exec("web1", f"pgrep -af '[r]el-hung-{token}' || true")
    assert f"rel-hung-{token}" not in out, f"the timed-out command still runs: {out}"


def _frozen(lab_healed: Any, lab_info: Any, book: Any) -> Book:
    return book("""
        opsbook: 1
        name: frozen
        hosts: web
        steps:
          - name: before
            ssh.command: hostname
          - name: probe the host
            ssh.command: hostname
            timeout: 3s
        """, inventory=lab_info.inventory,
        on=[Trigger("node_finished", lambda: lab_healed.pause("web2"), step="before", host="web2",
                    blocking=True)])


def test_frozen_host_times_out_within_the_grace_and_the_run_ends(lab_healed, lab_info, book):
    """A paused container accepts TCP but nothing answers: the step's timeout must still end it."""
    b = _frozen(lab_healed, lab_info, book)
    b.check_triggers()
    lab_healed.unpause("web2")
    assert b.summary.status == "failed"
    started = next(e.ts for e in b.events if e.kind == "node_started" and e.node_id == "probe-the-host@web2")
    decided = b.finished("probe the host", "web2")[0]
    # the action returns at its timeout (timed_out), or the scheduler abandons it after the
    # grace, in doubt (unknown: the command may have reached the host; see opsbook.abandon)
    assert decided.data["status"] == "timed_out" or (
        decided.data["status"] == "unknown" and "abandoned, in doubt" in decided.data["msg"]), decided.data
    assert decided.ts - started < 3 + 5 + 1, "the scheduler gives up at the timeout plus its grace"
    assert b.node("probe-the-host", "web1").status == "ok"
    assert b.summary.finished - started < 30, "the run ends"


@pytest.mark.slow
def test_ssh_on_a_frozen_host_returns_at_the_step_timeout(lab_healed, lab_info, book):
    b = _frozen(lab_healed, lab_info, book)
    lab_healed.unpause("web2")
    node = b.node("probe-the-host", "web2")
    assert node.finished - node.started < 3 + 1.5, node
