"""The runbook library, end to end against the lab: every runbook does what its header says
(real effects on real services), refuses with a clear message when its precondition does
not hold, and reports its RTO (and RPO) against its objectives.

Each test starts from a pristine lab (`pristine` recreates it only when an earlier test left
something behind) and runs the runbook through the real CLI with its own journal.
"""

from __future__ import annotations

import json
import time

import lab_helpers as lh
import pytest
from opsbook_lab.pytest_plugin import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)

REFUSED = 3  # a failed precondition aborts the run (max_fail_percentage 0): exit code 3


def assert_recovered(result, objective: float) -> dict:
    """RTO measured, within the objective, from marked steps."""
    measured = result.rto()
    assert measured["rto"] is not None, f"no RTO: {measured['basis']}\n{result.summary()}"
    assert measured["rto_objective"] == objective
    assert measured["rto"] <= objective and measured["rto_met"] is True, measured
    assert measured["mitigation_node"] and measured["recovered_node"], measured
    return measured


def assert_refused(result, step: str, *phrases: str) -> str:
    """The run stopped at `step` (exit 3) with a message that says why."""
    assert result.rc == REFUSED, result.summary()
    failed = [e for e in result.finished(step) if e["status"] == "failed"]
    assert failed, f"{step!r} did not fail:\n{result.summary()}"
    message = str(failed[0].get("msg") or "")
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    return message


# -- the whole library ------------------------------------------------------------------------


LIBRARY = ("first-response/collect-evidence.yaml", "first-response/restart-service.yaml",
           "first-response/isolate-host.yaml", "first-response/disk-filling-up.yaml", "failover/redis-promote.yaml",
           "failover/lb-drain-repoint.yaml", "failover/cold-standby.yaml", "failover/hot-standby-takeover.yaml",
           "disaster-recovery/backup-restore.yaml", "permanent-fix/config-rollout.yaml",
           "permanent-fix/serial-config-rollout.yaml", "permanent-fix/scale-and-monitor.yaml",
           "first-response/disk-triage.yaml", "permanent-fix/rolling-restart.yaml")
# The gated runbooks (approvals answered by a second process) are tested in test_runbooks_gated_lab.py.


def test_every_runbook_passes_check_with_the_lab_inventory(lab, ob):
    done = ob.cli("check", "runbooks/", "-i", lab.info.inventory)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for relative in LIBRARY:
        assert f"ok  runbooks/{relative}" in done.stdout, output
        assert f"runbooks/{relative}:" not in output, f"{relative} has warnings:\n{output}"


# -- first response -----------------------------------------------------------------------------


def test_restart_service_brings_a_stopped_nginx_back_behind_the_balancer(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", "service nginx stop")
    wait_for("the balancer to mark web2 DOWN", lambda: lh.pool(lab).get("web2") == "DOWN", 20)

    result = ob.run("first-response/restart-service.yaml", target="web2")

    assert result.rc == 0, result.summary()
    assert "nginx on web2 is down at L7" in result.msg("precondition: the service is down")
    assert lh.http_get(lh.web_url(lab, "web2", "/healthz"))[0] == 200
    assert lh.pool(lab)["web2"] == "UP"
    assert "web2" in lh.whoami_through_lb(lab), "the balancer does not send requests to web2 again"
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    measured = assert_recovered(result, 120.0)
    assert measured["mitigation_node"] == "restart-the-service@web2"
    assert any(item["path"] == "web2/nginx-error.log" for item in result.manifest()["items"])


def test_restart_service_refuses_to_restart_a_healthy_service(pristine, ob):
    lab = pristine
    pid_before = lh.sh_ok(lab, "web1", "cat /run/nginx.pid").strip()

    result = ob.run("first-response/restart-service.yaml", target="web1")

    assert_refused(result, "precondition: the service is down",
                   "refusing to restart nginx on web1: it answers at L7", "Nothing was changed", "force=true")
    assert result.status_of("restart the service") == "skipped"
    assert lh.sh_ok(lab, "web1", "cat /run/nginx.pid").strip() == pid_before


def test_isolate_host_drains_then_disconnects_the_host(pristine, ob):
    lab = pristine

    result = ob.run("first-response/isolate-host.yaml", target="web1")

    assert result.rc == 0, result.summary()
    assert lh.pool(lab)["web1"] in ("DRAIN", "MAINT")
    assert not lh.on_network(lab, "web1"), "web1 is still on the lab network"
    answers = lh.whoami_through_lb(lab, 8)
    assert answers == ["web2"] * 8, answers
    assert lh.http_get(lh.web_url(lab, "web1", "/healthz"))[0] == 0, "web1 still answers on its published port"
    assert "does not answer ping" in result.msg("the target is unreachable from the balancer (L3)")
    assert_recovered(result, 120.0)
    paths = {item["path"] for item in result.manifest()["items"]}
    assert {"web1/container.log", "web1/stats.json"} <= paths
    journal = result.journal()
    try:
        preflights = [e for e in journal.events(result.run_id) if e[1] == "preflight"]
    finally:
        journal.close()
    assert preflights and preflights[0][3]["healthy_others"] == ["web2"], preflights


def test_isolate_host_rollback_puts_the_host_back(pristine, ob):
    lab = pristine

    result = ob.run("first-response/isolate-host.yaml", "--rollback", "always", target="web2")

    assert result.rc == 0, result.summary()
    done = [r for r in result.rollbacks() if r["status"] == "done"]
    assert {r["action"] for r in done} == {"docker.network", "haproxy.restore"}, result.rollbacks()
    assert lh.on_network(lab, "web2")
    # docker's reconnect brings a default route back, which lab hosts never have
    lh.sh(lab, "web2", "ip route del default 2>/dev/null; true")
    wait_for("web2 UP again on the balancer", lambda: lh.pool(lab).get("web2") == "UP", 30)
    wait_for("web2 serving through the balancer", lambda: "web2" in lh.whoami_through_lb(lab), 10)


def _admin_state(lab, server: str) -> int:
    """The balancer's admin state of `server` (`show servers state`, column 7): what the
    operator set, whatever the health checks say (bits 0x08/0x10 drain, 0x01-0x04 maint)."""
    out = lh.sh_ok(lab, "lb1", "lb-backend raw 'show servers state web'")
    return next(int(f[6]) for f in (line.split() for line in out.splitlines()) if len(f) > 6 and f[3] == server)


def test_isolate_host_whose_service_is_down_is_drained_and_a_denied_disconnect_makes_it_ready(pristine, ob):
    """The case the runbook exists for (issue 28): web1's nginx is already down, so HAProxy
    says DOWN, not DRAIN. The drain is verified by the admin state; when the run then fails
    (the disconnect is denied), the drain's own undo makes web1 ready again."""
    lab = pristine
    lh.sh_ok(lab, "web1", "service nginx stop")
    try:
        wait_for("web1 DOWN on the balancer", lambda: lh.pool(lab).get("web1") == "DOWN", 30)
        with ob.start("first-response/isolate-host.yaml", target="web1") as run:
            shown = run.wait_for_gate("disconnect the target from the network", "web1")
            assert "Disconnect web1" in shown
            assert _admin_state(lab, "web1") % 32 > 0, "drained while its checks fail"
            denied = ob.cli("deny", run.run_id, "disconnect the target from the network", "--yes", timeout=60)
            assert denied.returncode == 0, denied.stderr
            result = run.finish()
        assert result.rc == 4, result.summary()
        assert result.status_of("drain the target on the balancer") == "ok"  # waited for the admin state
        assert _admin_state(lab, "web1") % 32 == 0, "the failed run left web1 drained"
        assert any(r["action"] == "haproxy.restore" and r["status"] == "done" for r in result.rollbacks())
        assert lh.on_network(lab, "web1")
    finally:
        lh.sh_ok(lab, "web1", "service nginx start")
    wait_for("web1 UP again on the balancer", lambda: lh.pool(lab).get("web1") == "UP", 30)


def test_a_succeeded_isolation_is_undone_later_by_opsbook_rollback(pristine, ob):
    """Issue 28: the "un-isolate once the cause is fixed" of a first response. The isolation
    succeeds (web2 drained and off the network), then `opsbook rollback RUN` puts it back."""
    lab = pristine
    result = ob.run("first-response/isolate-host.yaml", target="web2")
    assert result.rc == 0, result.summary()
    assert not lh.on_network(lab, "web2") and _admin_state(lab, "web2") % 32 > 0
    undone = ob.cli("rollback", result.run_id, "--yes")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "undid 2 of 2 change(s)" in undone.stderr
    assert lh.on_network(lab, "web2") and _admin_state(lab, "web2") % 32 == 0
    lh.sh(lab, "web2", "ip route del default 2>/dev/null; true")  # docker's reconnect adds one; lab hosts have none
    wait_for("web2 UP again on the balancer", lambda: lh.pool(lab).get("web2") == "UP", 30)
    again = ob.cli("rollback", result.run_id, "--yes")
    assert again.returncode == 2 and "nothing left to undo" in again.stderr


def test_isolate_host_refuses_to_take_out_the_last_healthy_backend(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", "service nginx stop")
    try:
        result = ob.run("first-response/isolate-host.yaml", target="web1")

        assert_refused(result, "drain the target on the balancer",
                       "refusing to take web1 out: only 0 other healthy member(s) of web would remain",
                       "keep_healthy requires 1", "unhealthy: web2")
        assert result.status_of("disconnect the target from the network") == "skipped"
        assert lh.on_network(lab, "web1")
        assert lh.pool(lab)["web1"] == "UP"
    finally:
        lh.sh_ok(lab, "web2", "service nginx start")


def _nginx_pid(lab, host: str) -> str:
    return lh.sh_ok(lab, host, "cat /run/nginx.pid").strip()


def test_rolling_restart_restarts_each_host_drained_and_puts_it_back(pristine, ob):
    lab = pristine
    before = {h: _nginx_pid(lab, h) for h in ("web1", "web2")}

    result = ob.run("permanent-fix/rolling-restart.yaml")

    assert result.rc == 0, result.summary()
    for host in ("web1", "web2"):
        assert _nginx_pid(lab, host) != before[host], f"nginx on {host} was not restarted"
        assert "set web/" + host + " enabled -> drain" in result.msg("drain the host on the balancer", host)
        assert "set web/" + host + " drain -> enabled" in result.msg("enable the host on the balancer", host)
        assert _admin_state(lab, host) % 32 == 0
    drains = [lh.started_at(result, "drain the host on the balancer", h) for h in ("web1", "web2")]
    enables = [lh.started_at(result, "enable the host on the balancer", h) for h in ("web1", "web2")]
    first = 0 if drains[0] < drains[1] else 1
    assert enables[first] < drains[1 - first], "the second host was drained before the first was back"
    assert set(lh.whoami_through_lb(lab, 8)) == {"web1", "web2"}, "both hosts serve through the balancer again"
    assert_recovered(result, 300.0)


def test_rolling_restart_in_check_mode_says_what_it_would_drain_and_changes_nothing(pristine, ob):
    lab = pristine
    before = {h: _nginx_pid(lab, h) for h in ("web1", "web2")}

    result = ob.run("permanent-fix/rolling-restart.yaml", "--check")

    assert result.rc == 0, result.summary()
    assert "would set web/web1 enabled -> drain" in result.msg("drain the host on the balancer", "web1")
    assert {h: _nginx_pid(lab, h) for h in ("web1", "web2")} == before
    assert _admin_state(lab, "web1") % 32 == 0 and _admin_state(lab, "web2") % 32 == 0


def test_rolling_restart_refuses_a_host_that_answers_with_another_name(pristine, ob):
    lab = pristine
    site = "/etc/nginx/sites-available/opsbook-lab"
    lh.sh_ok(lab, "web2", f"sed -i 's/ok web2/ok web9/' {site} && service nginx reload")
    try:
        result = ob.run("permanent-fix/rolling-restart.yaml")
    finally:
        lh.sh_ok(lab, "web2", f"sed -i 's/ok web9/ok web2/' {site} && service nginx reload")
    assert_refused(result, "precondition: the host answers with its own name",
                   "but the body does not contain 'ok web2' (body starts: 'ok web9')")
    assert _admin_state(lab, "web1") % 32 == 0 and _admin_state(lab, "web2") % 32 == 0


def test_collect_evidence_from_every_node(pristine, ob):
    result = ob.run("first-response/collect-evidence.yaml", since="30m")

    assert result.rc == 0, result.summary()
    manifest = result.manifest()
    paths = {item["path"] for item in manifest["items"]}
    for host in ("lb1", "web1", "web2", "db1", "db2"):
        for name in ("ps.txt", "df.txt", "free.txt", "ss.txt", "uptime.txt", "services.txt", "logs-since.txt",
                     "container.log", "stats.json"):
            assert f"{host}/{name}" in paths, f"{host}/{name} missing from the manifest"
    folder = result.evidence_dir
    assert "sshd" in (folder / "web1/ps.txt").read_text()
    assert "Filesystem" in (folder / "db1/df.txt").read_text()
    assert "Mem:" in (folder / "db2/free.txt").read_text()
    assert "LISTEN" in (folder / "lb1/ss.txt").read_text()
    assert "role:master" in (folder / "db1/services.txt").read_text()
    assert "web1 UP" in (folder / "lb1/services.txt").read_text()
    logs = (folder / "db1/logs-since.txt").read_text()
    assert any("redis" in line for line in logs.splitlines() if line.startswith("==> ")), logs[:2000]
    for host in ("lb1", "web1", "web2", "db1", "db2"):  # ssh.collect wrote nothing on the hosts
        assert lh.sh(pristine, host, "ls -d /tmp/opsbook-* 2>/dev/null; true").strip() == "", host
    stats = json.loads((folder / "web2/stats.json").read_text())
    assert stats["summary"]["container"].endswith("-web2") and stats["summary"]["memory_usage"] > 0
    assert all(item["sha256"] and item["size"] is not None for item in manifest["items"])
    from opsbook.evidence import verify

    journal = result.journal()
    try:
        assert verify(journal, result.run_id) == []
    finally:
        journal.close()
    assert "unreachable" not in result.msg("at least one host was reached")


def test_collect_evidence_keeps_the_container_log_of_an_unreachable_host(pristine, ob):
    lab = pristine
    lab.kill("web2")
    try:
        result = ob.run("first-response/collect-evidence.yaml", since="10m")
    finally:
        lab.start("web2")

    assert result.rc == 0, result.summary()
    summary = result.msg("at least one host was reached")
    assert "unreachable over ssh (container log and state kept): web2" in summary, summary
    paths = {item["path"] for item in result.manifest()["items"]}
    assert "web2/container.log" in paths and "web2/ps.txt" not in paths
    assert {"web1/ps.txt", "db1/ps.txt"} <= paths
    assert "is exited" in result.msg("container state", "web2")


def test_collect_evidence_refuses_an_unreadable_incident_start(pristine, ob):
    result = ob.run("first-response/collect-evidence.yaml", since="last tuesday")

    assert_refused(result, "incident start as epoch seconds",
                   "since='last tuesday' is neither an ISO time", "duration ago (15m, 2h)")
    assert result.manifest()["items"] == []


# -- failover -------------------------------------------------------------------------------------


def test_redis_failover_end_to_end(pristine, ob):
    """Issue 4's done-criterion: stop the primary, detect it by probes, promote the standby,
    re-point the clients and verify, verify L7 through the balancer."""
    lab = pristine
    lh.redis(lab, "db1", "set", "order:42", "paid")
    wait_for("order:42 replicated to db2", lambda: lh.redis(lab, "db2", "get", "order:42") == "paid", 20)
    lab.stop("db1")
    incident = time.time()

    result = ob.run("failover/redis-promote.yaml", incident_start=incident)

    assert result.rc == 0, result.summary()
    # detected by probes at L3, L4 and L7
    assert result.status_of("primary answers ping (L3)") == "failed"
    assert result.status_of("primary port accepts connections (L4)") == "failed"
    assert result.status_of("primary answers PING (L7)") == "failed"
    assert "db1 is down" in result.msg("precondition: primary down, standby a healthy replica")
    # fenced through its container (ssh cannot reach a stopped host)
    assert result.status_of("fence: stop Redis and block its port on the old primary") == "failed"
    assert result.status_of("fence: stop the old primary's container") == "ok"
    assert lh.container_status(lab, "db1") == "exited"
    # promoted, data kept, writable
    assert lh.redis_info(lab, "db2")["role"] == "master"
    assert lh.redis(lab, "db2", "get", "order:42") == "paid"
    assert lh.redis(lab, "db2", "set", "after:failover", "1") == "OK"
    assert lh.sh(lab, "db2", "grep -c '^replicaof' /etc/redis/redis.conf").strip() == "0"  # survives a restart
    # clients re-pointed and writing
    db2_ip = lab.info.hosts["db2"].lab_ip
    for web in lh.WEBS:
        assert f"REDIS_HOST={db2_ip}" in lh.sh_ok(lab, web, "cat /etc/default/redis-primary")
        assert lh.redis(lab, "db2", "get", f"opsbook:client:{web}") == result.run_id
    # the site still answers through the balancer
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    measured = assert_recovered(result, 90.0)
    assert measured["rto"] < 60.0, measured  # the objective holds the worst case; a lab run is well inside 1m
    assert measured["detection_source"] == "incident_start"
    assert measured["mitigation_node"] == "promote-the-standby@db2"
    assert measured["rpo"] is not None and measured["data_time_key"] == "data_timestamp", measured


def test_redis_promote_refuses_while_the_primary_answers(pristine, ob):
    lab = pristine

    result = ob.run("failover/redis-promote.yaml")

    assert_refused(result, "precondition: primary down, standby a healthy replica",
                   "refusing to promote db2: the primary db1 still answers PING (L7: PONG",
                   "split the brain", "Nothing was changed", "force=true")
    for step in ("fence: stop Redis and block its port on the old primary", "promote the standby"):
        assert result.status_of(step) == "skipped"
    assert lh.redis_info(lab, "db2")["role"] == "slave"
    assert lh.redis(lab, "db1", "ping") == "PONG"


def test_redis_promote_rollback_makes_the_standby_a_replica_again(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "db1", "service redis-server stop")

    result = ob.run("failover/redis-promote.yaml", "--rollback", "always")

    assert result.rc == 0, result.summary()
    assert result.status_of("fence: stop Redis and block its port on the old primary") == "ok"
    assert {r["status"] for r in result.rollbacks()} == {"done"}, result.rollbacks()
    assert lh.redis(lab, "db1", "ping") == "PONG"
    assert "REJECT" not in lh.sh(lab, "db1", "iptables -S INPUT")
    wait_for("db2 replicating from db1 again",
             lambda: lh.redis_info(lab, "db2").get("master_link_status") == "up", 30)
    assert lh.redis_info(lab, "db2")["role"] == "slave"
    for web in lh.WEBS:
        assert f"REDIS_HOST={lab.info.hosts['db1'].lab_ip}" in lh.sh_ok(lab, web, "cat /etc/default/redis-primary")


def test_lb_drain_repoint_gives_the_slot_of_a_dead_backend_to_another_host(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web1", "service nginx stop")
    wait_for("the balancer to mark web1 DOWN", lambda: lh.pool(lab).get("web1") == "DOWN", 20)

    result = ob.run("failover/lb-drain-repoint.yaml", slot="web1", replacement="web2")

    assert result.rc == 0, result.summary()
    assert lh.slots(lab)["web1"] == lab.info.hosts["web2"].lab_ip
    assert lh.pool(lab)["web1"] == "UP"
    answers = [lh.http_get(lh.lb_url(lab, "/whoami")) for _ in range(8)]
    assert [status for status, _, _ in answers] == [200] * 8
    assert {body.strip() for _, body, _ in answers} == {"web2"}
    assert "re-pointing to web2 at" in result.msg("precondition: slot exists, replacement healthy")
    assert_recovered(result, 60.0)


def test_lb_drain_repoint_refuses_an_unhealthy_replacement(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", "service nginx stop")
    try:
        result = ob.run("failover/lb-drain-repoint.yaml", slot="web1", replacement="web2")

        assert_refused(result, "precondition: slot exists, replacement healthy",
                       "refusing to re-point web1 to web2", "does not answer /healthz", "Nothing was changed")
        assert result.status_of("re-point the slot") == "skipped"
        assert lh.slots(lab)["web1"] == lab.info.hosts["web1"].lab_ip
        assert lh.pool(lab)["web1"] == "UP"
    finally:
        lh.sh_ok(lab, "web2", "service nginx start")


def test_cold_standby_takes_over_from_the_latest_backup(pristine, ob, tmp_path):
    lab = pristine
    store = tmp_path / "backups"
    lh.set_keys(lab, "db1", "cart", 25)
    backup = ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store)
    assert backup.rc == 0, backup.summary()
    lh.redis(lab, "db1", "set", "written:after:backup", "lost")
    lab.stop("db2")  # the cold standby is powered off
    lab.kill("db1")  # the primary dies
    incident = time.time()

    result = ob.run("failover/cold-standby.yaml", backup_dir=store, incident_start=incident)

    assert result.rc == 0, result.summary()
    assert "cold standby db2 is stopped" in result.msg("precondition: primary down, standby cold, backup usable")
    assert lh.container_status(lab, "db2") == "running"
    assert lh.container_status(lab, "db1") == "exited"
    assert lh.redis_info(lab, "db2")["role"] == "master"
    assert len(lh.keys(lab, "db2", "cart:*")) == 25
    assert lh.redis(lab, "db2", "get", "written:after:backup") == ""
    assert lh.redis(lab, "db2", "set", "after:takeover", "1") == "OK"
    for web in lh.WEBS:
        assert f"REDIS_HOST={lab.info.hosts['db2'].lab_ip}" in lh.sh_ok(lab, web, "cat /etc/default/redis-primary")
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    measured = assert_recovered(result, 180.0)
    record = json.loads(next(store.glob("redis-db1-*.json")).read_text())
    assert measured["data_time_key"] == "backup_time"
    assert measured["data_time"] == pytest.approx(record["backup_time"])
    assert measured["rpo"] == pytest.approx(incident - record["backup_time"], abs=1.0)
    assert measured["rpo_met"] is True


def test_cold_standby_refuses_without_a_backup_or_while_the_primary_answers(pristine, ob, tmp_path):
    lab = pristine
    empty = ob.run("failover/cold-standby.yaml", backup_dir=tmp_path / "nothing-here")
    assert_refused(empty, "locate the latest backup", "no backup of db1 in", "a cold standby needs one")

    store = tmp_path / "backups"
    assert ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store).rc == 0
    healthy = ob.run("failover/cold-standby.yaml", backup_dir=store)
    assert_refused(healthy, "precondition: primary down, standby cold, backup usable",
                   "refusing to take over: the primary db1 still answers PING", "Nothing was changed")
    assert healthy.status_of("start the cold standby") == "skipped"
    assert lh.container_status(lab, "db1") == "running" and lh.redis_info(lab, "db2")["role"] == "slave"



def test_cold_standby_rollback_puts_back_what_its_header_promises(pristine, ob, tmp_path):
    """Rollback: clients point back, the standby's config gets its `replicaof` line again, the
    standby's container is stopped again and the old primary's container started."""
    lab = pristine
    store = tmp_path / "backups"
    assert ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store).rc == 0
    lab.stop("db2")
    lh.sh_ok(lab, "db1", "service redis-server stop")  # Redis is down, its container still runs: fenced by a stop

    result = ob.run("failover/cold-standby.yaml", "--rollback", "always", backup_dir=store)

    assert result.rc == 0, result.summary()
    assert result.status_of("fence: stop the old primary's container") == "ok", result.summary()
    assert result.rollbacks() and {r["status"] for r in result.rollbacks()} == {"done"}, result.rollbacks()
    assert lh.container_status(lab, "db2") == "exited"
    assert lh.container_status(lab, "db1") == "running"
    wait_for("db1 answers PING again", lambda: lh.redis(lab, "db1", "ping") == "PONG", 30)
    db1_ip = lab.info.hosts["db1"].lab_ip
    for web in lh.WEBS:
        assert f"REDIS_HOST={db1_ip}" in lh.sh_ok(lab, web, "cat /etc/default/redis-primary")
    lab.start("db2")
    assert lh.sh(lab, "db2", "grep -c '^replicaof' /etc/redis/redis.conf").strip() == "1"

# -- disaster recovery ----------------------------------------------------------------------------


def test_backup_then_restore_after_data_loss_reports_rpo(pristine, ob, tmp_path):
    lab = pristine
    store = tmp_path / "backups"
    lh.set_keys(lab, "db1", "invoice", 40)

    backup = ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store)

    assert backup.rc == 0, backup.summary()
    rdbs, records = list(store.glob("redis-db1-*.rdb")), list(store.glob("redis-db1-*.json"))
    assert len(rdbs) == 1 and len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["keys"] == int(lh.redis(lab, "db1", "dbsize")) and record["role"] == "master"
    import hashlib

    assert hashlib.sha256(rdbs[0].read_bytes()).hexdigest() == record["sha256"]
    assert abs(record["backup_time"] - time.time()) < 120
    assert rdbs[0].read_bytes()[:5] == b"REDIS"

    lh.redis(lab, "db1", "set", "written:after:backup", "lost")
    time.sleep(1)
    assert lh.redis(lab, "db1", "flushall") == "OK"  # the disaster
    incident = time.time()

    result = ob.run("disaster-recovery/backup-restore.yaml", mode="restore", backup_dir=store,
                    incident_start=incident)

    assert result.rc == 0, result.summary()
    assert len(lh.keys(lab, "db1", "invoice:*")) == 40
    assert lh.redis(lab, "db1", "get", "written:after:backup") == ""
    wait_for("db2 resynchronised", lambda: len(lh.keys(lab, "db2", "invoice:*")) == 40, 30)
    measured = assert_recovered(result, 600.0)
    assert measured["data_time_key"] == "backup_time"
    assert measured["rpo"] == pytest.approx(incident - record["backup_time"], abs=1.0)
    assert measured["rpo_objective"] == 3600.0 and measured["rpo_met"] is True
    safety = lh.sh(lab, "db1", "ls /var/lib/redis/")
    assert f"opsbook-pre-restore-{result.run_id}.rdb" in safety


def test_restore_refuses_without_a_backup_and_into_a_replica(pristine, ob, tmp_path):
    lab = pristine
    nothing = ob.run("disaster-recovery/backup-restore.yaml", mode="restore", backup_dir=tmp_path / "empty")
    assert_refused(nothing, "locate the backup", "no backup of db1 in", "take one with -e mode=backup")

    store = tmp_path / "backups"
    assert ob.run("disaster-recovery/backup-restore.yaml", mode="backup", backup_dir=store).rc == 0
    replica = ob.run("disaster-recovery/backup-restore.yaml", mode="restore", target="db2",
                     backup=str(next(store.glob("*.rdb"))))
    assert_refused(replica, "precondition: the target can take the backup",
                   "refusing to restore into db2: it is a replica", "Nothing was changed")
    assert replica.status_of("stop Redis", "db2") == "skipped"
    assert lh.redis(lab, "db2", "ping") == "PONG"


# -- permanent fix ----------------------------------------------------------------------------------


def test_config_rollout_goes_one_host_at_a_time_with_verification(pristine, ob):
    lab = pristine

    result = ob.run("permanent-fix/config-rollout.yaml", version="7", keepalive_timeout=20)

    assert result.rc == 0, result.summary()
    for web in lh.WEBS:
        status, body, headers = lh.http_get(lh.web_url(lab, web, "/version"))
        assert (status, body.strip()) == (200, "7")
        assert headers.get("X-Config-Version") == "7"
        assert "keepalive_timeout 20s" in lh.sh_ok(lab, web, "cat /etc/nginx/sites-available/opsbook-lab")
    first, second = sorted(lh.WEBS, key=lambda h: lh.started_at(result, "keep the current site file", h))
    verified_first = result.node("the balancer sees the backend UP", first)["ts"]
    assert verified_first <= lh.started_at(result, "keep the current site file", second), \
        "the second batch started before the first was verified"
    assert {lh.http_get(lh.lb_url(lab, "/version"))[1].strip() for _ in range(6)} == {"7"}
    assert_recovered(result, 300.0)


def test_config_rollout_rolls_back_every_host_when_a_batch_fails(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", "echo 'this_is_not_a_directive on;' > /etc/nginx/conf.d/zz-drift.conf")
    try:
        result = ob.run("permanent-fix/config-rollout.yaml", version="8")

        assert result.rc == REFUSED, result.summary()
        assert result.status_of("the configuration tests clean", "web2") == "failed"
        message = result.msg("stop the rollout", "web2")
        assert "configuration version 8 failed on web2" in message
        assert 'unknown directive "this_is_not_a_directive"' in message
        assert result.status_of("put the previous site file back", "web2") == "ok"
        # web1 had been changed in the first batch: rolled back by the run
        web1_rollbacks = [r for r in result.rollbacks() if r["host"] == "web1"]
        assert [r["status"] for r in web1_rollbacks] == ["done"], result.rollbacks()
        for web in lh.WEBS:
            # `service nginx reload` returns before the old workers have handed over
            wait_for(f"{web} to stop serving the new version",
                     lambda web=web: lh.http_get(lh.web_url(lab, web, "/version"))[0] == 404, timeout=10)
            assert lh.http_get(lh.web_url(lab, web, "/healthz"))[0] == 200
            assert "configuration version" not in lh.sh_ok(lab, web, "cat /etc/nginx/sites-available/opsbook-lab")
        assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    finally:
        lh.sh(lab, "web2", "rm -f /etc/nginx/conf.d/zz-drift.conf")


def test_config_rollout_refuses_a_degraded_fleet(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", "service nginx stop")
    try:
        result = ob.run("permanent-fix/config-rollout.yaml", version="9")

        assert_refused(result, "precondition: the whole fleet is healthy",
                       "refusing to roll out version 9: web2 does not answer /healthz", "Nothing was changed")
        assert result.status_of("install the new site file", "web1") == "skipped"
        assert lh.http_get(lh.web_url(lab, "web1", "/version"))[0] == 404
    finally:
        lh.sh_ok(lab, "web2", "service nginx start")


def test_scale_and_monitor_raises_limits_and_installs_a_health_check(pristine, ob):
    lab = pristine
    for web in lh.WEBS:  # the incident: starved containers
        lh.starve(lab, web, cpus=0.5, memory_mb=64)

    result = ob.run("permanent-fix/scale-and-monitor.yaml", cpus="1.5", memory_mb=256)

    assert result.rc == 0, result.summary()
    for web in lh.WEBS:
        assert lh.limits(lab, web) == (1.5, 256 * 1048576)
        status = lh.sh_ok(lab, web, "cat /var/lib/opsbook/health.status")
        assert " ok memory=" in status, status
        assert "/usr/local/bin/opsbook-healthcheck" in lh.sh_ok(lab, web, "cat /etc/cron.d/opsbook-healthcheck")
        lh.sh_ok(lab, web, "/usr/local/bin/opsbook-healthcheck")
        assert "0.5 CPUs, 64.0 MiB limit" in result.msg("precondition: the request raises capacity safely", web)
    assert lh.http_get(lh.lb_url(lab, "/healthz"))[0] == 200
    assert_recovered(result, 300.0)


def test_scale_and_monitor_rollback_restores_limits_and_removes_the_check(pristine, ob):
    lab = pristine
    for web in lh.WEBS:
        lh.starve(lab, web, cpus=0.5, memory_mb=64)

    result = ob.run("permanent-fix/scale-and-monitor.yaml", "--rollback", "always", memory_mb=128)

    assert result.rc == 0, result.summary()
    assert {r["status"] for r in result.rollbacks()} == {"done"}, result.rollbacks()
    for web in lh.WEBS:
        assert lh.limits(lab, web) == (0.5, 64 * 1048576)
        assert lh.sh(lab, web, "ls /usr/local/bin/opsbook-healthcheck /etc/cron.d/opsbook-healthcheck 2>&1").count(
            "No such file") == 2


def test_scale_and_monitor_refuses_a_limit_that_would_get_the_container_killed(pristine, ob):
    lab = pristine

    result = ob.run("permanent-fix/scale-and-monitor.yaml", memory_mb=4)

    message = assert_refused(result, "precondition: the request raises capacity safely",
                             "refusing to set", "4 MiB", "a limit below twice the usage gets it OOM-killed",
                             "Nothing was changed")
    assert "MiB now" in message
    assert all(lh.limits(lab, web) == (0, 0) for web in lh.WEBS)
