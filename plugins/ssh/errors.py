"""The ssh connection's errors (each says which host, and what to do where there is
something to do) and `SSHCommandResult`, a command's result that also tells how much output
there was before capping."""

from __future__ import annotations

from dataclasses import dataclass

from opsbook.capture import OUTPUT_CAP
from opsbook.errors import OpsbookError
from opsbook.plugin import CommandResult

# -- errors ------------------------------------------------------------------------------


class SSHError(OpsbookError):
    """A host could not be reached, authenticated or verified over SSH."""

    def __init__(self, message: str, host: str = "") -> None:
        self.message = message
        self.host = host
        super().__init__(message)


class SSHConnectError(SSHError):
    """The TCP connection or the SSH handshake failed (host down, refused, timed out)."""


class SSHAuthError(SSHError):
    """The server refused every credential we have for this user."""


class HostKeyUnknownError(SSHError):
    """The server's host key is not in known_hosts (and the policy is strict)."""


class HostKeyChangedError(SSHError):
    """The server's host key differs from the recorded one: possible man-in-the-middle."""


class BecomeError(SSHError):
    """sudo refused to run the command (no password, wrong password, not a sudoer)."""


class CommandTimeout(SSHError, TimeoutError):
    """A command ran past its timeout; it was signalled and its channel closed."""

    def __init__(self, message: str, host: str, partial: CommandResult) -> None:
        super().__init__(message, host)
        self.partial = partial


class CommandCancelled(SSHError):
    """A command was cancelled through its `cancel` event; its channel was closed."""

    def __init__(self, message: str, host: str, partial: CommandResult) -> None:
        super().__init__(message, host)
        self.partial = partial


@dataclass(frozen=True, slots=True)
class SSHCommandResult(CommandResult):
    """A CommandResult that also tells how much output there was before capping."""

    stdout_bytes: int = 0
    stderr_bytes: int = 0

    @property
    def truncated(self) -> bool:
        return self.stdout_bytes > OUTPUT_CAP or self.stderr_bytes > OUTPUT_CAP
