"""The plan as a grid a person reads at a glance (issue 25 item 3): one row per step, in
the order the run takes them, one column per host (hosts of a serial rollout grouped by
batch), each cell coloured by what that node did. Dependencies that are not simply "the
row above" are written on the row (`after: ...`). Drawn as SVG at its natural size, so
text is never scaled down to fit: a wide grid scrolls (pan) instead.

Used by the HTML report; needs no Graphviz."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from opsbook.compile import Plan

SVG_NS = "http://www.w3.org/2000/svg"
FONT_PX = 13  # every step name is drawn at this size (asserted in the browser test)
_ROW, _CELL, _GAP, _PAD, _HEAD = 24, 22, 3, 8, 44
_MAX_COLUMNS = 24  # more hosts than this: one bar of counts per status instead of cells
_CHAR_PX = 7.2  # a generous average width of a 13 px sans-serif character
NOT_RUN = "#f5f5f5"


def _columns(plan: Plan) -> tuple[list[str], dict[str, int]]:
    """Hosts in batch order of the first serial step, then in plan order; host -> batch number."""
    order: list[str] = []
    batch_of: dict[str, int] = {}
    for leaf in plan.leaves.values():
        if leaf.batches and not batch_of:
            for k, batch in enumerate(leaf.batches, 1):
                for host in batch:
                    batch_of[host] = k
                    if host not in order:
                        order.append(host)
    for leaf in plan.leaves.values():
        for host in leaf.hosts:
            if host not in order:
                order.append(host)
    return order, batch_of


def plan_grid_svg(plan: Plan, colors: Mapping[str, str], statuses: Mapping[str, str] | None = None) -> str:
    """`colors`: node id (`step@host`) or step id -> fill colour; `statuses`: node id -> the
    word shown in a cell's tooltip."""
    statuses = statuses or {}
    hosts, batch_of = _columns(plan)
    counts = len(hosts) > _MAX_COLUMNS
    step_needs: dict[str, list[str]] = {}
    for a, b in sorted(plan.step_edges):
        step_needs.setdefault(b, []).append(a)
    ids = list(plan.leaves)
    names = {sid: leaf.step.name for sid, leaf in plan.leaves.items()}
    label_w = int(min(60, max((len(n) for n in names.values()), default=10)) * _CHAR_PX) + 2 * _PAD
    grid_w = 320 if counts else len(hosts) * (_CELL + _GAP)
    after_w = 260
    width = label_w + grid_w + after_w + 2 * _PAD
    height = _HEAD + len(ids) * _ROW + _PAD
    svg = ET.Element("svg", {"xmlns": SVG_NS, "width": str(width), "height": str(height), "class": "plan-grid",
                             "font-family": "Helvetica, Arial, sans-serif"})
    ET.SubElement(svg, "title").text = f"Plan of {plan.runbook.name}: steps as rows, hosts as columns"
    x0 = _PAD + label_w
    if not counts:
        for i, host in enumerate(hosts):
            x = x0 + i * (_CELL + _GAP) + _CELL / 2
            head = ET.SubElement(svg, "text", {"x": f"{x:.1f}", "y": str(_HEAD - 6), "font-size": "11",
                                               "transform": f"rotate(-45 {x:.1f} {_HEAD - 6})", "class": "host"})
            head.text = host
        for k in sorted(set(batch_of.values())):
            members = [i for i, h in enumerate(hosts) if batch_of.get(h) == k]
            left = x0 + members[0] * (_CELL + _GAP)
            right = x0 + members[-1] * (_CELL + _GAP) + _CELL
            ET.SubElement(svg, "rect", {"x": f"{left - 1:.1f}", "y": str(_HEAD), "width": f"{right - left + 2:.1f}",
                                        "height": str(len(ids) * _ROW), "fill": "none", "stroke": "#c8ccd2",
                                        "stroke-dasharray": "3 2", "class": "batch"})
    else:
        head = ET.SubElement(svg, "text", {"x": str(x0), "y": str(_HEAD - 6), "font-size": "11", "class": "host"})
        head.text = f"{len(hosts)} hosts: nodes by outcome"
    for row, sid in enumerate(ids):
        leaf = plan.leaves[sid]
        y = _HEAD + row * _ROW
        if row % 2:
            ET.SubElement(svg, "rect", {"x": "0", "y": str(y), "width": str(width), "height": str(_ROW),
                                        "fill": "#fafbfc"})
        label = ET.SubElement(svg, "text", {"x": str(_PAD), "y": str(y + _ROW - 8), "font-size": str(FONT_PX),
                                            "class": "step", "data-step": sid})
        label.text = names[sid] if len(names[sid]) <= 60 else names[sid][:59] + "…"
        if len(names[sid]) > 60:
            ET.SubElement(label, "title").text = names[sid]
        if counts:
            _count_bar(svg, plan, leaf.hosts, sid, colors, x0, y)
        else:
            for host in leaf.hosts:
                node_id = f"{sid}@{host}"
                x = x0 + hosts.index(host) * (_CELL + _GAP)
                cell = ET.SubElement(svg, "rect", {
                    "x": str(x), "y": str(y + 3), "width": str(_CELL), "height": str(_ROW - 6), "rx": "3",
                    "fill": colors.get(node_id, colors.get(sid, NOT_RUN)), "stroke": "#d0d4da", "class": "node"})
                ET.SubElement(cell, "title").text = f"{names[sid]} @ {host}: {statuses.get(node_id, 'not run')}"
        earlier = [d for d in step_needs.get(sid, []) if row == 0 or d != ids[row - 1]]
        if earlier:
            after = ET.SubElement(svg, "text", {"x": str(x0 + grid_w + _PAD), "y": str(y + _ROW - 8),
                                                "font-size": "11", "fill": "#57606a", "class": "after"})
            text = "after: " + ", ".join(names.get(d, d) for d in earlier)
            after.text = text if len(text) <= 40 else text[:39] + "…"
            ET.SubElement(after, "title").text = text
    return ET.tostring(svg, encoding="unicode")


def _count_bar(svg: ET.Element, plan: Plan, hosts: tuple[str, ...], sid: str, colors: Mapping[str, str],
               x0: int, y: int) -> None:
    by_color: dict[str, int] = {}
    for host in hosts:
        color = colors.get(f"{sid}@{host}", colors.get(sid, NOT_RUN))
        by_color[color] = by_color.get(color, 0) + 1
    x = float(x0)
    for color, n in by_color.items():
        w = 300 * n / max(1, len(hosts))
        bar = ET.SubElement(svg, "rect", {"x": f"{x:.1f}", "y": str(y + 3), "width": f"{w:.1f}",
                                          "height": str(_ROW - 6), "fill": color, "class": "node"})
        ET.SubElement(bar, "title").text = f"{n} of {len(hosts)} hosts"
        x += w


# Worst first: a step (or a cell) several nodes fall into shows the worst of them.
SEVERITY = ("failed", "timed_out", "unknown", "started", "rescued", "ignored", "ok", "skipped")
_RANK = {status: k for k, status in enumerate(SEVERITY)}
_COPY = re.compile(r"(\[\d+\])+$")


def _worse(status: str, than: str | None) -> bool:
    return than is None or _RANK.get(status, _RANK["ok"]) < _RANK.get(than, _RANK["ok"])


def worst_statuses(plan: Plan, nodes: Iterable[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(step id -> status, `step@host` -> status), each the worst of the nodes that fall
    into it: a loop's or a serial batch's copies `x[0]`, `x[1]`... belong to step `x`."""
    steps: dict[str, str] = {}
    cells: dict[str, str] = {}
    for node in nodes:
        base = node.step_id if node.step_id in plan.leaves else _COPY.sub("", node.step_id)
        keys = [(steps, node.step_id), (steps, base)]
        if node.host is not None:
            keys.append((cells, f"{base}@{node.host}"))
        for table, key in keys:
            if _worse(node.status, table.get(key)):
                table[key] = node.status
    return steps, cells


def plan_grid_html(plan: Plan, nodes: Iterable[Any]) -> str:
    """The grid for the report: `nodes` are the journal's NodeRecords; a step's row and a
    host's cell are coloured by the worst status of the nodes (loop copies too) in them."""
    from opsbook.report.view import STATUS_COLORS

    steps, cells = worst_statuses(plan, nodes)
    colors = {key: STATUS_COLORS.get(status, NOT_RUN) for key, status in {**steps, **cells}.items()}
    return f'<div class="plan-graph">{plan_grid_svg(plan, colors, cells)}</div>'
