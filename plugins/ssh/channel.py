"""One command on an exec channel: the request (`_Request`: shell text or an argv quoted word
by word), the task id every command carries so that what a timed-out command left running
can be killed, and `_Run`, which drives the channel -- stdin, sudo's prompt, output streamed
and capped, the timeout and the cancel event -- and wakes on data without an OS pipe per
channel (`_Wakeup`)."""

from __future__ import annotations

import functools
import itertools
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsbook.capture import Capture as _Capture
from opsbook.capture import Lines as _Lines
from opsbook.plugin import Become
from opsbook_plugins.ssh._paramiko import Message, cMSG_CHANNEL_REQUEST, paramiko
from opsbook_plugins.ssh.become import _Sudo
from opsbook_plugins.ssh.errors import (
    BecomeError,
    CommandCancelled,
    CommandTimeout,
    SSHCommandResult,
    SSHConnectError,
)

if TYPE_CHECKING:
    from opsbook_plugins.ssh.connection import SSHConnection


_POLL = 0.25  # how often a waiting command looks at its cancel event


# -- output ------------------------------------------------------------------------------


class _Wakeup:
    """Wakes a command's reader when its stdout or stderr has data, or ends.

    What paramiko's `Channel.fileno()` gives `select`, without an OS pipe per channel (two
    descriptors, a write per packet, a read per drain; and `select` fails on descriptors
    above 1023, which a few hundred hosts at once reach): each stream's buffer flags
    itself here (`BufferedPipe.set_event`), and `event` is set while either flag is.
    """

    def __init__(self, chan: paramiko.Channel) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._ready = [False, False]
        chan.in_buffer.set_event(_StreamFlag(self, 0))
        chan.in_stderr_buffer.set_event(_StreamFlag(self, 1))

    def flag(self, stream: int, ready: bool) -> None:
        with self._lock:
            self._ready[stream] = ready
            if ready:
                self.event.set()
            elif not any(self._ready):
                self.event.clear()


class _StreamFlag:
    """One stream's side of a _Wakeup, in the shape BufferedPipe.set_event expects."""

    __slots__ = ("stream", "wakeup")

    def __init__(self, wakeup: _Wakeup, stream: int) -> None:
        self.wakeup = wakeup
        self.stream = stream

    def set(self) -> None:
        self.wakeup.flag(self.stream, True)

    def clear(self) -> None:
        self.wakeup.flag(self.stream, False)




@dataclass(frozen=True)
class _Request:
    """One command to run, as given to `SSHConnection.run`."""

    command: str | Sequence[str]
    stdin: bytes | None
    timeout: float | None
    become: Become | None
    cancel: threading.Event | None
    on_output: Callable[[str], None] | None
    killable: bool = True  # False for the kill command itself: no kill of the kill

    def script(self) -> tuple[str, bool]:
        """The command as shell text, and whether it is one argv (quoted word by word)."""
        if isinstance(self.command, str):
            return self.command, False
        if not self.command:
            raise ValueError("empty argv")
        return _joined(tuple(str(a) for a in self.command)), True


@functools.lru_cache(maxsize=1024)  # a step sends the same argv to every host
def _joined(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)


# Task ids: random per process (several opsbook runs may share a host), then counted.
_TASK_PREFIX = secrets.token_hex(4)
_TASK_NUMBERS = itertools.count(1)

# Every command carries OPSBOOK_TASK_ID in its environment (inherited by its children;
# sudo's own process keeps it). After a timeout, processes with the id, and their process
# groups, are sent SIGTERM.
_KILL_SCRIPT = r"""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx "OPSBOOK_TASK_ID=$1" || continue
  g=$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')
  [ -n "$g" ] && [ "$g" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] && kill -TERM "-$g" 2>/dev/null
  kill -TERM "$p" 2>/dev/null
done
exit 0
"""


@dataclass(frozen=True)
class _Task:
    """The id a command is tagged with, so it can be found and stopped after a timeout."""

    id: str
    become: Become | None
    killable: bool = True  # False for the kill command itself

    def tag(self, script: str, is_argv: bool) -> str:
        if is_argv:  # a single command: the login shell execs it, keeping the one process
            return f"OPSBOOK_TASK_ID={self.id} exec {script}"
        return f"OPSBOOK_TASK_ID={self.id}; export OPSBOOK_TASK_ID\n{script}"


def _close_quietly(chan: paramiko.Channel) -> None:
    try:
        chan.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the transport is gone; so is the channel


def send_signal(chan: paramiko.Channel, name: str) -> None:
    """RFC 4254 `signal` request (OpenSSH >= 7.9 delivers it to the session's process)."""
    if chan.closed or not chan.active:
        return
    msg = Message()
    msg.add_byte(cMSG_CHANNEL_REQUEST)
    msg.add_int(chan.remote_chanid)
    msg.add_string("signal")
    msg.add_boolean(False)
    msg.add_string(name)
    try:
        chan.get_transport()._send_user_message(msg)  # no public API for this request
    except Exception:
        pass


class _Run:
    """Drives one exec channel: stdin, sudo, output streaming, timeout and cancellation."""

    def __init__(
        self,
        conn: SSHConnection,
        chan: paramiko.Channel,
        sudo: _Sudo | None,
        stdin: bytes | None,
        on_output: Callable[[str], None] | None,
        task: _Task,
    ) -> None:
        self.conn = conn
        self.task = task
        self.chan = chan
        self.sudo = sudo
        self.stdin = stdin
        self.out, self.err = _Capture(), _Capture()
        self.out_lines, self.err_lines = _Lines(on_output), _Lines(on_output)
        self.started = sudo is None  # the command proper runs (sudo let it through)

    def wait(
        self, start: float, deadline: float | None, cancel: threading.Event | None
    ) -> SSHCommandResult:
        chan = self.chan
        if self.started:
            self._send_stdin()
        ready = _Wakeup(chan).event
        while True:
            if cancel is not None and cancel.is_set():
                self._abort()
                raise CommandCancelled(
                    f"command cancelled on {self.conn.settings.name}",
                    self.conn.settings.name,
                    self._result(-1, start),
                )
            wait = _POLL
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._abort()
                    raise CommandTimeout(
                        f"command timed out after {deadline - start:g}s on "
                        f"{self.conn.settings.name}",
                        self.conn.settings.name,
                        self._result(-1, start),
                    )
                wait = min(wait, left)
            ready.wait(wait)
            self._drain()
            if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if chan.closed:
                break
        return self._finish(start, deadline)

    def _finish(self, start: float, deadline: float | None) -> SSHCommandResult:
        chan = self.chan
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        chan.status_event.wait(5.0 if left is None else min(left, 5.0))
        rc = chan.exit_status
        if rc == -1 and not chan.get_transport().is_active():
            raise SSHConnectError(
                f"connection to {self.conn.settings.target} was lost while "
                "a command ran; it may or may not have finished",
                self.conn.settings.name,
            )
        if not self.started:
            self._become_failed()
        return self._result(rc, start)  # rc -1: killed by a signal (no exit status)

    def _result(self, rc: int, start: float) -> SSHCommandResult:
        self.out_lines.flush()
        self.err_lines.flush()
        return SSHCommandResult(
            rc=rc,
            stdout=self.out.text(),
            stderr=self.err.text(),
            duration=time.monotonic() - start,
            stdout_bytes=self.out.total,
            stderr_bytes=self.err.total,
        )

    def _drain(self) -> None:
        chan = self.chan
        out = err = b""
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if not out and not err:
            return
        if not self.started:
            out, err = self._through_sudo(out, err)
        if out:
            self.out.add(out)
            self.out_lines.add(out)
        if err:
            self.err.add(err)
            self.err_lines.add(err)

    def _through_sudo(self, out: bytes, err: bytes) -> tuple[bytes, bytes]:
        sudo = self.sudo
        assert sudo is not None
        if sudo.feed(out, err):
            self.started = True
            self._send_stdin()
            return sudo.leftovers()
        prompts = sudo.prompts()
        if prompts > sudo.sent:
            if sudo.password is None:
                self._abort()
                raise BecomeError(
                    f"sudo -u {sudo.user} on {self.conn.settings.name} asks for a password and "
                    "none is set (ansible_become_password)",
                    self.conn.settings.name,
                )
            if sudo.sent >= 1:
                self._abort()
                raise BecomeError(
                    f"sudo -u {sudo.user} on {self.conn.settings.name}: incorrect sudo password "
                    f"for {self.conn.settings.target.user} (ansible_become_password)",
                    self.conn.settings.name,
                )
            self.chan.sendall((sudo.password + "\n").encode())
            sudo.sent += 1
        return b"", b""

    def _become_failed(self) -> None:
        sudo = self.sudo
        assert sudo is not None
        _, err = sudo.leftovers()
        why = err.decode(errors="replace").strip().splitlines()
        raise BecomeError(
            f"sudo -u {sudo.user} on {self.conn.settings.name} failed"
            + (f": {why[-1]}" if why else f" (rc={self.chan.exit_status})"),
            self.conn.settings.name,
        )

    def _send_stdin(self) -> None:
        data = self.stdin

        def send() -> None:
            try:
                if data:
                    self.chan.sendall(data)
                self.chan.shutdown_write()
            except (OSError, EOFError, paramiko.SSHException):
                pass  # the command stopped reading, or the connection dropped: both show later

        if not data or len(data) <= 64 * 1024:
            send()
        else:  # the command may write a lot before it reads: don't block our reader
            threading.Thread(target=send, name="ssh-stdin", daemon=True).start()

    def _abort(self) -> None:
        send_signal(self.chan, "TERM")
        _close_quietly(self.chan)
        if self.started and self.task.killable:  # before that, sudo had not run anything
            self.conn._kill_task(self.task)
