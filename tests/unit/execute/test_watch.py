"""Watch mode: N consecutive failing probe rounds start the response once, with RTO."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from opsbook.errors import UserError, ValidationError
from opsbook.watch import AlertReceiver, Route, WatchConfig, Watcher


def test_watch_responds_after_consecutive_failures_and_measures_rto(registry, journal, write, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    flag = tmp_path / "up"
    rb = write("svc.yaml", f"""
        opsbook: 1
        name: svc
        objectives: {{rto: 1m}}
        steps:
          - name: service is up
            marks: [verification]
            local.wait: {{path: "{flag}", timeout: 0}}
        """)
    respond = write("fix.yaml", f"""
        opsbook: 1
        name: fix
        objectives: {{rto: 1m}}
        steps:
          - name: restart
            marks: [mitigation]
            local.shell: "touch {flag}; echo fixed >> {tmp_path}/log"
          - name: verify
            marks: [verification]
            local.wait: {{path: "{flag}", timeout: 5}}
        """)
    events: list[str] = []
    watcher = Watcher(WatchConfig(rb, respond, interval=0.05, failures=3, cooldown=60, max_responses=1,
                                  max_rounds=20), registry, journal, lambda kind, data: events.append(kind))
    watcher.run()
    assert events[:4] == ["unhealthy", "unhealthy", "unhealthy", "responding"]
    (summary,) = watcher.state.responses
    assert summary.status == "succeeded"
    assert (tmp_path / "log").read_text() == "fixed\n"
    run = journal.get_run(summary.run_id)
    assert run.incident_start is not None and run.incident_start < run.started
    from opsbook.report import rto

    measured = rto(journal, summary.run_id)
    assert measured["rto"] is not None and measured["rto"] > 0
    # healthy now: more rounds do not respond again
    assert watcher.tick() is None and len(watcher.state.responses) == 1


def test_watch_needs_something_to_watch(registry, journal, write):
    rb = write("x.yaml", "opsbook: 1\nname: x\nsteps:\n  - local.noop: {}\n")
    with pytest.raises(UserError, match="nothing to watch"):
        Watcher(WatchConfig(rb), registry, journal)


def test_watch_checks_probes_before_the_mitigation_and_verification_steps(registry, write):
    from opsbook.api import load_runbook
    from opsbook.watch import health_steps

    response = load_runbook(write("isolate.yaml", """
        opsbook: 1
        name: isolate
        steps:
          - name: target answers
            probe.tcp: {host: 127.0.0.1, port: 1}
          - name: cut it off
            local.noop: {}
            marks: [mitigation]
          - name: target no longer answers
            probe.tcp: {host: 127.0.0.1, port: 1, state: closed}
          - name: site answers
            local.http: {url: "http://127.0.0.1:1/"}
            marks: [verification]
        """), registry)
    assert [s.name for s in health_steps(response).steps] == ["target answers", "site answers"]
    probes_only = load_runbook(write("probes.yaml", """
        opsbook: 1
        name: probes
        steps:
          - name: a
            probe.tcp: {host: 127.0.0.1, port: 1}
          - local.noop: {}
          - name: b
            probe.icmp: {host: 127.0.0.1}
        """), registry)
    assert [s.name for s in health_steps(probes_only).steps] == ["a", "b"]


def test_alertmanager_webhook_starts_each_incident_once():
    started: list[tuple[str, dict]] = []
    receiver = AlertReceiver("127.0.0.1", 0, [Route.parse("WebDown:runbooks/web.yaml")],
                             lambda path, alert: started.append((path, alert)), cooldown=60)
    threading.Thread(target=receiver.serve, daemon=True).start()
    try:
        body = {"status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "WebDown", "instance": "web1"}, "fingerprint": "abc",
             "startsAt": "2026-11-25T03:00:00Z"},
            {"status": "firing", "labels": {"alertname": "DiskFull"}, "fingerprint": "def"}]}
        for _ in range(2):
            req = urllib.request.Request(f"http://127.0.0.1:{receiver.port}/", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 202
    finally:
        receiver.close()
    assert [path for path, _ in started] == ["runbooks/web.yaml"]
    assert started[0][1]["labels"]["instance"] == "web1"


def test_webhook_refuses_non_loopback():
    with pytest.raises(UserError, match="loopback only"):
        AlertReceiver("0.0.0.0", 0, [], lambda *a: None)


def test_watch_takes_e_names_either_runbook_reads_and_refuses_typos_at_once(registry, journal, write):
    watched = write("watched.yaml", """
        opsbook: 1
        name: watched
        steps:
          - name: answers
            probe.tcp: {host: 127.0.0.1, port: "{{ port | default(1) }}"}
        """)
    respond = write("respond.yaml", """
        opsbook: 1
        name: respond
        steps:
          - name: restart
            local.command: "echo {{ service | default('web') }}"
        """)
    # `service` is read by the response only, `port` by the checks only: both are fine
    Watcher(WatchConfig(watched, respond, params={"service": "nginx", "port": 2}), registry, journal)
    with pytest.raises(ValidationError, match='-e servce: not a parameter of runbook "watched"'):
        Watcher(WatchConfig(watched, respond, params={"servce": "nginx"}), registry, journal)
