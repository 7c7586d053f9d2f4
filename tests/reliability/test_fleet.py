"""A fleet of real sshd processes (bench's harness: one sshd per host on 127.0.9.i:22, user
opsbench): SIGKILL of opsbook across a long fleet run, then resume; a 200-host run with 10 %
failures; and repeated runs over SSH leak no connections, threads or file descriptors.

The existing crash test (tests/e2e/test_crash_resume.py) uses local hosts, whose commands die
with opsbook (PR_SET_PDEATHSIG). Over SSH the remote command outlives the killed client, which
is the harder case for "recorded done" vs "in doubt".
"""

from __future__ import annotations

import gc
import json
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import wait_for
from relkit import Cli, fleet_inventory, forget_client_key, start_fleet

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_sshd")]

FLEET = 200
CRASH_HOSTS = 20
STEPS = 8


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    f = start_fleet(FLEET, root)
    yield f
    f.stop()
    forget_client_key(f.key)


@pytest.fixture
def shared(tmp_path: Path):
    """A folder both opsbook (root) and the fleet's login (opsbench) can write."""
    path = Path(f"/tmp/opsbook-rel-fleet-{secrets.token_hex(4)}")
    (path / "m").mkdir(parents=True)
    os.chmod(path, 0o777)
    os.chmod(path / "m", 0o777)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _crash_runbook(cli: Cli, shared: Path) -> Path:
    steps = "".join(f"""
  - name: step{s}
    ssh.shell:
      cmd: "echo step{s}-{{{{ inventory_hostname }}}} >> {shared}/log; sleep 0.05; touch {shared}/m/step{s}-{{{{ inventory_hostname }}}}"
      creates: "{shared}/m/step{s}-{{{{ inventory_hostname }}}}"
""" for s in range(STEPS))
    return cli.write("fleet.yaml", "opsbook: 1\nname: ssh-fleet\nhosts: crash\nsteps:" + steps)


def _kill_after(proc: subprocess.Popen[str], finished: int) -> str:
    run_id = ""
    seen = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        run_id = run_id or event.get("run", "")
        if event["event"] == "node_finished" and not event.get("restored") and event.get("status") == "ok":
            seen += 1
            if seen >= finished:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    return run_id


def _journal_states(cli: Cli, run_id: str) -> dict[str, str]:
    j = Journal(cli.journal)
    try:
        return {n: r.status for n, r in j.nodes(run_id).items()}
    finally:
        j.close()


def _log(shared: Path) -> list[str]:
    path = shared / "log"
    return path.read_text().split() if path.exists() else []


def _effect(node_id: str) -> str:
    step, host = node_id.split("@")
    return f"{step}-{host}"


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_across_an_ssh_fleet_run_then_resume(cli: Cli, fleet, shared: Path, seed: int):
    rng = random.Random(seed)
    crash = fleet.targets[:CRASH_HOSTS]
    inv = cli.write("inv.ini", fleet_inventory(type(fleet)(fleet.root, crash, fleet.key, fleet.known_hosts),
                                               group="crash"))
    rb = _crash_runbook(cli, shared)
    total = CRASH_HOSTS * STEPS
    done_at_kills: set[str] = set()
    doubt_at_kills: set[str] = set()
    proc = cli.start("run", str(rb), "-i", str(inv), "--format", "json", "--forks", "8")
    run_id = _kill_after(proc, rng.randint(5, total // 2))
    assert proc.returncode == -signal.SIGKILL
    for attempt in range(rng.randint(1, 2) + 1):
        states = _journal_states(cli, run_id)
        log = _log(shared)
        done = {n for n, st in states.items() if st == "ok"}
        # No node is recorded done that did not finish: its effect and its marker are there.
        for node in done:
            assert _effect(node) in log, f"{node} recorded done but its command never ran"
            step, host = node.split("@")
            assert (shared / "m" / f"{step}-{host}").exists(), f"{node} recorded done but did not finish"
        done_at_kills |= done
        doubt_at_kills |= {n for n, st in states.items() if st == "started"}
        runs = cli("runs")
        assert run_id in runs.stdout and "running" in runs.stdout  # visibly not finished
        time.sleep(0.5)  # the remote shells of the killed client end (SIGHUP) or finish
        if attempt == 0 or rng.random() < 0.5:
            proc = cli.start("resume", run_id, "--format", "json", "--forks", "8")
            _kill_after(proc, rng.randint(3, 20))
    final = cli("resume", run_id, "--format", "json", "--forks", "8", timeout=600)
    assert final.rc == 0, final
    counts = Counter(_log(shared))
    expected = {f"step{s}-{t.name}" for s in range(STEPS) for t in crash}
    assert set(counts) == expected, "every node ran"
    for node in done_at_kills:
        assert counts[_effect(node)] == 1, f"{node} was recorded done, then executed again"
    twice = {e for e, c in counts.items() if c > 1}
    assert twice <= {_effect(n) for n in doubt_at_kills}, f"run twice without being in doubt: {twice}"
    assert "succeeded" in cli("runs").stdout


def test_two_hundred_ssh_hosts_with_ten_percent_failures(book, fleet, tmp_path):
    inv = fleet_inventory(fleet)
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    journal = Journal(tmp_path / "load.db")
    b = book("""
        opsbook: 1
        name: ssh-load
        hosts: fleet
        steps:
          - name: work
            ssh.shell: "test $(( {{ inventory_hostname[1:] | int }} % 10 )) -ne 0"
            max_fail_percentage: 15
          - name: after
            ssh.command: hostname
        """, inventory="\n" + inv, forks=50, journal=journal)
    assert b.summary.status == "failed" and not b.summary.message
    failed = sorted(int(n.host[1:]) for n in b.nodes().values() if n.status == "failed")
    assert failed == list(range(10, FLEET + 1, 10))
    assert all(n.msg == "command exited with rc=1" for n in b.nodes().values() if n.status == "failed")
    assert b.summary.counts["ok"] == 2 * FLEET - 2 * len(failed)
    journal.close()
    gc.collect()
    # Every transport of the run is closed at its end.
    assert len(os.listdir("/proc/self/fd")) <= fds
    wait_for(f"the run's threads to end (at most {threads})", lambda: threading.active_count() <= threads,
             timeout=10, interval=0.1)


def test_repeated_runs_over_ssh_leak_no_connections(book, fleet, tmp_path):
    inv = tmp_path / "few.ini"
    few = type(fleet)(fleet.root, fleet.targets[:5], fleet.key, fleet.known_hosts)
    inv.write_text(fleet_inventory(few))
    journal = Journal(tmp_path / "ssh-leak.db")
    text = """
        opsbook: 1
        name: ssh-leak
        hosts: fleet
        steps:
          - name: one
            ssh.command: hostname
          - name: two
            ssh.shell: "echo $((1 + 1))"
        """

    def runs(count: int) -> None:
        for _ in range(count):
            assert book(text, inventory=inv, journal=journal).summary.status == "succeeded"

    runs(10)
    gc.collect()
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    runs(150)
    gc.collect()
    time.sleep(0.5)
    journal.close()
    assert len(os.listdir("/proc/self/fd")) <= fds, "sockets or files left open"
    assert threading.active_count() <= threads, "paramiko transport threads left running"
