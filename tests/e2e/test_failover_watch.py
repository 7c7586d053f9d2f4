"""`opsbook watch` against the lab: the watcher probes runbooks/failover/redis-promote.yaml's
health checks (its probe steps), notices the dead primary after N failing rounds, runs the
failover itself, and the run's RTO is measured from the first failing round.

Two faults, two ways in: Redis stopped inside a running host, watched through the `Watcher`
API (the old primary is fenced over ssh); the primary's container killed, watched through
the `opsbook watch` CLI (fenced through its container).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import time

import lab_helpers as lh
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)

RUNBOOK = "failover/redis-promote.yaml"
OBJECTIVE = 90.0  # objectives.rto of the runbook (the worst case of its steps' timeouts, 1m16s, fits it)
LAB_RTO = 60.0  # what a lab failover stays under, as when the objective was 1m


def _assert_failed_over(lab, measured: dict, fault_at: float) -> None:
    assert lh.redis_info(lab, "db2")["role"] == "master"
    assert lh.redis(lab, "db2", "set", "after:watch", "1") == "OK"
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    assert measured["detection_source"] == "incident_start", measured
    # detection is the start of the first failing round: the round that follows the last
    # healthy one (it may have begun a moment before the fault landed), well before the response
    assert fault_at - 10.0 <= measured["detection"] <= fault_at + 30.0, (fault_at, measured["detection"])
    assert measured["rto"] is not None, measured["basis"]
    assert 0 < measured["rto"] < LAB_RTO, measured
    assert measured["rto_objective"] == OBJECTIVE and measured["rto_met"] is True
    assert measured["recovered_node"] == "the-new-primary-accepts-writes@db2", measured


def test_watcher_notices_a_stopped_redis_and_fails_over(pristine, ob, tmp_path):
    from opsbook.journal import Journal
    from opsbook.registry import Registry
    from opsbook.report import rto
    from opsbook.watch import WatchConfig, Watcher

    lab = pristine
    journal = Journal(tmp_path / "journal.db")
    seen: list[tuple[float, str, dict]] = []
    healthy_once = threading.Event()

    def on_event(kind: str, data: dict) -> None:
        seen.append((time.time(), kind, data))
        if kind == "healthy":
            healthy_once.set()

    config = WatchConfig(runbook=lh.runbook(RUNBOOK), inventory=[lab.info.inventory], interval=1.0, failures=2,
                         cooldown=600.0, max_responses=1, max_rounds=150, auto_approve=True)
    watcher = Watcher(config, Registry.from_entry_points(), journal, on_event)
    fault: dict[str, float] = {}

    def inject() -> None:
        if healthy_once.wait(120):
            fault["at"] = time.time()
            lh.sh_ok(lab, "db1", "service redis-server stop")

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    try:
        watcher.run()  # returns after the first response (or max_rounds)
    finally:
        watcher.stop.set()
        injector.join(5)

    kinds = [kind for _, kind, _ in seen]
    assert "at" in fault, f"the watcher never saw a healthy round: {seen[:5]}"
    assert kinds.count("unhealthy") >= 2 and "responding" in kinds and "responded" in kinds, kinds
    unhealthy = next(data for _, kind, data in seen if kind == "unhealthy")
    assert any("primary port accepts connections (L4)" in f or "primary-port" in f for f in unhealthy["failures"]), \
        unhealthy
    [summary] = watcher.state.responses
    assert summary.status == "succeeded", summary
    try:
        measured = rto(journal, summary.run_id)
    finally:
        journal.close()
    _assert_failed_over(lab, measured, fault["at"])
    assert "REJECT" in lh.sh_ok(lab, "db1", "iptables -S INPUT")  # fenced over ssh


def test_watch_cli_notices_a_killed_primary_and_fails_over(pristine, ob, tmp_path):
    lab = pristine
    cmd = [sys.executable, "-m", "opsbook", "watch", lh.runbook(RUNBOOK), "-i", lab.info.inventory,
           "--interval", "1s", "--failures", "2", "--max-responses", "1", "--journal", str(ob.journal_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ob.env(),
                            stdin=subprocess.DEVNULL, cwd=lh.REPO)
    lines: list[str] = []
    fault: dict[str, float] = {}

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip())
            if line.startswith("watch: healthy") and "at" not in fault:
                fault["at"] = time.time()
                lab.kill("db1")
            if line.startswith("watch: approval_needed"):  # the on-call engineer answers the gate
                command = json.loads(line.split(" approve=", 1)[1])
                subprocess.run([sys.executable, "-m", *shlex.split(command), "--yes", "--journal",
                                str(ob.journal_path)], check=True, env=ob.env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
    output = "\n".join(lines)
    assert proc.returncode == 0, output
    assert "at" in fault, output
    responded = re.search(r"watch: responded run=(\S+) status=(\S+)", output)
    assert responded, output
    assert responded.group(2) == "succeeded", output
    assert "watch: approval_needed" in output, "the promotion gate waited for a human"
    assert re.search(r"watch: unhealthy round=\d+ consecutive=2", output), output
    assert lh.container_status(lab, "db1") == "exited"

    from opsbook.journal import Journal
    from opsbook.report import rto

    journal = Journal(ob.journal_path)
    try:
        measured = rto(journal, responded.group(1))
        nodes = journal.nodes(responded.group(1))
    finally:
        journal.close()
    _assert_failed_over(lab, measured, fault["at"])
    fenced = nodes["fence-stop-the-old-primary-s-container@db1"]
    assert fenced.status == "ok", fenced
