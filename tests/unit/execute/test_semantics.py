"""Ansible semantics that runbook authors rely on (pinned after review findings)."""

from __future__ import annotations

from pathlib import Path

from opsbook.events import Event

INVENTORY = "[web]\nweb[1:3] ansible_connection=local\n"


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_block_keywords_apply_to_children(run, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - name: guarded
            when: false
            block:
              - local.shell: "echo inside >> {log}"
          - name: tolerant
            ignore_errors: true
            tags: [repair]
            block:
              - local.fail: boom
          - local.shell: "echo after >> {log}"
        """)
    assert summary.status == "succeeded" and lines(log) == ["after"]


def test_when_is_evaluated_per_loop_item(run, tmp_path):
    log = tmp_path / "log"
    run(f"""
        opsbook: 1
        name: t
        steps:
          - local.shell: "echo {{{{ item }}}} >> {log}"
            loop: [1, 2, 3]
            when: item > 1
        """)
    assert lines(log) == ["2", "3"]


def test_loop_results_keep_every_item_and_mark_the_skipped_ones(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - name: each
            local.shell: "echo {{{{ item }}}} >> {log}"
            loop: [1, 2, 3]
            when: item > 1
            register: out
          - name: check
            local.assert:
              that:
                - out.results | length == 3
                - out.results[0].skipped and not out.results[0].changed
                - out.results[0].item == 1 and out.results[0].ansible_loop_var == "item"
                - out.results | rejectattr("skipped") | map(attribute="item") | list == [2, 3]
                - out.results[2].rc == 0 and out.changed
        """)
    assert summary.status == "succeeded", journal.nodes(summary.run_id)
    assert lines(log) == ["2", "3"]


def test_loop_var_names_the_item_in_results(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: each
            local.command: "echo {{ svc }}"
            loop: [nginx, redis]
            loop_control: {loop_var: svc}
            register: out
          - local.assert:
              that:
                - out.results | map(attribute="svc") | list == ["nginx", "redis"]
                - out.results[1].stdout | trim == "redis"
                - out.results[0].ansible_loop_var == "svc"
        """)
    assert summary.status == "succeeded", journal.nodes(summary.run_id)


def test_rollback_arguments_are_shell_quoted(run, tmp_path):
    summary = run(f"""
        opsbook: 1
        name: t
        vars:
          danger: "a; touch {tmp_path}/PWNED"
        steps:
          - local.noop: {{}}
            rollback: {{local.shell: "echo {{{{ danger }}}}"}}
          - local.fail: boom
        """)
    assert summary.rolled_back == 1
    assert not (tmp_path / "PWNED").exists()


def test_failed_when_list_means_all_conditions(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: s
            local.command: "echo 5"
            failed_when: ["result.stdout | int > 3", "result.stdout | int > 10"]
        """)
    assert summary.status == "succeeded"


def test_empty_needs_means_no_dependency(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - {name: slow, local.shell: "sleep 0.4"}
          - {name: free, local.noop: {}, needs: []}
        """)
    nodes = journal.nodes(summary.run_id)
    assert nodes["free@localhost"].finished < nodes["slow@localhost"].finished


def test_tags_always_steps_run_but_always_does_not_select_everything(run, tmp_path):
    log = tmp_path / "log"
    text = f"""
        opsbook: 1
        name: t
        steps:
          - {{local.shell: "echo a >> {log}", tags: [always]}}
          - {{local.shell: "echo b >> {log}", tags: [fix]}}
          - {{local.shell: "echo c >> {log}"}}
        """
    run(text, tags=frozenset({"fix"}))
    assert lines(log) == ["a", "b"]
    log.unlink()
    run(text, tags=frozenset({"always"}))
    assert lines(log) == ["a"]


def test_run_once_result_is_registered_for_every_host(run, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - {{name: once, local.command: "echo leader", run_once: true, register: r}}
          - local.shell: "echo {{{{ inventory_hostname }}}}-{{{{ r.stdout | trim }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded"
    assert sorted(lines(log)) == ["web1-leader", "web2-leader", "web3-leader"]


def test_omit_drops_an_argument(run, tmp_path):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - local.command:
              cmd: "true"
              chdir: "{{ nothing | default(omit) }}"
        """)
    assert summary.status == "succeeded"


def test_until_without_retries_retries_three_times_like_ansible(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: s
            local.command: "echo 1"
            until: "result.stdout | int > 1"
            delay: 0
        """)
    assert journal.nodes(summary.run_id)["s@localhost"].attempts == 4


def test_no_log_hides_output_from_live_events(run):
    events: list[Event] = []
    run("""
        opsbook: 1
        name: t
        steps:
          - local.shell: "echo topsecret; exit 1"
            no_log: true
        """, listeners=[events.append])
    text = " ".join(str(e.data) for e in events)
    assert "topsecret" not in text and "(hidden by no_log)" in text


def test_block_approval_is_asked_once_and_cannot_be_skipped(run, tmp_path):
    asked: list[str] = []

    def approver(request):
        asked.append(request.step_name)
        return False, "carol"

    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - name: dangerous
            approve: "really?"
            block:
              - {{name: first, local.noop: {{}}, when: false}}
              - {{name: second, local.shell: "echo second >> {log}"}}
              - {{name: third, local.shell: "echo third >> {log}"}}
        """, approver=approver)
    assert asked == ["second"], "skipping the first step must not skip the approval"
    assert not log.exists() and summary.denied == ["second@localhost"]


def test_a_step_can_switch_off_what_its_block_sets(run, tmp_path):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - ignore_errors: true
            block:
              - {name: strict, local.fail: boom, ignore_errors: false}
        """)
    assert summary.status == "failed"



def test_rescued_failure_does_not_count_toward_thresholds(run, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        max_fail_percentage: 0
        steps:
          - block:
              - local.command: "false"
            rescue:
              - local.shell: "echo rescued >> {log}"
          - local.shell: "echo after >> {log}"
        """)
    assert summary.status == "succeeded" and lines(log) == ["rescued", "after"]


def test_rollback_of_a_delegated_step_runs_on_the_delegate(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        hosts: web1
        steps:
          - name: on the balancer
            delegate_to: web2
            local.noop: {}
            rollback: {local.noop: {}}
          - local.fail: boom
        """, INVENTORY)
    (entry,) = journal.rollbacks(summary.run_id)
    assert (entry["host"], entry["target"], entry["status"]) == ("web1", "web2", "done")


def test_action_data_keeps_its_own_status_key(run, tmp_path):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    import threading

    class Teapot(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(418)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Teapot)
    threading.Thread(target=server.handle_request, daemon=True).start()
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - local.http: {{url: "http://127.0.0.1:{server.server_address[1]}/", status: 418}}
            register: r
          - local.assert: {{that: ["r.status == 418", "r.ok", "not r.failed"]}}
        """)
    server.server_close()
    assert summary.status == "succeeded"


def test_params_may_not_hide_builtin_variables(load):
    import pytest

    from opsbook.errors import ValidationError

    with pytest.raises(ValidationError, match='parameter "host" would hide the built-in variable'):
        load("opsbook: 1\nname: t\nparams:\n  host: {type: string, default: x}\nsteps:\n  - local.noop: {}\n")


def test_a_run_once_step_notifies_its_handler_on_the_host_it_ran_on(run, journal, tmp_path):
    """As ansible-core 2.19 does (the differential case handler-run-once-notifies-all)."""
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        hosts: web
        steps:
          - name: reload config once
            local.command: "true"
            run_once: true
            notify: restart
        handlers:
          - name: restart
            local.shell: "echo {{{{ inventory_hostname }}}} >> {log}"
        """, INVENTORY)
    assert summary.status == "succeeded", journal.nodes(summary.run_id)
    assert sorted(lines(log)) == ["web1"]


def test_registered_stdout_and_stderr_lose_their_trailing_newlines_like_ansible(run, journal):
    """Issue 15 item 2: `echo 20%` registers stdout "20%", so an alert threshold reads 20."""
    summary = run("""
        opsbook: 1
        name: nl
        hosts: web1
        steps:
          - local.command: "echo 20%"
            register: out
          - local.assert: {that: ["(out.stdout.rstrip('%') | int) == 20", "out.stdout_lines == ['20%']"]}
          - local.shell: "printf 'a\\n\\n\\r\\n'; printf 'oops\\n' >&2"
            register: sh
          - local.assert: {that: ["sh.stdout == 'a'", "sh.stdout_lines == ['a']", "sh.stderr == 'oops'",
                                  "sh.stderr_lines == ['oops']"]}
          - name: over ssh's command path (the local connection)
            ssh.command: "printf ' x \\n'"
            register: remote
          - local.assert: {that: ["remote.stdout == ' x '"]}
          - local.shell: "echo {{ item }}"
            loop: [1, 2]
            register: each
          - local.assert: {that: ["each.results | map(attribute='stdout') | list == ['1', '2']"]}
        """, INVENTORY)
    nodes = journal.nodes(summary.run_id)
    assert summary.status == "succeeded", {n: r.msg for n, r in nodes.items() if r.status != "ok"}
    # the journal keeps the output as it came (evidence, `opsbook show`)
    assert nodes["local-command@web1"].stdout == "20%\n"


def test_a_failed_command_says_what_went_wrong_not_only_its_help_hint(run, journal):
    """Issue 15 item 8: GNU tools end with "Try 'ls --help'"; the line before is the error."""
    summary = run("""
        opsbook: 1
        name: msg
        hosts: web1
        steps:
          - name: local
            local.command: "ls --no-such-option"
            ignore_errors: true
          - name: remote
            ssh.shell: "echo 'tool: bad flag -z' >&2; echo \\"Try 'tool --help' for more information.\\" >&2; exit 2"
            ignore_errors: true
          - name: two lines
            local.shell: "echo 'nginx: [emerg] unknown directive foo' >&2; echo 'nginx: test failed' >&2; exit 1"
            ignore_errors: true
        """, INVENTORY)
    nodes = journal.nodes(summary.run_id)
    assert nodes["local@web1"].msg == "command exited with rc=2: ls: unrecognized option '--no-such-option'"
    assert nodes["remote@web1"].msg == "command exited with rc=2: tool: bad flag -z"
    assert nodes["two-lines@web1"].msg == "command exited with rc=1: nginx: [emerg] unknown directive foo"


def test_an_approved_loop_is_asked_once_showing_the_action_for_each_item(run, tmp_path):
    asked = []

    def approver(request):
        asked.append(request)
        return True, "alice"

    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - name: truncate
            approve: "Truncate {{{{ files | length }}}} files?"
            loop: "{{{{ files }}}}"
            when: item != "skip-me"
            local.shell: "echo {{{{ item }}}} >> {log}"
        vars:
          files: [a, skip-me, b]
        """, approver=approver)
    assert summary.status == "succeeded"
    assert len(asked) == 1 and asked[0].prompt == "Truncate 3 files?"
    assert asked[0].args == [f"echo a >> {log}", f"echo b >> {log}"]
    assert lines(log) == ["a", "b"]


def test_a_loop_over_nothing_is_skipped_without_asking(run, journal):
    def approver(request):
        raise AssertionError(f"asked about nothing: {request}")

    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: truncate
            approve: "Truncate?"
            loop: "{{ [] }}"
            local.command: "echo {{ item }}"
            register: out
          - local.assert:
              that: ["out is skipped", "out.results == []"]
        """, approver=approver)
    assert summary.status == "succeeded", journal.nodes(summary.run_id)
    assert journal.nodes(summary.run_id)["truncate@localhost"].status == "skipped"


def test_a_loops_rollback_is_recorded_per_item_and_undone_newest_first(run, journal, tmp_path):
    log = tmp_path / "log"
    summary = run(f"""
        opsbook: 1
        name: t
        steps:
          - name: change
            loop: [a, b, c]
            when: item != "b"
            local.shell: "echo do-{{{{ item }}}} >> {log}"
            rollback: {{local.shell: "echo undo-{{{{ item }}}} >> {log}"}}
          - local.fail: boom
        """)
    assert summary.status == "failed" and summary.rolled_back == 2
    assert lines(log) == ["do-a", "do-c", "undo-c", "undo-a"]


def test_a_skipped_rescue_says_why_it_was_not_needed(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: first
            local.fail: boom
          - name: fix
            block:
              - name: try
                local.noop: {}
            rescue:
              - name: recover
                local.noop: {}
          - name: other
            when: false
            block:
              - name: try2
                local.noop: {}
            rescue:
              - name: recover2
                local.noop: {}
        """)
    nodes = journal.nodes(summary.run_id)
    assert nodes["recover@localhost"].msg == "host failed earlier"
    assert nodes["recover2@localhost"].msg == "host failed earlier"


def test_a_rescue_skipped_on_a_healthy_host_says_nothing_in_the_block_failed(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: fix
            block:
              - name: try
                local.noop: {}
            rescue:
              - name: recover
                local.noop: {}
        """)
    assert journal.nodes(summary.run_id)["recover@localhost"].msg == "rescue not needed: nothing in the block failed"


def test_a_result_test_on_an_undefined_name_fails_the_step_instead_of_skipping_it(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: probe
            local.noop: {}
            register: nginx_pids
          - name: fix
            when: nginx_pid is succeeded
            local.noop: {}
        """)
    rec = journal.nodes(summary.run_id)["fix@localhost"]
    assert (summary.status, rec.status) == ("failed", "failed")
    assert "'nginx_pid' is undefined" in rec.msg
