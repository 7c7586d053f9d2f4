"""Bounded copies from a target: a size limit, a deadline and cancellation, checked at every
chunk, and the SHA-256 of what was copied, computed while copying (never a second read).

A connection's `get(remote, local, transfer)` writes through `Transfer.sink(handle)` (or calls
`Transfer.add` per chunk); a stopped copy raises, and the connection removes its partial file.
Part of the public plugin API (re-exported by opsbook.plugin).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from opsbook.errors import PluginError

DEFAULT_MAX_SIZE = 1024**3  # 1 GiB: what ssh.fetch and the collect actions keep by default
CHUNK = 64 * 1024


class TransferTooLarge(PluginError):
    """The copy passed its `max_size`; nothing was kept."""


class TransferCut(TimeoutError):
    """The copy's deadline passed, or its step was cancelled (a stop, SIGINT/SIGTERM)."""


def size_text(size: int) -> str:
    """1073741824 -> '1 GiB', 1500 -> '1500 bytes'."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


@dataclass
class Transfer:
    """The limits of one copy and what passed so far (`size`, `hexdigest()`)."""

    what: str  # "web1:/var/log/syslog", for messages
    max_size: int | None = DEFAULT_MAX_SIZE
    timeout: float | None = None  # seconds from now
    cancelled: threading.Event | None = None
    size: int = 0
    _deadline: float | None = field(default=None, init=False)
    _hash: Any = field(default_factory=hashlib.sha256, init=False)

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self._deadline = time.monotonic() + self.timeout

    def check(self, announced: int | None = None) -> None:
        """Raise if the copy must stop now (also before it starts, for an `announced` size)."""
        if self.cancelled is not None and self.cancelled.is_set():
            raise TransferCut(f"copy of {self.what} cancelled after {self.size} bytes")
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TransferCut(f"copy of {self.what} timed out after {self.timeout:g}s ({self.size} bytes copied)")
        if self.max_size is not None and max(self.size, announced or 0) > self.max_size:
            raise TransferTooLarge(
                f"{self.what} is larger than max_size ({size_text(self.max_size)}); nothing was kept"
                " (raise max_size to keep it)")

    def time_left(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def add(self, data: bytes) -> None:
        """Count and hash one chunk; raise if the copy must stop."""
        self.size += len(data)
        self.check()
        self._hash.update(data)

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest())

    def sink(self, handle: BinaryIO) -> _Sink:
        """A file object writing to `handle` through `add`."""
        return _Sink(self, handle)


class _Sink:
    def __init__(self, transfer: Transfer, handle: BinaryIO) -> None:
        self.transfer = transfer
        self.handle = handle

    def write(self, data: bytes) -> int:
        self.transfer.add(data)
        return self.handle.write(data)


def copy_stream(source: Any, handle: BinaryIO, transfer: Transfer) -> int:
    """Copy a readable stream into `handle` chunk by chunk within `transfer`'s limits."""
    while True:
        transfer.check()
        chunk = source.read(CHUNK)
        if not chunk:
            return transfer.size
        transfer.add(chunk)
        handle.write(chunk)


def get_within(conn: Any, remote_path: str, local_path: Path, transfer: Transfer) -> int:
    """`conn.get` within `transfer`: connections written before `get` took a `transfer` copy
    the whole file, which is then checked against max_size and hashed in chunks (never read
    whole); the file is removed when it is too large."""
    try:
        takes_transfer = "transfer" in inspect.signature(conn.get).parameters
    except (TypeError, ValueError):
        takes_transfer = False
    if takes_transfer:
        return int(conn.get(remote_path, local_path, transfer=transfer))
    size = int(conn.get(remote_path, local_path))
    try:
        transfer.check(size)
        with open(local_path, "rb") as copied:
            for chunk in iter(lambda: copied.read(CHUNK), b""):
                transfer.add(chunk)
    except BaseException:
        Path(local_path).unlink(missing_ok=True)
        raise
    return size
