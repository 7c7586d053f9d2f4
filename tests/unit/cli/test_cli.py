"""The command line as users type it: exit codes, formats, files written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def opsbook(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.fixture
def state(tmp_path):
    return {"OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}


def test_version_and_help():
    out = opsbook("--version")
    assert out.returncode == 0 and out.stdout.strip() == "opsbook, version 0.1.0"
    helptext = opsbook("--help").stdout
    for command in ("check", "plan", "graph", "run", "resume", "retry", "runs", "show", "report", "approve",
                    "deny", "inventory", "plugins", "schema", "evidence", "watch"):
        assert command in helptext
        assert opsbook(command, "--help").returncode == 0


def test_check_every_library_runbook_passes():
    out = opsbook("check", str(REPO / "runbooks" / "local"))
    assert out.returncode == 0, out.stderr


def test_check_broken_set_fails_with_messages_and_junit(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("opsbook: 1\nname: g\nsteps:\n  - local.noop: {}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("opsbook: 1\nname: b\nsteps:\n  - name: x\n    local.noop: {}\n    retires: 2\n")
    junit = tmp_path / "junit.xml"
    out = opsbook("check", str(good), str(bad), "--junit", str(junit))
    assert out.returncode == 1
    assert f'{bad}:6:5: error: unknown step key "retires" (did you mean "retries"?)' in out.stderr
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 2 and sum(1 for c in cases if c.find("failure") is not None) == 1
    data = json.loads(opsbook("check", str(bad), "--format", "json").stdout)
    assert data[0]["ok"] is False and data[0]["diagnostics"][0]["line"] == 6


def test_check_warns_when_timeouts_exceed_the_rto(tmp_path):
    rb = tmp_path / "slow.yaml"
    rb.write_text("opsbook: 1\nname: s\nobjectives: {rto: 1m}\nsteps:\n"
                  "  - {local.wait: 1, timeout: 50s}\n  - {local.wait: 1, timeout: 30s, retries: 1}\n")
    out = opsbook("check", str(rb))
    assert out.returncode == 0
    # a step's timeout: covers its retries too (docs/language.md): 50s + 30s
    assert "warning: the timeouts on the critical path add up to 80.0s, more than the RTO objective of 60.0s" in out.stderr


def test_plan_renders_per_host_and_contacts_nothing(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb1 ansible_host=192.0.2.10\nweb2 ansible_host=192.0.2.11\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text('opsbook: 1\nname: p\nhosts: web\nsteps:\n  - name: hello\n    local.command: "echo {{ ansible_host }}"\n')
    out = opsbook("plan", str(rb), "-i", str(inv))
    assert out.returncode == 0
    # A command line is shown as the argv it runs (each templated value one word).
    assert 'web1: local.command ["echo", "192.0.2.10"]' in out.stdout
    assert 'web2: local.command ["echo", "192.0.2.11"]' in out.stdout
    data = json.loads(opsbook("plan", str(rb), "-i", str(inv), "--format", "json").stdout)
    assert [n["id"] for n in data["nodes"]] == ["hello@web1", "hello@web2"]


@pytest.mark.parametrize("fmt", ["dot", "mermaid", "svg", "png"])
def test_graph_formats(tmp_path, fmt):
    if fmt in ("svg", "png") and shutil.which("dot") is None:
        pytest.skip("graphviz not installed (tests/run installs it)")
    out_file = tmp_path / f"plan.{fmt}"
    out = opsbook("graph", str(REPO / "runbooks/local/restart-web.yaml"), "--format", fmt, "-o", str(out_file))
    assert out.returncode == 0, out.stderr
    data = out_file.read_bytes()
    expected = {"dot": b"digraph plan", "mermaid": b"flowchart LR", "svg": b"<svg", "png": b"\x89PNG"}[fmt]
    assert expected in data[:400]


def test_schema_validates_the_library(tmp_path):
    schema = json.loads(opsbook("schema").stdout)
    for path in (REPO / "runbooks").rglob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"opsbook": 1, "name": "x", "steps": [{"local.noop": {}, "retires": 1}]}, schema)


def test_plugins_lists_actions_with_arguments():
    out = opsbook("plugins", "local")
    assert "local.shell" in out.stdout and "cmd:" in out.stdout
    data = json.loads(opsbook("plugins", "--format", "json").stdout)
    assert data["local"]["actions"]["wait"]["check_mode"] is True


def test_run_show_report_runs_and_exit_codes(tmp_path, state):
    ok = tmp_path / "ok.yaml"
    ok.write_text("opsbook: 1\nname: ok\nsteps:\n  - local.command: 'true'\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("opsbook: 1\nname: bad\nsteps:\n  - local.fail: nope\n")
    assert opsbook("run", str(ok), env=state).returncode == 0
    failed = opsbook("run", str(bad), env=state)
    assert failed.returncode == 1 and "nope" in failed.stderr
    runs = opsbook("runs", env=state).stdout
    assert "succeeded" in runs and "failed" in runs
    assert "local.fail" in opsbook("show", env=state).stdout or "nope" in opsbook("show", env=state).stdout
    md = opsbook("report", "--format", "md", env=state).stdout
    assert md.startswith("#") and "nope" in md
    usage = opsbook("run", str(tmp_path / "missing.yaml"), env=state)
    assert usage.returncode == 2 and "cannot read runbook" in usage.stderr and "Traceback" not in usage.stderr


def test_json_event_stream_is_one_object_per_line(tmp_path, state):
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: j\nsteps:\n  - local.command: 'echo hi'\n")
    out = opsbook("run", str(rb), "--format", "json", env=state)
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["event"] for e in events][0] == "run_started" and events[-1]["event"] == "run_finished"
    assert any(e["event"] == "node_finished" and e["status"] == "ok" for e in events)


def test_denied_approval_without_tty_exits_4(tmp_path, state):
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: a\nsteps:\n  - {name: gate, approve: 'sure?', local.noop: {}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb), "--approval-timeout", "60s"],
                            env={**os.environ, **state}, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "waiting for: opsbook approve" in line:
            break
    run_id = json.loads(json.dumps(opsbook("runs", env=state).stdout.split()[0]))
    assert opsbook("deny", run_id, "gate", "--yes", env=state).returncode == 0
    assert proc.wait(timeout=60) == 4


def test_inventory_list_and_graph(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb[1:2]\n[db]\ndb1 port=5432\n")
    data = json.loads(opsbook("inventory", "-i", str(inv), "--list").stdout)
    assert data["web"]["hosts"] == ["web1", "web2"] and data["_meta"]["hostvars"]["db1"] == {"port": 5432}
    assert "|--@web:" in opsbook("inventory", "-i", str(inv), "--graph").stdout
    assert "port = 5432" in opsbook("inventory", "-i", str(inv), "--host", "db1").stdout


_GC_PROBE = '''
import gc, sys
from pydantic import BaseModel
from opsbook import cli
from opsbook.main import main
from opsbook.plugin import Plugin, Result
from opsbook.registry import Registry

seen = {}
plugin = Plugin("gcprobe", "Reports the cyclic collector's state while a node runs.")

class NoArgs(BaseModel):
    pass

@plugin.action
def look(ctx, args: NoArgs) -> Result:
    """Record whether the collector is on, and how many objects are frozen out of its way."""
    seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count())
    return Result.ok()

registry = Registry.from_entry_points()
registry.add(plugin)
cli.base._registry = lambda: registry
sys.argv[0] = "opsbook"
try:
    main()
except SystemExit as exc:
    print("exit", exc.code, "during the run:", seen, "after:", gc.isenabled())
'''


def test_console_entry_keeps_the_collector_off_for_start_up_and_on_for_the_run(tmp_path):
    # Start-up objects are frozen out of the collector's way; the run itself is collected.
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: gc\nsteps:\n  - name: look\n    gcprobe.look: {}\n")
    journal = str(tmp_path / "journal.db")
    run = subprocess.run([sys.executable, "-c", _GC_PROBE, "run", str(rb), "--yes", "--format", "text",
                          "--journal", journal], capture_output=True, text=True, timeout=120)
    assert run.stdout.startswith("exit 0 during the run: {'enabled': True, 'frozen': "), run
    frozen = int(run.stdout.split("'frozen': ")[1].split("}")[0])
    assert frozen > 10_000, run.stdout  # the imports, the runbook and the plan
    runs = subprocess.run([sys.executable, "-c", _GC_PROBE, "runs", "--journal", journal],
                          capture_output=True, text=True, timeout=120)
    assert runs.stdout.strip().endswith("after: True"), runs  # other commands: on from the start


def test_plan_takes_secrets_like_run_and_the_hint_says_how(tmp_path):
    """Issue 15 item 8: a missing secret is not to be passed with -e (shell history)."""
    rb = tmp_path / "rb.yaml"
    rb.write_text('opsbook: 1\nname: s\nparams:\n  token: {type: secret}\n  user: {type: string}\n'
                  'steps:\n  - local.command: "login {{ params.user }} {{ params.token }}"\n')
    missing = opsbook("plan", str(rb))
    assert missing.returncode == 2
    assert 'missing required parameter "token"\n  hint: pass it with --secret token=env:VAR or file:PATH' in missing.stderr
    assert 'missing required parameter "user"\n  hint: pass it with -e user=VALUE' in missing.stderr
    out = opsbook("plan", str(rb), "-e", "user=bob", "--secret", "token=env:OPSBOOK_TEST_TOKEN",
                  env={"OPSBOOK_TEST_TOKEN": "s3cr3t-value"})
    assert out.returncode == 0, out.stderr
    assert 'local.command ["login", "bob", "********"]' in out.stdout and "s3cr3t-value" not in out.stdout
    graph = opsbook("graph", str(rb), "-e", "user=bob", "--secret", "token=env:OPSBOOK_TEST_TOKEN",
                    env={"OPSBOOK_TEST_TOKEN": "s3cr3t-value"})
    assert graph.returncode == 0, graph.stderr
