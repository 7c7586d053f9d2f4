"""Typos stop before the run: keys read from params, registered results, groups and
hostvars (`opsbook check`), and -e names nothing reads (check, plan and run)."""

from __future__ import annotations

import re

import pytest
from opsbook.api import load_inventory_sources, make_plan
from opsbook.check import check_files
from opsbook.errors import ValidationError
from opsbook.load import RunbookLoader


def _bare(message: str) -> str:
    """The message without the template it quotes."""
    return re.sub(r""" in ['"].*$""", "", message)


INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n[db]\ndb1 ansible_connection=local\n"


@pytest.fixture
def check(write, registry):
    """check(yaml, inventory=False, extra=None) -> [(line, severity, message)]."""

    def _check(text: str, inventory: bool = False, extra: dict | None = None):
        sources = [write("inv.ini", INVENTORY)] if inventory else []
        (report,) = check_files([write("rb.yaml", text)], registry, sources, extra)
        return [(d.position.line if d.position else 0, d.severity, d.message) for d in report.diagnostics]

    return _check


def test_a_misspelled_param_is_an_error_with_did_you_mean(check):
    found = check("""
        opsbook: 1
        name: typo
        params:
          target: {type: string, default: web1}
        steps:
          - name: act
            local.command: "echo {{ params.targt }} {{ params['tagret'] }}"
        """)
    assert [(line, sev, _bare(msg)) for line, sev, msg in found] == [
        (7, "error", 'step "act": params.targt: no parameter "targt" (did you mean "target"?)'),
        (7, "error", 'step "act": params.tagret: no parameter "tagret" (did you mean "target"?)'),
    ]


def test_reads_that_are_not_typos_pass(check):
    assert check("""
        opsbook: 1
        name: careful
        hosts: web
        params:
          target: {type: string, default: web1}
        steps:
          - name: optional and methods
            local.command: >-
              echo {{ params.target }} {{ params.get('x') }} {{ params.y | default(1) }}
              {{ params.keys() | list }} {{ params.z if params.z is defined else 0 }}
              {{ groups.web }} {{ groups['db'] }} {{ hostvars['web1'].anything | default(1) }}
              {{ hostvars[inventory_hostname] }}
            register: out
          - name: guarded by the step
            when: params.opt is defined
            local.command: "echo {{ params.opt }}"
          - name: guarded by the block
            when: "'w' in params"
            block:
              - name: inner
                local.command: "echo {{ params.w }}"
          - name: loop
            loop: [1, 2]
            local.command: "echo {{ item }}"
            register: many
          - name: an action that does not declare its data
            probe.tcp: {host: 127.0.0.1, port: 1}
            register: tcp
            ignore_errors: true
          - name: use them
            local.command: "echo {{ out.stdout_lines }} {{ many.results[0].stdout }} {{ tcp.latency_ms }} {{ tcp.vantage }}"
            until: result.rc == 0 and out.stdout != ''
            failed_when: result.stderr != ''
        """, inventory=True) == []


def test_registered_keys_are_checked_against_what_register_stores(check):
    found = check("""
        opsbook: 1
        name: registered
        steps:
          - name: run
            local.command: echo hi
            register: out
          - name: loop
            loop: [1, 2]
            local.command: "echo {{ item }}"
            register: many
          - name: read
            local.command: "echo {{ out.stdot }} {{ many.resluts }} {{ out.cmd }}"
            until: result.rcc == 0
        """)
    assert [(sev, _bare(msg)) for _, sev, msg in found] == [
        ("error", 'step "read": out.stdot: a registered result has no key "stdot" (did you mean "stdout"?)'),
        ("error", 'step "read": many.resluts: a registered result has no key "resluts" (did you mean "results"?)'),
        ("error", 'step "read": out.cmd: a registered result has no key "cmd"'),  # local.command adds no data
        ("error", 'step "read": result.rcc: a registered result has no key "rcc" (did you mean "rc"?)'),
    ]


def test_ssh_command_data_is_declared_and_undeclared_actions_only_warn(check):
    found = check("""
        opsbook: 1
        name: data
        steps:
          - name: run
            ssh.shell: echo hi
            register: out
          - name: probe
            probe.tcp: {host: 127.0.0.1, port: 1}
            register: tcp
          - name: read
            local.command: "echo {{ out.cmd }} {{ out.stdout_bytes }} {{ tcp.stdot }} {{ tcp.whatever }}"
        """)
    assert [(sev, _bare(msg)) for _, sev, msg in found] == [
        ("warning", 'step "read": tcp.stdot: probably a typo of "stdout"')]


def test_groups_and_hostvars_are_checked_with_an_inventory_only(check):
    text = """
        opsbook: 1
        name: inventory-keys
        steps:
          - name: read
            local.command: "echo {{ groups.webb }} {{ hostvars['web9'].x }}"
        """
    assert [(sev, _bare(msg)) for _, sev, msg in check(text, inventory=True)] == [
        ("error", 'step "read": groups.webb: no group "webb" in the inventory (did you mean "web"?)'),
        ("error", """step "read": hostvars['web9']: no host "web9" in the inventory (did you mean "web2"?)"""),
    ]
    assert check(text) == []  # without -i, the real inventory is not known


def test_extra_vars_any_and_given_extra_vars_are_params_too(check):
    assert check("""
        opsbook: 1
        name: free-form
        extra_vars: any
        steps:
          - local.command: "echo {{ params.anything }}"
        """) == []
    assert check("""
        opsbook: 1
        name: given
        steps:
          - local.command: "echo {{ params.given }}"
        """, extra={"given": "x"}) == []


def test_a_name_defined_elsewhere_is_not_checked_as_a_result(check):
    assert check("""
        opsbook: 1
        name: shadowed
        vars:
          out: {stdot: 1}
        steps:
          - name: run
            local.command: echo hi
            register: out
          - local.command: "echo {{ out.stdot }}"
        """) == []


# -- -e names ----------------------------------------------------------------------------

TARGET = """
    opsbook: 1
    name: etypo
    params:
      target: {type: string, default: web1}
    vars:
      colour: blue
    steps:
      - name: act
        local.command: "echo {{ params.target }} {{ colour }} {{ size | default(1) }} {{ params.mode | default('a') }}"
    """


def plan_with(registry, write, text, extra, inventory=None):
    rb = RunbookLoader(registry).load_file(write("rb.yaml", text))
    return make_plan(rb, load_inventory_sources([write("inv.ini", inventory)] if inventory else []), extra)


def test_an_e_name_nothing_reads_is_an_error_in_plan_and_run(registry, write):
    with pytest.raises(ValidationError) as err:
        plan_with(registry, write, TARGET, {"targt": "web2"})
    (diag,) = err.value.diagnostics
    assert diag.message == ('-e targt: not a parameter of runbook "etypo", and nothing in it reads "targt" '
                            '(did you mean "target"?)')
    assert "extra_vars: any" in diag.hint


def test_check_refuses_it_too(check):
    found = check(TARGET, extra={"targt": "web2"})
    assert [msg.split(" (")[0] for _, _, msg in found] == [
        '-e targt: not a parameter of runbook "etypo", and nothing in it reads "targt"']


@pytest.mark.parametrize("name", ["target", "colour", "size", "mode", "ansible_become", "http_port"])
def test_e_names_that_the_runbook_or_the_inventory_uses_are_accepted(registry, write, name):
    plan = plan_with(registry, write, TARGET, {name: "x"}, inventory="[web]\nweb1 http_port=80\n")
    assert plan.params[name] == "x"


def test_extra_vars_any_accepts_every_name(registry, write):
    text = TARGET.replace("name: etypo", "name: etypo\n    extra_vars: any")
    assert plan_with(registry, write, text, {"whatever": 1}).params["whatever"] == 1


def test_names_read_by_a_template_file_are_used(registry, write, tmp_path):
    write("site.conf.j2", "listen {{ listen_port }};\n")
    text = """
        opsbook: 1
        name: tpl
        steps:
          - ssh.template: {src: site.conf.j2, dest: /tmp/site.conf}
        """
    assert plan_with(registry, write, text, {"listen_port": 81}).params["listen_port"] == 81
    with pytest.raises(ValidationError, match="-e listen_prot"):
        plan_with(registry, write, text, {"listen_prot": 81})


def test_extra_vars_must_be_used_or_any(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            extra_vars: anny
            steps:
              - local.noop: {}
            """)
    assert err.value.diagnostics[0].message == (
        'extra_vars must be used or any, found string "anny" (did you mean "any"?)')


def test_declared_data_keys_cover_what_the_actions_register(run, journal, registry):
    from opsbook.check import REGISTERED_KEYS
    from opsbook.plugin import CommandResult
    from opsbook_plugins.ssh import commands as ssh

    summary = run("""
        opsbook: 1
        name: data
        steps:
          - {name: command, local.command: echo 1, register: a}
          - {name: shell, local.shell: "echo 1; exit 3", register: b, ignore_errors: true}
          - {name: set, local.set: {x: 1}, register: c}
          - {name: collect, local.collect: {cmd: "echo 1", name: one.txt}, register: d}
          - {name: wait, local.wait: 0, register: e}
          - {name: assert, local.assert: {that: "1 == 1"}, register: f}
          - {name: noop, local.noop: {}, register: g}
          - {name: fail, local.fail: boom, register: h, ignore_errors: true}
        """)
    for rec in journal.nodes(summary.run_id).values():
        spec = registry.action("local." + rec.step_id)
        assert set(rec.registered) - REGISTERED_KEYS <= spec.data, rec.step_id
    class Counted:  # what SSHConnection returns: a CommandResult with byte counts
        rc, stdout, stderr, duration, stdout_bytes, stderr_bytes = 0, "out", "", 0.0, 3, 0

    for res in (CommandResult(0, "out", ""), Counted()):
        assert set(ssh._command_result(res, [0], "echo out").data) <= registry.action("ssh.shell").data


def test_a_misspelled_test_or_filter_is_an_error_with_did_you_mean(check):
    found = check("""
        opsbook: 1
        name: typo
        steps:
          - name: probe
            local.command: "true"
            register: probe
          - name: act
            when: probe is succeded
            local.command: "echo {{ 'x' | uper }}"
        """)
    assert sorted((line, sev, msg.rsplit(": ", 1)[1]) for line, sev, msg in found if sev == "error") == [
        (8, "error", 'no test named "succeded" (did you mean "succeeded"?)'),  # at the when's line
        (9, "error", 'no filter named "uper" (did you mean "upper"?)'),
    ]


def test_an_undefined_name_in_a_blocks_when_is_an_error(check):
    found = check("""
        opsbook: 1
        name: typo
        steps:
          - name: probe
            local.command: "true"
            register: nginx_pids
          - name: fix
            when: nginx_pid is succeeded
            block:
              - name: act
                local.command: "true"
        """)
    errors = [(line, msg) for line, sev, msg in found if sev == "error"]
    assert [(line, _bare(msg)) for line, msg in errors] == [(8, 'step "fix": undefined variable "nginx_pid"')]  # the when's line
    assert errors[0][1].endswith('(did you mean "nginx_pids"?)')
