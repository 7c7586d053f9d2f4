"""Become (sudo): `_Sudo` wraps one command in ``sudo -S -p PROMPT -u USER``, recognises its
prompt and the marker printed once the command proper starts, answers the prompt with the
become password once, and hands back the output that belongs to the command. `channel._Run`
drives it and raises `BecomeError` with the reason sudo gave."""

from __future__ import annotations

import secrets
import shlex

from opsbook.plugin import Become


class _Sudo:
    """The sudo wrapper for one command: prompt and success markers, password exchange."""

    def __init__(self, become: Become, password: str | None) -> None:
        token = secrets.token_hex(8)
        self.user = become.user
        self.password = password
        self.prompt = f"[opsbook-sudo-{token}] password:"
        self.marker = f"OPSBOOK-BECOME-{token}"
        self.sent = 0
        self.out = bytearray()
        self.err = bytearray()

    def wrap(self, script: str) -> str:
        inner = f"echo {self.marker}\n{script}"
        return (
            f"sudo -H -S -p {shlex.quote(self.prompt)} -u {shlex.quote(self.user)} -- "
            f"/bin/sh -c {shlex.quote(inner)}"
        )

    def feed(self, out: bytes, err: bytes) -> bool:
        """Buffer output until sudo let the command start; True once it has."""
        self.out += out
        self.err += err
        return (self.marker.encode() + b"\n") in self.out

    def prompts(self) -> int:
        return self.err.count(self.prompt.encode())

    def leftovers(self) -> tuple[bytes, bytes]:
        """Output that belongs to the command: after the marker, without prompts."""
        marker = self.marker.encode() + b"\n"
        out = self.out[self.out.index(marker) + len(marker) :] if marker in self.out else self.out
        return bytes(out), bytes(self.err.replace(self.prompt.encode(), b"").lstrip(b"\n"))
