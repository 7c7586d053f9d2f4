"""The public entry points: `build_report` in each format, and JUnit XML for `opsbook check`."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from opsbook.journal import Journal
from opsbook.report.data import report_data
from opsbook.report.document import _sections
from opsbook.report.html import _html
from opsbook.report.junit import _count_root, _count_suite, _junit, _suite, _xml_text
from opsbook.report.markdown import _markdown
from opsbook.report.recovery import rto_of
from opsbook.report.timeline import _iso, timeline
from opsbook.report.view import FORMATS, gather
from opsbook.visible import visible

# -- public entry points ----------------------------------------------------------------


def build_report(journal: Journal, run_id: str, fmt: str = "md", registry: Any = None) -> str:
    """A run report as Markdown (`md`), one self-contained HTML page, JSON or JUnit XML."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    view = gather(journal, run_id, registry)
    r = rto_of(view)
    if fmt == "json":
        return json.dumps(report_data(view, r), indent=2, default=str) + "\n"
    if fmt == "junit":
        return _junit(view, r)
    sections = _sections(view, r, timeline(view, r))
    # Markdown is read on terminals too (cat, less -R): no raw escape sequence from a target
    return visible(_markdown(view, sections)) if fmt == "md" else _html(view, r, sections)


def write_check_junit(reports: Sequence[Any], path: str) -> None:
    """JUnit XML for `opsbook check`: one test case per runbook file, a failure per error."""
    from opsbook.paths import write_output

    write_output(path, check_junit(reports))


def check_junit(reports: Sequence[Any]) -> str:
    """The text `write_check_junit` writes (reports are opsbook.check.CheckReport objects)."""
    from opsbook.check_junit import check_junit as schema_valid

    return schema_valid(reports)
