"""The report's plan graph is a grid a person reads (issue 25 item 3): one row per step,
one column per host grouped by serial batch, each step name drawn at 13 px and the whole
drawn at its natural size, which for a serial rollout of the library fits a 1,400 px page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from opsbook.api import load_inventory_sources, load_runbook, make_plan
from opsbook.plangrid import FONT_PX, SVG_NS, plan_grid_svg

REPO = Path(__file__).resolve().parents[3]


def test_a_serial_rollout_is_steps_as_rows_hosts_as_batched_columns(registry):
    plan = make_plan(load_runbook(str(REPO / "runbooks/permanent-fix/serial-config-rollout.yaml"), registry),
                     load_inventory_sources([str(REPO / "inventories/lab.example.ini")], registry), {"version": "3"})
    first = next(iter(plan.leaves))
    svg = ET.fromstring(plan_grid_svg(plan, {f"{first}@web1": "#d1242f"}, {f"{first}@web1": "failed"}))
    assert int(svg.get("width")) <= 1400 and svg.get("viewBox") is None  # never scaled down
    steps = [t for t in svg.iter(f"{{{SVG_NS}}}text") if t.get("class") == "step"]
    assert [t.get("data-step") for t in steps] == list(plan.leaves)
    assert all(t.get("font-size") == str(FONT_PX) for t in steps)
    assert {t.text for t in steps} == {leaf.step.name for leaf in plan.leaves.values()}
    cells = [r for r in svg.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "node"]
    assert len(cells) == sum(len(leaf.hosts) for leaf in plan.leaves.values())
    failed = [r for r in cells if r.get("fill") == "#d1242f"]
    assert len(failed) == 1 and failed[0].find(f"{{{SVG_NS}}}title").text.endswith("@ web1: failed")
    batches = [r for r in svg.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "batch"]
    assert len(batches) == 2  # web1, then web2


def test_many_hosts_become_counts(load, write):
    hosts = "\n".join(f"h{i} ansible_connection=local" for i in range(60))
    plan = make_plan(load("opsbook: 1\nname: wide\nhosts: all\nsteps:\n  - {name: everywhere, local.noop: {}}\n"),
                     load_inventory_sources([write("inv.ini", "[all]\n" + hosts + "\n")]), {})
    svg = ET.fromstring(plan_grid_svg(plan, {}))
    assert int(svg.get("width")) <= 1400
    assert "60 hosts" in "".join(t.text or "" for t in svg.iter(f"{{{SVG_NS}}}text"))
