"""The sample third-party plugin (tests/sample_plugin, its own package with an entry point)
tested as its author would, with the supported kit opsbook.testing, and run by opsbook as an
installed plugin (issue 30)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel
from opsbook.plugin import ActionContext, Plugin, Result, Status
from opsbook.testing import ArgumentError, ScriptedConnection, registry_with, run_action
from opsbook_lab.pytest_plugin import cli_env, opsbook, statuses, wait_for

SAMPLE = Path(__file__).resolve().parents[2] / "sample_plugin"


@pytest.fixture(scope="module")
def svcadm():
    """The installed sample plugin (installed now if this environment does not have it yet)."""
    if not [ep for ep in importlib.metadata.entry_points(group="opsbook.plugins") if ep.name == "svcadm"]:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(SAMPLE)], check=True,
                       capture_output=True, timeout=300)
        importlib.invalidate_caches()
    import opsbook_svcadm

    return opsbook_svcadm.plugin


def test_status_reads_the_state_through_the_connection(svcadm):
    conn = ScriptedConnection().when("cat /var/lib/svcadm/web", stdout="online\n")
    done = run_action(svcadm, "status", {"service": "web"}, connection=conn)
    assert done.result.status is Status.OK and done.result.data["state"] == "online"
    assert conn.commands == ["cat /var/lib/svcadm/web"]


def test_set_in_check_mode_says_what_it_would_do_and_changes_nothing(svcadm):
    conn = ScriptedConnection().when("cat /var/lib/svcadm/web", stdout="online\n")
    done = run_action(svcadm, "set", {"service": "web", "state": "maintenance"}, connection=conn, check_mode=True,
                      diff_mode=True)
    assert done.result.changed and done.result.msg == "would set web online -> maintenance"
    assert done.result.diff == "web: online -> maintenance"
    assert done.inverse is None and conn.commands == ["cat /var/lib/svcadm/web"]


def test_set_records_the_inverse_the_executor_would_run(svcadm):
    conn = ScriptedConnection().when("cat /var/lib/svcadm/web", stdout="online\n").when(
        re.compile(r"mkdir -p /var/lib/svcadm && printf .*maintenance > /var/lib/svcadm/web"))
    done = run_action(svcadm, "set", {"service": "{{ svc }}", "state": "maintenance"}, variables={"svc": "web"},
                      connection=conn)
    assert done.result.status is Status.OK and done.result.changed
    assert done.inverse == ("svcadm.set", {"service": "web", "state_dir": "/var/lib/svcadm", "state": "online"})


def test_a_wrong_argument_is_named_as_check_names_it(svcadm):
    with pytest.raises(ArgumentError, match="svcadm.set: .*state"):
        run_action(svcadm, "set", {"service": "web", "state": "up"}, connection=ScriptedConnection())
    with pytest.raises(ArgumentError, match='no action "stat" \\(did you mean "status"\\?\\)'):
        run_action(svcadm, "stat", {"service": "web"})
    with pytest.raises(ArgumentError, match='unknown argument "servce" \\(did you mean "service"\\?\\)'):
        run_action(svcadm, "status", {"servce": "web"})


def test_wait_times_out_and_ends_at_once_when_the_run_is_stopped(svcadm):
    conn = ScriptedConnection(default=None).when("cat /var/lib/svcadm/web", stdout="offline\n")
    timed_out = run_action(svcadm, "wait", {"service": "web", "timeout": 0.3, "interval": 0.1}, connection=conn)
    assert timed_out.result.status is Status.FAILED and "not online, after 0.3s" in timed_out.result.msg
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    stopped = run_action(svcadm, "wait", {"service": "web", "timeout": 60}, connection=conn, cancelled=stop)
    assert stopped.result.status is Status.FAILED and stopped.result.data["waited"] < 30
    assert "stopped while waiting" in stopped.result.msg



class NapArgs(BaseModel):
    """No arguments: the action sleeps until cancelled."""


def test_the_kits_step_timeout_cancels_and_ctx_sleep_works_as_in_a_run(svcadm):
    """`timeout=` is the step's timeout: ctx.cancelled is set once it has passed (the action's
    own 60 s limit never comes), and the token is the engine's, so ctx.sleep and
    ctx.raise_if_cancelled work under the kit as in a run."""
    from opsbook.testing import Cancelled, CancelToken

    conn = ScriptedConnection(default=None).when("cat /var/lib/svcadm/web", stdout="offline\n")
    timed = run_action(svcadm, "wait", {"service": "web", "timeout": 60, "interval": 0.1}, connection=conn, timeout=0.3)
    assert timed.result.status is Status.FAILED and "after 0.3s" in timed.result.msg, timed.result.msg  # ctx.timeout
    assert timed.result.data["waited"] < 30

    napper = Plugin("napper")

    @napper.action()
    def nap(ctx: ActionContext, args: NapArgs) -> Result:
        slept = ctx.sleep(60)
        try:
            ctx.raise_if_cancelled()
        except Cancelled:
            return Result.failed(f"cancelled; whole sleep: {slept}")
        return Result.ok()

    done = run_action(napper, "nap", {}, timeout=0.2)
    assert done.result.msg == "cancelled; whole sleep: False" and done.context.cancelled.is_set()
    token = CancelToken()
    threading.Timer(0.1, token.set).start()
    assert run_action(napper, "nap", {}, cancelled=token).result.msg == "cancelled; whole sleep: False"

def test_registry_with_puts_the_plugin_under_test_in_place_of_the_installed_one(svcadm):
    from opsbook.plugin import Plugin

    mine = Plugin("svcadm", "a development copy")
    registry = registry_with(mine)
    assert registry.plugin("svcadm") is mine and registry.plugin("local") is not None


def test_opsbook_runs_the_installed_plugin_and_rolls_it_back(svcadm, tmp_path):
    state = tmp_path / "state"
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-maintenance
steps:
  - name: web to maintenance
    svcadm.set: {{service: web, state: maintenance, state_dir: "{state}"}}
  - name: it is in maintenance
    svcadm.wait: {{service: web, state: maintenance, state_dir: "{state}", timeout: 5}}
  - name: then something fails
    local.command: "false"
""")
    (state).mkdir()
    (state / "web").write_text("online\n")
    checked = opsbook(tmp_path, "check", "--no-policy", str(rb))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = opsbook(tmp_path, "run", str(rb), "--format", "text")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (state / "web").read_text() == "online\n", "the rollback put the previous state back"


def test_an_inverse_that_raises_fails_the_step_loudly(svcadm, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "web").write_text("online\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-broken-undo
steps:
  - name: web to maintenance
    svcadm.set_without_undo: {{service: web, state: maintenance, state_dir: "{state}"}}
""")
    done = opsbook(tmp_path, "run", str(rb), "--format", "text")
    assert done.returncode == 1, done.stdout + done.stderr
    assert statuses(tmp_path / "j.db") == {"web-to-maintenance@localhost": "failed"}
    said = "its undo could not be computed (its inverse raised RuntimeError: the previous state was not kept)"
    assert said in done.stderr
    shown = opsbook(tmp_path, "show", "last").stdout
    assert "FAILED" in shown and "undo could not be computed" in shown


def test_a_plugins_exception_has_its_traceback_and_a_wrong_return_is_named(svcadm, tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: svcadm-bugs
steps:
  - name: look up
    svcadm.crash: {service: nope}
    ignore_errors: true
  - name: report
    svcadm.returns_dict: {service: web}
""")
    def ob(*args: str) -> subprocess.CompletedProcess[str]:
        return opsbook(tmp_path, *args)

    done = ob("--debug", "run", str(rb), "--format", "text")
    assert done.returncode == 1
    assert statuses(tmp_path / "j.db") == {"look-up@localhost": "failed", "report@localhost": "failed"}
    assert "KeyError: 'nope'" in done.stderr
    assert 'svcadm.crash raised in step "look up"' in done.stderr and "opsbook_svcadm/__init__.py" in done.stderr
    assert "svcadm.returns_dict returned dict, not an opsbook.plugin.Result" in done.stderr
    shown = ob("show", "last", "--debug").stdout
    assert 'svcadm.crash raised in step "look up"' in shown and "Traceback (most recent call last)" in shown
    assert "table[args.service]" in shown
    assert "Traceback" not in ob("show", "last").stdout


def test_an_inverse_naming_a_missing_action_is_a_loud_rollback_failure(svcadm, tmp_path, monkeypatch):
    """`opsbook run` refuses such a runbook before anything runs (check is certain of it:
    tests/unit/check/test_run_refuses_what_check_is_certain_of.py); a run started anyway
    (through the API, or resumed after the plugin was removed) fails its rollback loudly."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "web").write_text("online\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-missing-undo
steps:
  - name: web to maintenance
    svcadm.set_with_missing_undo: {{service: web, state: maintenance, state_dir: "{state}"}}
  - name: then something fails
    local.command: "false"
""")
    text = opsbook(tmp_path, "run", str(rb), "--format", "text")
    assert text.returncode == 2, text.stderr
    assert "its rollback runs svcadm_extras.restore, which is not installed" in text.stderr
    assert (state / "web").read_text() == "online\n", "refused before anything ran"

    from opsbook.api import RunRequest, load_inventory_sources, make_plan, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal
    from opsbook.load import RunbookLoader
    from opsbook.registry import Registry

    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    registry = Registry.from_entry_points()
    plan = make_plan(RunbookLoader(registry).load_file(str(rb)), load_inventory_sources([]), {})
    events: list = []
    journal = Journal(tmp_path / "api.db")
    try:
        summary = start_run(plan, registry, journal, RunRequest(options=RunOptions(), listeners=[events.append]))
    finally:
        journal.close()
    assert summary.status == "failed"
    finished = [e.to_json() for e in events if e.to_json().get("event") == "rollback_finished"]
    assert finished and finished[0]["status"] == "failed" and "not installed" in finished[0]["msg"], finished
    assert (state / "web").read_text().strip() == "maintenance", "nothing undid the change: a human must"


# -- a plugin that ignores cancellation: the run abandons it after the grace period -------------

def _stubborn_book(tmp_path: Path, state: Path, timeout: str | None) -> Path:
    """A change (rolled back at the end), then svcadm.stubborn: time.sleep(30), deaf to ctx.cancelled."""
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-stubborn
steps:
  - name: web to maintenance
    svcadm.set: {{service: web, state: maintenance, state_dir: "{state}"}}
  - name: stuck
    svcadm.stubborn: {{seconds: 30, marker: "{tmp_path / 'slept'}"}}
{f'    timeout: {timeout}' if timeout else ''}
  - name: afterwards
    local.command: "true"
""")
    return rb


def _ends_before_the_sleep(proc: subprocess.Popen[str], bound: float = 20.0) -> tuple[str, str]:
    """The run's output, once it ended: it must end before the 30 s sleep does (polled with
    a deadline; a run still going at `bound` s waits for the stubborn action)."""
    try:
        wait_for("the run to end without waiting for the stubborn action", lambda: proc.poll() is not None,
                 timeout=bound, interval=0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.communicate(timeout=30)


@pytest.mark.parametrize("how", ["timeout", "SIGINT", "SIGTERM"])
def test_an_action_that_ignores_cancellation_is_abandoned_and_the_run_ends(svcadm, tmp_path, how):
    import json
    import signal

    from opsbook.journal import Journal

    state = tmp_path / "state"
    state.mkdir()
    (state / "web").write_text("online\n")
    rb = _stubborn_book(tmp_path, state, "1s" if how == "timeout" else None)
    proc = subprocess.Popen([sys.executable, "-m", "opsbook", "run", str(rb), "--format", "json", "--cancel-grace", "2s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path),
                            stdin=subprocess.DEVNULL)

    def stuck_started() -> bool:
        if not (tmp_path / "j.db").exists():
            return False
        try:
            return statuses(tmp_path / "j.db").get("stuck@localhost") in ("started", "unknown")
        except Exception:  # noqa: BLE001 - the run is not recorded yet
            return False

    wait_for("the stubborn action to start", stuck_started, timeout=60, interval=0.1)  # start-up is not bounded here
    if how != "timeout":
        proc.send_signal(getattr(signal, how))
    out, err = _ends_before_the_sleep(proc)
    want = {"timeout": 1, "SIGINT": 130, "SIGTERM": 143}[how]
    assert proc.returncode == want, out + err
    assert not (tmp_path / "slept").exists(), "the run did not wait for the stubborn action"
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    stuck = [e for e in events if e["event"] == "node_finished" and e.get("step") == "stuck"]
    assert stuck and stuck[0]["status"] == "unknown", stuck
    assert "svcadm.stubborn did not stop within 2s of being cancelled: abandoned, in doubt" in stuck[0]["msg"]
    assert statuses(tmp_path / "j.db")["stuck@localhost"] == "unknown"  # in doubt: a resume asks, as after a crash
    journal = Journal(tmp_path / "j.db")
    run_id = journal.latest_run_id()
    abandoned = [data for _, kind, _, data in journal.events(run_id) if kind == "abandoned"]
    assert abandoned and abandoned[0]["action"] == "svcadm.stubborn", abandoned
    assert (state / "web").read_text() == "online\n", "the rollbacks it could run ran"
    shown = opsbook(tmp_path, "show", run_id).stdout
    assert "abandoned" in shown and "unknown" in shown
    if how != "timeout":
        return
    report = opsbook(tmp_path, "report", run_id).stdout
    assert "| localhost | IN DOUBT (check the host): stuck (timed out after 1s; svcadm.stubborn did not stop" in report
    resumed = opsbook(tmp_path, "resume", run_id, "--format", "text")
    assert resumed.returncode == 4, resumed.stderr  # a human must confirm the in-doubt action
    assert f"confirm a re-run with: opsbook resume {run_id} --confirm stuck@localhost" in resumed.stderr


def test_check_and_plugins_name_an_inverse_that_runs_an_action_not_installed(svcadm, tmp_path):
    rb = tmp_path / "rb.yaml"
    rb.write_text("""opsbook: 1
name: svcadm-missing-undo
steps:
  - name: web to maintenance
    svcadm.set_with_missing_undo: {service: web, state: maintenance}
  - name: with its own rollback
    svcadm.set_with_missing_undo: {service: web, state: online}
    rollback:
      svcadm.set: {service: web, state: maintenance}
  - name: a declared inverse that is installed
    svcadm.set: {service: web, state: online}
""")

    def ob(*args: str) -> subprocess.CompletedProcess[str]:
        return opsbook(tmp_path, *args)

    checked = ob("check", "--no-policy", str(rb))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    said = checked.stdout + checked.stderr
    assert (f"{rb}:4:5: error: svcadm.set_with_missing_undo: its rollback runs svcadm_extras.restore, which is not "
            'installed (no plugin named "svcadm_extras" is installed; did you mean "svcadm"?)') in said, said
    assert said.count("its rollback runs") == 1, "a step with its own rollback: does not use the inverse"
    assert "Traceback" not in said
    listed = ob("plugins", "svcadm")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  svcadm.set_with_missing_undo "))
    assert lines[at + 1].strip().startswith("PROBLEM: its rollback runs svcadm_extras.restore, which is not installed")
    assert "      rollback runs: svcadm.set" in lines
    import json

    data = json.loads(ob("plugins", "svcadm", "--format", "json").stdout)["svcadm"]["actions"]
    assert data["set"]["rollback_actions"] == ["svcadm.set"] and data["set"]["problems"] == []
    assert "svcadm_extras.restore" in data["set_with_missing_undo"]["problems"][0]


def test_a_third_party_actions_diff_is_shown_live_by_show_and_by_the_report(svcadm, tmp_path):
    """--diff takes the same path for an installed plugin's action as for a built-in one."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "web").write_text("online\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-diff
steps:
  - name: web to maintenance
    svcadm.set: {{service: web, state: maintenance, state_dir: "{state}"}}
""")
    def ob(*args: str) -> subprocess.CompletedProcess[str]:
        return opsbook(tmp_path, *args)

    dry = ob("run", str(rb), "--check", "--diff", "--format", "text")
    assert dry.returncode == 0, dry.stderr
    assert "diff      web to maintenance @ localhost\n    web: online -> maintenance" in dry.stderr
    assert (state / "web").read_text() == "online\n"
    done = ob("run", str(rb), "--diff", "--format", "json")
    assert done.returncode == 0, done.stderr
    import json

    diffs = [json.loads(line) for line in done.stdout.splitlines() if '"node_diff"' in line]
    assert [d["diff"] for d in diffs] == ["web: online -> maintenance"], done.stdout
    assert "diff of web to maintenance @ localhost:\n    web: online -> maintenance" in ob("show", "last").stdout
    assert "web: online -> maintenance" in ob("report", "last").stdout


def test_a_run_time_argument_error_names_the_step_and_the_argument(svcadm, tmp_path):
    """An argument that is only wrong once rendered fails the node with the step's
    file:line:col and the argument's name, not pydantic's bare `: : Value error`."""
    rb = tmp_path / "rb.yaml"
    rb.write_text(f"""opsbook: 1
name: svcadm-arg
vars:
  wanted: up
steps:
  - name: web to state
    svcadm.set: {{service: web, state: "{{{{ wanted }}}}", state_dir: "{tmp_path}"}}
""")
    done = opsbook(tmp_path, "run", str(rb), "--format", "text")
    assert done.returncode == 1, done.stdout + done.stderr
    assert statuses(tmp_path / "j.db") == {"web-to-state@localhost": "failed"}
    assert (f"{rb.name}:6:5: svcadm.set: invalid arguments after rendering: state: Input should be 'online', "
            "'offline' or 'maintenance'") in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_plugins_name_of_a_plugin_not_installed_is_an_error(svcadm, tmp_path):
    done = opsbook(tmp_path, "plugins", "svcadmn")
    assert done.returncode == 2 and done.stdout == ""
    assert 'no plugin named "svcadmn" (did you mean "svcadm"?); installed: ' in done.stderr
    assert "Traceback" not in done.stderr
