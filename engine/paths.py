"""Filesystem locations opsbook uses, and path safety for evidence."""

from __future__ import annotations

import os
from pathlib import Path

from opsbook.errors import UserError


def state_dir() -> Path:
    """$XDG_STATE_HOME/opsbook (default ~/.local/state/opsbook)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "opsbook"


def default_journal_path() -> Path:
    return Path(os.environ.get("OPSBOOK_JOURNAL") or state_dir() / "journal.db")


def runs_dir() -> Path:
    """Where per-run folders (evidence, reports) live: beside the journal."""
    return Path(os.environ.get("OPSBOOK_RUNS_DIR") or default_journal_path().parent / "runs")


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parent as 0700 (whatever the umask): journals, command
    output and evidence are for the user who runs opsbook. Existing folders are left alone."""
    missing = []
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask; the umask cannot widen it
    return Path(path)


def private_file(path: Path | str) -> None:
    """Create `path` empty as 0600 if it does not exist yet (before another library opens it)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def safe_join(root: Path, relative: str) -> Path:
    """Join `relative` under `root`, refusing absolute paths, `..` and symlink escapes."""
    if not relative or os.path.isabs(relative) or relative.startswith("~"):
        raise UserError(f'evidence path "{relative}" must be relative to the run folder')
    parts = Path(relative).parts
    if any(part == ".." for part in parts):
        raise UserError(f'evidence path "{relative}" must not contain ".."')
    root_real = root.resolve()
    candidate = root_real.joinpath(*parts)
    # Resolve the deepest existing ancestor: a symlink planted inside the folder must not
    # lead out of it.
    probe = candidate
    while not probe.exists() and probe != root_real:
        probe = probe.parent
    if not probe.resolve().is_relative_to(root_real):
        raise UserError(f'evidence path "{relative}" leads outside the run folder')
    if candidate.is_symlink():
        raise UserError(f'evidence path "{relative}" is a symlink; refusing to write through it')
    return candidate
