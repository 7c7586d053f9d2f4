"""The library's Docker runbooks in a dry run (`--check`), against the lab, in the incident each
exists for: a dry run is honest when it

- decides the precondition as the real run would (the read-only detection steps run in check
  mode: `check_mode: false`), and refuses where the real run would refuse;
- says what each change would do in the words of the change (`would start ...`,
  `would update ...: cpus=1.5, Memory=256MiB`), and calls what it cannot predict unknown
  instead of ok;
- changes nothing on any host, container or the balancer;
- is recorded as a dry run (`opsbook runs`).
"""

from __future__ import annotations

import time

import lab_helpers as lh
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REFUSED = 3


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)


def assert_dry_run(result, ob) -> None:
    """Passed as a dry run, and `opsbook runs` says it was one."""
    assert result.rc == 0, result.summary()
    started = next(e for e in result.events if e["event"] == "run_started")
    assert started.get("check") is True, started
    runs = ob.cli("runs").stdout
    line = next((line for line in runs.splitlines() if result.run_id in line), "")
    assert "(dry run)" in line, runs


def assert_nothing_claimed(result, *steps: str) -> None:
    """Steps a dry run cannot perform are unknown or say what they would do, never plain ok."""
    for step in steps:
        for node in result.finished(step):
            msg = str(node.get("msg") or "")
            assert node["status"] == "unknown" or "would " in msg, f"{step}: {node}\n{result.summary()}"


def test_redis_promote_dry_run_decides_the_precondition_and_promotes_nothing(pristine, ob):
    lab = pristine
    lab.stop("db1")

    result = ob.run("failover/redis-promote.yaml", "--check", incident_start=time.time())

    assert_dry_run(result, ob)
    pre = "precondition: primary down, standby a healthy replica"
    assert result.status_of(pre) == "ok" and "db1 is down" in result.msg(pre), result.summary()
    assert_nothing_claimed(result, "fence: stop Redis and block its port on the old primary", "promote the standby",
                           "re-point the clients to the new primary")
    assert lh.redis_info(lab, "db2")["role"] == "slave"
    assert lh.container_status(lab, "db1") == "exited"
    for web in lh.WEBS:
        assert lh.sh(lab, web, "test -e /etc/default/redis-primary && echo present").strip() == ""


def test_redis_promote_dry_run_refuses_as_the_real_run_would(pristine, ob):
    lab = pristine

    result = ob.run("failover/redis-promote.yaml", "--check")

    assert result.rc == REFUSED, result.summary()
    pre = "precondition: primary down, standby a healthy replica"
    assert result.status_of(pre) == "failed", result.summary()
    assert "refusing to promote db2: the primary db1 still answers PING" in result.msg(pre)
    assert result.status_of("promote the standby") == "skipped"
    assert lh.redis_info(lab, "db2")["role"] == "slave"


def test_cold_standby_dry_run_names_the_backup_and_starts_nothing(pristine, ob, tmp_path):
    lab = pristine
    store = tmp_path / "backups"
    assert ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store).rc == 0
    lab.stop("db2")
    lab.kill("db1")

    result = ob.run("failover/cold-standby.yaml", "--check", backup_dir=store)

    assert_dry_run(result, ob)
    pre = "precondition: primary down, standby cold, backup usable"
    assert result.status_of(pre) == "ok" and "cold standby db2 is stopped" in result.msg(pre), result.summary()
    assert result.msg("start the cold standby").startswith("would start opsbook-lab-db2")
    assert_nothing_claimed(result, "start the cold standby", "install the backup", "start Redis on the restored data",
                           "re-point the clients to the standby")
    assert lh.container_status(lab, "db2") == "exited"
    assert lh.container_status(lab, "db1") == "exited"


def test_isolate_host_dry_run_keeps_the_host_in_the_pool_and_on_the_network(pristine, ob):
    lab = pristine

    result = ob.run("first-response/isolate-host.yaml", "--check", target="web1")

    assert_dry_run(result, ob)
    pre = "precondition: the target is a backend of the balancer"
    assert result.status_of(pre) == "ok" and "web1 UP" in result.msg(pre), result.summary()
    assert_nothing_claimed(result, "drain the target on the balancer", "disconnect the target from the network")
    assert lh.pool(lab) == {"web1": "UP", "web2": "UP"}
    assert lh.on_network(lab, "web1")


def test_collect_evidence_dry_run_collects_and_changes_nothing(pristine, ob):
    result = ob.run("first-response/collect-evidence.yaml", "--check")

    assert_dry_run(result, ob)
    for host in ("web1", "web2", "db1", "db2", "lb1"):
        assert result.status_of("snapshot processes, disks, memory, sockets, services", host) == "ok"
        assert result.status_of("logs written since the incident start", host) == "ok"
    assert [e["status"] for e in result.finished() if e["status"] == "unknown"] == [], result.summary()
    files = {item["path"] for item in result.manifest()["items"]}
    assert "web1/ps.txt" in files and "db1/container.log" in files, sorted(files)


def test_scale_and_monitor_dry_run_names_every_limit_it_would_set(pristine, ob):
    lab = pristine
    for web in lh.WEBS:
        lh.starve(lab, web, cpus=0.5, memory_mb=64)

    result = ob.run("permanent-fix/scale-and-monitor.yaml", "--check", cpus="1.5", memory_mb=256)

    assert_dry_run(result, ob)
    for web in lh.WEBS:
        msg = result.msg("raise the limits", web)
        assert msg.startswith(f"would update opsbook-lab-{web}:") and "cpus=1.5" in msg and "Memory=256MiB" in msg, msg
        assert lh.limits(lab, web) == (0.5, 64 * 1048576)
        assert lh.sh(lab, web, "test -e /usr/local/bin/opsbook-healthcheck && echo present").strip() == ""
    assert_nothing_claimed(result, "raise the limits", "install the health check", "schedule the health check")
