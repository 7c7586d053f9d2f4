"""Evidence bundle: collected files, manifest with SHA-256, archive, tamper detection."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from opsbook import evidence
from opsbook.errors import UserError
from opsbook.paths import safe_join


def test_collected_output_is_in_the_manifest_and_archive(run, journal, tmp_path):
    summary = run("""
        opsbook: 1
        name: collect
        steps:
          - name: processes
            local.collect: {cmd: "echo pid-table", name: ps.txt, description: processes}
        """)
    data = evidence.manifest(journal, summary.run_id)
    (item,) = data["items"]
    path = tmp_path / "runs" / summary.run_id / "evidence" / "localhost" / "ps.txt"
    assert path.read_text() == "pid-table\n"
    assert item["path"] == "localhost/ps.txt" and item["step"] == "processes" and item["host"] == "localhost"
    assert item["sha256"] == hashlib.sha256(b"pid-table\n").hexdigest() and item["size"] == 10
    assert evidence.verify(journal, summary.run_id) == []
    archive = evidence.archive(journal, summary.run_id)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(f"evidence-{summary.run_id}/manifest.json"))
    assert f"evidence-{summary.run_id}/localhost/ps.txt" in names
    assert manifest["items"][0]["sha256"] == item["sha256"]
    path.write_text("edited")
    assert evidence.verify(journal, summary.run_id) == ["localhost/ps.txt: SHA-256 changed since collection"]


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "a/../../b", "~/x"])
def test_evidence_paths_cannot_escape_the_run_folder(tmp_path, bad):
    with pytest.raises(UserError):
        safe_join(tmp_path, bad)


def test_symlink_inside_the_folder_cannot_lead_out(tmp_path):
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(UserError, match="leads outside the run folder"):
        safe_join(tmp_path, "link/passwd")
