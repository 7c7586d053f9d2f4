"""The HTML report of a real run, opened in headless Chromium: the page renders (a real
screenshot with the Gantt chart's coloured bars in it) and the rendered DOM has the
summary, the recovery objectives and the timeline <svg>.

The screenshot and the page are kept in tests/artifacts/ (gitignored) for a human to look
at. Chromium comes from `tests/run` (apt-get install chromium); without it the test is
skipped, except in CI where it must be there.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import lab_helpers as lh
import pytest
from opsbook_lab.pytest_plugin import skip_or_fail_in_ci

pytestmark = pytest.mark.lab

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
OK_GREEN = (0x2E, 0x9E, 0x4F)  # report.STATUS_COLORS["ok"]: the bars of ok nodes
ROLLBACK_BLUE = (0x3B, 0x73, 0xC4)  # report.STATUS_COLORS["done"]: executed rollbacks


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        skip_or_fail_in_ci(
            "chromium is not installed (/usr/bin/chromium); `apt-get install -y chromium` or run tests/run",
            "chromium is missing in CI (tests/run installs it with apt-get install chromium)")
    return found


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced truecolor PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert header is not None, "PNG without IHDR"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def colours(width: int, rows: list[bytes], channels: int) -> dict[tuple[int, int, int], int]:
    """How many pixels of each colour, every pixel counted (a bar's size has a known lower bound)."""
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for x in range(0, width * channels, channels):
            rgb = (row[x], row[x + 1], row[x + 2])
            counts[rgb] = counts.get(rgb, 0) + 1
    return counts


def test_html_report_of_a_real_run_renders_in_chromium(pristine, ob):
    browser = chromium()
    lab = pristine
    result = ob.run("first-response/isolate-host.yaml", "--rollback", "always", target="web1")
    assert result.rc == 0, result.summary()
    # docker's reconnect (the rollback) brings a default route back, which lab hosts never have
    lh.sh(lab, "web1", "ip route del default 2>/dev/null; true")

    from opsbook.report import build_report

    journal = result.journal()
    try:
        html = build_report(journal, result.run_id, "html")
    finally:
        journal.close()
    lh.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = lh.ARTIFACTS / "report-isolate-host.html"
    page.write_text(html)
    shot = lh.ARTIFACTS / "report-isolate-host.png"
    shot.unlink(missing_ok=True)
    profile = ob.tmp_path / "chromium-profile"

    done = headless(browser, profile, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())

    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    data = shot.read_bytes()
    assert len(data) > 30_000, f"screenshot of {len(data)} bytes: a blank page?"
    width, height, rows = png_pixels(data)
    assert (width, height) == (1280, 2000)
    channels = len(rows[0]) // width
    seen = colours(width, rows, channels)
    white = seen.get((255, 255, 255), 0)
    assert white < 0.97 * sum(seen.values()), "the page is (almost) all white"
    assert len(seen) > 50, f"only {len(seen)} colours: the page did not render"
    assert seen.get(OK_GREEN, 0) > 200, "no green bars of ok nodes in the Gantt chart"
    # Bar widths follow durations, and a rollback lasts milliseconds of a run of seconds; what is
    # fixed is the smallest bar (report.html._MIN_BAR_W = 4 px by 12 px, rounded corners): each one
    # paints at least ~30 pixels of exactly its colour, so two executed rollbacks give > 50.
    assert seen.get(ROLLBACK_BLUE, 0) > 50, "no bars of the executed rollbacks in the Gantt chart"

    dumped = headless(browser, profile, "--dump-dom", page.as_uri())
    dom = dumped.stdout
    assert dumped.returncode == 0 and dom.strip(), dumped.stderr[-2000:]
    assert f"Run report: isolate-host ({result.run_id})" in dom
    summary = re.search(r'<section id="summary">(.*?)</section>', dom, re.DOTALL)
    assert summary, "no summary section in the rendered page"
    assert "succeeded" in summary.group(1)
    objectives = re.search(r'<section id="objectives">(.*?)</section>', dom, re.DOTALL)
    assert objectives, "no recovery objectives section"
    svg = re.search(r"<svg[^>]*class=\"gantt\"[^>]*>(.*?)</svg>", objectives.group(1), re.DOTALL)
    assert svg, "no timeline <svg> in the rendered page"
    bars = re.findall(r'<rect[^>]*class="bar status-(\w+)"', svg.group(1))
    assert bars.count("ok") >= 10 and bars.count("done") == 2, bars
    assert "approval" in svg.group(1) and 'class="marker"' in svg.group(1)
    for section in ("timeline", "approvals", "rollbacks", "evidence"):
        assert f'<section id="{section}">' in dom, f"no {section} section"
    assert "web1/container.log" in dom
    assert lab.info.hosts["web1"].lab_ip  # the run was against this lab


BROKEN = "/etc/nginx/conf.d/zz-broken.conf"
ROLLOUT = "permanent-fix/serial-config-rollout.yaml"
PAGE_WIDTH = 1400


def test_report_of_a_failed_serial_rollout_leads_with_the_cause_and_draws_a_readable_plan(pristine, ob):
    """Issue 25 items 1-3 in the browser: a serial rollout that fails on web2 (`nginx -t`
    refuses a stray file). At 1,400 px the summary names the cause, "State at the end" says
    how each host was left, and the plan graph draws every step name at 13 px, unscaled."""
    browser = chromium()
    lab = pristine
    lh.sh_ok(lab, "web2", f"echo 'bogus_directive on;' > {BROKEN}")
    try:
        result = ob.run(ROLLOUT, version="8")
    finally:
        lh.sh(lab, "web2", f"rm -f {BROKEN}")
    # the failed batch aborts the rollout, and web2's undo fails too (`nginx -t` still sees the
    # stray file): exit 4, web2 left out of the pool; "State at the end" must say so
    assert result.rc == 4, result.summary()

    from opsbook.api import load_inventory_sources, load_runbook, make_plan
    from opsbook.registry import Registry
    from opsbook.report import build_report

    journal = result.journal()
    try:
        html = build_report(journal, result.run_id, "html")
        run = journal.get_run(result.run_id)
    finally:
        journal.close()
    registry = Registry.from_entry_points()
    plan = make_plan(load_runbook(run.runbook_path, registry), load_inventory_sources(list(run.inventory), registry),
                     dict(run.params))
    lh.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = lh.ARTIFACTS / "report-serial-rollout-failed.html"
    page.write_text(html)
    shot = lh.ARTIFACTS / "report-serial-rollout-failed.png"
    shot.unlink(missing_ok=True)
    profile = ob.tmp_path / "chromium-profile"

    done = headless(browser, profile, f"--screenshot={shot}", f"--window-size={PAGE_WIDTH},2400", page.as_uri())
    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    width, _, rows = png_pixels(shot.read_bytes())
    assert width == PAGE_WIDTH and len(colours(width, rows, len(rows[0]) // width)) > 50, "the page did not render"

    dumped = headless(browser, profile, f"--window-size={PAGE_WIDTH},2400", "--dump-dom", page.as_uri())
    dom = dumped.stdout
    assert dumped.returncode == 0 and dom.strip(), dumped.stderr[-2000:]
    summary = re.search(r'<section id="summary">(.*?)</section>', dom, re.DOTALL)
    assert summary and "bogus_directive" in summary.group(1) and "web2" in summary.group(1), \
        summary.group(1) if summary else dom[:2000]
    end_state = re.search(r'<section id="end-state">(.*?)</section>', dom, re.DOTALL)
    assert end_state and "web1" in end_state.group(1) and "web2" in end_state.group(1)
    assert "failed to roll back" in end_state.group(1) or "failed" in end_state.group(1), end_state.group(1)
    grid = re.search(r'<svg[^>]*class="plan-grid"[^>]*>(.*?)</svg>', dom, re.DOTALL)
    assert grid, "no plan grid in the rendered page"
    svg_width = int(re.search(r'<svg[^>]*class="plan-grid"[^>]*width="(\d+)"', dom).group(1)) \
        if re.search(r'<svg[^>]*class="plan-grid"[^>]*width="(\d+)"', dom) else \
        int(re.search(r'<svg[^>]*width="(\d+)"[^>]*class="plan-grid"', dom).group(1))
    assert svg_width <= PAGE_WIDTH - 40, f"the plan graph is {svg_width} px wide: it would not fit the page"
    labels = re.findall(r'<text[^>]*font-size="(\d+)"[^>]*class="step"[^>]*>([^<]*)', grid.group(1))
    assert {name for _, name in labels} == {leaf.step.name for leaf in plan.leaves.values()}, labels
    assert all(int(size) >= 12 for size, _ in labels), labels  # legible: drawn at >= 12 px, never scaled
    cells = re.findall(r'<rect[^>]*class="node"', grid.group(1))
    assert len(cells) == sum(len(leaf.hosts) for leaf in plan.leaves.values())
