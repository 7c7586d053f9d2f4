"""Check mode and changes it does not make (opsbook.dryrun): a step whose outcome depends on
such a change is `unknown` with the reason, never `failed`; a step that depends on no such
change still runs and still fails for real. Real local commands, files and sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

TWO_HOSTS = """
[web]
web1 ansible_connection=local
web2 ansible_connection=local
"""


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def statuses(journal, summary) -> dict[str, tuple[str, str]]:
    return {node_id: (rec.status, rec.msg) for node_id, rec in journal.nodes(summary.run_id).items()}


def test_verification_after_a_mitigation_check_mode_cannot_run_is_unknown_not_failed(run, journal, tmp_path,
                                                                                      closed_port):
    """The README's demo in small: detect (fails, ignored), restart (unknown), verify."""
    state = tmp_path / "state"
    started = time.monotonic()
    summary = run(f"""
        opsbook: 1
        name: demo
        steps:
          - name: service answers
            local.http: {{url: "http://127.0.0.1:{closed_port}/", timeout: 1}}
            register: health
            ignore_errors: true
          - name: restart service
            when: health.failed
            marks: [mitigation]
            local.shell: "mkdir -p {state}"
          - name: service is healthy again
            marks: [verification]
            local.http: {{url: "http://127.0.0.1:{closed_port}/", timeout: 1}}
            retries: 20
            delay: 0.25s
        """, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["service-answers@localhost"][0] == "failed"  # detection ran for real
    assert nodes["restart-service@localhost"][0] == "unknown"
    assert nodes["service-is-healthy-again@localhost"] == (
        "unknown", 'not run: it observes what "restart service" would change, and check mode did not make that change')
    assert not state.exists()
    assert time.monotonic() - started < 4, "the verification must not be retried 20 times"


def test_a_probe_before_any_change_still_fails_the_dry_run(run, journal, closed_port):
    summary = run(f"""
        opsbook: 1
        name: detect
        steps:
          - name: port answers
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
          - name: restart
            marks: [mitigation]
            local.shell: "true"
          - name: verify
            marks: [verification]
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
        """, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "failed"
    assert nodes["port-answers@localhost"][0] == "failed"
    assert nodes["restart@localhost"][0] == "skipped"  # the host failed


def test_a_probe_after_a_would_change_step_on_the_same_host_is_unknown(run, journal, tmp_path, closed_port):
    target = tmp_path / "site.conf"
    summary = run(f"""
        opsbook: 1
        name: rollout
        hosts: web
        steps:
          - name: install the site file
            ssh.copy: {{content: "new", dest: "{target}"}}
            hosts: web1
          - name: web1 serves
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
            hosts: web1
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["install-the-site-file@web1"][0] == "ok"  # would change
    assert nodes["web1-serves@web1"][0] == "unknown"
    assert '"install the site file" would change' in nodes["web1-serves@web1"][1]
    assert not target.exists()


def test_a_probe_of_another_host_after_an_ordinary_change_still_runs_and_fails(run, journal, tmp_path,
                                                                              closed_port):
    summary = run(f"""
        opsbook: 1
        name: other-host
        steps:
          - name: write a file on web1
            ssh.copy: {{content: "x", dest: "{tmp_path / 'f'}"}}
            hosts: web1
          - name: web2 answers
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
            hosts: web2
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "failed"
    assert nodes["web2-answers@web2"][0] == "failed"


def test_a_verification_anywhere_after_a_mitigation_is_unknown(run, journal, tmp_path, closed_port):
    summary = run(f"""
        opsbook: 1
        name: failover
        steps:
          - name: promote web1
            marks: [mitigation]
            ssh.copy: {{content: "primary", dest: "{tmp_path / 'role'}"}}
            hosts: web1
          - name: the site answers through web2
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
            hosts: web2
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["the-site-answers-through-web2@web2"][0] == "unknown"


def test_a_failure_after_an_unmade_change_on_the_host_is_unknown_with_its_message(run, journal, tmp_path):
    script = tmp_path / "tool.sh"
    summary = run(f"""
        opsbook: 1
        name: install-then-use
        steps:
          - name: install the tool
            ssh.copy: {{content: "exit 0", dest: "{script}"}}
          - name: the tool runs
            check_mode: false
            local.command: "sh {script}"
        """, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    status, msg = nodes["the-tool-runs@localhost"]
    assert status == "unknown"
    assert msg.startswith('fails without "install the tool", which check mode did not do, so a real run may pass: '
                          "command exited with rc=")


def test_a_runbook_error_after_an_unmade_change_still_fails(run, journal, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: broken
        steps:
          - name: install
            ssh.copy: {{content: "x", dest: "{tmp_path / 'f'}"}}
          - name: use
            check_mode: false
            local.command: "echo {{{{ no_such_name }}}}"
        """, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "failed"
    assert nodes["use@localhost"][0] == "failed" and "no_such_name" in nodes["use@localhost"][1]


def test_a_step_that_needs_an_unmade_change_on_another_host_is_unknown_when_it_fails(run, journal, tmp_path):
    flag = tmp_path / "drained"
    summary = run(f"""
        opsbook: 1
        name: needs
        steps:
          - name: drain web1
            ssh.copy: {{content: "x", dest: "{flag}"}}
            hosts: web1
          - name: web2 sees web1 drained
            needs: [drain web1]
            check_mode: false
            local.command: "test -e {flag}"
            hosts: web2
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["web2-sees-web1-drained@web2"][0] == "unknown"


def test_a_fact_set_from_an_unknown_result_stays_unknown(run, journal):
    """Issue 15 item 5: the fact is not undefined; the next step is unknown, not failed."""
    summary = run("""
        opsbook: 1
        name: facts
        steps:
          - name: disk usage
            local.shell: "echo 20%"
            register: usage
          - name: compute percent
            local.set: {percent: "{{ usage.stdout.rstrip('%') | int }}"}
          - name: alert threshold
            local.assert: {that: ["percent | int < 90"]}
          - name: unrelated
            local.assert: {that: ["1 < 2"]}
        """, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["compute-percent@localhost"] == ("unknown", 'depends on "disk usage" (unknown in check mode)')
    assert nodes["alert-threshold@localhost"] == ("unknown", 'depends on "compute percent" (unknown in check mode)')
    assert nodes["unrelated@localhost"][0] == "ok"


def test_a_fact_known_again_is_no_longer_unknown(run, journal):
    summary = run("""
        opsbook: 1
        name: facts
        steps:
          - local.shell: "echo 1"
            register: out
          - name: from the command
            local.set: {x: "{{ out.stdout }}"}
          - name: known again
            local.set: {x: "2"}
          - name: use it
            local.assert: {that: ["x == '2'"]}
        """, check=True)
    nodes = statuses(journal, summary)
    assert nodes["use-it@localhost"][0] == "ok", nodes


def test_changed_when_false_is_not_a_change_in_check_mode(run, journal, closed_port):
    """Issue 15 item 5: `changed_when: false` holds for a step check mode does not run, so it is
    neither shown "(changed)" nor an unmade change that later probes would wait for."""
    events = []
    summary = run(f"""
        opsbook: 1
        name: readonly
        hosts: web1
        steps:
          - name: read the config
            ssh.command: "cat /etc/hostname"
            changed_when: false
          - name: port answers
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
        """, TWO_HOSTS, listeners=[events.append], check=True)
    nodes = journal.nodes(summary.run_id)
    assert nodes["read-the-config@web1"].status == "unknown"
    assert nodes["read-the-config@web1"].changed is False
    finished = {e.step: e.data for e in events if e.kind == "node_finished"}
    assert finished["read the config"]["changed"] is False
    assert nodes["port-answers@web1"].status == "failed"  # nothing unmade before it: a real failure
    assert summary.status == "failed"


def test_changed_when_on_the_result_leaves_an_unknown_step_a_possible_change(run, journal, closed_port):
    summary = run(f"""
        opsbook: 1
        name: maybe
        hosts: web1
        steps:
          - name: reload if needed
            ssh.command: "reload-if-needed"
            register: out
            changed_when: out.rc == 2
          - name: port answers
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert nodes["port-answers@web1"][0] == "unknown", nodes
    assert summary.status == "succeeded"


def test_a_real_run_is_not_affected(run, journal, closed_port, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: real
        steps:
          - name: change
            marks: [mitigation]
            local.shell: "touch {tmp_path / 'x'}"
          - name: verify
            marks: [verification]
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
        """)
    assert summary.status == "failed"
    assert statuses(journal, summary)["verify@localhost"][0] == "failed"
    assert Path(tmp_path / "x").exists()


def test_a_step_reading_an_unknown_result_of_another_host_through_hostvars_is_unknown(run, journal):
    """collect-evidence's summary step: it reads `hostvars[h].reach` of every host."""
    summary = run("""
        opsbook: 1
        name: summary
        hosts: web
        steps:
          - name: host answers
            ssh.command: {cmd: "true"}
            changed_when: false
            register: reach
          - name: at least one host was reached
            hosts: localhost
            local.assert:
              that: ["reached | trim | length > 0"]
            vars:
              reached: "{% for h in groups['web'] if hostvars[h].reach.ok %}{{ h }} {% endfor %}"
          - name: reads another name of hostvars
            hosts: localhost
            local.assert: {that: ["hostvars['web1'].inventory_hostname == 'web1'"]}
        """, TWO_HOSTS, check=True)
    nodes = statuses(journal, summary)
    assert summary.status == "succeeded", nodes
    assert nodes["at-least-one-host-was-reached@localhost"] == (
        "unknown", 'depends on "host answers" (unknown in check mode)')
    assert nodes["reads-another-name-of-hostvars@localhost"][0] == "ok"


def test_a_step_always_run_in_check_mode_is_no_change_to_wait_for(run, journal, tmp_path, closed_port):
    """`check_mode: true` (a "would the API accept this?" step) changes nothing in a real run
    either, so a probe after it is not waiting for its change: it runs, and fails for real."""
    summary = run(f"""
        opsbook: 1
        name: preview
        steps:
          - name: preview the file
            check_mode: true
            ssh.copy: {{content: "new", dest: "{tmp_path / 'f'}"}}
          - name: port answers
            probe.tcp: {{host: 127.0.0.1, port: {closed_port}, timeout: 1s}}
        """, check=True)
    nodes = statuses(journal, summary)
    assert nodes["preview-the-file@localhost"][0] == "ok"
    assert nodes["port-answers@localhost"][0] == "failed"
    assert summary.status == "failed"
