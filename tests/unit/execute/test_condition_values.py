"""A failed `failed_when`/`until` and a false `when` say what values they saw, short and redacted."""

from __future__ import annotations

from opsbook.secrets import SecretStore
from opsbook.template import expression_values

SECRET = "s3cr3t-" + "x" * 60  # longer than a shown value: a cut must not leave a piece of it


def test_failed_when_shows_the_values_it_read(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: grep
            local.shell: "echo x happened; exit 1"
            register: out
            failed_when: out.rc != 0 and 'x' in out.stdout
        """)
    rec = journal.nodes(summary.run_id)["grep@localhost"]
    assert rec.status == "failed"
    assert rec.msg == ("failed_when: out.rc != 0 and 'x' in out.stdout (out.rc = 1, out.stdout = 'x happened\\n'); "
                       "command exited with rc=1")


def test_failed_when_turning_ok_into_failed_says_why(run, journal):
    summary = run("""
        opsbook: 1
        name: t
        steps:
          - name: count
            local.command: echo 12
            failed_when: ["result.stdout | int > 3", "result.stdout | int > 10"]
        """)
    rec = journal.nodes(summary.run_id)["count@localhost"]
    assert rec.msg == "failed_when: result.stdout | int > 3 and result.stdout | int > 10 (result.stdout = '12\\n')"


def test_a_false_when_shows_its_values_with_secrets_redacted(run, journal):
    summary = run(f"""
        opsbook: 1
        name: t
        params:
          token: {{type: secret, default: "{SECRET}"}}
        steps:
          - name: gated
            when: token == 'other' and params.token | length < 5
            local.command: echo hi
        """)
    rec = journal.nodes(summary.run_id)["gated@localhost"]
    assert rec.msg == ("when: token == 'other' and params.token | length < 5 is false "
                       "(token = '********', params.token = '********')")
    assert "s3cr3t" not in rec.msg


def test_values_are_cut_and_undefined_names_said():
    text = "line\n" * 100
    ctx = {"out": {"rc": 1, "stdout": text, "stdout_lines": text.splitlines()}, "item": "web1"}
    shown = expression_values(["out.stdout.startswith('x') or item == 3", "out.stdout_lines | length > 200",
                               "missing.key"], ctx)
    assert shown == ("out.stdout = 'line\\nline\\nline\\nline\\nline\\nline\\n... (500 chars), item = 'web1', "
                     "out.stdout_lines = ['line', 'line', 'line', 'line', 'lin..., missing.key is undefined")


def test_a_secret_is_redacted_before_it_is_cut():
    secrets = SecretStore()
    secrets.add("token", SECRET)
    shown = expression_values(["token == 'x'"], {"token": SECRET}, redact=secrets.redact_any)
    assert shown == "token = '********'"
