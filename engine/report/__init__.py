"""Report stage: turn a run's journal into documents people read after an incident.

Everything here reads the journal only (secrets were redacted before they were written);
the runbook file is re-read for step names and `marks:` (RTO accounting) when it is still
there. Outputs:

- `timeline_text`: `opsbook show`, a terminal timeline (80-120 columns);
- `build_report`: `opsbook report` as Markdown (postmortem), one self-contained HTML page
  (with an inline SVG Gantt chart), JSON, or JUnit XML (one test case per node);
- `rto`: recovery time (and point) measured against the runbook's objectives;
- `write_check_junit`: JUnit XML for `opsbook check`.

RTO accounting: detection is the run's `incident_start` (else the run start); mitigation
is the finish of the first ok node of a step marked `mitigation`; recovery is the finish
of the first ok node marked `verification` at or after mitigation. Without verification
marks, recovery is the mitigation; without any marks, the end of a succeeded run. RPO is
detection minus the oldest `data_timestamp`/`backup_time` an ok node registered.

One module per job: `view` (gather a run from the journal), `recovery` (RTO/RPO),
`timeline` (the merged timeline, shared formatting), `text` (`opsbook show`), `document`
(the sections every document has), `markdown`, `html` (with the Gantt chart), `data`
(JSON), `junit`, `build` (the entry points above).
"""

from __future__ import annotations

from opsbook.report.build import build_report, check_junit, write_check_junit
from opsbook.report.data import report_data
from opsbook.report.document import HostEnd, end_state
from opsbook.report.html import gantt_svg, plan_graph_html
from opsbook.report.recovery import rto, rto_of
from opsbook.report.text import timeline_text
from opsbook.report.timeline import Entry, objectives_line, offset, timeline
from opsbook.report.view import FORMATS, STATUS_COLORS, RunView, StepInfo, gather

__all__ = ["FORMATS", "STATUS_COLORS", "Entry", "HostEnd", "RunView", "StepInfo", "build_report", "check_junit",
           "end_state", "gantt_svg", "gather", "objectives_line", "offset", "plan_graph_html", "report_data", "rto",
           "rto_of", "timeline", "timeline_text", "write_check_junit"]
