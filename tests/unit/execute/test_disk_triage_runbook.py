"""runbooks/first-response/disk-triage.yaml reads a file system's use as `df` does (outside
review, item 7: it counted the blocks reserved for root as used, 72 % where df said 24 %),
run against the controller's own file systems through local connections; the lab's hosts
are in tests/e2e/test_runbooks_facts_lab.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from opsbook.journal import Journal
from opsbook_lab.pytest_plugin import opsbook

RUNBOOK = Path(__file__).resolve().parents[3] / "runbooks" / "first-response" / "disk-triage.yaml"


def _df(mount: str) -> float:
    """df's use of a mount as a fraction: used / (used + available), used = total - free."""
    st = os.statvfs(mount)
    used = st.f_blocks - st.f_bfree
    return 100 * used / (used + st.f_bavail)


def test_disk_triage_shows_each_file_systems_use_as_df_does(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nweb1 ansible_connection=local\n")
    done = opsbook(tmp_path, "run", str(RUNBOOK), "-i", str(inv), "-e", "used_percent=101")
    assert done.returncode == 0, done.stderr
    journal = Journal(tmp_path / "j.db")
    try:
        shown = journal.nodes(journal.latest_run_id())["what-the-host-s-disks-look-like@web1"].msg
    finally:
        journal.close()
    uses = dict(re.findall(r"(/\S*) ([\d.]+)% used", shown))
    assert "/" in uses, shown
    assert abs(float(uses["/"]) - _df("/")) < 0.5, (shown, _df("/"))
    df = subprocess.run(["df", "-P", "/"], capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert abs(float(uses["/"]) - int(df.split()[4].rstrip("%"))) <= 1, (shown, df)  # df rounds up
