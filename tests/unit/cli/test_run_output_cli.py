"""What the run's own output says (issue 25 items 1, 4 and 6): the node count plan and show use,
the cause of a failure and the objectives' verdict in the last lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from opsbook_lab.pytest_plugin import opsbook


def test_the_last_lines_name_the_cause_and_the_objectives_verdict(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: out
hosts: web
objectives: {rto: 5m}
steps:
  - name: mitigate
    local.command: "true"
    marks: [mitigation]
  - name: verify
    serial: 1
    local.command: "ls --no-such-option"
""")
    done = opsbook(tmp_path, "run", str(rb), "-i", str(inv))
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2] == ("  cause: \"verify\" on web1: command exited with rc=2: "
                         "ls: unrecognized option '--no-such-option'")
    assert re.match(r"  RTO \d+(ms|\.\d+s) against 5m00s: met \(", lines[-1]), lines[-1]
    plan_nodes = int(opsbook(tmp_path, "plan", str(rb), "-i", str(inv)).stdout.split(" = ")[1].split()[0])
    events = [json.loads(line) for line in opsbook(tmp_path, "run", str(rb), "-i", str(inv), "--format",
                                                   "json").stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[0]["nodes"] == plan_nodes == 4


def test_diff_shows_what_a_change_did_live_in_show_and_in_the_report(tmp_path):
    """Issue 15 item 4: --diff printed nothing although ssh.copy computes the diff."""
    conf = tmp_path / "app.conf"
    conf.write_text("max_conn=100\n")
    inv = tmp_path / "inv.ini"
    inv.write_text("[all]\nweb1 ansible_connection=local\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: d
hosts: web1
steps:
  - name: write config
    ssh.copy: {{dest: "{conf}", content: "max_conn=200\\n"}}
    register: out
  - local.assert: {{that: ["'+max_conn=200' in out.diff"]}}
""")
    done = opsbook(tmp_path, "run", str(rb), "-i", str(inv), "--diff")
    assert done.returncode == 0, done.stderr
    for text in (done.stderr, opsbook(tmp_path, "show", "last").stdout,
                 opsbook(tmp_path, "report", "last", "--format", "md").stdout):
        assert "-max_conn=100" in text and "+max_conn=200" in text, text
    quiet = opsbook(tmp_path, "run", str(rb).replace("rb.yaml", "rb.yaml"), "-i", str(inv))
    assert "-max_conn" not in quiet.stderr


def test_a_failed_undo_is_in_the_last_lines_and_the_exit_code_says_a_human_is_needed(tmp_path):
    """Found by an outside try: a failed rollback showed only mid-output, exit 3 like a clean one."""
    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: rbfail
steps:
  - name: drain
    local.command: "true"
    rollback: {local.command: "true"}
  - name: install
    local.command: "true"
    rollback: {local.shell: "echo cannot restore >&2; exit 1"}
  - name: verify
    local.command: "false"
""")
    done = opsbook(tmp_path, "run", str(rb))
    assert done.returncode == 4, done.stderr
    tail = done.stderr.strip().splitlines()[-2:]
    assert tail[0] == '  ROLLBACK FAILED: undo of "install" for localhost failed: command exited with rc=1: cannot restore'
    assert tail[1].startswith('  ROLLBACK FAILED: undo of "drain" for localhost skipped: not run: the undo of "install"')


def test_a_run_without_objectives_loads_no_report_policy_or_plan_view(tmp_path):
    """What a run does not need it does not pay for (issue 26's "no slower"): without
    `objectives:` the last lines need no verdict, so the report package is not imported
    and the run is not read back; `run`'s typo refusal needs no policy rules, and a header
    with no plugin describing a target needs no plan rendering."""
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: plain\nhosts: web\nsteps:\n  - name: one\n    local.command: \"true\"\n")
    seen = tmp_path / "modules.txt"
    script = ("import atexit, sys\n"
              f"atexit.register(lambda: open({str(seen)!r}, 'w').write('\\n'.join(sorted(sys.modules))))\n"
              "from opsbook.main import main\nmain()\n")
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-c", script, "run", str(rb), "-i", str(inv), "--yes"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"run (\S+): succeeded  \(opsbook show \1 \| opsbook report \1\)", last), last
    loaded = set(seen.read_text().split())
    assert "opsbook.execute" in loaded  # the script did run opsbook
    assert not {m for m in loaded if m == "opsbook.report" or m.startswith("opsbook.report.")}
    assert "opsbook.policy" not in loaded
    assert "opsbook.planview" not in loaded
