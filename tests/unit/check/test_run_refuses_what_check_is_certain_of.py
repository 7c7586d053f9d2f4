"""`run` refuses what `check` is certain of, before anything runs (outside review: a step whose
rollback would run an action no installed plugin provides passed `run`, which `check` reports).

The class: every error `check` reports that the runbook, the inventory and the installed
plugins settle alone (`check.certain_findings`: keys a value certainly lacks, inverses naming
an action that is not installed) or that the loader and the compiler find (unknown action or
argument, a bad value, a cycle). Each case below is one kind of that class; for every one,
each error line `check` prints is the refusal of `run` (exit 2, nothing ran, no run recorded)
and of `plan`. Undefined bare names are outside the class (a plugin may set facts `check`
cannot see): `check` reports them and `run` starts.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from opsbook_lab.pytest_plugin import opsbook

INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"
FIRST = """opsbook: 1
name: certain
hosts: {hosts}
params:
  version: {{type: string, default: "1"}}
steps:
  - name: first
    local.command: "touch {marker}"
"""
# Each case: the steps after `first`, and whether it needs the inventory (-i).
CASES = {
    "param key": ("""  - name: use
    local.command: "echo {{ params.verison }}"
""", False),
    "registered key of a declared shape": ("""  - name: fetch
    local.http: {url: "http://127.0.0.1:9/"}
    register: page
    ignore_errors: true
  - name: use
    local.command: "echo {{ page.statsu }}"
""", False),
    "result key in until": ("""  - name: fetch
    local.http: {url: "http://127.0.0.1:9/"}
    until: result.stauts == 200
""", False),
    "key read only by a rollback": ("""  - name: change
    local.command: "true"
    rollback: {local.command: "echo {{ params.verison }}"}
""", False),
    "group": ("""  - name: use
    local.command: "echo {{ groups.webb }}"
""", True),
    "host in hostvars": ("""  - name: use
    local.command: "echo {{ hostvars['web9'] }}"
""", True),
    "inverse naming an action not installed": ("""  - name: change
    svcadm.set_with_missing_undo: {service: web, state: offline}
""", False),
    "unknown action": ("""  - name: use
    local.comand: "true"
""", False),
    "unknown argument": ("""  - name: use
    local.command: {cmd: "true", chdri: /tmp}
""", False),
    "cycle": ("""  - name: a
    local.command: "true"
    needs: [b]
  - name: b
    local.command: "true"
    needs: [a]
""", False),
}
_ERROR = re.compile(r"^\S+:\d+:\d+: error: .*$", re.M)


def _has_svcadm() -> bool:
    return any(ep.name == "svcadm" for ep in importlib.metadata.entry_points(group="opsbook.plugins"))


def _write(tmp_path: Path, case: str) -> tuple[list[str], Path]:
    steps, needs_inventory = CASES[case]
    marker = tmp_path / "ran"
    rb = tmp_path / "rb.yaml"
    rb.write_text(FIRST.format(hosts="web" if needs_inventory else "localhost", marker=marker) + steps)
    inv = tmp_path / "inv.ini"
    inv.write_text(INVENTORY)
    return [str(rb), "-i", str(inv)] if needs_inventory else [str(rb)], marker


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_and_plan_refuse_every_error_check_is_certain_of(tmp_path: Path, case: str):
    if "svcadm" in CASES[case][0] and not _has_svcadm():
        pytest.skip("the sample plugin is not installed (tests/run installs it)")
    args, marker = _write(tmp_path, case)
    checked = opsbook(tmp_path, "check", "--no-policy", *args)
    errors = _ERROR.findall(checked.stdout + checked.stderr)
    assert checked.returncode == 1 and errors, checked.stdout + checked.stderr
    for command in (["run", "--yes"], ["plan"]):
        refused = opsbook(tmp_path, command[0], *args, *command[1:])
        said = refused.stdout + refused.stderr
        assert refused.returncode == 2, (command, said)
        assert "Traceback" not in said
        assert [e for e in errors if e not in said] == [], (command, said)
    assert not marker.exists(), "the run started before refusing"
    runs = opsbook(tmp_path, "runs")
    assert "certain" not in runs.stdout, runs.stdout  # no run was recorded


def test_an_undefined_bare_name_is_reported_by_check_and_left_to_run(tmp_path: Path):
    marker = tmp_path / "ran"
    rb = tmp_path / "rb.yaml"
    rb.write_text(FIRST.format(hosts="localhost", marker=marker) + """  - name: use
    local.command: "echo {{ set_by_some_plugin }}"
""")
    checked = opsbook(tmp_path, "check", "--no-policy", str(rb))
    assert checked.returncode == 1 and 'undefined variable "set_by_some_plugin"' in checked.stdout + checked.stderr
    ran = opsbook(tmp_path, "run", str(rb), "--yes")
    assert ran.returncode != 2 and marker.exists(), ran.stderr
