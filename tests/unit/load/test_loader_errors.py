"""Every loader error names file:line:column, what was found and what was expected."""

from __future__ import annotations

import pytest

from opsbook.errors import LoadError, ValidationError


def messages(exc: ValidationError) -> list[str]:
    return [f"{d.position.line}:{d.position.column}: {d.message}" for d in exc.diagnostics]


def test_near_miss_step_key_suggests_the_keyword(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                local.noop: {}
                retires: 3
            """)
    assert messages(err.value) == ['6:5: unknown step key "retires" (did you mean "retries"?)']
    assert str(err.value).startswith(err.value.diagnostics[0].position.file + ":6:5: error:")


def test_all_errors_of_a_file_are_collected(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 2
            name: t
            phase: failovr
            steps:
              - name: a
                local.comand: x
              - name: b
                lokal.noop: {}
              - name: c
                local.http: {urll: "http://127.0.0.1"}
              - name: d
                local.wait: {seconds: abc}
                timeout: 5q
            """)
    assert messages(err.value) == [
        "1:10: expected `opsbook: 1` (format version), found number 2",
        '3:8: phase must be one of first-response, failover, permanent-fix, disaster-recovery, other, found string "failovr" (did you mean "failover"?)',
        '6:5: plugin "local" has no action "comand" (did you mean "command"?)',
        '8:5: unknown plugin "lokal" in "lokal.noop" (did you mean "local"?)',
        '10:17: local.http: missing required argument "url"',
        '10:18: local.http: unknown argument "urll" (did you mean "url"?)',
        '12:27: local.wait: argument "seconds": Input should be a valid number, unable to parse string as a number, found string "abc"',
        '13:14: timeout must be a duration like 30s, 5m or 1h, found string "5q" ("5q" is not a duration like 90s, 5m, 1h30m or 500ms)',
    ]


def test_duplicate_keys_name_both_lines(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                local.noop: {}
                name: b
            """)
    assert messages(err.value) == ['6:5: duplicate key "name" (first defined at line 4)']


def test_bad_yaml_points_at_the_problem(load):
    with pytest.raises(LoadError) as err:
        load("opsbook: 1\nname: t\nsteps:\n  - name: a\n    local.shell: echo a: b\n")
    assert err.value.position.line == 5 and err.value.position.column == 24
    assert "mapping values are not allowed" in err.value.message
    assert 'must be quoted' in err.value.hint


def test_unquoted_template_gets_a_hint(load):
    with pytest.raises((LoadError, ValidationError)) as err:
        load("opsbook: 1\nname: t\nsteps:\n  - name: a\n    local.command: {{ x }}\n")
    assert "5:" in str(err.value)


def test_two_actions_in_one_step(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                local.noop: {}
                local.fail: x
            """)
    assert messages(err.value) == ["6:5: a step has exactly one action, found 2: local.noop, local.fail"]


def test_step_without_action(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: lonely
                when: true
            """)
    assert messages(err.value) == ['4:5: step "lonely" has no action']


def test_wrong_types_say_what_was_found(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                local.noop: {}
                retries: many
                ignore_errors: "yes"
                register: "not a name"
                serial: 0
            """)
    assert messages(err.value) == [
        '6:14: retries must be a whole number, found string "many"',
        '7:20: ignore_errors must be true or false, found string "yes"',
        '8:15: register must be a name made of letters, digits and _, found string "not a name"',
        "9:13: serial must be a number, a percentage like '30%', or a list of them, found number 0 (a batch size must be at least 1)",
    ]


def test_missing_steps_and_name(load):
    with pytest.raises(ValidationError) as err:
        load("opsbook: 1\ndescription: x\n")
    assert messages(err.value) == ["1:1: missing required key `name`",
                                   "1:1: expected `steps:` with a list of steps, found nothing"]


def test_not_a_mapping(load):
    with pytest.raises(ValidationError) as err:
        load("- a\n- b\n")
    assert messages(err.value) == ["1:1: a runbook must be a mapping with opsbook/name/steps, found a list"]


def test_alias_bomb_is_refused_quickly(load):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(LoadError) as err:
        load("\n".join(lines) + "\n")
    assert "expands to more than" in err.value.message


def test_params_types_and_unknown_param_keys(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            params:
              a: {type: integr, default: 1}
              b: {type: int, defualt: 1}
            steps:
              - local.noop: {}
            """)
    assert messages(err.value) == [
        '4:13: parameter type must be one of string, int, bool, duration, host, hosts, list, dict, secret, found string "integr" (did you mean "int"?)',
        '5:18: unknown parameter key "defualt" (did you mean "default"?)',
    ]



def test_a_register_named_like_a_parameter_is_an_error(load):
    """Parameters win as bare names: `primary.failed` after `register: primary` would read
    the parameter (a string) and fail only at run time, in a block or a handler too."""
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            params:
              primary: {type: host, default: web1}
            steps:
              - name: health
                local.noop: {}
                register: primary
              - name: group
                block:
                  - name: inner
                    local.noop: {}
                    register: primary
            """)
    found = messages(err.value)
    assert len(found) == 2 and all("register: primary has the name of a parameter" in m for m in found), found
    assert found[0].startswith("6:") and found[1].startswith("11:"), found


def test_ansibles_key_value_short_form_is_refused_not_misread(load):
    """`command: rm -f x chdir=/tmp/sub` would run rm in the wrong folder (opsbook reads the
    string whole); `debug: var=s` would print "var=s"; `setup: filter=x` would filter on
    "filter=x". An environment assignment (`LANG=C sort`) and plain text are no such form."""
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: rm
                command: rm -f victim.txt chdir=/tmp/sub
              - name: d
                debug: var=s
              - name: f
                setup: filter=ansible_mounts
              - name: env
                shell: LANG=C sort file
              - name: text
                debug: "hello world"
            """)
    found = messages(err.value)
    assert len(found) == 3, found
    assert found[0].startswith("5:") and "chdir= in 'rm -f victim.txt chdir=/tmp/sub' is Ansible's key=value" in found[0]
    assert found[1].startswith("7:") and "var= in 'var=s'" in found[1]
    assert found[2].startswith("9:") and "filter= in 'filter=ansible_mounts'" in found[2]

def test_valid_runbook_loads_with_positions(load):
    rb = load("""
        opsbook: 1
        name: ok
        objectives: {rto: 5m, rpo: 30s}
        steps:
          - name: first
            local.command: "echo hi"
            retries: 2
            delay: 500ms
          - block:
              - local.noop: {}
            rescue:
              - local.noop: {}
        """)
    assert rb.objectives.rto == 300 and rb.objectives.rpo == 30
    first = rb.steps[0]
    assert (first.id, first.retries, first.delay) == ("first", 2, 0.5)
    assert first.action.pos.line == 6
    assert [s.id for s in rb.all_steps()] == ["first", "block", "local-noop", "local-noop-2"]


def test_notify_naming_no_handler_is_an_error_with_did_you_mean(load):
    """Issue 15 item 6: Ansible fails on a notify that no handler answers to; so do we, earlier."""
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: change config
                local.noop: {}
                notify: restart ap
              - name: two
                local.noop: {}
                notify: [config changed, reload everything]
            handlers:
              - name: restart app
                local.noop: {}
              - name: reload
                listen: [config changed]
                local.noop: {}
                notify: restrat app
            """)
    assert messages(err.value) == [
        '6:13: notify: no handler is called "restart ap" (did you mean "restart app"?)',
        '9:30: notify: no handler is called "reload everything"',
        '16:13: notify: no handler is called "restrat app" (did you mean "restart app"?)',
    ]
    assert err.value.diagnostics[0].hint == "handlers answer to their name, id or listen: names: config changed, reload, restart app"


def test_notify_of_a_handler_by_name_id_or_listen_loads(load):
    runbook = load("""
        opsbook: 1
        name: t
        steps:
          - {name: a, local.noop: {}, notify: [Restart App, restart-app, topic]}
        handlers:
          - {name: Restart App, local.noop: {}, listen: topic}
        """)
    assert runbook.steps[0].notify == ("Restart App", "restart-app", "topic")


def test_a_templated_notify_is_an_error_since_names_are_not_rendered(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - {name: a, local.noop: {}, notify: "restart {{ svc }}"}
            handlers:
              - {name: restart web, local.noop: {}}
            """)
    assert messages(err.value) == [
        '4:39: notify: "restart {{ svc }}" is a template; handler names are matched as written, not rendered']


def test_an_over_indented_key_gets_an_indentation_hint_not_a_quoting_one(load):
    """Issue 15 item 8: YAML reads the deeper line as the rest of the value above it."""
    with pytest.raises(LoadError) as err:
        load("opsbook: 1\nname: t\nsteps:\n  - name: a\n    local.command: echo hi\n      retries: 3\n")
    assert (err.value.position.line, err.value.position.column) == (6, 14)
    assert err.value.hint == ('"retries:" is indented deeper than "local.command:" above it, so YAML reads it as '
                              'part of that value: indent "retries:" like the keys beside it')


def test_an_over_indented_key_after_a_nested_mapping_gets_the_hint_too(load):
    with pytest.raises(LoadError) as err:
        load("opsbook: 1\nname: t\nsteps:\n  - name: a\n    local.command:\n      cmd: echo hi\n"
             "        chdir: /tmp\n")
    assert err.value.hint.startswith('"chdir:" is indented deeper than "cmd:" above it')


def test_an_over_indented_key_after_a_flow_value_gets_an_indentation_hint(load):
    with pytest.raises(LoadError) as err:
        load("opsbook: 1\nname: t\nsteps:\n  - name: a\n    local.noop: {}\n      retries: 3\n")
    assert (err.value.position.line, err.value.position.column) == (6, 7)
    assert err.value.hint == "check the indentation of this line: a key lines up with the keys beside it"


def test_unknown_loop_control_key_is_an_error_not_ignored(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                loop: [x, y]
                loop_control: {loop_var: unit, index_var: idx, extended: true}
                local.noop: {}
            """)
    assert messages(err.value) == ['6:36: unknown loop_control key "index_var"',
                                   '6:52: unknown loop_control key "extended"']


def test_a_step_keyword_indented_into_the_arguments_is_named_even_with_a_template(load):
    """Found by an outside try: a `rollback:` one level too deep (inside local.shell's
    arguments) passed check because its value held a template, and failed mid-run."""
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: push config
                local.shell:
                  cmd: "echo v2"
                  rollback: {local.shell: "echo {{ inventory_hostname }}"}
                  bogus: "{{ inventory_hostname }}"
            """)
    assert messages(err.value) == ['7:7: local.shell: unknown argument "rollback"',
                                   '8:7: local.shell: unknown argument "bogus"']
    assert err.value.diagnostics[0].hint.startswith('"rollback:" is a step keyword: indent it like "local.shell:"')


@pytest.mark.parametrize("key, value, said, hint", [
    ("approved_by", "anothr", 'approved_by must be anyone or another, found string "anothr" (did you mean "another"?)',
     "another: a user other than the one who started the run must approve (four eyes)"),
    ("extra_vars", "anny", 'extra_vars must be used or any, found string "anny" (did you mean "any"?)',
     "any: accept every -e name as a variable (Ansible's extra vars); used: only names the runbook reads"),
    ("phase", "failovr", "phase must be one of first-response, failover, permanent-fix, disaster-recovery, other, "
     'found string "failovr" (did you mean "failover"?)', ""),
])
def test_a_word_outside_a_keywords_choices_names_them(load, key, value, said, hint):
    with pytest.raises(ValidationError) as err:
        load(f"opsbook: 1\nname: t\n{key}: {value}\nsteps:\n  - local.noop: {{}}\n")
    assert messages(err.value) == [f"3:{len(key) + 3}: {said}"]
    assert err.value.diagnostics[0].hint == hint


def test_a_keyword_with_choices_takes_its_default_when_absent(load):
    runbook = load("opsbook: 1\nname: t\nsteps:\n  - local.noop: {}\n")
    assert (runbook.phase, runbook.extra_vars, runbook.approved_by) == ("other", "used", "anyone")


def test_a_check_of_the_arguments_as_a_whole_is_said_as_its_own_sentence(load):
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                uri: {url: "http://127.0.0.1:8080/", unix_socket: /run/x.sock}
              - name: b
                ssh.copy: {dest: /x}
            """)
    assert messages(err.value) == [
        '5:10: ssh.uri: Ansible\'s uri argument "unix_socket" is not implemented by opsbook',
        "7:15: ssh.copy: give exactly one of content or src",
    ]


def test_a_value_near_one_of_an_arguments_choices_gets_a_did_you_mean(load):
    """Outside review: `state: restart` said only "Input should be 'started', ... 'absent'"."""
    with pytest.raises(ValidationError) as err:
        load("""
            opsbook: 1
            name: t
            steps:
              - name: a
                docker.container: {name: web1, state: restart}
              - name: b
                docker.container: {name: web1, state: rebooted-twice}
            """)
    found = messages(err.value)
    assert len(found) == 2, found
    assert found[0].endswith('found string "restart" (did you mean "restarted"?)'), found
    assert "did you mean" not in found[1], found  # nothing near: the choices alone
