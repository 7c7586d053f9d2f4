"""JUnit from `opsbook check --junit` (and `opsbook report --format junit`) is valid
against the Jenkins/Ant JUnit schema CI tools read (issue 31 item 4), validated with lxml
(libxml2's XML Schema validator) against tests/unit/report/junit.xsd; `--strict` lists
warnings as failures; messages keep file:line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

etree = pytest.importorskip("lxml.etree")

SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("junit.xsd"))))
ROOT = Path(__file__).resolve().parents[3]

RTO = """opsbook: 1
name: slow
phase: first-response
objectives: {rto: 10s}
steps:
  - name: wait long
    local.command: sleep 1
    changed_when: false
    timeout: 5m
"""
BAD = "opsbook: 1\nname: bad\nsteps:\n  - name: one\n    local.noop: {}\n    retriez: 3\n"


def _check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsbook", "check", *args], capture_output=True, text=True,
                          cwd=cwd, check=False)


def _valid(path: Path) -> Any:
    doc = etree.parse(str(path))
    assert SCHEMA.validate(doc), SCHEMA.error_log
    return doc


def test_check_junit_of_the_library_is_schema_valid(tmp_path):
    out = tmp_path / "check.xml"
    done = _check(str(ROOT / "runbooks"), "--junit", str(out), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    doc = _valid(out)
    library = [p for p in (ROOT / "runbooks").rglob("*.y*ml") if "roles" not in p.parts]
    assert doc.getroot().get("tests") == str(len(library))


def test_a_warning_is_output_and_passes_without_strict_and_a_failure_with_it(tmp_path):
    rb = tmp_path / "slow.yaml"
    rb.write_text(RTO)
    out = tmp_path / "check.xml"
    relaxed = _check(str(rb), "--junit", str(out), cwd=tmp_path)
    assert relaxed.returncode == 0, relaxed.stderr
    case = _valid(out).getroot().find(".//testcase")
    assert case.find("failure") is None
    assert "more than the RTO objective" in case.find("system-out").text
    strict = _check(str(rb), "--strict", "--junit", str(out), cwd=tmp_path)
    assert strict.returncode == 1
    failure = _valid(out).getroot().find(".//testcase/failure")
    assert failure.get("message").startswith(f"{rb}:1:1: the timeouts on the critical path add up to 5m00s")
    assert "(a warning; --strict)" in failure.get("message")


def test_errors_keep_file_line_and_column_in_the_message_and_the_rule_as_type(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    ungated = tmp_path / "ungated.yaml"
    # an incident runbook (phase:), so the policy's findings are errors without a config file
    ungated.write_text("opsbook: 1\nname: u\nphase: first-response\nsteps:\n  - name: touch\n    local.command: touch /tmp/x\n")
    out = tmp_path / "check.xml"
    assert _check(str(bad), str(ungated), "--junit", str(out), cwd=tmp_path).returncode == 1
    cases = {c.get("name"): c for c in _valid(out).getroot().iter("testcase")}
    assert cases[str(bad)].find("failure").get("message").startswith(f"{bad}:6:5: ")
    types = {f.get("type") for f in cases[str(ungated)].iter("failure")}
    assert types == {"mutation-gated", "rollback"}


def test_json_output_is_the_same_on_every_run_unless_timings_are_asked(tmp_path):
    first = _check(str(ROOT / "runbooks"), "--format", "json", cwd=ROOT).stdout
    second = _check(str(ROOT / "runbooks"), "--format", "json", cwd=ROOT).stdout
    assert first == second and '"seconds"' not in first
    timed = json.loads(_check(str(ROOT / "runbooks" / "local"), "--format", "json", "--timings", cwd=ROOT).stdout)
    assert isinstance(timed[0]["seconds"], float)
