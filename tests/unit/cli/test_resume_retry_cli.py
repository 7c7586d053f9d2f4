"""Resume and retry as a tired operator uses them (issue 16 items 5 and 13): a resume that stops
for a human must not turn the rest of the run into final skips, and a dry run stays a dry run."""

from __future__ import annotations

import signal
import subprocess
import sys

from opsbook_lab.pytest_plugin import cli_env, opsbook, wait_for


def test_resume_after_confirming_an_in_doubt_node_runs_the_rest_of_the_run(tmp_path):
    log = tmp_path / "log"
    steps = "".join(f"""
  - name: s{i}
    local.shell: "echo s{i} >> {log}{'; touch ' + str(tmp_path / 'in-s3') + '; sleep 60' if i == 3 else ''}"
""" for i in range(1, 6))
    rb = tmp_path / "five.yaml"
    rb.write_text("opsbook: 1\nname: five\nsteps:" + steps)
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb)], env=cli_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("s3 to start", lambda: (tmp_path / "in-s3").exists(), timeout=60, interval=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    first = opsbook(tmp_path, "resume", "last")
    assert first.returncode == 4, first.stderr  # s3 was running: a human must confirm
    assert "--confirm s3@localhost" in first.stderr + first.stdout
    (tmp_path / "in-s3").unlink()
    rb.write_text(rb.read_text().replace(f"; touch {tmp_path / 'in-s3'}; sleep 60", ""))
    second = opsbook(tmp_path, "resume", "last", "--confirm", "s3@localhost", "--allow-changed")
    assert second.returncode == 0, second.stderr
    assert log.read_text().split() == ["s1", "s2", "s3", "s3", "s4", "s5"]
    # issue 25 item 5: what was done before the crash is not printed again as if it had just run
    assert " s1 @ localhost" not in second.stderr and " s4 @ localhost" in second.stderr
    assert "skipped" not in opsbook(tmp_path, "show", "last").stdout.split("OFFSET")[1]


def test_a_retry_of_a_dry_run_stays_a_dry_run_and_real_starts_a_new_run(tmp_path):
    marker = tmp_path / "changed"
    rb = tmp_path / "dry.yaml"
    rb.write_text(f"""opsbook: 1
name: dry
steps:
  - name: check first
    local.assert: {{that: ["1 == 2"]}}
  - name: change
    local.shell: {{cmd: "touch {marker}", creates: "{marker}"}}
""")
    dry = opsbook(tmp_path, "run", str(rb), "--check")
    assert dry.returncode == 1
    dry_id = opsbook(tmp_path, "runs").stdout.split()[0]
    retried = opsbook(tmp_path, "retry", dry_id, "--failed", "--yes")
    assert "was a dry run (--check): this retry is a dry run too" in retried.stderr
    assert not marker.exists(), "a retry of a dry run changed something"
    rb.write_text(rb.read_text().replace('"1 == 2"', '"1 == 1"'))
    real = opsbook(tmp_path, "retry", dry_id, "--real", "--yes")
    assert real.returncode == 0, real.stderr
    assert "starting a new, real run" in real.stderr and marker.exists()
    runs = opsbook(tmp_path, "runs").stdout.splitlines()
    assert len(runs) == 2 and runs[1].startswith(dry_id), "the real run is a new run, the dry one is unchanged"


def test_a_closed_pipe_does_not_kill_the_run(tmp_path):
    """`opsbook run ... 2>&1 | head -1` (issue 15 item 7): the reader goes after one line; the
    run goes on, is recorded as it ended, and rolls back on failure as usual."""
    undo = tmp_path / "undone"
    rb = tmp_path / "pipe.yaml"
    rb.write_text(f"""opsbook: 1
name: pipe
steps:
  - local.command: "echo a"
  - local.shell: "sleep 0.5"
    rollback: {{local.shell: "touch {undo}"}}
  - local.fail: the end
""")
    for fmt, stream in (("text", "stderr"), ("json", "stdout")):
        proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb), "--format", fmt], env=cli_env(tmp_path),
                                stdin=subprocess.DEVNULL, text=True,
                                stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
                                stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL)
        pipe = proc.stdout if stream == "stdout" else proc.stderr
        assert pipe.readline()
        pipe.close()
        assert proc.wait(60) == 1, f"{fmt}: the run did not end as a failed run"
        assert undo.exists(), f"{fmt}: the rollback did not run"
        undo.unlink()
        assert opsbook(tmp_path, "runs").stdout.split()[3] == "failed"


def test_plan_takes_secrets_like_run_and_the_hint_never_suggests_e(tmp_path):
    """Issue 15 item 8: `plan` had no --secret, and its hint for a missing secret was `-e name=VALUE`."""
    rb = tmp_path / "sec.yaml"
    rb.write_text('opsbook: 1\nname: sec\nparams:\n  token: {type: secret, required: true}\n'
                  'steps:\n  - local.command: "echo {{ token }}"\n')
    missing = opsbook(tmp_path, "plan", str(rb))
    assert missing.returncode == 2 and "--secret token=env:VAR" in missing.stderr and "-e token" not in missing.stderr
    shown = subprocess.run([sys.executable, "-m", "opsbook", "plan", str(rb), "--secret", "token=env:TOK"],
                           capture_output=True, text=True, timeout=60, env={**cli_env(tmp_path), "TOK": "s3cr3t-v4lue"})
    assert shown.returncode == 0, shown.stderr
    assert '["echo", "********"]' in shown.stdout and "s3cr3t-v4lue" not in shown.stdout + shown.stderr


def test_an_error_about_a_secret_parameter_never_quotes_it(tmp_path):
    """Issue 24 item 6: a `type: secret` param with `choices` printed the rejected value."""
    rb = tmp_path / "sec.yaml"
    rb.write_text("opsbook: 1\nname: sec\nparams:\n  token: {type: secret, choices: [alpha-key, beta-key]}\n"
                  "steps:\n  - local.command: \"true\"\n")
    done = subprocess.run([sys.executable, "-m", "opsbook", "plan", str(rb), "--secret", "token=env:TOK"],
                          capture_output=True, text=True, timeout=60, env={**cli_env(tmp_path), "TOK": "alpha-kez-s3cr3t"})
    assert done.returncode == 2 and 'parameter "token" (secret) is not one of its 2 allowed values' in done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr and "alpha-key" not in done.stderr


def test_resume_of_a_run_stopped_by_ctrl_c_and_rolled_back_runs_what_it_says(tmp_path):
    """Outside review, item 2: the resume of an interrupted run that rolled back said "2 node(s)
    to run again" and then skipped them ("host failed earlier", the node the signal cancelled).
    The cancelled node and those never started run again, and what the rollback undid on that
    host is done again first, so the later steps find the state they were written for."""
    log = tmp_path / "log"
    rb = tmp_path / "stopped.yaml"
    rb.write_text(f"""opsbook: 1
name: stopped
steps:
  - name: drain
    local.shell: "echo drain >> {log}; touch {tmp_path}/drained"
    rollback: {{local.shell: "echo undrain >> {log}; rm {tmp_path}/drained"}}
  - name: slow
    local.shell: "test -e {tmp_path}/go || {{ touch {tmp_path}/started; sleep 30; }}; echo slow >> {log}"
  - name: promote
    local.shell: "test -e {tmp_path}/drained && echo promote >> {log}"
  - name: verify
    local.shell: "echo verify >> {log}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb)], env=cli_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("slow to start", lambda: (tmp_path / "started").exists(), timeout=60, interval=0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().split() == ["drain", "undrain"]
    (tmp_path / "go").touch()
    resumed = opsbook(tmp_path, "resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert log.read_text().split() == ["drain", "undrain", "drain", "slow", "promote", "verify"]
    shown = opsbook(tmp_path, "show", "last").stdout
    assert "4 node(s) to run again (1 rolled back, redone)" in shown, shown
    assert "host failed earlier" not in shown.split("run resumed")[1]


def test_resume_redoes_what_the_rollback_undid_on_a_host_that_had_finished_too(tmp_path):
    """web1 had done all its steps and web2 was in its last one when SIGINT came; the stop
    rolled back both hosts' drains. The resume runs web2's cancelled step and does both
    drains again: the run that ends `succeeded` leaves what its steps make, on every host."""
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n")
    rb = tmp_path / "two.yaml"
    rb.write_text(f"""opsbook: 1
name: two
hosts: web
steps:
  - name: drain
    local.shell: "echo drain >> {tmp_path}/{{{{ inventory_hostname }}}}"
    rollback: {{local.shell: "echo undrain >> {tmp_path}/{{{{ inventory_hostname }}}}"}}
  - name: slow
    hosts: web2
    local.shell: "test -e {tmp_path}/go || {{ touch {tmp_path}/started; sleep 30; }}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb), "-i", str(inv)], env=cli_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("slow to start", lambda: (tmp_path / "started").exists(), timeout=60, interval=0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    (tmp_path / "go").touch()
    resumed = opsbook(tmp_path, "resume", "last")
    assert resumed.returncode == 0, resumed.stderr
    for host in ("web1", "web2"):
        assert (tmp_path / host).read_text().split() == ["drain", "undrain", "drain"], host
    assert "3 node(s) to run again (2 rolled back, redone)" in opsbook(tmp_path, "show", "last").stdout
