"""The library's gated runbooks against the lab, as on-call engineers run them: started without a
terminal and without --yes, their approval gates answered by a second process (`opsbook approve
RUN GATE --yes`), a stop while a gate waits, and the guarantees they rely on checked on the real
services (issue 27 item 8): a block approved once per host, keep_healthy across serial batches,
rollback newest first per host across delegate_to, a failed batch stopping the rollout, a signal
at a gate switching nothing.

- first-response/disk-filling-up: open logs truncated (never deleted) while nginx and a writer
  keep writing to them, rotated logs compressed, space freed, evidence, the notification;
- failover/hot-standby-takeover: web1 serves a maintenance page with HTTP 200, web2 stands by;
- permanent-fix/serial-config-rollout: the site polled through the balancer during the run.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import lab_helpers as lh
import pytest
from opsbook_lab.pytest_plugin import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REFUSED = 3  # a failed precondition or a failed batch aborts the run (max_fail_percentage 0)
ME = pwd.getpwuid(os.getuid()).pw_name  # who `opsbook approve` records: the real uid


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)


def assert_recovered(result, objective: float) -> dict:
    measured = result.rto()
    assert measured["rto"] is not None, f"no RTO: {measured['basis']}\n{result.summary()}"
    assert measured["rto_objective"] == objective
    assert measured["rto"] <= objective and measured["rto_met"] is True, measured
    return measured


def approvals(result) -> list[dict]:
    journal = result.journal()
    try:
        return journal.approvals(result.run_id)
    finally:
        journal.close()


def journal_events(result, kind: str) -> list[dict]:
    journal = result.journal()
    try:
        return [e[3] | {"node": e[2]} for e in journal.events(result.run_id) if e[1] == kind]
    finally:
        journal.close()


def run_status(result) -> str:
    journal = result.journal()
    try:
        return journal.get_run(result.run_id).status
    finally:
        journal.close()


def evidence(result) -> dict[str, str]:
    """Evidence path -> text, for the text files of the run."""
    items = result.manifest()["items"]
    return {i["path"]: (result.evidence_dir / i["path"]).read_text(errors="replace") for i in items}


# -- first response: a disk filling up ----------------------------------------------------------------

ACCESS = "/var/log/nginx/access.log"
WRITER_LOG = "/var/log/lab-app.log"
LOG_LINE = '172.29.77.10 - - [07/Dec/2026:03:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "lab-filler"'
MB = 1048576
DISK_GATE = "truncate open logs"


class Hook:
    """A webhook on 127.0.0.1 that keeps every JSON body POSTed to it (the team's chat)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def size_on_disk(lab, host: str, path: str) -> int:
    """Bytes allocated (what a truncation frees; a writer without O_APPEND would leave a sparse file)."""
    blocks, unit = lh.sh_ok(lab, host, f"stat -L -c '%b %B' {path}").split()
    return int(blocks) * int(unit)


@pytest.fixture
def full_disk(pristine):
    """web1's /var/log as an alert finds it: nginx's access log grew to 300 MB (nginx holds it open),
    a rotated access log of 100 MB was never compressed, and a writer holds a 150 MB log that
    someone deleted (its space is not freed while the writer lives). Yields the writer's PID."""
    lab = pristine
    lh.sh_ok(lab, "web1", f"yes '{LOG_LINE}' | head -c 300M >> {ACCESS} && yes '{LOG_LINE}' | head -c 100M > {ACCESS}.1")
    writer = lh.sh_ok(lab, "web1", f"setsid sh -c 'exec >>{WRITER_LOG} 2>&1; while :; do echo tick $(date +%s%N); "
                                   f"sleep 0.2; done' </dev/null >/dev/null 2>&1 & echo $!").strip()
    lh.sh_ok(lab, "web1", f"yes filler | head -c 150M >> {WRITER_LOG} && rm {WRITER_LOG}")
    try:
        yield writer
    finally:
        lh.sh(lab, "web1", f"kill {writer}; rm -f {ACCESS}.1 {ACCESS}.1.gz {WRITER_LOG}; : > {ACCESS}")


def test_disk_filling_up_frees_space_without_deleting_what_processes_write_to(full_disk, lab, ob):
    writer = full_disk
    inode = lh.sh_ok(lab, "web1", f"stat -c %i {ACCESS}").strip()
    assert size_on_disk(lab, "web1", ACCESS) >= 300 * MB
    assert size_on_disk(lab, "web1", f"/proc/{writer}/fd/1") >= 150 * MB

    with Hook() as hook, ob.start("first-response/disk-filling-up.yaml", target="web1", min_freed_mb=500,
                                  notify_url=hook.url) as run:
        shown = run.wait_for_gate(DISK_GATE, "web1")
        assert "Truncate 2 log file(s) on web1" in shown and ACCESS in shown, shown
        assert size_on_disk(lab, "web1", ACCESS) >= 300 * MB, "truncated before the approval"
        approved = run.approve(DISK_GATE)
        assert approved.returncode == 0, approved.stderr
        result = run.finish()

    assert result.rc == 0, result.summary()
    [asked] = approvals(result)
    assert asked["approved"] and asked["who"].startswith(f"{ME}@") and asked["step_id"] == "truncate-open-logs"
    # truncated, not deleted: the same file, and nginx writes on into it
    assert lh.sh_ok(lab, "web1", f"stat -c %i {ACCESS}").strip() == inode
    assert size_on_disk(lab, "web1", ACCESS) < MB
    assert lh.http_get(lh.web_url(lab, "web1", "/whoami?after-the-truncation"))[0] == 200
    wait_for("nginx to log into the truncated access log",
             lambda: "after-the-truncation" in lh.sh(lab, "web1", f"cat {ACCESS}"), timeout=10)
    # the deleted log: truncated through /proc, its writer alive and still writing
    assert size_on_disk(lab, "web1", f"/proc/{writer}/fd/1") < MB
    written = int(lh.sh_ok(lab, "web1", f"stat -L -c %s /proc/{writer}/fd/1"))
    wait_for("the writer to write on", lambda: int(lh.sh_ok(lab, "web1", f"stat -L -c %s /proc/{writer}/fd/1")) > written,
             timeout=10)
    # the rotated log compressed, nothing lost
    assert lh.sh(lab, "web1", f"ls {ACCESS}.1 2>&1").strip().endswith("No such file or directory")
    assert lh.sh_ok(lab, "web1", f"gzip -dc {ACCESS}.1.gz | wc -c").strip() == str(100 * MB)
    # measured and verified
    verdict = result.msg("enough space is free again")
    freed = float(verdict.split("freed ")[1].split(" MB")[0])
    assert 500 <= freed <= 600, verdict
    plan = result.msg("precondition: something is safe to relieve")
    assert "compress 1 rotated log(s)" in plan and f"{ACCESS}.1" in plan, plan
    assert "truncate 2 open log(s)" in plan and f"{WRITER_LOG} [deleted] held by sh[{writer}]" in plan, plan
    # the evidence: what filled the disk, what the truncation discarded, the result
    kept = evidence(result)
    assert f"{ACCESS}\n" in kept["web1/disk-usage-before.txt"].split("largest directories")[0]
    assert "nginx[" in kept["web1/disk-usage-before.txt"]
    assert LOG_LINE in kept["web1/before-truncate_var_log_nginx_access.log.txt"].splitlines()
    assert kept["web1/before-truncate_var_log_lab-app.log.txt"].splitlines()[-1].startswith("tick ")
    assert "truncated (still open)" in kept["web1/disk-usage-after.txt"]
    assert f"compressed into {ACCESS}.1.gz" in kept["web1/disk-usage-after.txt"]
    # the team was told
    [note] = hook.received
    assert note["text"].startswith("disk relieved on web1: opsbook freed") and note["run"] == result.run_id, note
    assert note["ok"] is True and note["freed_bytes"] >= 500 * MB and note["host"] == "web1"
    assert sorted(note["truncated"]) == [WRITER_LOG, ACCESS]
    measured = assert_recovered(result, 600.0)
    assert measured["mitigation_node"] == "compress-rotated-logs@web1"
    assert measured["recovered_node"] == "enough-space-is-free-again@web1"


def test_disk_filling_up_in_check_mode_shows_the_plan_and_changes_nothing(full_disk, lab, ob):
    before = {p: size_on_disk(lab, "web1", p) for p in (ACCESS, f"{ACCESS}.1")}

    result = ob.run("first-response/disk-filling-up.yaml", "--check", target="web1")

    assert result.rc == 0, result.summary()
    plan = result.msg("precondition: something is safe to relieve")
    assert "compress 1 rotated log(s)" in plan and "truncate 2 open log(s)" in plan and ACCESS in plan, plan
    for step in ("compress rotated logs", "truncate open logs", "enough space is free again"):
        assert result.status_of(step) == "unknown", result.summary()
    assert {p: size_on_disk(lab, "web1", p) for p in before} == before
    assert approvals(result) == []
    assert "web1/disk-usage-before.txt" in evidence(result)


def test_disk_filling_up_refuses_when_nothing_is_safe_to_relieve(pristine, ob):
    result = ob.run("first-response/disk-filling-up.yaml", target="web2")

    assert result.rc == REFUSED, result.summary()
    message = result.msg("precondition: something is safe to relieve")
    assert "refusing: nothing under /var/log on web2" in message and "Nothing was changed" in message, message
    assert result.status_of("truncate open logs") == "skipped"
    assert approvals(result) == []


# -- failover: a hot-standby takeover after an L7 content failure ---------------------------------------

TAKEOVER = "failover/hot-standby-takeover.yaml"
TAKEOVER_GATE = "make the standby the only active backend"
MAINTENANCE = "<html><body><h1>Down for maintenance</h1></body></html>"
BLOCK = ("put the standby in service", "drain the primary", "the balancer shows the switch",
         "every request through the balancer gets the right content")


def pages_through_lb(lab, n: int = 10) -> list[str]:
    return [lh.http_get(lh.lb_url(lab, "/"))[1] for _ in range(n)]


@pytest.fixture
def wrong_content(pristine):
    """web1 serves a maintenance page with HTTP 200 (its /healthz still answers, so the balancer
    keeps it UP and sends it every request); web2, the hot standby, waits drained."""
    lab = pristine
    lh.sh_ok(lab, "web1", f"cp -p /var/www/lab/index.html /tmp/index.html.good && echo '{MAINTENANCE}' > /var/www/lab/index.html")
    lh.sh_ok(lab, "lb1", "lb-backend drain web2")
    try:
        yield lab
    finally:
        lh.sh(lab, "web1", "mv /tmp/index.html.good /var/www/lab/index.html")
        lh.sh(lab, "lb1", "lb-backend ready web1; lb-backend ready web2")


def test_hot_standby_takeover_asks_once_and_switches_the_balancer_by_content(wrong_content, ob):
    lab = wrong_content
    assert all("Down for maintenance" in page for page in pages_through_lb(lab, 4))
    assert lh.pool(lab) == {"web1": "UP", "web2": "DRAIN"}

    with ob.start(TAKEOVER) as run:
        shown = run.wait_for_gate(TAKEOVER_GATE, "web1")
        assert "web1 serves wrong content. Make web2 active?" in shown, shown
        assert lh.pool(lab) == {"web1": "UP", "web2": "DRAIN"}, "switched before the approval"
        approved = run.approve(TAKEOVER_GATE)
        assert approved.returncode == 0, approved.stderr
        result = run.finish()

    assert result.rc == 0, result.summary()
    [asked] = approvals(result)  # the block is asked once, not once per step
    assert asked["approved"] and asked["who"].startswith(f"{ME}@")
    assert asked["detail"]["block_name"] == TAKEOVER_GATE and asked["node_id"] == "put-the-standby-in-service@web1"
    assert asked["prompt"] == "web1 serves wrong content. Make web2 active?"
    assert [result.status_of(step, "web1") for step in BLOCK] == ["ok"] * 4
    assert lh.pool(lab) == {"web1": "DRAIN", "web2": "UP"}
    assert all("served by web2" in page for page in pages_through_lb(lab)), pages_through_lb(lab, 4)
    found = result.msg("precondition: the primary serves wrong content, the standby the right one")
    assert "web1 serves the wrong content (HTTP 200 from" in found and "8 of 8 requests" in found, found
    preflights = journal_events(result, "preflight")  # before asking, and again right before the drain
    assert len(preflights) == 2, preflights
    assert all(p["healthy_others"] == ["web2"] and p["group"] == "web1:web2" for p in preflights), preflights
    kept = evidence(result)
    assert "Down for maintenance" in kept["web1/page.txt"] and "served by web2" in kept["web2/page.txt"]
    assert "web2 DRAIN" in kept["lb1/pool-before.txt"] and "web1 DRAIN" in kept["lb1/pool-after.txt"]
    assert "Next: fix the content of web1" in result.msg("the standby is the only active backend")
    measured = assert_recovered(result, 120.0)
    assert measured["mitigation_node"] == "drain-the-primary@web1"


def test_hot_standby_takeover_stopped_at_its_gate_switches_nothing(wrong_content, ob):
    lab = wrong_content

    with ob.start(TAKEOVER) as run:
        run.wait_for_gate(TAKEOVER_GATE, "web1")
        stopped = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        result = run.finish(timeout=30)
        took = time.monotonic() - stopped

    assert result.rc == 143, result.summary()
    assert took < 10, f"the run took {took:.1f}s to answer SIGTERM at its gate"
    assert run_status(result) == "interrupted"
    [asked] = approvals(result)
    assert asked["cancelled"] and not asked["approved"], asked
    assert all(result.finished(step, "web1") == [] or result.status_of(step, "web1") == "skipped" for step in BLOCK)
    assert [r for r in result.rollbacks() if r["status"] == "done"] == [], "nothing was done, nothing to undo"
    assert lh.pool(lab) == {"web1": "UP", "web2": "DRAIN"}
    assert all("Down for maintenance" in page for page in pages_through_lb(lab, 4))
    late = run.approve(TAKEOVER_GATE)
    assert late.returncode != 0 and "was cancelled when the run stopped" in late.stderr, late.stderr
    assert lh.pool(lab) == {"web1": "UP", "web2": "DRAIN"}


def test_hot_standby_takeover_refuses_when_the_primary_serves_the_right_content(pristine, ob):
    lab = pristine

    result = ob.run(TAKEOVER)

    assert result.rc == REFUSED, result.summary()
    message = result.msg("precondition: the primary serves wrong content, the standby the right one")
    assert "refusing: web1 serves the right content" in message and "Nothing was changed" in message, message
    assert result.status_of("drain the primary", "web1") == "skipped"
    assert approvals(result) == []
    assert lh.pool(lab) == {"web1": "UP", "web2": "UP"}


# -- permanent fix: a serial rollout that keeps the site answering ---------------------------------------

ROLLOUT = "permanent-fix/serial-config-rollout.yaml"
SITE = "/etc/nginx/sites-available/opsbook-lab"
EXTRA = "/etc/nginx/opsbook-extra.conf"


def restore_sites(lab) -> None:
    """The lab's own site file on both web hosts, whatever a rollout left."""
    for web in lh.WEBS:
        lh.sh(lab, web, f"rm -f {EXTRA} {SITE}.opsbook-*; sed 's/@NAME@/{web}/g' /opt/opsbook-lab/nginx-web.conf > {SITE}"
                        " && nginx -t 2>/dev/null && service nginx reload")
    for web in lh.WEBS:
        wait_for(f"{web} back on the lab's site file",
                 lambda web=web: lh.http_get(lh.web_url(lab, web, "/version"))[0] == 404, timeout=10)


def batch_window(result, host: str) -> tuple[float, float]:
    """From the moment the host was drained to the moment it was put back."""
    return (result.node("take the host out of the pool", host)["ts"],
            lh.started_at(result, "put the host back into the pool", host))


ROLLOUT_GATE = "one host at a time"


def approve_batches(run, *hosts: str) -> None:
    """Answer each batch's gate from a second process, once it is that batch's turn."""
    for host in hosts:
        shown = run.wait_for_gate(ROLLOUT_GATE, host)
        assert f"out to {host}: take it out of the pool of lb1" in shown, shown
        approved = run.approve(ROLLOUT_GATE)
        assert approved.returncode == 0, approved.stderr


def test_serial_config_rollout_keeps_the_site_answering_through_every_batch(pristine, ob):
    lab = pristine
    try:
        with lh.SiteWatch(lh.lb_url(lab, "/whoami"), interval=0.02) as watch, ob.start(ROLLOUT, version="7") as run:
            approve_batches(run, "web1", "web2")
            result = run.finish()

        assert result.rc == 0, result.summary()
        assert len(watch.answers) > 50 and watch.failures() == [], watch.failures()[:5]
        for web in lh.WEBS:
            status, body, headers = lh.http_get(lh.web_url(lab, web, "/version"))
            assert (status, body.strip(), headers.get("X-Config-Version")) == (200, "7", "7")
        # one batch at a time: web2 was asked only once web1 was verified through the balancer
        asked = {a["node_id"].split("@")[1]: a for a in approvals(result)}
        assert sorted(asked) == ["web1", "web2"] and all(a["approved"] for a in asked.values()), asked
        assert {a["node_id"].split("@")[0] for a in asked.values()} == {"take-the-host-out-of-the-pool"}
        assert result.node("the site answers through the balancer", "web1")["ts"] <= asked["web2"]["requested"]
        # while a host was out of the pool, only the other one answered
        for host, other in (("web1", "web2"), ("web2", "web1")):
            start, end = batch_window(result, host)
            during = {body for at, _status, body in watch.answers if start + 0.2 < at < end}
            assert during == {other}, f"{host} out of the pool, yet answers came from {during}"
        # keep_healthy judged each batch by the probe: web1, drained and put back, counts again for web2's
        preflights = {p["node"]: p for p in journal_events(result, "preflight")}
        assert preflights["take-the-host-out-of-the-pool@web2"]["healthy_others"] == ["web1"]
        assert preflights["take-the-host-out-of-the-pool@web2"]["taken_out"] == []
        assert lh.pool(lab) == {"web1": "UP", "web2": "UP"}
        assert {lh.http_get(lh.lb_url(lab, "/version"))[1].strip() for _ in range(6)} == {"7"}
        assert_recovered(result, 300.0)
    finally:
        restore_sites(lab)


def undo_order(result, host: str) -> list[tuple[str, str, str]]:
    """(step undone, where it ran, status) of a host's rollbacks, in the order they ran."""
    rows = sorted((r for r in result.rollbacks() if r["host"] == host), key=lambda r: r["started"] or 0)
    return [(r["node_id"].split("@")[0], r["target"], r["status"]) for r in rows]


CONFIG_FIRST = [("install-the-new-site-file", None, "done"), ("take-the-host-out-of-the-pool", "lb1", "done")]


def test_serial_config_rollout_stops_at_a_failed_batch_and_restores_config_before_the_pool(pristine, ob):
    """The new configuration includes a file only web1 has: web2's batch fails at `nginx -t`."""
    lab = pristine
    lh.sh_ok(lab, "web1", f"echo 'add_header X-Extra yes always;' > {EXTRA}")
    try:
        with lh.SiteWatch(lh.lb_url(lab, "/whoami"), interval=0.02) as watch, \
                ob.start(ROLLOUT, version="8", extra=f"include {EXTRA};") as run:
            approve_batches(run, "web1", "web2")
            result = run.finish()

        assert result.rc == REFUSED, result.summary()
        assert result.status_of("the site answers through the balancer", "web1") == "ok"
        assert result.status_of("the configuration tests clean", "web2") == "failed"
        assert EXTRA in result.msg("the configuration tests clean", "web2")
        assert result.status_of("every request through the balancer gets the new version") == "skipped"
        # every changed host rolled back, its own configuration before the balancer's pool
        for host in lh.WEBS:
            assert undo_order(result, host) == [(s, t or host, st) for s, t, st in CONFIG_FIRST], result.rollbacks()
        for host in lh.WEBS:
            [config, pool_undo] = [r for r in sorted(result.rollbacks(), key=lambda r: r["started"]) if r["host"] == host]
            assert config["finished"] <= pool_undo["started"], (config, pool_undo)
        wait_for("both backends UP again", lambda: lh.pool(lab) == {"web1": "UP", "web2": "UP"}, timeout=20)
        for web in lh.WEBS:
            wait_for(f"{web} back on its previous configuration",
                     lambda web=web: lh.http_get(lh.web_url(lab, web, "/version"))[0] == 404, timeout=10)
            assert "configuration version" not in lh.sh_ok(lab, web, f"cat {SITE}")
        assert watch.failures() == [], watch.failures()[:5]
    finally:
        restore_sites(lab)


def test_serial_config_rollout_failing_on_the_first_host_never_touches_the_second(pristine, ob):
    lab = pristine
    lh.sh_ok(lab, "web2", f"echo 'add_header X-Extra yes always;' > {EXTRA}")
    try:
        with lh.SiteWatch(lh.lb_url(lab, "/whoami"), interval=0.02) as watch, \
                ob.start(ROLLOUT, version="9", extra=f"include {EXTRA};") as run:
            approve_batches(run, "web1")
            result = run.finish()

        assert result.rc == REFUSED, result.summary()
        assert result.status_of("the configuration tests clean", "web1") == "failed"
        assert result.finished("take the host out of the pool", "web2") == [] or \
            result.status_of("take the host out of the pool", "web2") == "skipped"
        assert "configuration version" not in lh.sh_ok(lab, "web2", f"cat {SITE}")
        assert undo_order(result, "web1") == [(s, t or "web1", st) for s, t, st in CONFIG_FIRST]
        assert undo_order(result, "web2") == []
        assert [a["node_id"] for a in approvals(result)] == ["take-the-host-out-of-the-pool@web1"], \
            "the next batch is never even asked"
        wait_for("both backends UP again", lambda: lh.pool(lab) == {"web1": "UP", "web2": "UP"}, timeout=20)
        assert "configuration version" not in lh.sh_ok(lab, "web1", f"cat {SITE}")
        assert watch.failures() == [], watch.failures()[:5]
    finally:
        restore_sites(lab)
