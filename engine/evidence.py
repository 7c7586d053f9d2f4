"""The evidence bundle: every collected file under the run's evidence folder, with a
manifest (what, from where, which step, when, size, SHA-256) and a tar.gz archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

from opsbook.journal import Journal
from opsbook.paths import runs_dir


def describe_file(root: Path | None, relative: str) -> dict[str, Any]:
    """Size and SHA-256 of an evidence file (empty if it is not there)."""
    if root is None:
        return {}
    path = root / relative
    if not path.is_file():
        return {"missing": True}
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def manifest(journal: Journal, run_id: str) -> dict[str, Any]:
    run = journal.get_run(run_id)
    items = []
    for ts, kind, node_id, data in journal.events(run.id):
        if kind != "evidence":
            continue
        items.append({"path": data.get("path"), "source": data.get("source"), "step": data.get("step"),
                      "host": data.get("host"), "node": node_id, "description": data.get("description", ""),
                      "collected": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)),
                      "size": data.get("size"), "sha256": data.get("sha256")})
    folder = run.options.get("evidence_dir") or evidence_folder(run.id)
    return {"run": run.id, "runbook": run.runbook_name, "folder": str(folder), "items": items}


def evidence_folder(run_id: str) -> Path:
    """Where a run's evidence goes when the run record does not say (older runs)."""
    return runs_dir() / run_id / "evidence"


def verify(journal: Journal, run_id: str) -> list[str]:
    """Files whose content no longer matches the manifest (tampering, truncation)."""
    data = manifest(journal, run_id)
    folder = Path(data["folder"])
    problems = []
    for item in data["items"]:
        now = describe_file(folder, item["path"])
        if now.get("missing"):
            problems.append(f"{item['path']}: missing")
        elif item.get("sha256") and now["sha256"] != item["sha256"]:
            problems.append(f"{item['path']}: SHA-256 changed since collection")
    return problems


def archive(journal: Journal, run_id: str, output: Path | None = None) -> Path:
    """tar.gz of the evidence folder with manifest.json at its root."""
    data = manifest(journal, run_id)
    folder = Path(data["folder"])
    output = output or folder.parent / f"evidence-{data['run']}.tar.gz"
    from opsbook.paths import writing

    with writing(output, binary=True) as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        blob = json.dumps(data, indent=2).encode()
        info = tarfile.TarInfo(f"evidence-{data['run']}/manifest.json")
        info.size, info.mtime = len(blob), int(time.time())
        tar.addfile(info, io.BytesIO(blob))
        for item in data["items"]:
            path = folder / item["path"]
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=f"evidence-{data['run']}/{item['path']}", recursive=False)
    return output
