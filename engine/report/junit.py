"""The report as JUnit XML: one test case per node, and one per objective."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from opsbook.journal import NodeRecord
from opsbook.report.timeline import _iso, _tail
from opsbook.report.view import FAILED, RunView
from opsbook.visible import visible

# -- JUnit -------------------------------------------------------------------------------


def _junit_node(view: RunView, suite: ET.Element, node: NodeRecord) -> None:
    took = (node.finished - node.started) if node.finished and node.started else 0.0
    case = ET.SubElement(suite, "testcase", {"classname": f"{view.run.runbook_name}.{node.step_id}",
                                             "name": view.label(node), "time": f"{took:.3f}"})
    message = node.msg or node.status
    ignored, rescued = view.ignored(node), view.rescued(node)
    if node.status in FAILED and not ignored and not rescued:
        failure = ET.SubElement(case, "failure", {"message": message, "type": node.status})
        failure.text = f"{view.label(node)}: {node.status}" + (f" (rc {node.rc})" if node.rc is not None else "") \
            + f"\n{node.msg}"
    elif node.status == "started":
        ET.SubElement(case, "error", {"message": "in doubt: started, no result recorded", "type": "in_doubt"})
    elif node.status in ("skipped", "unknown"):
        ET.SubElement(case, "skipped", {"message": message})
    out = _tail(node.stdout)[0] if node.stdout.strip() else ""
    # not a failure: the run went on (Ansible's recap counts it `ignored` or `rescued`)
    handled = "ignored (ignore_errors)" if ignored else "rescued (the block's rescue succeeded)" if rescued else ""
    if handled:
        out = f"{handled}: {node.status}" + (f" (rc {node.rc})" if node.rc is not None else "") \
            + f": {node.msg}" + (f"\n{out}" if out else "")
    if out:
        ET.SubElement(case, "system-out").text = out
    if node.stderr.strip():
        ET.SubElement(case, "system-err").text = _tail(node.stderr)[0]


def _suite(parent: ET.Element, name: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", {"name": name, **attrs})


def _count_suite(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    suite.set("time", f"{sum(float(c.get('time', '0')) for c in cases):.3f}")


def _junit(view: RunView, r: dict[str, Any]) -> str:
    run = view.run
    root = ET.Element("testsuites", {"name": f"opsbook run {run.id}"})
    suite = _suite(root, run.runbook_name, timestamp=_iso(run.started) or "", hostname=run.host)
    props = ET.SubElement(suite, "properties")
    counts = view.counts()
    for key, value in (("run_id", run.id), ("status", run.status), ("runbook", run.runbook_path),
                       ("rto", r["rto"]), ("rto_verdict", r["rto_verdict"]), ("rpo", r["rpo"]),
                       ("rpo_verdict", r["rpo_verdict"]), ("rescued", counts.get("rescued", 0)),
                       ("ignored", counts.get("ignored", 0))):
        ET.SubElement(props, "property", {"name": key, "value": "" if value is None else str(value)})
    for node in view.nodes:
        _junit_node(view, suite, node)
    _count_suite(suite)
    if view.rollbacks:
        rb_suite = _suite(root, f"{run.runbook_name} rollback")
        for rb in view.rollbacks:
            took = (rb["finished"] - rb["started"]) if rb["finished"] and rb["started"] else 0.0
            case = ET.SubElement(rb_suite, "testcase", {"classname": f"{run.runbook_name}.rollback",
                                                        "name": f"{rb['action']} @ {rb['host'] or '-'} "
                                                                f"(undo {rb['node_id']})", "time": f"{took:.3f}"})
            if rb["status"] == "failed":
                ET.SubElement(case, "failure", {"message": rb["msg"] or "rollback failed", "type": "rollback"})
            elif rb["status"] != "done":
                ET.SubElement(case, "skipped", {"message": f"rollback {rb['status']}"})
        _count_suite(rb_suite)
    _junit_objectives(root, view, r)
    _count_root(root)
    return _xml_text(root)


def _junit_objectives(root: ET.Element, view: RunView, r: dict[str, Any]) -> None:
    suite = _suite(root, f"{view.run.runbook_name} objectives")
    for key in ("rto", "rpo"):
        case = ET.SubElement(suite, "testcase", {"classname": f"{view.run.runbook_name}.objectives",
                                                 "name": key.upper(), "time": "0.000"})
        if r[f"{key}_met"] is False or (key == "rto" and r["rto"] is None and r["rto_objective"] is not None):
            ET.SubElement(case, "failure", {"message": f"{key.upper()} {r[f'{key}_verdict']}", "type": "objective"})
        elif r[f"{key}_met"] is None:
            ET.SubElement(case, "skipped", {"message": f"{key.upper()} {r[f'{key}_verdict']}"})
    _count_suite(suite)


def _count_root(root: ET.Element) -> None:
    for attr in ("tests", "failures", "errors"):  # the schema has no `skipped` on <testsuites>
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root.findall("testsuite"))))
    root.set("time", f"{sum(float(s.get('time', '0')) for s in root.findall('testsuite')):.3f}")


def _xml_text(root: ET.Element) -> str:
    """The XML document; control characters (not allowed in XML 1.0) made visible."""
    ET.indent(root)
    return visible('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
