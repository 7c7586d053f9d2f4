"""Handler control (meta: flush_handlers, end_host, end_play, clear_host_errors;
force_handlers), facts (gather_facts on the runbook and on a step, cached, journaled,
read back on resume) and debug, run against real local commands."""

from __future__ import annotations

from pathlib import Path

from opsbook.api import RunRequest, resume_run
from opsbook_lab.pytest_plugin import statuses

INVENTORY = """
[web]
web[1:3] ansible_connection=local
"""


def trail(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_flush_handlers_runs_notified_handlers_at_that_point_and_again_when_notified_again(run, journal, tmp_path):
    log = tmp_path / "trail"
    summary = run(f"""
        opsbook: 1
        name: flush
        hosts: web1
        steps:
          - name: change
            local.shell: "echo change >> {log}"
            notify: reload
          - meta: flush_handlers
          - name: unchanged
            local.shell: "echo between >> {log}"
            changed_when: false
            notify: reload
          - meta: flush_handlers
          - name: change again
            local.shell: "echo again >> {log}"
            notify: [reload]
        handlers:
          - name: reload
            local.shell: "echo reload >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    assert trail(log) == ["change", "reload", "between", "again", "reload"]
    nodes = statuses(journal, summary.run_id)
    flushed = [n for n in nodes if n.endswith("/reload@web1")]
    assert sorted(nodes[n] for n in flushed) == ["ok", "skipped"]  # the second flush: nothing notified


def test_flushed_handlers_skip_a_failed_host_whose_handlers_run_at_the_end(run, journal, tmp_path):
    log = tmp_path / "trail"
    summary = run(f"""
        opsbook: 1
        name: flush-failed
        hosts: web
        steps:
          - name: change
            local.shell: "echo change-{{{{ inventory_hostname }}}} >> {log}"
            notify: reload
          - name: break web1
            local.fail: {{msg: broken}}
            when: inventory_hostname == 'web1'
          - meta: flush_handlers
          - name: after
            local.shell: "echo after-{{{{ inventory_hostname }}}} >> {log}"
        handlers:
          - name: reload
            local.shell: "echo reload-{{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "failed"
    lines = trail(log)
    for host in ("web2", "web3"):
        assert lines.index(f"reload-{host}") < lines.index(f"after-{host}")
        assert lines.count(f"reload-{host}") == 1
    assert "after-web1" not in lines and lines.count("reload-web1") == 1  # force_handlers (the default)


def test_force_handlers_false_is_ansibles_default_and_the_command_line_overrides_it(run, tmp_path):
    log = tmp_path / "trail"
    text = f"""
        opsbook: 1
        name: forced
        hosts: web
        force_handlers: false
        steps:
          - name: change
            local.command: "true"
            notify: reload
          - name: break web1
            local.fail: {{msg: broken}}
            when: inventory_hostname == 'web1'
        handlers:
          - name: reload
            local.shell: "echo reload-{{{{ inventory_hostname }}}} >> {log}"
        """
    run(text, INVENTORY)
    assert sorted(trail(log)) == ["reload-web2", "reload-web3"]
    log.unlink()
    run(text, INVENTORY, force_handlers=True)
    assert sorted(trail(log)) == ["reload-web1", "reload-web2", "reload-web3"]


def test_end_host_skips_the_rest_of_that_host_handlers_too(run, journal, tmp_path):
    log = tmp_path / "trail"
    summary = run(f"""
        opsbook: 1
        name: end-host
        hosts: web
        steps:
          - name: change
            local.command: "true"
            notify: reload
          - meta: end_host
            when: inventory_hostname == 'web2'
          - name: after
            local.shell: "echo after-{{{{ inventory_hostname }}}} >> {log}"
        handlers:
          - name: reload
            local.shell: "echo reload-{{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    assert sorted(trail(log)) == ["after-web1", "after-web3", "reload-web1", "reload-web3"]
    rec = journal.nodes(summary.run_id)["after@web2"]
    assert (rec.status, rec.msg) == ("skipped", "end_host: this host's run ended")


def test_end_play_ends_every_host_at_a_barrier_and_the_run_succeeds(run, journal, tmp_path):
    log = tmp_path / "trail"
    summary = run(f"""
        opsbook: 1
        name: end-play
        hosts: web
        steps:
          - name: first
            local.shell: "echo first-{{{{ inventory_hostname }}}} >> {log}"
            notify: reload
          - name: stop
            meta: end_play
            when: inventory_hostname == 'web3'
          - name: after
            local.shell: "echo after-{{{{ inventory_hostname }}}} >> {log}"
        handlers:
          - name: reload
            local.shell: "echo reload >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    assert sorted(trail(log)) == ["first-web1", "first-web2", "first-web3"]  # no host got past it
    assert journal.nodes(summary.run_id)["after@web1"].msg == 'end_play: the run was ended by "stop" on web3'


def test_clear_host_errors_makes_failed_hosts_alive_again(run, tmp_path):
    log = tmp_path / "trail"
    summary = run(f"""
        opsbook: 1
        name: clear
        hosts: web
        steps:
          - name: break web1
            local.fail: {{msg: broken}}
            when: inventory_hostname == 'web1'
          - name: skipped on the failed host
            local.shell: "echo skipped-{{{{ inventory_hostname }}}} >> {log}"
          - meta: clear_host_errors
          - name: after
            local.shell: "echo after-{{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    assert sorted(trail(log)) == ["after-web1", "after-web2", "after-web3", "skipped-web2", "skipped-web3"]


def test_gather_facts_once_per_host_into_hostvars_and_the_journal(run, journal):
    summary = run("""
        opsbook: 1
        name: facts
        hosts: web
        gather_facts: true
        steps:
          - name: read every host's facts
            local.assert:
              that:
                - ansible_facts.hostname == ansible_hostname
                - hostvars['web1'].ansible_memtotal_mb == ansible_memtotal_mb
                - (ansible_mounts | selectattr('mount', 'eq', '/') | list | length) == 1
                - ansible_processor_vcpus >= 1 and ansible_default_ipv4 is mapping
          - name: gathers again only if asked
            gather_facts: true
            local.noop:
        """, INVENTORY)
    assert summary.status == "succeeded", summary
    nodes = journal.nodes(summary.run_id)
    assert nodes["gathering-facts@web1"].facts["ansible_facts"]["module_setup"] is True
    assert "ansible_hostname" in nodes["gathering-facts@web2"].facts
    assert nodes["gathers-again-only-if-asked@web1"].facts == {}  # cached for the run


def test_a_resumed_run_reads_the_facts_back_from_the_journal_instead_of_gathering(run, registry, journal, tmp_path):
    flag = tmp_path / "flag"
    summary = run(f"""
        opsbook: 1
        name: facts-resume
        gather_facts: true
        max_fail_percentage: 0
        steps:
          - name: gate
            local.command: "test -e {flag}"
          - name: uses the facts
            local.assert: {{that: ["ansible_distribution | length > 0", "ansible_facts.module_setup"]}}
        """)
    assert summary.status != "succeeded"
    before = journal.nodes(summary.run_id)["gathering-facts@localhost"]
    assert before.facts["ansible_facts"]["module_setup"] is True
    flag.touch()
    again = resume_run(summary.run_id, registry, journal, RunRequest(), forget=["gate@localhost"])
    assert again.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    assert nodes["gathering-facts@localhost"].finished == before.finished  # not run again
    assert nodes["gate@localhost"].facts == {} and nodes["uses-the-facts@localhost"].facts == {}  # no gathering


def test_debug_shows_msg_and_var_and_hides_above_the_verbosity(run, journal):
    events = []
    text = """
        opsbook: 1
        name: debug
        vars: {port: 8080}
        steps:
          - {name: say, debug: {msg: "port {{ port }}"}}
          - {name: show, debug: {var: port}}
          - {name: missing, debug: {var: nothing_here}, register: m}
          - {name: quiet, debug: {msg: details, verbosity: 1}}
        """
    summary = run(text, listeners=[events.append])
    nodes = journal.nodes(summary.run_id)
    assert nodes["say@localhost"].msg == "port 8080"
    assert nodes["show@localhost"].msg == "port: 8080"
    assert nodes["missing@localhost"].registered["nothing_here"] == "VARIABLE IS NOT DEFINED!"
    assert statuses(journal, summary.run_id)["quiet@localhost"] == "skipped"
    shown = [e.data for e in events if e.kind == "node_finished" and e.step == "say"]
    assert shown and shown[0]["show"] is True  # the plain and live displays print it at -v 0
    louder = run(text, verbosity=1)
    assert journal.nodes(louder.run_id)["quiet@localhost"].msg == "details"



def test_debug_shows_a_list_a_mapping_or_a_number_as_json(run, journal):
    """Ansible's `debug: msg: "{{ out.stdout_lines }}"`: any value, not only text (it once
    failed the step: its data repeated register's own `msg`)."""
    summary = run("""
        opsbook: 1
        name: debug-values
        vars: {lines: [a, b]}
        steps:
          - {name: list, debug: {msg: "{{ lines }}"}, register: shown}
          - {name: mapping, debug: {msg: {a: 1}}}
          - {name: number, debug: {msg: "{{ 42 }}"}}
          - {name: changed, debug: {var: lines}}
        """)
    assert summary.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    assert nodes["list@localhost"].msg == '["a", "b"]' and nodes["list@localhost"].registered["msg"] == '["a", "b"]'
    assert nodes["mapping@localhost"].msg == '{"a": 1}' and nodes["number@localhost"].msg == "42"

def test_end_play_inside_serial_batches_stops_the_later_batches(run, journal):
    summary = run("""
        opsbook: 1
        name: end-play-serial
        hosts: web
        steps:
          - name: batches
            serial: 1
            block:
              - name: a
                local.command: "true"
              - name: stop
                meta: end_play
                when: inventory_hostname == 'web2'
              - name: b
                local.command: "true"
          - name: after
            local.command: "true"
        """, INVENTORY)
    assert summary.status == "succeeded"
    nodes = statuses(journal, summary.run_id)
    assert (nodes["a@web1"], nodes["b@web1"], nodes["stop@web2"]) == ("ok", "ok", "ok")
    assert {nodes["b@web2"], nodes["a@web3"], nodes["after@web1"]} == {"skipped"}


def test_facts_debug_and_meta_run_in_check_mode(run, journal):
    summary = run("""
        opsbook: 1
        name: dry
        gather_facts: true
        steps:
          - name: filtered
            setup: {filter: ansible_mounts}
          - name: say
            debug: {var: ansible_hostname}
          - meta: flush_handlers
        """, check=True)
    assert summary.status == "succeeded"
    nodes = journal.nodes(summary.run_id)
    assert {nodes[n].status for n in ("gathering-facts@localhost", "filtered@localhost", "say@localhost")} == {"ok"}
    assert nodes["say@localhost"].msg.startswith("ansible_hostname: ")


def test_gathering_facts_records_the_time_the_gathering_took(run, journal, tmp_path, monkeypatch):
    """Outside review, item 3: `Gathering Facts` was recorded 0 ms (its setup read the facts
    gathered just before it, outside its timing), and a step's `gather_facts: true` left the
    gathering out of its duration. The hosts' `uname` is slowed by a known sleep, so each
    gathering takes at least that long, and so must the nodes that gathered."""
    slow = tmp_path / "bin"
    slow.mkdir()
    uname = slow / "uname"
    uname.write_text('#!/bin/sh\nsleep 0.4\nexec /usr/bin/uname "$@"\n')
    uname.chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}:{__import__('os').environ['PATH']}")
    summary = run("""
        opsbook: 1
        name: facts-time
        hosts: web1
        gather_facts: true
        steps:
          - name: uses them
            local.assert: {that: ["ansible_kernel | length > 0"]}
          - name: gathers on web2
            hosts: web2
            gather_facts: true
            local.noop:
        """, INVENTORY)
    assert summary.status == "succeeded", summary
    nodes = journal.nodes(summary.run_id)
    assert nodes["gathering-facts@web1"].elapsed >= 0.4, nodes["gathering-facts@web1"]
    assert nodes["gathers-on-web2@web2"].elapsed >= 0.4, nodes["gathers-on-web2@web2"]
    assert nodes["gathering-facts@web1"].facts["ansible_kernel"]  # gathered once, by the step itself
