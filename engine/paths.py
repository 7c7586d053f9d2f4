"""Filesystem locations opsbook uses, the evidence file rule, and path safety for evidence
(`safe_join`, and `write_file_safely`: no link followed, written via a private temporary file)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO

from opsbook.errors import OutputError, UserError


def state_dir() -> Path:
    """$XDG_STATE_HOME/opsbook (default ~/.local/state/opsbook)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "opsbook"


def default_journal_path() -> Path:
    return Path(os.environ.get("OPSBOOK_JOURNAL") or state_dir() / "journal.db")


def runs_dir(journal: str | Path | None = None) -> Path:
    """Where per-run folders (evidence, reports) live: $OPSBOOK_RUNS_DIR, else `runs/` beside
    the journal in use (`--journal PATH` too), else beside the default journal."""
    if os.environ.get("OPSBOOK_RUNS_DIR"):
        return Path(os.environ["OPSBOOK_RUNS_DIR"])
    if journal is not None and str(journal) != ":memory:":
        return Path(journal).parent / "runs"
    return default_journal_path().parent / "runs"


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


def evidence_file(dest: str | None, host: str, name: str,
                  is_dir: Callable[[str], bool] | None = None) -> str:
    """The relative path of an evidence file: `<host>/<name>` without `dest`;
    `<dest>/<host>/<name>` when `dest` is a folder (ends with `/`, or `is_dir(dest)`);
    else `dest` itself, a file path the author chose."""
    name = name.lstrip("/")
    if not dest:
        return f"{host}/{name}"
    if dest.endswith("/") or (is_dir is not None and is_dir(dest)):
        return f"{dest.rstrip('/')}/{host}/{name}"
    return dest


def safe_join(root: Path, relative: str) -> Path:
    """Join `relative` under `root`, refusing absolute paths, `..`, symlink escapes, and
    names of folders (an empty or `.` name used to turn a host's evidence folder into a file)."""
    if not relative.strip():
        raise UserError("evidence path is empty", hint="give a file name, e.g. ps.txt")
    if os.path.isabs(relative) or relative.startswith("~"):
        raise UserError(f'evidence path "{relative}" must be relative to the run folder')
    if relative.replace(os.sep, "/").split("/")[-1].strip() in ("", ".", ".."):
        raise UserError(f'evidence path "{relative}" names a folder, not a file', hint="end it with a file name, e.g. ps.txt")
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
    if candidate.is_dir() or candidate == root_real:
        raise UserError(f'evidence path "{relative}" is a folder of the evidence; give a file name')
    return candidate


def output_path(path: str | Path) -> Path:
    """A file the user asked opsbook to write (-o, --junit), checked before any work: its
    folder exists and is a folder, and the path is not a folder."""
    target = Path(path).expanduser()
    if str(path).endswith(os.sep) or target.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name (e.g. {Path(path) / 'out'})")
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is not a folder")
    return target


@contextlib.contextmanager
def writing(path: str | Path, binary: bool = False) -> Iterator[IO]:  # type: ignore[type-arg]
    """Write `path` through a private (0600) temporary file in its folder, renamed over it
    when the block succeeds: never a half-written report, never through a planted symlink."""
    target = output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: cannot create a file in {target.parent} ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            yield handle
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_output(path: str | Path, data: str | bytes) -> None:
    """Write a whole output file (see `writing`)."""
    with writing(path, binary=isinstance(data, bytes)) as handle:
        handle.write(data)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (choose a folder you can write to)"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return (exc.strerror or str(exc)).lower()


def output_option(_ctx: object, _param: object, value: str | None) -> str | None:
    """click callback of every output option: a bad path is refused before any work (by
    creating, then removing, a temporary file beside it)."""
    if value is not None:
        target = output_path(value)
        try:
            fd, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError(f"cannot write {value}: cannot create a file in {target.parent} ({_reason(exc)})") from None
        os.close(fd)
        os.unlink(probe)
    return value


def write_file_safely(path: Path, data: bytes | BinaryIO) -> None:
    """Write `path` (0600) through its folder opened with O_NOFOLLOW, via a temporary file and
    a rename: neither a link planted at the file nor one at its folder is followed."""
    import uuid

    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        tmp = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:  # a spooled file (local.collect): copied in chunks
                import shutil

                shutil.copyfileobj(data, handle)
        os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
