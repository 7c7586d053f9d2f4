"""`opsbook check --junit`: one test case per runbook file, a failure per error with file:line:col."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner
from opsbook.check import CheckReport, check_files
from opsbook.cli import main
from opsbook.errors import Diagnostic, Position
from opsbook.report import write_check_junit

GOOD = "opsbook: 1\nname: good\nsteps:\n  - name: one\n    local.noop: {}\n"
BAD = "opsbook: 1\nname: bad\nsteps:\n  - name: one\n    local.noop: {}\n    retriez: 3\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_one_testcase_per_runbook_and_a_failure_with_position_per_error(tmp_path, registry):
    good, bad = _write(tmp_path, "good.yaml", GOOD), _write(tmp_path, "bad.yaml", BAD)
    reports = check_files([good, bad], registry, [])
    out = tmp_path / "check.xml"
    write_check_junit(reports, str(out))
    root = ET.parse(out).getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {good, bad}
    assert cases[good].find("failure") is None
    failures = cases[bad].findall("failure")
    assert failures, "the misspelt key must fail the bad runbook"
    assert failures[0].get("message").startswith(f"{bad}:6:5: ")
    assert "retriez" in failures[0].get("message") and 'did you mean "retries"' in failures[0].get("message")
    assert (root.get("tests"), root.get("failures")) == ("2", str(len(failures)))
    assert cases[good].find("system-out").text.startswith("stats: ")


def test_each_diagnostic_is_its_own_failure_and_warnings_are_output(tmp_path):
    report = CheckReport("rb.yaml", [
        Diagnostic(Position("rb.yaml", 3, 7), 'unknown key "hostz"', hint="did you mean hosts?"),
        Diagnostic(Position("rb.yaml", 9, 1), "needs: no step named x"),
        Diagnostic(None, "inventory matched no host"),
        Diagnostic(Position("rb.yaml", 1, 1), "timeouts exceed the RTO", severity="warning"),
    ], stats="2 steps, 1 hosts")
    out = tmp_path / "check.xml"
    write_check_junit([report], str(out))
    case = ET.parse(out).getroot().find(".//testcase")
    messages = [f.get("message") for f in case.findall("failure")]
    assert messages == ['rb.yaml:3:7: unknown key "hostz"', "rb.yaml:9:1: needs: no step named x",
                        "rb.yaml: inventory matched no host"]
    assert case.find("failure").text.endswith("\n  hint: did you mean hosts?")
    assert "rb.yaml:1:1: warning: timeouts exceed the RTO" in case.find("system-out").text


def test_warnings_alone_do_not_fail(tmp_path):
    report = CheckReport("rb.yaml", [Diagnostic(Position("rb.yaml", 1, 1), "slow", severity="warning")])
    out = tmp_path / "check.xml"
    write_check_junit([report], str(out))
    root = ET.parse(out).getroot()
    assert root.find(".//failure") is None and root.get("failures") == "0"


def test_cli_check_writes_junit(tmp_path):
    bad = _write(tmp_path, "bad.yaml", BAD)
    out = tmp_path / "junit.xml"
    result = CliRunner().invoke(main, ["check", bad, "--junit", str(out)])
    assert result.exit_code == 1
    assert ET.parse(out).getroot().find(".//testcase/failure") is not None
