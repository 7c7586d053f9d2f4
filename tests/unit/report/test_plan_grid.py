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


LOOPED = """\
opsbook: 1
name: looped
steps:
  - name: each
    loop: [1, 2, 3]
    block:
      - name: inner
        local.command: "test {{ item }} != 2"
        ignore_errors: true
"""


def _looped_run(registry, tmp_path, monkeypatch):
    from opsbook.api import RunRequest, start_run
    from opsbook.execute import RunOptions
    from opsbook.journal import Journal

    monkeypatch.setenv("OPSBOOK_RUNS_DIR", str(tmp_path / "runs"))
    path = tmp_path / "rb.yaml"
    path.write_text(LOOPED)
    journal = Journal(tmp_path / "j.db")
    plan = make_plan(load_runbook(str(path), registry), load_inventory_sources([]), {})
    summary = start_run(plan, registry, journal, RunRequest(options=RunOptions()))
    return plan, journal, summary.run_id, path


def test_a_looped_blocks_step_takes_the_worst_of_its_copies(registry, tmp_path, monkeypatch, load):
    """Copy [0] is ok, copy [1] failed: each copy that is a row of the plan keeps its own
    status; a plan without those rows (below) sees step `inner`, the worst of them."""
    from opsbook.plangrid import worst_statuses
    from opsbook.report import gather

    plan, journal, run_id, _ = _looped_run(registry, tmp_path, monkeypatch)
    nodes = gather(journal, run_id).nodes
    assert [(n.step_id, n.status) for n in nodes] == [("inner[0]", "ok"), ("inner[1]", "failed"), ("inner[2]", "ok")]
    steps, cells = worst_statuses(plan, nodes)
    assert steps == {"inner[0]": "ok", "inner[1]": "failed", "inner[2]": "ok"}
    assert cells == {"inner[0]@localhost": "ok", "inner[1]@localhost": "failed", "inner[2]@localhost": "ok"}
    unlooped = make_plan(load("opsbook: 1\nname: u\nsteps:\n  - {name: inner, local.noop: {}}\n"),
                         load_inventory_sources([]), {})
    for order in (nodes, list(reversed(nodes))):  # the order the nodes come in does not matter
        assert worst_statuses(unlooped, order) == ({**steps, "inner": "failed"}, {"inner@localhost": "failed"})


def test_the_report_grid_colours_a_step_by_the_worst_of_its_loop_copies(registry, tmp_path, monkeypatch):
    """The runbook lost its loop after the run: the report's plan has one row `inner`,
    which the journal ran as three copies; the row shows the failed copy, not the first (its
    failure was ignored, ignore_errors: it is coloured as counted, `ignored`)."""
    from opsbook.report import STATUS_COLORS, build_report

    _, journal, run_id, path = _looped_run(registry, tmp_path, monkeypatch)
    path.write_text(LOOPED.replace("    loop: [1, 2, 3]\n", "").replace("{{ item }}", "2"))
    html = build_report(journal, run_id, "html")
    grid = ET.fromstring(html[html.index("<svg", html.index('<div class="plan-graph">')):html.index("</svg>",
                         html.index('<div class="plan-graph">')) + len("</svg>")])
    steps = [t.get("data-step") for t in grid.iter(f"{{{SVG_NS}}}text") if t.get("class") == "step"]
    assert steps == ["inner"]
    (cell,) = [r for r in grid.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "node"]
    assert cell.get("fill") == STATUS_COLORS["ignored"]
    assert cell.find(f"{{{SVG_NS}}}title").text.endswith("@ localhost: ignored")
