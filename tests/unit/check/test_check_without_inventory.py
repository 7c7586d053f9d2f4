"""`opsbook check` without `-i`: host patterns only an inventory can resolve are not
errors (the report says they were not checked), and every other check still applies to
the steps that target them. With `-i`, an unknown pattern stays an error."""

from __future__ import annotations

from opsbook.check import check_files


def errors(report) -> list[str]:
    return [f"{d.position.line if d.position else 0}: {d.message}" for d in report.diagnostics if d.severity == "error"]


GROUP_RUNBOOK = """
    opsbook: 1
    name: failover
    hosts: db
    steps:
      - name: primary answers
        probe.tcp: {port: 6379}
        hosts: db1
        register: health
        ignore_errors: true
      - name: promote
        when: hostvars[params.primary].health.failed
        local.command: "echo promote"
        hosts: "web:!{{ params.primary }}"
    params:
      primary: {type: host, default: db1}
    """


def test_group_patterns_without_an_inventory_pass_and_are_named_once(registry, write):
    (report,) = check_files([write("rb.yaml", GROUP_RUNBOOK)], registry, [])
    assert report.ok, errors(report)
    assert report.diagnostics == []
    assert report.stats == ('2 steps; no inventory (-i), so not checked: host patterns "db1", "web:!db1"')


def test_with_an_inventory_an_unknown_pattern_is_still_an_error(registry, write):
    inventory = write("inv.ini", "[db]\ndb1\n[web]\nweb1\n")
    (report,) = check_files([write("rb.yaml", GROUP_RUNBOOK.replace("hosts: db1", "hosts: db9"))],
                            registry, [inventory])
    assert not report.ok
    assert errors(report) == ['5: step "primary answers": host pattern "db9" matches no host or group (did you mean "db"?)']


def test_steps_on_unknown_hosts_still_get_their_keys_and_arguments_checked(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: broken
        hosts: web
        steps:
          - name: restart
            local.command: {cmd: "echo", cwd: /tmp}
          - name: bad key
            local.noop: {}
            retires: 3
        """)
    (report,) = check_files([path], registry, [])
    assert errors(report) == ['6: local.command: unknown argument "cwd" (did you mean "cmd"?)',
                              '9: unknown step key "retires" (did you mean "retries"?)']


def test_steps_on_unknown_hosts_still_get_their_templates_checked(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: broken
        hosts: web
        steps:
          - name: template
            local.command: "echo {{ unclosed"
        """)
    (report,) = check_files([path], registry, [])
    assert [e for e in errors(report) if e.startswith("6: template syntax error in 'echo {{ unclosed'")], errors(report)


def test_compile_problems_of_steps_on_unknown_hosts_are_reported(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: broken
        hosts: web
        steps:
          - name: restart
            local.command: "echo {{ params.port }}"
          - name: verify
            needs: [restrat]
            local.command: "echo {{ missing_name }}"
          - name: a
            needs: [b]
            local.noop: {}
          - name: b
            needs: [a]
            local.noop: {}
        params:
          port: {type: int, default: 80}
        """)
    (report,) = check_files([path], registry, [])
    found = errors(report)
    assert '7: step "verify" needs "restrat", which is not a step of this runbook (did you mean "restart"?)' in found
    assert any("steps depend on each other in a cycle: a -> b -> a" in e or "cycle: b -> a -> b" in e for e in found), found
    assert "does not match" not in " ".join(found) and "matches no host" not in " ".join(found)
    # the step's hosts are unknown, so a name they may define is listed, not an error
    assert "missing_name" in report.stats and report.stats.endswith("variables their hosts may define: missing_name")


def test_a_localhost_runbook_without_an_inventory_keeps_undefined_names_errors(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: local
        vars: {url: "http://127.0.0.1/"}
        steps:
          - name: fetch
            local.http: "{{ ulr }}"
        """)
    (report,) = check_files([path], registry, [])
    assert errors(report) == ['6: step "fetch": undefined variable "ulr" in \'{{ ulr }}\' (did you mean "url"?)']
    assert report.stats == "1 steps, 1 hosts"


def test_a_malformed_pattern_is_an_error_even_without_an_inventory(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: bad
        steps:
          - name: regex
            hosts: "~(web"
            local.noop: {}
        """)
    (report,) = check_files([path], registry, [])
    assert [e for e in errors(report) if "invalid regular expression" in e], errors(report)


def test_a_default_that_is_itself_defaulted_is_optional(registry, write):
    path = write("rb.yaml", """
        opsbook: 1
        name: chain
        vars:
          internal: "{{ internal_address | default(lab_ip) | default(inventory_hostname) }}"
        steps:
          - local.command: "echo {{ internal }}"
        """)
    (report,) = check_files([path], registry, [])
    assert report.ok and report.diagnostics == [], errors(report)
