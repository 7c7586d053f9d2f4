"""Data at rest is the user's own (issue 24 item 4): under umask 022 the journal (and its -wal,
-shm), the state and run folders, evidence, reports and archives are not readable by others."""

from __future__ import annotations

import os
import stat
import subprocess
import sys


def test_everything_opsbook_writes_is_private_under_umask_022(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    env.pop("OPSBOOK_JOURNAL", None)
    env.pop("OPSBOOK_RUNS_DIR", None)
    rb = tmp_path / "rb.yaml"
    rb.write_text("opsbook: 1\nname: m\nsteps:\n  - name: snap\n    local.collect: {cmd: 'echo secret-output', "
                  "name: out.txt}\n")

    def opsbook(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsbook", *args], capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0o022))

    assert opsbook("run", str(rb)).returncode == 0
    report = tmp_path / "report.html"
    archive = tmp_path / "evidence.tar.gz"
    assert opsbook("report", "last", "--format", "html", "-o", str(report)).returncode == 0
    assert opsbook("evidence", "last", "--archive", "-o", str(archive)).returncode == 0
    written = [p for p in state.rglob("*")] + [report, archive]
    assert any(p.name == "out.txt" for p in written)
    def closed(path) -> bool:
        """No other user can reach `path`: it, or a folder above it, is closed to them."""
        return any(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in [path, *path.parents] if p != p.parent)

    for path in written:
        assert closed(path), f"{path} is readable by other users"
    run_dir = next((state / "opsbook" / "runs").iterdir())
    for folder in (state, state / "opsbook", state / "opsbook" / "runs", run_dir, run_dir / "evidence"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in (state / "opsbook" / "journal.db", report, archive):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_journals_wal_and_shm_are_private_while_it_is_open(tmp_path):
    from opsbook.journal import Journal

    old = os.umask(0o022)
    try:
        journal = Journal(tmp_path / "new" / "j.db")
        journal.event("run", "note", None, {"x": 1})
        for name in ("j.db", "j.db-wal", "j.db-shm"):
            assert stat.S_IMODE((tmp_path / "new" / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
        journal.close()
    finally:
        os.umask(old)
