"""The `ssh` connection: one paramiko transport per host, a channel per command.

How a host is reached is decided once, from its Ansible variables and ``~/.ssh/config``
(`settings.settings_from_vars`), then `SSHConnection` keeps one authenticated transport open
for every step that targets the host (directly, through jump hosts or a ProxyCommand; the
key exchange and host key check in `_handshake`), reconnects once when the server dropped
it, and runs at most `max_sessions` commands at once. The host key check and the
credentials are `auth`'s, a command's channel is driven by `channel` (sudo: `become`), and
`put`/`get` come from `sftp.SFTPFiles`.

Security defaults follow OpenSSH's ``StrictHostKeyChecking=yes``: the server's host key
must already be in known_hosts (``[127.0.0.1]:2201`` entries for non-22 ports). A key
that differs from the recorded one is a loud, separate error naming both fingerprints.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opsbook.plugin import Become
from opsbook_plugins.ssh._paramiko import paramiko
from opsbook_plugins.ssh.auth import (
    _authenticate,
    _prefer_aead_ciphers,
    _prefer_known_key_types,
    known_keys,
    verify_host_key,
)
from opsbook_plugins.ssh.become import _Sudo
from opsbook_plugins.ssh.channel import (
    _KILL_SCRIPT,
    _POLL,
    _TASK_NUMBERS,
    _TASK_PREFIX,
    _close_quietly,
    _Request,
    _Run,
    _Task,
)
from opsbook_plugins.ssh.errors import (
    CommandCancelled,
    CommandTimeout,
    SSHCommandResult,
    SSHConnectError,
    SSHError,
)
from opsbook_plugins.ssh.settings import Endpoint, SSHSettings
from opsbook_plugins.ssh.sftp import SFTPFiles

# -- connecting --------------------------------------------------------------------------


def _tcp_socket(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except TimeoutError:
        raise SSHConnectError(
            f"cannot connect to {endpoint.host}:{endpoint.port}: timed out after {timeout:g}s "
            "(host down or port filtered?)",
            endpoint.known_hosts_name,
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (is sshd running there?)" if isinstance(exc, ConnectionRefusedError) else ""
        raise SSHConnectError(
            f"cannot connect to {endpoint.host}:{endpoint.port}: {reason}{hint}",
            endpoint.known_hosts_name,
        ) from None
    # paramiko leaves Nagle on; every command is a few small request/reply packets, and
    # Nagle's wait for the delayed ACK costs ~40 ms each.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _handshake(sock: Any, endpoint: Endpoint, settings: SSHSettings) -> paramiko.Transport:
    """Key exchange and host key verification over an open socket (or channel)."""
    transport = paramiko.Transport(sock)
    transport.banner_timeout = settings.connect_timeout
    transport.auth_timeout = settings.connect_timeout
    _prefer_aead_ciphers(transport)
    known = known_keys(settings.known_hosts, endpoint.known_hosts_name)
    _prefer_known_key_types(transport, [k for k in known if not k.revoked])
    try:
        transport.start_client(timeout=settings.connect_timeout)
        if not transport.initial_kex_done:  # start_client returns quietly on its timeout
            raise TimeoutError("no key exchange")
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        raise SSHConnectError(
            f"SSH handshake with {endpoint.host}:{endpoint.port} failed: "
            f"{_handshake_failure(exc, settings.connect_timeout)}",
            endpoint.known_hosts_name,
        ) from None
    try:
        verify_host_key(transport.get_remote_server_key(), endpoint, settings, known)
    except SSHError:
        transport.close()
        raise
    return transport


def _handshake_failure(exc: BaseException, timeout: float) -> str:
    why = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return (
            f"no SSH banner and key exchange within {timeout:g}s "
            "(host hung or overloaded, or not an SSH server?)"
        )
    if "banner" in why:  # the server closed the connection; paramiko gives no reason
        return (
            "the server closed the connection before its SSH banner "
            "(sshd down behind a port forwarder, or MaxStartups reached?)"
        )
    return why



# -- the connection ----------------------------------------------------------------------


class SSHConnection(SFTPFiles):
    """One host over SSH: a single transport shared by every step (and thread)."""

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._transport: paramiko.Transport | None = None
        self._hops: list[Any] = []  # jump transports / proxy command, closed with us
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_transport: paramiko.Transport | None = None
        self._sftp_lock = threading.Lock()
        self.connects = 0  # how many transports were opened (1 + reconnects)
        self._slots = threading.BoundedSemaphore(settings.max_sessions)

    # transport lifecycle

    @property
    def transport(self) -> paramiko.Transport | None:
        """The current transport (None before the first command)."""
        return self._transport

    def _ensure(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._drop()
                self._transport = self._connect()
                self.connects += 1
            return self._transport

    def _connect(self) -> paramiko.Transport:
        s = self.settings
        sock: Any
        hops: list[Any] = []
        try:
            if s.proxy_command:
                sock = paramiko.ProxyCommand(_expand_proxy_command(s.proxy_command, s.target))
                hops.append(sock)
            elif s.jumps:
                sock = self._through_jumps(hops)
            else:
                sock = _tcp_socket(s.target, s.connect_timeout)
            transport = _handshake(sock, s.target, s)
            try:
                _authenticate(transport, s.target, s)
            except SSHError:
                transport.close()
                raise
        except BaseException:
            for hop in reversed(hops):
                hop.close()
            raise
        transport.set_keepalive(s.keepalive)
        self._hops = hops
        return transport

    def _through_jumps(self, hops: list[Any]) -> Any:
        s = self.settings
        chain = list(s.jumps) + [s.target]
        sock: Any = _tcp_socket(chain[0], s.connect_timeout)
        for hop, nxt in itertools.pairwise(chain):
            transport = _handshake(sock, hop, s)
            hops.append(transport)
            _authenticate(transport, hop, s)
            try:
                sock = transport.open_channel(
                    "direct-tcpip",
                    (nxt.host, nxt.port),
                    ("127.0.0.1", 0),
                    timeout=s.connect_timeout,
                )
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise SSHConnectError(
                    f"jump host {hop} cannot reach {nxt.host}:{nxt.port}: {exc}",
                    nxt.known_hosts_name,
                ) from None
        return sock

    def _drop(self) -> None:
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:
                    pass
                self._sftp = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            for hop in reversed(self._hops):
                try:
                    hop.close()
                except Exception:
                    pass
            self._hops = []

    def _with_reconnect(
        self, open_: Callable[[paramiko.Transport], Any], reconnect: bool = True,
        deadline: float | None = None,
    ) -> Any:
        """Open something on the transport; if the server dropped us, reconnect once.

        Only opening is retried, never a command that may have started, and never once the
        step's time is up (a frozen host must not cost a second connect timeout).
        """
        transport = self._ensure()
        try:
            return open_(transport)
        except paramiko.ChannelException as exc:  # the transport is fine; the server said no
            raise SSHConnectError(
                f"{self.settings.target} refused a new session: {exc} "
                "(MaxSessions reached? lower opsbook_ssh_max_sessions)",
                self.settings.name,
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                raise SSHConnectError(
                    f"{self.settings.target} did not open a session before the step's timeout: "
                    f"{exc or type(exc).__name__}", self.settings.name,
                ) from None
            if not reconnect:
                raise SSHConnectError(
                    f"{self.settings.target}: {exc or type(exc).__name__}", self.settings.name
                ) from None
            with self._lock:
                if self._transport is transport:
                    self._drop()
        transport = self._ensure()
        try:
            return open_(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHConnectError(
                f"{self.settings.target} dropped the connection: {exc or type(exc).__name__}",
                self.settings.name,
            ) from None

    # commands

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        cancel: threading.Event | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> SSHCommandResult:
        """Run a shell string, or an argv list (each word quoted, so no shell expansion).

        Raises CommandTimeout / CommandCancelled (with the partial output) after stopping
        the remote command, BecomeError when sudo refuses, SSHError when the host cannot
        be reached. A non-zero exit status is not an error: it is in the result.
        """
        if become is not None and become.user == self.settings.target.user:
            become = None  # already that user: no sudo needed (nor installed, maybe)
        return self._exec(_Request(command, stdin, timeout, become, cancel, on_output))

    def _exec(self, req: _Request) -> SSHCommandResult:
        script, is_argv = req.script()
        task = _Task(f"{_TASK_PREFIX}{next(_TASK_NUMBERS):x}", req.become, req.killable)
        sudo = None
        if req.become is not None:
            password = req.become.password
            sudo = _Sudo(
                req.become, password if password is not None else self.settings.become_password
            )
            # sudo resets the environment: tag the command inside too.
            script, is_argv = sudo.wrap(task.tag(script, is_argv)), True
        start = time.monotonic()
        deadline = None if req.timeout is None else start + req.timeout
        with self._session_slot(start, deadline, req.cancel):
            chan = self._open_channel(deadline, reconnect=req.killable)
            try:
                try:
                    chan.exec_command(task.tag(script, is_argv))
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise SSHConnectError(
                        f"{self.settings.target} failed to start a command: "
                        f"{exc or type(exc).__name__}",
                        self.settings.name,
                    ) from None
                run = _Run(self, chan, sudo, req.stdin, req.on_output, task)
                return run.wait(start, deadline, req.cancel)
            finally:
                _close_quietly(chan)

    def _open_channel(self, deadline: float | None, reconnect: bool) -> paramiko.Channel:
        timeout = self.settings.connect_timeout
        if deadline is not None:
            timeout = max(min(timeout, deadline - time.monotonic()), 0.5)
        return self._with_reconnect(lambda t: t.open_session(timeout=timeout), reconnect, deadline)

    @contextlib.contextmanager
    def _session_slot(
        self, start: float, deadline: float | None, cancel: threading.Event | None
    ) -> Iterator[None]:
        """At most `max_sessions` commands at once: sshd refuses more channels (MaxSessions)."""
        while not self._slots.acquire(blocking=False) and not self._slots.acquire(timeout=_POLL):
            if cancel is not None and cancel.is_set():
                raise CommandCancelled(
                    f"command cancelled on {self.settings.name} while waiting for a free session",
                    self.settings.name,
                    SSHCommandResult(rc=-1, stdout="", stderr=""),
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandTimeout(
                    f"command timed out after {deadline - start:g}s on {self.settings.name} "
                    f"waiting for a free session ({self.settings.max_sessions} in use)",
                    self.settings.name,
                    SSHCommandResult(rc=-1, stdout="", stderr=""),
                )
        try:
            yield
        finally:
            self._slots.release()

    def _kill_task(self, task: _Task) -> None:
        """Stop what a timed-out command left running (best effort, a few seconds at most).

        The `signal` request already stops it for ordinary logins, but OpenSSH cannot
        signal sessions of root logins (no privilege separation) nor sudo's processes.
        """
        transport = self._transport
        if transport is None or not transport.is_active():
            return
        kill = ["sh", "-c", _KILL_SCRIPT, "sh", task.id]
        try:
            self._exec(_Request(kill, None, 5, task.become, None, None, killable=False))
        except Exception:  # noqa: BLE001 - best effort: the timeout is reported either way
            pass


    def close(self) -> None:
        self._drop()

    def __repr__(self) -> str:
        return f"SSHConnection({self.settings.name} -> {self.settings.target})"


def _expand_proxy_command(command: str, target: Endpoint) -> str:
    table = {"%h": target.host, "%p": str(target.port), "%r": target.user, "%%": "%"}
    out = []
    i = 0
    while i < len(command):
        pair = command[i : i + 2]
        if pair in table:
            out.append(table[pair])
            i += 2
        else:
            out.append(command[i])
            i += 1
    return "".join(out)
