"""Bounded capture of a command's output, for every connection (local, SSH, ...): at most
OUTPUT_CAP bytes are kept per stream (the first and the last halves) with a visible
"[... N bytes omitted; M bytes in all ...]" note, and live output is split into lines of at
most LINE_CAP bytes, so that a gigabyte without a newline is never held whole.
"""

from __future__ import annotations

from collections.abc import Callable

OUTPUT_CAP = 4 * 1024 * 1024  # bytes kept per stream (head and tail halves)
LINE_CAP = 64 * 1024  # a "line" longer than this is reported in pieces
READ_SIZE = 64 * 1024  # bytes asked for per read of a pipe


class Capture:
    """Keeps the first and last OUTPUT_CAP/2 bytes of a stream and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self.half = cap // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return (bytes(self.head) + bytes(self.tail)).decode(errors="replace")
        return (
            self.head.decode(errors="replace")
            + f"\n[... {self.total - kept} bytes omitted; {self.total} bytes in all ...]\n"
            + self.tail.decode(errors="replace")
        )

    def data(self) -> bytes:
        """What `text` says, as bytes."""
        kept = len(self.head) + len(self.tail)
        if self.total <= kept:
            return bytes(self.head) + bytes(self.tail)
        note = f"\n[... {self.total - kept} bytes omitted; {self.total} bytes in all ...]\n"
        return bytes(self.head) + note.encode() + bytes(self.tail)


class Lines:
    """Splits a byte stream into lines for `on_output`."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self.sink = sink
        self.partial = bytearray()

    def add(self, data: bytes) -> None:
        if self.sink is None:
            return
        self.partial += data
        while True:
            cut = self.partial.find(b"\n", 0, LINE_CAP + 1)
            skip = 1  # the newline
            if cut < 0:
                if len(self.partial) < LINE_CAP:
                    return
                cut, skip = LINE_CAP, 0
            line = bytes(self.partial[:cut]).rstrip(b"\r")
            del self.partial[: cut + skip]
            self._emit(line)

    def flush(self) -> None:
        if self.sink is not None and self.partial:
            self._emit(bytes(self.partial))
            self.partial.clear()

    def _emit(self, line: bytes) -> None:
        try:
            self.sink(line.decode(errors="replace"))  # type: ignore[misc]
        except Exception:  # a broken display must not abandon a running command
            pass


def clip_text(text: str, cap: int = OUTPUT_CAP) -> str:
    """`text` cut to its first and last cap/2 characters with the same note as `Capture`
    (a loop's joined output: each item is capped already, their sum is not)."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return (text[:half] + f"\n[... {len(text) - 2 * half} characters omitted; {len(text)} in all ...]\n"
            + text[-half:])
