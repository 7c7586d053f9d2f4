"""JUnit XML for `opsbook check`, valid against the Jenkins/Ant JUnit schema that CI tools
read (tests/unit/report/junit.xsd checks it): one test case per runbook file, a
`<failure>` per error (and, with `--strict`, per warning), its message starting with
file:line:col. Warnings that do not fail are listed in the case's `<system-out>`.

The schema allows no `skipped` attribute on `<testsuites>` and no `file` attribute on a
test case, so the file is the test case's name and its failures' messages carry the
position.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC
from typing import Any


def check_junit(reports: Sequence[Any], timestamp: float | None = None) -> str:
    """The document for a list of opsbook.check.CheckReport."""
    from datetime import datetime

    from opsbook.visible import visible

    root = ET.Element("testsuites", {"name": "opsbook check"})
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, UTC)
    suite = ET.SubElement(root, "testsuite", {"name": "opsbook check",
                                              "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S")})
    for report in reports:
        _case(suite, report)
    cases = suite.findall("testcase")
    failed = sum(c.find("failure") is not None for c in cases)
    seconds = sum(float(c.get("time", "0")) for c in cases)
    for element in (suite, root):
        element.set("tests", str(len(cases)))
        element.set("failures", str(failed))
        element.set("errors", "0")
        element.set("time", f"{seconds:.3f}")
    suite.set("skipped", "0")
    ET.indent(root)
    return visible('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def _where(diag: Any, path: str) -> str:
    pos = diag.position
    if pos is None:
        return path
    return f"{pos.file or path}:{pos.line}:{pos.column}" if pos.column else f"{pos.file or path}:{pos.line}"


def _case(suite: ET.Element, report: Any) -> None:
    seconds = float(getattr(report, "seconds", 0.0) or 0.0)
    case = ET.SubElement(suite, "testcase", {"classname": "opsbook.check", "name": str(report.path),
                                             "time": f"{seconds:.3f}"})
    errors = [d for d in report.diagnostics if d.severity != "warning"]
    for diag in errors:
        label = f"{_where(diag, report.path)}: {diag.message}"
        failure = ET.SubElement(case, "failure", {"message": label, "type": diag.rule or diag.severity})
        failure.text = f"{_where(diag, report.path)}: {diag.severity}: {diag.message}" + \
            (f"\n  hint: {diag.hint}" if diag.hint else "")
    if not report.ok and not errors:
        ET.SubElement(case, "failure", {"message": f"{report.path}: invalid", "type": "error"})
    out = [f"{_where(d, report.path)}: warning: {d.message}" + (f"\n  hint: {d.hint}" if d.hint else "")
           for d in report.diagnostics if d.severity == "warning"]
    if report.stats:
        out.append(f"stats: {report.stats}")
    if out:
        ET.SubElement(case, "system-out").text = "\n".join(out)


__all__ = ["check_junit"]
