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


def test_a_failing_check_with_ignore_errors_is_unhealthy(registry, journal, write, tmp_path):
    """A detection probe usually has ignore_errors (the runbook goes on to fix it): its
    failure counts as ignored in a run, and still makes a watch round unhealthy."""
    rb = write("svc.yaml", f"""
        opsbook: 1
        name: svc
        steps:
          - name: service answers
            probe.tcp: {{host: 127.0.0.1, port: 1, timeout: 1s}}
            ignore_errors: true
          - name: restart
            marks: [mitigation]
            local.shell: "touch {tmp_path}/restarted"
        """)
    healthy, failures = Watcher(WatchConfig(rb), registry, journal).probe_round()
    assert not healthy and [f.split(":")[0] for f in failures] == ["service-answers@localhost"]


def test_a_failing_check_a_rescue_answers_is_unhealthy(registry, journal, write, tmp_path):
    """A failure a block's rescue answers counts as rescued in a run; in a watch round the
    check (taken out of its block, without the rescue) failing is unhealthy."""
    rb = write("svc.yaml", f"""
        opsbook: 1
        name: svc
        steps:
          - name: probe
            block:
              - name: service answers
                probe.tcp: {{host: 127.0.0.1, port: 1, timeout: 1s}}
            rescue:
              - name: note it
                local.debug: {{msg: down}}
          - name: restart
            marks: [mitigation]
            local.shell: "touch {tmp_path}/restarted"
        """)
    healthy, failures = Watcher(WatchConfig(rb), registry, journal).probe_round()
    assert not healthy and [f.split(":")[0] for f in failures] == ["service-answers@localhost"]


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


TOKEN = "t0ken-for-the-tests-0123456789"


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """A raw POST (http.client: no header added or fixed up for us)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
    for key, value in headers.items():
        conn.putheader(key, value)
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"{}")


def _receiver(started, routes=("WebDown:runbooks/web.yaml",), starter=None) -> AlertReceiver:
    def start(route, alert):
        started.append((route, alert))
        return f"run-{len(started)}"

    receiver = AlertReceiver("127.0.0.1", 0, [Route.parse(r) for r in routes], starter or start, TOKEN, cooldown=60)
    threading.Thread(target=receiver.serve, daemon=True).start()
    return receiver


def _good(port: int, body: bytes) -> dict[str, str]:
    return {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
            "Content-Length": str(len(body))}


FIRING = json.dumps({"status": "firing", "alerts": [
    {"status": "firing", "labels": {"alertname": "WebDown", "instance": "web1", "service": "x"}, "fingerprint": "abc",
     "startsAt": "2026-11-25T03:00:00Z"},
    {"status": "firing", "labels": {"alertname": "DiskFull"}, "fingerprint": "def"}]}).encode()


def test_alertmanager_webhook_starts_each_incident_once():
    started: list = []
    receiver = _receiver(started, routes=("WebDown:runbooks/web.yaml:instance=target",))
    try:
        for attempt in range(2):
            status, body = _post(receiver.port, FIRING, _good(receiver.port, FIRING))
            assert status == 202
            assert body["started"] == ([{"runbook": "runbooks/web.yaml", "run": "run-1"}] if attempt == 0 else [])
    finally:
        receiver.close()
    ((route, alert),) = started
    assert route.runbook == "runbooks/web.yaml" and route.given(alert["labels"]) == {"target": "web1"}


@pytest.mark.parametrize("change, status", [
    ({"Host": "evil.example:19095"}, 403),
    ({"Origin": "http://evil.example"}, 403),
    ({"Authorization": None}, 401),
    ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
    ({"Content-Type": "text/plain"}, 415),
    ({"Content-Length": None}, 411),
    ({"Content-Length": "-1"}, 400),
    ({"Content-Length": "lots"}, 400),
    ({"Content-Length": str((1 << 20) + 1)}, 413),
])
def test_the_webhook_refuses_what_is_not_alertmanager_before_reading_or_starting(change, status):
    """Issue 24 items 1 and 10: no token, a foreign Host or Origin (a web page, DNS rebinding),
    a CORS 'simple' content type, a bad Content-Length: refused, nothing started."""
    started: list = []
    receiver = _receiver(started)
    try:
        headers = {k: v for k, v in {**_good(receiver.port, FIRING), **change}.items() if v is not None}
        got, body = _post(receiver.port, FIRING, headers)
    finally:
        receiver.close()
    assert got == status and body["error"] and started == []


@pytest.mark.parametrize("payload", [b"[]", b'{"alerts": "xx"}', b'{"alerts": [1]}', b"not json"])
def test_a_payload_that_is_no_alertmanager_webhook_is_a_400(payload):
    started: list = []
    receiver = _receiver(started)
    try:
        status, body = _post(receiver.port, payload, _good(receiver.port, payload))
    finally:
        receiver.close()
    assert status == 400 and started == []


def test_a_run_that_cannot_start_is_not_reported_started():
    from opsbook.errors import RunLockedError

    def refuse(route, alert):
        raise RunLockedError('lock "watch:web" is held by run 1')

    receiver = _receiver([], starter=refuse)
    try:
        status, body = _post(receiver.port, FIRING, _good(receiver.port, FIRING))
    finally:
        receiver.close()
    assert status == 409 and "is held by run" in body["error"]


def test_webhook_refuses_non_loopback():
    with pytest.raises(UserError, match="loopback only"):
        AlertReceiver("0.0.0.0", 0, [], lambda *a: "", TOKEN)



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


def test_watch_refuses_at_once_what_check_is_certain_of_in_the_response(registry, journal, write):
    """As `run` refuses it (tests/unit/check/test_run_refuses_what_check_is_certain_of.py): not
    when the incident has started and the response runs."""
    watched = write("watched.yaml", """
        opsbook: 1
        name: watched
        steps:
          - name: answers
            probe.tcp: {host: 127.0.0.1, port: 1}
        """)
    respond = write("respond.yaml", """
        opsbook: 1
        name: respond
        params: {service: {type: string, default: web}}
        steps:
          - name: restart
            local.command: "echo {{ params.servce }}"
        """)
    with pytest.raises(ValidationError, match=r'respond.yaml:\d+:\d+: .*params.servce: no parameter "servce" '
                                              r'\(did you mean "service"\?\)'):
        Watcher(WatchConfig(watched, respond), registry, journal)
