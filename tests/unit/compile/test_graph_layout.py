"""`opsbook graph` of a serial rollout reads down a page (issue 25 item 3): steps top to
bottom, each batch's nodes boxed together; the PNG of the library's serial rollout (28
nodes) fits 1,400 px in width (it was 11,550 px wide, left to right)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from opsbook.api import load_inventory_sources, load_runbook, make_plan
from opsbook.planview import graph_dot

REPO = Path(__file__).resolve().parents[3]
ROLLOUT = str(REPO / "runbooks/permanent-fix/serial-config-rollout.yaml")
INVENTORY = str(REPO / "inventories/lab.example.ini")


def test_serial_batches_are_boxed_and_steps_run_down(registry):
    plan = make_plan(load_runbook(ROLLOUT, registry), load_inventory_sources([INVENTORY], registry), {"version": "3"})
    dot = graph_dot(plan)
    assert "rankdir=TB" in dot
    assert 'label="one-host-at-a-time: batch 1 of 2"' in dot and 'label="one-host-at-a-time: batch 2 of 2"' in dot
    first = dot.split("batch 1 of 2", 1)[1].split("}", 1)[0]
    assert "@web1" in first and "@web2" not in first


def test_the_png_of_a_serial_rollout_fits_a_page(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz (dot) is not installed: apt-get install graphviz (lab/install.sh does)")
    out = tmp_path / "plan.png"
    done = subprocess.run([sys.executable, "-m", "opsbook", "graph", ROLLOUT, "-i", INVENTORY, "-e", "version=3",
                           "--format", "png", "-o", str(out)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ), check=False)
    assert done.returncode == 0, done.stderr
    width, height = struct.unpack(">II", out.read_bytes()[16:24])
    assert width <= 1400 and height > width, (width, height)


def test_svg_without_graphviz_draws_the_grid_and_says_so(tmp_path):
    """The README's `opsbook graph ... --format svg` on a machine without Graphviz (an empty
    PATH: no `dot` to find)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "plan.svg"
    done = subprocess.run([sys.executable, "-m", "opsbook", "graph", ROLLOUT, "-i", INVENTORY, "-e", "version=3",
                           "--format", "svg", "-o", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": str(bin_dir)}, check=False)
    assert done.returncode == 0, done.stderr
    assert "note: Graphviz's `dot` is not installed: drew the plan as a grid" in done.stderr
    svg = out.read_text()
    assert 'class="plan-grid"' in svg and "take the host out of the pool" in svg
    assert "Traceback" not in done.stderr
