"""Files out of a container: the tar stream `get_archive` sends, read chunk by chunk within a
transfer's limits or whole, and written atomically to a local file (the connection's `get`,
docker.stats' evidence file). It registers nothing.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opsbook.transfer import Transfer, copy_stream
from opsbook_plugins.docker.daemons import DockerError


class _ChunkReader(io.RawIOBase):
    """A readable file over the chunks of an HTTP response (tarfile's stream mode reads it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = iter(chunks)
        self.left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.left:
            self.left = next(self.chunks, b"")
            if not self.left:
                return 0
        n = min(len(buffer), len(self.left))
        buffer[:n], self.left = self.left[:n], self.left[n:]
        return n


def _extract_bounded(stream: Iterator[bytes], local_path: Path, remote: str, name: str,
                     transfer: Transfer) -> int:
    """The one file of a `get_archive` stream, copied chunk by chunk within `transfer`."""
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as tar:
        member = next((m for m in tar if m.isfile()), None)
        if member is None:
            raise DockerError(f"{remote} in {name} is not a regular file")
        transfer.check(member.size)
        content = tar.extractfile(member)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(tmp, "xb") as handle:
                size = copy_stream(content, handle, transfer) if content is not None else 0
            os.replace(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)
    return size


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _extract_single(stream: Iterator[bytes], local_path: Path, remote: str, name: str) -> int:
    buffer = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=buffer, mode="r") as tar:
        member = next((m for m in tar if m.isfile()), None)
        if member is None:
            raise DockerError(f"{remote} in {name} is not a regular file")
        content = tar.extractfile(member)
        data = content.read() if content else b""
    _write_atomic(local_path, data)
    return len(data)
