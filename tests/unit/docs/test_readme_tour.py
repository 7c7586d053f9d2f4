"""The README's first commands and its five-minute tour, run as a newcomer runs them: the
installed `opsbook`, from a folder holding the project's runbooks/ and inventories/, on a
fresh state folder (nothing from an earlier run), without the lab.

Every `opsbook` line of the README's sh blocks must be covered here (a new line in the
README fails `test_every_readme_command_is_covered` until it is added to COMMANDS). The
tour's placeholders are made real: RUNBOOK is the demo runbook, inventories/prod.ini the
example inventory, PARAM=VALUE one of its parameters, RUN a run that really crashed (resume) or really waits for an approval
(approve), STEP its step. The demo runs on a free port in a private folder (`-e port=...
-e demo_dir=...`), so that it cannot meet another demo running on the same machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from opsbook_lab.pytest_plugin import wait_for

ROOT = Path(__file__).resolve().parents[3]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = {"bash tests/run": "starts the lab (dockerd, sshd containers, kube-apiserver): not a unit test"}


def readme_commands() -> list[str]:
    """The command lines of the README's ```sh blocks, comments dropped, in order."""
    commands: list[str] = []
    lang = None
    for line in (ROOT / "README.md").read_text().splitlines():
        fence = FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence.group(1)
            continue
        if lang == "sh" and line.strip():
            commands.append(re.sub(r"\s+#.*$", "", line).strip())
    return commands


@dataclass
class Ran:
    """One command as the tour ran it."""

    argv: list[str]
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"$ {shlex.join(self.argv)}  (exit {self.rc})\n{self.out}{self.err}"


class Tour:
    """A newcomer's shell: a working folder, a private state folder, the installed CLI."""

    def __init__(self, home: Path) -> None:
        self.cwd = home / "work"
        self.cwd.mkdir()
        for name in ("runbooks", "inventories"):
            (self.cwd / name).symlink_to(ROOT / name)
        self.env = {**os.environ, "XDG_STATE_HOME": str(home / "state")}
        for name in ("OPSBOOK_JOURNAL", "OPSBOOK_RUNS_DIR"):
            self.env.pop(name, None)
        self.demo = home / "demo"
        self.demo.mkdir()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.results: dict[str, Ran] = {}

    def argv(self, line: str) -> list[str]:
        args = shlex.split(line)
        assert args[0] == "opsbook", line
        return [sys.executable, "-m", "opsbook", *args[1:]]

    def run(self, line: str, *extra: str, timeout: float = 120) -> Ran:
        argv = self.argv(line) + list(extra)
        proc = subprocess.run(argv, check=False, cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return Ran(argv, proc.returncode, proc.stdout, proc.stderr)

    def background(self, line: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(line) + list(extra), cwd=self.cwd, env=self.env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def demo_vars(self) -> list[str]:
        return ["-e", f"port={self.port}", "-e", f"demo_dir={self.demo}"]

    def write(self, name: str, text: str) -> Path:
        path = self.cwd / name
        path.write_text(text)
        return path


def _line_of(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    """Read the process's stderr until a line matches."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


# -- how each README line is run: the line as written, with placeholders made real ---------


def demo(t: Tour, line: str) -> Ran:
    return t.run(line.split("&&")[-1].strip(), *t.demo_vars())


def as_written(t: Tour, line: str) -> Ran:
    return t.run(line)


def dry_run(t: Tour, line: str) -> Ran:
    return t.run(line, *t.demo_vars())


def schema(t: Tour, line: str) -> Ran:
    ran = t.run(line.split(">")[0].strip())
    (t.cwd / "runbook.schema.json").write_text(ran.out)
    return ran


def automation(t: Tour, line: str) -> Ran:
    real = line.replace("RUNBOOK", "runbooks/local/restart-web.yaml").replace("inventories/prod.ini",
                                                                               "inventories/example.ini")
    real = real.replace("PARAM=VALUE", "keep_running=false")
    return t.run(real, *t.demo_vars())


def resume_after_crash(t: Tour, line: str) -> Ran:
    """A run killed with SIGKILL in its second step, then `opsbook resume RUN`."""
    log = t.cwd / "crash.log"
    t.write("crash.yaml", f"""opsbook: 1
name: crash-demo
steps:
  - name: first
    local.shell: "echo first >> {log}"
  - name: slow
    local.wait: 2
  - name: last
    local.shell: "echo last >> {log}"
""")
    proc = t.background("opsbook run crash.yaml")
    run_id = _line_of(proc, r"run (\S+): crash-demo").group(1)
    wait_for("the first step's line in the log", log.exists, timeout=30, interval=0.05)
    time.sleep(0.5)  # inside "slow" now
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert log.read_text() == "first\n", "the crash came too late to test a resume"
    ran = t.run(line.replace("RUN", run_id))
    ran.out += f"\n(crash.log after the resume: {log.read_text()!r})"
    return ran


def _on_a_terminal(t: Tour, line: str, answer: str, timeout: float = 60) -> Ran:
    """Run `line` on a pseudo-terminal and type `answer` at its [y/N] question."""
    from opsbook_lab.pytest_plugin import on_a_terminal

    argv = t.argv(line)
    rc, text = on_a_terminal(argv, {**t.env, "TERM": "dumb"}, t.cwd, {"[y/N]": answer}, timeout)
    return Ran(argv, rc, text, "")


def approve_from_another_shell(t: Tour, line: str) -> Ran:
    t.write("gate.yaml", """opsbook: 1
name: gate-demo
steps:
  - name: risky
    approve: "Do it on {{ inventory_hostname }}?"
    local.command: "true"
""")
    proc = t.background("opsbook run gate.yaml")
    match = _line_of(proc, r"opsbook approve (\S+) (\S+)")
    # on a terminal, as a person types it: it shows the gate and asks y/N
    ran = _on_a_terminal(t, line.replace("RUN", match.group(1)).replace("STEP", match.group(2)), answer="y")
    _, err = proc.communicate(timeout=60)
    ran.out += f"\n(the waiting run exited {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''})"
    return ran


COMMANDS: dict[str, Callable[[Tour, str], Ran]] = {
    "pip install -e . && opsbook run runbooks/local/restart-web.yaml": demo,
    "opsbook runs": as_written,
    "opsbook show last": as_written,
    "opsbook report last --format html -o report.html": as_written,
    "opsbook check runbooks/": as_written,
    "opsbook plan runbooks/local/restart-web.yaml": as_written,
    "opsbook graph runbooks/local/restart-web.yaml --format svg -o plan.svg": as_written,
    "opsbook run   runbooks/local/restart-web.yaml --check": dry_run,
    "opsbook run   RUNBOOK -i inventories/prod.ini -e PARAM=VALUE --yes --format json": automation,
    "opsbook resume RUN": resume_after_crash,
    "opsbook approve RUN STEP": approve_from_another_shell,
    "opsbook inventory -i inventories/example.ini --graph": as_written,
    "opsbook plugins": as_written,
    "opsbook schema > runbook.schema.json": schema,
}


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Tour:
    """Every README command, in the README's order, in one shell session."""
    t = Tour(tmp_path_factory.mktemp("tour"))
    for line in readme_commands():
        if line in NOT_RUN or line not in COMMANDS:
            continue
        t.results[line] = COMMANDS[line](t, line)
    return t


def test_every_readme_command_is_covered() -> None:
    lines = readme_commands()
    assert "opsbook check runbooks/" in lines and "opsbook plugins" in lines, lines
    missing = [line for line in lines if line not in COMMANDS and line not in NOT_RUN]
    assert not missing, f"README commands this test does not run (add them to COMMANDS): {missing}"


def ran(tour: Tour, line: str) -> Ran:
    assert line in tour.results, f"{line!r} is no longer in the README"
    result = tour.results[line]
    assert "Traceback" not in result.text, str(result)
    return result


def test_the_demo_restarts_the_service_and_succeeds(tour: Tour) -> None:
    result = ran(tour, "pip install -e . && opsbook run runbooks/local/restart-web.yaml")
    assert result.rc == 0, str(result)
    assert re.search(r"run \S+: succeeded", result.text), str(result)
    assert re.search(r"ok +restart service @ localhost \(changed\)", result.text), str(result)
    assert re.search(r"ok +service is healthy again @ localhost", result.text), str(result)


def test_runs_lists_the_demo(tour: Tour) -> None:
    result = ran(tour, "opsbook runs")
    assert result.rc == 0 and "local-web-restart" in result.out and "succeeded" in result.out, str(result)


def test_show_last_gives_the_timeline_and_the_rto(tour: Tour) -> None:
    result = ran(tour, "opsbook show last")
    assert result.rc == 0, str(result)
    assert "SUCCEEDED" in result.out and re.search(r"RTO .* against 30\.0s: met", result.out), str(result)
    assert "rollbacks: 1 recorded, not needed (the run succeeded)" in result.out, str(result)
    assert "pending" not in result.out, str(result)


def test_report_last_writes_one_html_page(tour: Tour) -> None:
    result = ran(tour, "opsbook report last --format html -o report.html")
    assert result.rc == 0, str(result)
    page = (tour.cwd / "report.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "local-web-restart" in page


def test_check_validates_every_library_runbook(tour: Tour) -> None:
    result = ran(tour, "opsbook check runbooks/")
    assert result.rc == 0, str(result)
    marks = [line.split()[0] for line in result.out.splitlines() if line.strip()]
    library = sorted(p for p in (ROOT / "runbooks").rglob("*.yaml"))
    assert marks == ["ok"] * len(library), str(result)
    assert "FAILED" not in result.text and "error:" not in result.err, str(result)


def test_plan_renders_every_node_and_contacts_nothing(tour: Tour) -> None:
    result = ran(tour, "opsbook plan runbooks/local/restart-web.yaml")
    assert result.rc == 0 and "7 steps x 1 hosts = 7 nodes; nothing was contacted" in result.out, str(result)


def test_graph_draws_an_svg(tour: Tour) -> None:
    """With Graphviz or without (then the plan is drawn as a grid, and a note says so)."""
    result = ran(tour, "opsbook graph runbooks/local/restart-web.yaml --format svg -o plan.svg")
    assert result.rc == 0, str(result)
    assert "<svg" in (tour.cwd / "plan.svg").read_text()


def test_the_dry_run_succeeds_and_shows_unknowns(tour: Tour) -> None:
    result = ran(tour, "opsbook run   runbooks/local/restart-web.yaml --check")
    assert result.rc == 0, str(result)
    assert re.search(r"run \S+ succeeded: .*unknown=", result.text), str(result)
    assert re.search(r"unknown +service is healthy again @ localhost .*not run", result.text), str(result)
    with socket.socket() as sock:  # the demo stopped its service; the dry run started none
        assert sock.connect_ex(("127.0.0.1", tour.port)) != 0, "the dry run must not start the demo service"


def test_the_automation_run_prints_json_events_and_succeeds(tour: Tour) -> None:
    result = ran(tour, "opsbook run   RUNBOOK -i inventories/prod.ini -e PARAM=VALUE --yes --format json")
    assert result.rc == 0, str(result)
    events = [json.loads(line) for line in result.out.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished", str(result)
    assert events[-1]["status"] == "succeeded", str(result)
    assert {e["step"] for e in events if e["event"] == "node_finished"} >= {"restart service",
                                                                          "service is healthy again"}


def test_resume_after_a_crash_does_not_run_done_nodes_again(tour: Tour) -> None:
    result = ran(tour, "opsbook resume RUN")
    assert result.rc == 0, str(result)
    assert "(crash.log after the resume: 'first\\nlast\\n')" in result.out, str(result)


def test_approve_answers_a_gate_from_another_shell(tour: Tour) -> None:
    result = ran(tour, "opsbook approve RUN STEP")
    assert result.rc == 0 and "approved 1 gate(s) of risky" in result.out, str(result)
    assert "Do it on localhost?" in result.out and 'will run: local.command ["true"]' in result.out, str(result)
    assert "(the waiting run exited 0: " in result.out and "succeeded" in result.out, str(result)


def test_inventory_graph_draws_the_example(tour: Tour) -> None:
    result = ran(tour, "opsbook inventory -i inventories/example.ini --graph")
    assert result.rc == 0 and result.out.startswith("@all:") and "|--db2" in result.out, str(result)


def test_plugins_lists_the_built_in_plugins(tour: Tour) -> None:
    result = ran(tour, "opsbook plugins")
    assert result.rc == 0, str(result)
    listed = {line.split(":")[0] for line in result.out.splitlines() if not line.startswith(" ")}
    assert {"local", "probe", "ssh", "docker", "k8s"} <= listed and "BROKEN" not in result.out, str(result)


def test_schema_is_a_json_schema_for_editors(tour: Tour) -> None:
    result = ran(tour, "opsbook schema > runbook.schema.json")
    assert result.rc == 0, str(result)
    schema_doc = json.loads((tour.cwd / "runbook.schema.json").read_text())
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema_doc)
    assert "steps" in schema_doc["properties"]


def test_the_readme_example_runbook_passes_strict_check_and_promotes_when_the_primary_is_down(tmp_path) -> None:
    """The runbook the README shows (its commands swapped for echo) is what it says: `check
    --strict` passes it, and with the primary down the standby is promoted (a register named
    like the `primary` parameter once passed check and failed at run time)."""
    text = re.search(r"A runbook:\n\n```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert text, "the README's example runbook is gone"
    runbook = tmp_path / "web-failover.yaml"
    runbook.write_text(text.group(1).replace("/usr/local/bin/promote", "echo promoted")
                       .replace("/usr/local/bin/demote", "echo demoted"))
    with socket.socket() as sock:  # nothing listens on it: the primary is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inventory = tmp_path / "inv.ini"
    inventory.write_text("[web]\n" + "".join(f"{h} ansible_host=127.0.0.1 http_port={port} ansible_connection=local\n"
                                              for h in ("web1", "web2")))
    env = {**os.environ, "OPSBOOK_JOURNAL": str(tmp_path / "j.db"), "OPSBOOK_RUNS_DIR": str(tmp_path / "runs")}
    checked = subprocess.run([sys.executable, "-m", "opsbook", "check", "--strict", str(runbook), "-i", str(inventory)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run([sys.executable, "-m", "opsbook", "run", str(runbook), "-i", str(inventory), "--yes",
                          "--format", "json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                         stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    done = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    promoted = [e for e in done if e["event"] == "node_finished" and e.get("step") == "promote standby"]
    assert [(e["host"], e["status"]) for e in promoted] == [("web2", "ok")], promoted
