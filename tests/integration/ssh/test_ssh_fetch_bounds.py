"""ssh.fetch is bounded (issue 24 item 8): an endless source stops at the step's timeout and
when the run is stopped, a file over `max_size` is refused, no partial file is left behind, and
the checksum is computed while copying (memory stays flat for a large file)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading

import pytest
import yaml
from opsbook.plugin import Status
from opsbook_lab.inventory import inventory_dict
from opsbook_lab.pytest_plugin import wait_for

MiB = 1024 * 1024


def _left_behind(evidence_dir) -> list[str]:
    return sorted(str(p.relative_to(evidence_dir)) for p in evidence_dir.rglob("*") if p.is_file())


def test_fetch_of_an_endless_file_stops_at_the_timeout_and_keeps_nothing(node):
    web1 = node("web1")
    res = web1.act("fetch", {"src": "/dev/zero", "max_size": "100GiB"}, timeout=3)
    # returning at all proves the copy stopped: /dev/zero never ends
    assert res.status is Status.TIMED_OUT, res
    assert "timed out after 3s" in res.msg and "/dev/zero" in res.msg
    assert _left_behind(web1.evidence_dir) == []
    assert web1.act("fetch", "/etc/hostname").status is Status.OK  # the connection still works


def test_fetch_stops_when_the_run_is_stopped(node):
    """SIGINT/SIGTERM set every running node's cancel event (the executor's stop)."""
    web1 = node("web1")
    stop = threading.Event()
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(
        web1.act("fetch", {"src": "/dev/zero", "max_size": "100GiB"}, cancelled=stop)), daemon=True)
    worker.start()
    wait_for("the copy to start", lambda: any(p.name.endswith(".part") for p in web1.evidence_dir.rglob("*")))
    stop.set()
    worker.join(timeout=60)
    assert outcome, "the copy went on after the run was stopped"
    assert outcome[0].status is Status.TIMED_OUT and "cancelled" in outcome[0].msg
    assert _left_behind(web1.evidence_dir) == []


@pytest.mark.parametrize("how", ["sftp", "become"])
def test_fetch_refuses_a_file_over_max_size(node, ops_become, how):
    host = node("web1") if how == "sftp" else node("web2", user="ops")
    host.sh("head -c 3145728 /dev/zero >/tmp/opsbook-big && chmod 644 /tmp/opsbook-big",
            become=ops_become if how == "become" else None)
    try:
        res = host.act("fetch", {"src": "/tmp/opsbook-big", "max_size": "1MiB"},
                       become=ops_become if how == "become" else None)
        assert res.status is Status.FAILED
        assert res.msg == (f"{host.host.name}:/tmp/opsbook-big is larger than max_size (1 MiB); nothing was kept"
                           " (raise max_size to keep it)")
        assert _left_behind(host.evidence_dir) == []
        ok = host.act("fetch", {"src": "/tmp/opsbook-big", "max_size": 3145728},
                      become=ops_become if how == "become" else None)
        assert ok.status is Status.OK and ok.data["size"] == 3145728
    finally:
        host.sh("rm -f /tmp/opsbook-big", become=ops_become if how == "become" else None)


def test_fetch_of_a_large_file_hashes_while_copying(node):
    web1 = node("web1")
    size = 192 * MiB
    web1.sh(f"head -c {size} /dev/urandom >/tmp/opsbook-large")
    try:
        expected = web1.sh("sha256sum /tmp/opsbook-large").split()[0]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak so far, bytes
        res = web1.act("fetch", "/tmp/opsbook-large")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        assert res.status is Status.OK, res.msg
        assert res.data["size"] == size and res.data["checksum"] == expected
        # reading the file whole to hash it raised the peak by its size
        assert peak - before < 64 * MiB, f"peak RSS rose by {(peak - before) // MiB} MiB"
    finally:
        web1.sh("rm -f /tmp/opsbook-large")


def test_fetch_over_the_docker_connection_is_bounded_too(docker_node):
    web1 = docker_node("web1")
    web1.conn.run(["sh", "-c", "head -c 3145728 /dev/zero >/tmp/opsbook-big"])
    try:
        refused = web1.act("fetch", {"src": "/tmp/opsbook-big", "max_size": "1MiB"})
        assert refused.status is Status.FAILED and "larger than max_size (1 MiB)" in refused.msg
        assert _left_behind(web1.evidence_dir) == []
        ok = web1.act("fetch", {"src": "/tmp/opsbook-big", "max_size": "3MiB"})
        assert ok.status is Status.OK, ok.msg
        assert ok.data["checksum"] == hashlib.sha256(b"\0" * 3145728).hexdigest()
        assert _left_behind(web1.evidence_dir) == ["web1/tmp/opsbook-big"]
    finally:
        web1.conn.run(["rm", "-f", "/tmp/opsbook-big"])


def test_sigint_stops_a_running_fetch_and_leaves_no_partial_file(lab_info, tmp_path):
    """The whole path: `opsbook run` fetching /dev/zero gets SIGINT (Ctrl-C) and ends."""
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(yaml.safe_dump(inventory_dict(lab_info)))
    runbook = tmp_path / "rb.yaml"
    runbook.write_text("opsbook: 1\nname: endless\nhosts: web1\nsteps:\n"
                       "  - name: fetch zeros\n    ssh.fetch: {src: /dev/zero, max_size: 100GiB}\n")
    runs = tmp_path / "runs"
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "journal.db"), "OPSBOOK_RUNS_DIR": str(runs)}
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(runbook), "-i", str(inventory),
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        wait_for("the copy to start", lambda: any(p.name.endswith(".part") for p in runs.rglob("*")),
                 timeout=120)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # returning proves the copy stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert "Traceback" not in err, err
    assert [str(p) for p in runs.rglob("*") if p.is_file()] == []
    finished = [json.loads(line) for line in out.splitlines() if '"node_finished"' in line]
    # cancelled by the signal, not timed out (see runtypes.CANCELLED): a resume runs it again
    assert finished and finished[0]["status"] == "failed", out
    assert finished[0]["msg"].startswith("cancelled: ") and "SIGINT" in finished[0]["msg"], out
