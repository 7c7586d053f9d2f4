"""The library runbooks built on facts, debug and handler control, against the lab:
first-response/disk-triage (ansible_mounts, debug, meta: end_host) and
permanent-fix/rolling-restart (gather_facts, serial, meta: flush_handlers)."""

from __future__ import annotations

import re

import lab_helpers as lh
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def pristine(lab):
    yield from lh.pristine_lab(lab)


@pytest.fixture
def ob(lab, tmp_path, monkeypatch):
    return lh.make_opsbook(lab, tmp_path, monkeypatch)


def test_disk_triage_shows_every_hosts_disks_and_keeps_evidence_of_the_full_ones(lab, ob):
    result = ob.run("first-response/disk-triage.yaml", used_percent=0)

    assert result.rc == 0, result.summary()
    for host in ("web1", "web2"):
        assert f"{host}: " in result.msg("needs a look", host)
        shown = result.msg("what the host's disks look like", host)
        assert "% used" in shown or "no device mount" in shown, shown
    paths = {item["path"] for item in result.manifest()["items"]}
    assert {"web1/disk-largest.txt", "web2/disk-largest.txt"} <= paths


def test_disk_triage_reads_each_file_systems_use_as_df_does_on_the_hosts(lab, ob):
    """Outside review, item 7: used / (used + available), as `df` inside the host says it
    (the blocks reserved for root are neither), not (total - available) / total."""
    result = ob.run("first-response/disk-triage.yaml", used_percent=101)

    assert result.rc == 0, result.summary()
    for host in ("web1", "web2"):
        shown = result.msg("what the host's disks look like", host)
        uses = dict(re.findall(r"(/\S*) ([\d.]+)% used", shown))
        assert uses, shown
        for mount, used in uses.items():
            df = lh.sh_ok(lab, host, f"df -P {mount} | tail -n 1").split()
            assert abs(float(used) - int(df[4].rstrip("%"))) <= 1, (host, shown, df)  # df rounds up


def test_disk_triage_ends_early_on_hosts_that_are_not_filling_up(lab, ob):
    result = ob.run("first-response/disk-triage.yaml", used_percent=101)

    assert result.rc == 0, result.summary()  # end_host: done, not failed
    for host in ("web1", "web2"):
        assert result.status_of("keep the largest directories of the fullest file system", host) == "skipped"
        assert result.status_of("needs a look", host) == "skipped"


def test_rolling_restart_restarts_one_host_at_a_time_through_a_flushed_handler(pristine, ob):
    lab = pristine
    before = {h: lh.sh_ok(lab, h, "cat /run/nginx.pid").strip() for h in ("web1", "web2")}

    result = ob.run("permanent-fix/rolling-restart.yaml")

    assert result.rc == 0, result.summary()
    for host in ("web1", "web2"):
        assert lh.sh_ok(lab, host, "cat /run/nginx.pid").strip() != before[host], f"nginx on {host} was not restarted"
        assert f"{host}: Debian" in result.msg("where the restarts go", host)
        # the flushed copy ran; the one at the end had nothing left to do
        assert sorted(e["status"] for e in result.finished("restart nginx", host)) == ["ok", "skipped"]
    first, second = sorted(("web1", "web2"), key=lambda h: lh.started_at(result, "restart nginx", h))
    # the handler ran mid-run (flushed), and the second host started only after the first was back
    assert lh.started_at(result, "the host answers again with its own name", first) > \
        lh.started_at(result, "restart nginx", first)
    assert lh.started_at(result, "the configuration tests clean", second) > \
        lh.started_at(result, "enable the host on the balancer", first)
    assert all(v == "UP" for v in lh.pool(lab).values()), lh.pool(lab)