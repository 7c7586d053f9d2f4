"""Load: a run over 220 targets with failures injected on every tenth host; the thresholds
(max_fail_percentage, max_errors, --max-errors) stop scheduling as configured; and a thousand
sequential runs in one process leak neither memory, file descriptors nor threads.

The targets here are `ansible_connection=local` hosts (SSH is not the point); the same run over
a fleet of real sshd processes is in test_fleet.py.
"""

from __future__ import annotations

import gc
import os
import re
import threading
from pathlib import Path

import pytest
from opsbook.journal import Journal

HOSTS = 220
FORKS = 20
RUNBOOK = """
opsbook: 1
name: load
hosts: fleet
{limits}
steps:
  - name: work
    local.shell: "test $(( {{{{ inventory_hostname[1:] | int }}}} % 10 )) -ne 0"
    {step_limits}
  - name: after
    local.command: "true"
"""


def _inventory(count: int = HOSTS) -> str:
    return "\n[fleet]\n" + "\n".join(f"n{i} ansible_connection=local" for i in range(1, count + 1)) + "\n"


def _worked(b) -> list[int]:
    """Host numbers on which step `work` really ran (ok or failed, not skipped)."""
    return sorted(int(n.host[1:]) for n in b.nodes().values()
                  if n.step_id == "work" and n.status in ("ok", "failed"))


def test_ten_percent_failures_under_the_threshold_fail_those_hosts_only(book):
    b = book(RUNBOOK.format(limits="", step_limits="max_fail_percentage: 15"), inventory=_inventory(), forks=FORKS)
    assert b.summary.status == "failed" and not b.summary.message
    nodes = b.nodes()
    failed = sorted(int(n.host[1:]) for n in nodes.values() if n.status == "failed")
    assert failed == list(range(10, HOSTS + 1, 10))
    assert b.summary.counts == {"ok": 2 * HOSTS - 2 * len(failed), "failed": len(failed), "skipped": len(failed)}
    for n in failed:
        assert nodes[f"after@n{n}"].msg == "host failed earlier"


@pytest.mark.parametrize(("limits", "step_limits", "failures", "message"), [
    ("", "max_fail_percentage: 5", 12,
     'step "work" failed on 12 of 220 hosts, over max_fail_percentage 5%'),
    ("max_errors: 5", "", 6, "6 nodes failed, over the run's max_errors 5"),
    ("", "max_errors: 3", 4, 'step "work" failed on 4 hosts, over max_errors 3'),
])
def test_thresholds_stop_scheduling_as_configured(book, limits, step_limits, failures, message):
    b = book(RUNBOOK.format(limits=limits, step_limits=step_limits), inventory=_inventory(), forks=FORKS)
    assert b.summary.status == "aborted"
    aborted = [e for e in b.events if e.kind == "aborted"]
    assert aborted[0].data["message"] == message
    # (failures of nodes already in flight update the count in the final message)
    assert re.sub(r"\d+", "N", b.summary.message) == re.sub(r"\d+", "N", message)
    worked = _worked(b)
    last_needed = 10 * failures  # the host whose failure crossed the line
    assert last_needed in worked
    # Nothing is dispatched once the line is crossed: only what was in flight finishes.
    # (Both kinds of event come from the scheduler thread, so their order is exact.)
    at = b.events.index(aborted[0])
    done_before = [e for e in b.events[:at] if e.kind == "node_finished" and e.data["status"] in ("ok", "failed")]
    ran = [n for n in b.nodes().values() if n.status in ("ok", "failed")]
    running = aborted[0].data["still_running"]
    assert 0 <= running < FORKS
    assert len(ran) <= len(done_before) + 1 + running, (len(ran), len(done_before), running)
    assert max(worked) <= last_needed + 2 * FORKS, max(worked)  # and roughly in host order
    assert len(worked) < HOSTS
    skipped = [n for n in b.nodes().values() if n.step_id == "work" and n.status == "skipped"]
    assert skipped and all(n.msg.startswith("not run: ") for n in skipped)


def test_max_errors_on_the_command_line_overrides_the_runbook(cli):
    rb = cli.write("rb.yaml", RUNBOOK.format(limits="max_errors: 100", step_limits=""))
    inv = cli.write("inv.ini", _inventory(60))
    res = cli("run", str(rb), "-i", str(inv), "--max-errors", "2", "--forks", "5", "--format", "json")
    assert res.rc == 3, res
    finished = next(e for e in res.events if e["event"] == "run_finished")
    assert finished["status"] == "aborted"
    assert finished["message"] == "3 nodes failed, over the run's max_errors 2"


# --------------------------------------------------------------------------- leaks


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


LEAK_RUNBOOK = """
opsbook: 1
name: leak-{i}
hosts: fleet
params:
  token: {{type: secret, default: s3cr3t-value}}
steps:
  - name: set
    local.set: {{x: "{{{{ inventory_hostname }}}}-{{{{ token }}}}"}}
  - name: loop
    loop: [1, 2, 3]
    local.assert: {{that: "item > 0"}}
    register: looped
  - name: command
    local.command: {{cmd: [echo, "{{{{ x }}}}"]}}
    register: out
    rollback: {{local.command: "true"}}
  - name: evidence
    run_once: true
    local.collect: {{cmd: "echo evidence", name: e.txt}}
  - name: fail on one host
    when: inventory_hostname == 'n3'
    local.fail: planned
"""


PURE_RUNBOOK = """
opsbook: 1
name: pure-{i}
hosts: fleet
params:
  token: {{type: secret, default: s3cr3t-value}}
steps:
  - name: set
    local.set: {{x: "{{{{ inventory_hostname }}}}-{{{{ token }}}}"}}
  - name: loop
    loop: [1, 2, 3]
    local.assert: {{that: "item > 0"}}
    register: looped
  - name: act
    local.noop:
    register: out
    rollback: {{local.noop: }}
  - name: fail on one host
    when: inventory_hostname == 'n3'
    local.fail: planned
"""


def _leak_check(book, tmp_path: Path, text: str, count: int, record_property) -> None:
    journal = Journal(tmp_path / "leak.db")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(_inventory(3))

    def runs(n: int, offset: int) -> None:
        for i in range(n):
            b = book(text.format(i=offset + i), inventory=inventory, journal=journal, name="leak.yaml")
            assert b.summary.status == "failed" and b.summary.rolled_back == 3, b.summary

    runs(50, 0)  # warm up: imports, caches, the SQLite page cache
    gc.collect()
    rss, fds, threads = _rss_kib(), _fds(), threading.active_count()
    runs(count, 50)
    gc.collect()
    grown = _rss_kib() - rss
    journal.close()
    record_property("rss_growth_kib", grown)
    record_property("fds", f"{fds} -> {_fds()}")
    record_property("threads", f"{threads} -> {threading.active_count()}")
    assert _fds() <= fds, f"file descriptors: {fds} -> {_fds()}"
    assert threading.active_count() <= threads, f"threads: {threads} -> {threading.active_count()}"
    # The journal of every run lives on disk; what stays in this process must not grow with
    # the number of runs (a leak of one run's state would be megabytes here).
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB over {count} runs"


def test_a_thousand_runs_in_one_process_leak_no_memory_fds_or_threads(book, tmp_path, record_property):
    """Executor, journal, thread pools, secrets, rollback: 1,000 runs without subprocesses."""
    _leak_check(book, tmp_path, PURE_RUNBOOK, 1000, record_property)


@pytest.mark.slow
def test_a_thousand_runs_with_commands_and_evidence_leak_nothing(book, tmp_path, record_property):
    """The same with real commands (pipes, reader threads) and evidence files."""
    _leak_check(book, tmp_path, LEAK_RUNBOOK, 1000, record_property)
