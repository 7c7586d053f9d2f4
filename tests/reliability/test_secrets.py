"""Secrets never leave opsbook in clear: values given with --secret NAME=env:VAR, file:PATH and
--ask (typed on a real terminal) must not appear in terminal output, JSON events, the journal
(database, -wal and -shm files), reports (md, html, json, junit), `opsbook show`, evidence
manifests and archives, including when the secret is in a loop, an error, a rollback, an
approval prompt, a diff, and with -vvv.

Each test runs the real command line, then greps every output and every file it left behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
from relkit import Cli, CliResult, run_on_a_terminal


def _token() -> str:
    return "S3cr3t" + secrets.token_hex(8)


RUNBOOK = """
opsbook: 1
name: secret-everywhere
params:
  token: {{type: secret}}
hosts: ctl
steps:
  - name: use it
    local.shell: "echo using {{{{ token }}}}; echo {{{{ token }}}} >&2; echo {{{{ token }}}} > {proof}"
    register: used
  - name: loop over it
    loop: ["a-{{{{ token }}}}", "b"]
    local.command: {{cmd: [echo, "{{{{ item }}}}"]}}
    register: looped
  - name: evidence
    local.collect: {{cmd: "echo collected # {{{{ token }}}}", name: ev.txt, description: "for {{{{ token }}}}"}}
  - name: approve it
    approve: "Really use {{{{ token }}}}?"
    local.command: {{cmd: [echo, "approved {{{{ token }}}}"]}}
  - name: write a file with a diff
    ssh.copy: {{dest: "{home}/copied.conf", content: "key={{{{ token }}}}\\n"}}
  - name: with rollback
    local.shell: "echo done"
    rollback: {{local.shell: "echo undo"}}
  - name: facts
    local.set: {{derived: "pre-{{{{ token }}}}"}}
  - name: fails with it
    local.shell: "echo failing {{{{ token }}}} >&2; echo {{{{ derived }}}}; exit 3"
"""


def _setup(cli: Cli) -> tuple[Path, Path]:
    rb = cli.write("rb.yaml", RUNBOOK.format(home=cli.home, proof=cli.home.parent / "proof"))
    inv = cli.write("inv.ini", "ctl ansible_connection=local\n")
    return rb, inv


def _leaks(token: str, outputs: list[CliResult], home: Path) -> list[str]:
    """Every place the token shows up: command outputs and files (bytes, any encoding)."""
    found = [f"output of opsbook {' '.join(r.args[:2])}" for r in outputs if token in r.stdout + r.stderr]
    needles = [token.encode(), token.encode("utf-16-le")]
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(str(path.relative_to(home)))
            if path.suffix == ".gz":
                with tarfile.open(path) as tar:
                    for member in tar.getmembers():
                        f = tar.extractfile(member)
                        if f is not None and token.encode() in f.read():
                            found.append(f"{path.relative_to(home)}:{member.name}")
    return found


def _review(cli: Cli, run_id: str) -> list[CliResult]:
    """Everything a person or a tool reads afterwards."""
    outs = [cli("runs"), cli("show", run_id), cli("evidence", run_id)]
    for fmt in ("md", "html", "json", "junit"):
        out = cli("report", run_id, "--format", fmt, "-o", str(cli.home / f"report.{fmt}"))
        assert out.rc == 0, out
        outs.append(out)
    outs.append(cli("evidence", run_id, "--archive", "-o", str(cli.home / "evidence.tar.gz")))
    return outs


def _assert_ran_with_the_secret(cli: Cli, token: str, res: CliResult) -> None:
    # The run really used the value (else not leaking would prove nothing).
    assert res.rc == 1, res
    proof = cli.home.parent / "proof"  # outside the folder that is searched
    assert proof.read_text() == f"{token}\n"
    proof.unlink()


@pytest.mark.parametrize("source", ["env", "file"])
def test_secret_from_env_or_file_appears_nowhere(cli: Cli, source: str):
    token = _token()
    rb, inv = _setup(cli)
    if source == "env":
        arg, env = "token=env:OPSBOOK_REL_TOKEN", {"OPSBOOK_REL_TOKEN": token}
    else:
        secret_file = cli.home.parent / "token.txt"  # outside the folder we grep
        secret_file.write_text(token + "\n")
        arg, env = f"token=file:{secret_file}", {}
    text = cli("run", str(rb), "-i", str(inv), "--secret", arg, "--yes", "--diff", "-vvv", "--format", "text",
               env=env)
    _assert_ran_with_the_secret(cli, token, text)
    events = cli("run", str(rb), "-i", str(inv), "--secret", arg, "--yes", "--diff", "--format", "json", env=env)
    _assert_ran_with_the_secret(cli, token, events)
    assert any(e["event"] == "rollback_finished" for e in events.events)
    assert "********" in text.stderr + events.stdout  # redacted, not dropped
    leaks = _leaks(token, [text, events, *_review(cli, events.run_id), *_review(cli, text.run_id)], cli.home)
    assert leaks == [], f"the secret leaked into: {leaks}"


def test_a_run_on_a_terminal_ends(cli: Cli):
    """The live display (rich) used to deadlock at the end of every run on a terminal (fixed in
    display.py: LiveProgress calls rich outside its own lock)."""
    rb = cli.write("hello.yaml", """
        opsbook: 1
        name: hello
        steps:
          - name: hello
            local.command: echo hello
          - name: with rollback
            local.command: echo step
            rollback: {local.command: echo undo}
          - name: fails
            local.fail: stop
        """)
    start = time.monotonic()
    res = run_on_a_terminal(cli, ["run", str(rb), "--yes"], {}, timeout=60)
    assert res.rc == 1, res
    assert "rollback done: undo of \"with rollback\" for localhost with local.command" in res.stdout and "failed" in res.stdout
    assert time.monotonic() - start < 60


def test_secret_typed_at_ask_on_a_terminal_appears_nowhere(cli: Cli):
    token = _token()
    rb, inv = _setup(cli)
    res = run_on_a_terminal(cli, ["run", str(rb), "-i", str(inv), "--ask", "token", "--yes", "--diff", "-vvv"],
                             {"token:": token})
    assert "token:" in res.stdout, res
    _assert_ran_with_the_secret(cli, token, res)
    runs = cli("runs")
    run_id = runs.stdout.split()[0]
    leaks = _leaks(token, [res, *_review(cli, run_id)], cli.home)
    assert leaks == [], f"the secret leaked into: {leaks}"


def test_resume_asks_for_the_secret_again_and_still_leaks_nothing(cli: Cli):
    token = _token()
    log = cli.home / "log"
    rb = cli.write("rb.yaml", f"""
        opsbook: 1
        name: resume-secret
        params:
          token: {{type: secret}}
        steps:
          - name: first
            local.shell: "echo first >> {log}"
          - name: gate
            local.command: {{cmd: [test, -e, "{cli.home}/go"]}}
          - name: use it
            local.shell: "echo used-{{{{ token }}}} >> {log}"
        """)
    env = {"OPSBOOK_REL_TOKEN": token}
    first = cli("run", str(rb), "--secret", "token=env:OPSBOOK_REL_TOKEN", "--format", "json", env=env)
    assert first.rc == 1
    (cli.home / "go").touch()
    refused = cli("retry", first.run_id, "--failed")
    assert refused.rc == 2 and "--secret token=env:VAR" in refused.stderr, refused
    again = cli("retry", first.run_id, "--failed", "--secret", "token=env:OPSBOOK_REL_TOKEN", "--format", "json",
                env=env)
    assert again.rc == 0, again
    assert log.read_text().split() == ["first", f"used-{token}"]
    log.unlink()
    leaks = _leaks(token, [first, refused, again, *_review(cli, first.run_id)], cli.home)
    assert leaks == [], f"the secret leaked into: {leaks}"


def test_plan_does_not_print_a_secret_parameter(cli: Cli):
    """`opsbook plan` printed a declared secret parameter in clear, in the params line and in every
    rendered argument (fixed in planview.py: the plan's views are redacted)."""
    token = _token()
    rb, inv = _setup(cli)
    outs = [cli("plan", str(rb), "-i", str(inv), "-e", f"token={token}"),
            cli("plan", str(rb), "-i", str(inv), "-e", f"token={token}", "--format", "json")]
    assert all(o.rc == 0 for o in outs), outs
    assert _leaks(token, outs, cli.home) == []
    assert "params: token='********'" in outs[0].stdout


def test_secret_in_a_rollback_action_is_not_stored_in_clear(cli: Cli):
    token = _token()
    log = cli.home.parent / "undo.log"
    rb = cli.write("rb.yaml", f"""
        opsbook: 1
        name: rollback-secret
        params:
          token: {{type: secret}}
        steps:
          - name: register the key
            local.shell: "echo done"
            rollback: {{local.shell: "echo undo-{{{{ token }}}} >> {log}"}}
          - name: fail
            local.fail: stop
        """)
    res = cli("run", str(rb), "--secret", "token=env:OPSBOOK_REL_TOKEN", "--format", "json",
              env={"OPSBOOK_REL_TOKEN": token})
    assert res.rc == 1, res
    assert log.read_text() == f"undo-{token}\n"  # the rollback ran with the real value
    assert _leaks(token, [res, *_review(cli, res.run_id)], cli.home) == []


INVENTORY_SECRETS = """
all:
  vars:
    ansible_ssh_pass: "{ssh}"
  hosts:
    ctl:
      ansible_connection: local
      ansible_become_password: "{become}"
      api_token: "{token}"
      db: {{password: "{nested}", user: app}}
"""


def test_inventory_secrets_are_redacted_from_the_start_and_in_plan(cli: Cli):
    """Inventory secrets (ansible_become_password, *_token, a nested password, ansible_ssh_pass)
    were only redacted after a `become` step had run, and `opsbook plan` always printed them
    (fixed: secrets.register_plan registers them at plan, run and resume start)."""
    values = {k: _token() for k in ("ssh", "become", "token", "nested")}
    proof = cli.home.parent / "proof"
    inv = cli.home.parent / "inv.yaml"  # outside the folder that is searched
    inv.write_text(INVENTORY_SECRETS.format(**values))
    rb = cli.write("rb.yaml", f"""
        opsbook: 1
        name: inventory-secrets
        hosts: ctl
        steps:
          - name: uses them
            local.shell: "echo {{{{ ansible_become_password }}}} {{{{ api_token }}}} {{{{ db.password }}}} {{{{ ansible_ssh_pass }}}} | tee {proof}"
            register: used
          - name: shows one
            local.set: {{shown: "the token is {{{{ api_token }}}}"}}
          - name: fails with one
            local.fail: "failed with {{{{ db.password }}}}"
        """)
    outs = [cli("plan", str(rb), "-i", str(inv)), cli("plan", str(rb), "-i", str(inv), "--format", "json")]
    assert all(o.rc == 0 for o in outs), outs
    assert "********" in outs[0].stdout
    text = cli("run", str(rb), "-i", str(inv), "-vvv")
    assert text.rc == 1, text
    assert proof.read_text().split() == [values[k] for k in ("become", "token", "nested", "ssh")]
    events = cli("run", str(rb), "-i", str(inv), "--format", "json")
    assert events.rc == 1, events
    outs += [text, events, *_review(cli, text.run_id), *_review(cli, events.run_id)]
    for name, value in values.items():
        leaks = _leaks(value, outs, cli.home)
        assert leaks == [], f"the inventory secret {name} leaked into: {leaks}"


def test_no_log_steps_leave_no_output_and_no_arguments_anywhere(cli: Cli):
    """`no_log: true` has Ansible's meaning: the step's output and arguments are recorded and
    shown nowhere (journal, events, terminal at -vvv, reports, plan, approvals, rollback
    entries, retry lines, facts, loop items), although the value is no registered secret."""
    value = "Hidden" + secrets.token_hex(8)
    proof = cli.home.parent / "proof"
    rb = cli.home.parent / "rb.yaml"  # outside the folder that is searched: it holds the value
    rb.write_text(textwrap.dedent(f"""
        opsbook: 1
        name: no-log
        vars: {{hidden: "{value}"}}
        steps:
          - name: prints it
            local.shell: "echo out {{{{ hidden }}}}; echo err {{{{ hidden }}}} >&2; echo {{{{ hidden }}}} > {proof}"
            register: printed
            no_log: true
          - name: loops over it
            loop: ["{{{{ hidden }}}}"]
            local.command: {{cmd: [echo, "{{{{ item }}}}"]}}
            no_log: true
          - name: keeps it as a fact
            local.set: {{kept: "{{{{ hidden }}}}"}}
            no_log: true
          - name: asks about it
            approve: "Run with {{{{ hidden }}}}?"
            local.command: "echo approved {{{{ hidden }}}}"
            no_log: true
          - name: undoes with it
            local.command: "true"
            rollback: {{local.command: "echo undo {{{{ hidden }}}}"}}
            no_log: true
          - name: retries with it
            local.shell: "echo {{{{ hidden }}}}; exit 1"
            retries: 1
            delay: 0s
            ignore_errors: true
            no_log: true
          - name: fails with it
            local.fail: "failed with {{{{ hidden }}}}"
            ignore_errors: true
            no_log: true
          - name: stop
            local.fail: stop
        """))
    plans = [cli("plan", str(rb)), cli("plan", str(rb), "--format", "json")]
    assert all(p.rc == 0 for p in plans), plans
    text = cli("run", str(rb), "--yes", "-vvv", "--format", "text")
    assert text.rc == 1, text
    assert proof.read_text() == f"{value}\n"  # the step really ran with the value
    events = cli("run", str(rb), "--yes", "--format", "json")
    assert events.rc == 1, events
    assert [e["status"] for e in events.events if e["event"] == "rollback_finished"] == ["done"]
    assert "hidden by no_log" in text.stdout + text.stderr + events.stdout
    leaks = _leaks(value, [*plans, text, events, *_review(cli, text.run_id), *_review(cli, events.run_id)],
                   cli.home)
    assert leaks == [], f"a no_log value leaked into: {leaks}"


URL_RUNBOOK = """
opsbook: 1
name: secret-in-a-url
params:
  token: {type: secret}
hosts: localhost
steps:
  - name: with an undo
    local.noop: {}
    rollback: {local.http: {url: "http://admin:{{ token }}@127.0.0.1:9/", timeout: 2}}
  - name: fetch with it
    local.http: {url: "http://admin:{{ token }}@127.0.0.1:9/", timeout: 2}
    ignore_errors: true
  - name: probe with it
    probe.http: {url: "http://admin:{{ token }}@127.0.0.1:9/", timeout: 2}
    ignore_errors: true
  - name: notify with it
    local.notify: {url: "http://admin:{{ token }}@127.0.0.1:9/", message: hi, timeout: 2}
"""


@pytest.mark.parametrize("shape", ["{piece}@ss:{tail}/x", "{tail}#{piece}", "ab]{piece}:{tail}", "{piece}:99999"])
def test_a_secret_in_a_url_leaks_no_piece_through_an_exception(cli: Cli, shape: str):
    """urllib and http.client quote the piece of a URL they choke on (`nonnumeric port: 'word'`):
    the piece of the secret is masked in the error, the journal and every report (issue 24 item 6)."""
    piece, tail = "Pq" + secrets.token_hex(5), "Tl" + secrets.token_hex(5)
    token = shape.format(piece=piece, tail=tail)
    rb = cli.write("rb.yaml", URL_RUNBOOK)
    env = {"OPSBOOK_URL_TOKEN": token}
    text = cli("run", str(rb), "--secret", "token=env:OPSBOOK_URL_TOKEN", "--format", "text", "-vv", env=env)
    events = cli("run", str(rb), "--secret", "token=env:OPSBOOK_URL_TOKEN", "--format", "json", env=env)
    for res in (text, events):
        assert res.rc == 4, res  # failed, and its undo failed too
        assert "Traceback" not in res.stderr, res
    failed = [e for e in events.events if e["event"] == "node_finished" and e.get("status") == "failed"]
    assert len(failed) == 3, events.stdout  # each step really failed on the URL
    assert all("********" in e["msg"] for e in failed), failed
    undone = [e for e in events.events if e["event"] == "rollback_finished"]
    assert [e["status"] for e in undone] == ["failed"] and "********" in undone[0]["msg"], undone
    outputs = [text, events, *_review(cli, text.run_id), *_review(cli, events.run_id)]
    for needle in (token, piece, tail):
        assert _leaks(needle, outputs, cli.home) == [], f"{needle!r} of {token!r} leaked"
