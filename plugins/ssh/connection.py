"""The `ssh` connection: one paramiko transport per host, a channel per command.

How a host is reached is decided once, from its Ansible variables and ``~/.ssh/config``
(`settings_from_vars`), then `SSHConnection` keeps one authenticated transport open for
every step that targets the host and reconnects once when the server dropped it.

Security defaults follow OpenSSH's ``StrictHostKeyChecking=yes``: the server's host key
must already be in known_hosts (``[127.0.0.1]:2201`` entries for non-22 ports). A key
that differs from the recorded one is a loud, separate error naming both fingerprints.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import hmac
import itertools
import logging
import os
import posixpath
import re
import secrets
import shlex
import socket
import stat
import sys
import tempfile
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.errors import OpsbookError
from opsbook.plugin import Become, CommandResult
from opsbook.capture import LINE_CAP, OUTPUT_CAP, Capture as _Capture, Lines as _Lines  # noqa: F401
from opsbook.transfer import Transfer, copy_stream

# paramiko's config module imports `invoke` (~50 ms, a third of paramiko's import, paid
# before every run's first connection) only to run `Match exec` lines of an ssh config.
# Import paramiko without it; `_parse_ssh_config` brings invoke in for a config that has
# such a line. (Nothing to do when something imported either of them already.)
_WITHOUT_INVOKE = "paramiko" not in sys.modules and "invoke" not in sys.modules
if _WITHOUT_INVOKE:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` fails at once
try:
    import paramiko
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message
finally:
    if _WITHOUT_INVOKE and sys.modules.get("invoke", "") is None:
        del sys.modules["invoke"]

# paramiko logs transport failures itself; without a handler, logging's last resort would
# print them to stderr, and the library never prints. Our errors carry the same facts.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

POLICIES = ("strict", "accept-new", "off")
_POLL = 0.25  # how often a waiting command looks at its cancel event
_PREFETCH = 64  # SFTP reads in flight while downloading (paramiko's default is all of the file)
_BATCH = 8 * 1024 * 1024  # bytes read through one remote file handle (see _get_in_batches)


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


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to authenticate to: the target or a jump host."""

    host: str
    port: int = 22
    user: str = ""
    key_files: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH records the host key under (`[host]:port` unless port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SSHSettings:
    """Everything needed to reach one inventory host; built once from its variables."""

    name: str
    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    proxy_command: str | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    host_key_policy: str = "strict"
    connect_timeout: float = 10.0
    keepalive: int = 15
    become_password: str | None = field(default=None, repr=False)
    look_for_keys: bool = True
    allow_agent: bool = True
    max_sessions: int = 8  # concurrent commands; OpenSSH's MaxSessions defaults to 10


# Short options of ssh(1) that take an argument we do not use (skipped with it).
_SSH_OPTS_WITH_ARG = set("bcDEeIiLlmOpQRSWwJFo")


def parse_ssh_args(text: str) -> dict[str, Any]:
    """Options from an ssh command line (`-o K=V`, `-J`, `-p`, `-l`, `-i`, `-F`), lowercase keys.

    `identityfile` is a list (ssh accepts several); every other value is the first one
    given, since ssh(1) keeps the first value it obtains.
    """
    return {k: list(v) if isinstance(v, list) else v for k, v in _parse_ssh_args(text).items()}


@functools.lru_cache(maxsize=256)  # a fleet shares its group's ssh args
def _parse_ssh_args(text: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    tokens = shlex.split(text or "")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok.startswith("-") or len(tok) < 2:
            continue
        flag, inline = tok[1], tok[2:]
        if flag not in _SSH_OPTS_WITH_ARG:
            continue  # a plain flag such as -q, -C, -T, -A
        value = inline
        if not value and i < len(tokens):
            value = tokens[i]
            i += 1
        if flag == "o":
            key, sep, val = value.partition("=")
            if not sep:
                key, _, val = value.partition(" ")
                if not val and i < len(tokens) and not tokens[i].startswith("-"):
                    val = tokens[i]
                    i += 1
            _set_opt(opts, key.strip().lower(), val.strip())
        else:
            name = {
                "J": "proxyjump",
                "p": "port",
                "l": "user",
                "i": "identityfile",
                "F": "configfile",
            }.get(flag)
            if name:
                _set_opt(opts, name, value)
    return opts


def _set_opt(opts: dict[str, Any], key: str, value: str) -> None:
    if key == "identityfile":
        opts.setdefault(key, []).append(value)
    else:
        opts.setdefault(key, value)


_PARSED: dict[tuple[str, str, Any], tuple[tuple[int, int, int], Any]] = {}
_PARSED_LOCK = threading.Lock()


def _parsed_once(kind: str, path: str | Path, parse: Callable[[], Any], extra: Any = None) -> Any:
    """`parse()` of a file, done again only when the file changes on disk (inode, mtime,
    size): a fleet shares its key, known_hosts and ssh config files. Raises OSError when the
    file cannot be looked at. Parsing happens under one lock, so a fleet's first connections
    parse each file once, not once per thread."""
    st = os.stat(path)
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = (kind, str(path), extra)
    with _PARSED_LOCK:
        cached = _PARSED.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, parse())
            _PARSED[key] = cached
        return cached[1]


_NO_SSH_CONFIG = paramiko.SSHConfig()  # shared: lookups do not change a config


def load_ssh_config(path: str | Path | None) -> paramiko.SSHConfig:
    """~/.ssh/config (or `path`), or an empty config when there is none; parsed once per
    version of the file (every host of a fleet looks itself up in the same one)."""
    found = _expanded(str(path or "~/.ssh/config"))
    try:
        return _parsed_once("ssh_config", found, lambda: _parse_ssh_config(found))
    except OSError:  # none (or a folder, or unreadable): as ssh(1), go on without
        return _NO_SSH_CONFIG


def _expanded(path: str) -> Path:
    """`~` expanded (key files, known_hosts and configs are the same for most hosts)."""
    return _expand_for(path, os.environ.get("HOME"))


@functools.lru_cache(maxsize=1024)
def _expand_for(path: str, home: str | None) -> Path:
    return Path(path).expanduser()


@functools.lru_cache(maxsize=1)
def _local_user() -> str:
    return getpass.getuser()


_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def _parse_ssh_config(path: Path) -> paramiko.SSHConfig:
    text = path.read_text()
    if _MATCH_EXEC.search(text) and paramiko.config.invoke is None:
        import invoke  # `Match exec` runs its command through invoke (see the paramiko import)

        paramiko.config.invoke = invoke
    return paramiko.SSHConfig.from_text(text)


def _first(*values: Any) -> Any:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "yes", "true", "on", "y")


def _policy(vars_: Mapping[str, Any], cli: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    explicit = vars_.get("opsbook_host_key_policy")
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in POLICIES:
            raise SSHError(
                f"opsbook_host_key_policy must be one of {', '.join(POLICIES)}, not {explicit!r}"
            )
        return value
    if "ansible_host_key_checking" in vars_ and not _bool(vars_["ansible_host_key_checking"]):
        return "off"
    openssh = str(_first(cli.get("stricthostkeychecking"), cfg.get("stricthostkeychecking")) or "")
    return {"no": "off", "off": "off", "accept-new": "accept-new"}.get(openssh.lower(), "strict")


def settings_from_vars(
    name: str, vars_: Mapping[str, Any], ssh_config: paramiko.SSHConfig | None = None
) -> SSHSettings:
    """Resolve how to reach a host: Ansible variables win over ssh args, then ~/.ssh/config."""
    cli = parse_ssh_args(
        " ".join(
            str(vars_.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
        )
    )
    if ssh_config is None:
        ssh_config = load_ssh_config(_first(vars_.get("opsbook_ssh_config"), cli.get("configfile")))
    alias = str(_first(vars_.get("ansible_host"), vars_.get("ansible_ssh_host"), name))
    cfg = ssh_config.lookup(alias) if ssh_config is not _NO_SSH_CONFIG else {}
    user = str(
        _first(
            vars_.get("ansible_user"),
            vars_.get("ansible_ssh_user"),
            cli.get("user"),
            cfg.get("user"),
        )
        or _local_user()
    )
    target = Endpoint(
        host=str(_first(cli.get("hostname"), cfg.get("hostname"), alias)),
        port=int(
            _first(
                vars_.get("ansible_port"),
                vars_.get("ansible_ssh_port"),
                cli.get("port"),
                cfg.get("port"),
                22,
            )
        ),
        user=user,
        key_files=_key_files(vars_, cli, cfg),
        password=_first(
            vars_.get("ansible_password"),
            vars_.get("ansible_ssh_pass"),
            vars_.get("ansible_ssh_password"),
        ),
    )
    jump_spec = _first(cli.get("proxyjump"), cfg.get("proxyjump"))
    proxy_command = _first(cli.get("proxycommand"), cfg.get("proxycommand"))
    identities_only = _bool(_first(cli.get("identitiesonly"), cfg.get("identitiesonly"), "no"))
    known_hosts = _first(
        vars_.get("opsbook_known_hosts"),
        cli.get("userknownhostsfile"),
        (cfg.get("userknownhostsfile") or "").split(" ")[0],
        "~/.ssh/known_hosts",
    )
    return SSHSettings(
        name=name,
        target=target,
        jumps=parse_jumps(jump_spec, ssh_config, target) if jump_spec else (),
        proxy_command=None if str(proxy_command).lower() in ("none", "") else proxy_command,
        known_hosts=_expanded(str(known_hosts)),
        host_key_policy=_policy(vars_, cli, cfg),
        connect_timeout=float(
            _first(
                vars_.get("ansible_ssh_timeout"),
                vars_.get("ansible_timeout"),
                cli.get("connecttimeout"),
                cfg.get("connecttimeout"),
                10,
            )
        ),
        keepalive=int(_first(cli.get("serveraliveinterval"), cfg.get("serveraliveinterval"), 15)),
        become_password=_first(
            vars_.get("ansible_become_password"),
            vars_.get("ansible_become_pass"),
            vars_.get("ansible_sudo_pass"),
        ),
        # ~/.ssh/id_* are tried only when no key file is configured, as ssh(1) does;
        # IdentitiesOnly=yes keeps the agent's keys out too.
        look_for_keys=_bool(vars_.get("opsbook_ssh_look_for_keys", True)),
        allow_agent=_bool(vars_.get("opsbook_ssh_allow_agent", not identities_only)),
        max_sessions=max(1, int(vars_.get("opsbook_ssh_max_sessions", 8))),
    )


def _key_files(
    vars_: Mapping[str, Any], cli: Mapping[str, Any], cfg: Mapping[str, Any]
) -> tuple[str, ...]:
    files: list[str] = []
    explicit = _first(
        vars_.get("ansible_ssh_private_key_file"), vars_.get("ansible_private_key_file")
    )
    if explicit:
        files.append(str(explicit))
    files += [str(f) for f in cli.get("identityfile", [])]
    files += [str(f) for f in cfg.get("identityfile", [])]
    seen: list[str] = []
    for f in files:
        path = str(_expanded(f))
        if path not in seen:
            seen.append(path)
    return tuple(seen)


def parse_jumps(
    spec: str, ssh_config: paramiko.SSHConfig, target: Endpoint
) -> tuple[Endpoint, ...]:
    """ProxyJump `[user@]host[:port][,...]`, each hop resolved through ~/.ssh/config.

    A hop without a user in the spec or the config logs in as the target's user, and
    may use the target's key files (keys never leave the controller; passwords do, so
    the target's password is not offered to jump hosts).
    """
    if spec.strip().lower() == "none":
        return ()
    hops = []
    for raw in spec.split(","):
        raw = raw.strip().removeprefix("ssh://")
        user, _, hostport = raw.rpartition("@")
        host, port = _split_host_port(hostport)
        cfg = ssh_config.lookup(host)
        hops.append(
            Endpoint(
                host=str(cfg.get("hostname", host)),
                port=int(_first(port, cfg.get("port"), 22)),
                user=str(_first(user, cfg.get("user"), target.user)),
                key_files=tuple(str(Path(f).expanduser()) for f in cfg.get("identityfile", []))
                + target.key_files,
            )
        )
    return tuple(hops)


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None


# -- host keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownKey:
    """A host key line of a known_hosts file that matches a host name."""

    key: paramiko.PKey
    path: Path
    line: int
    revoked: bool = False


def _host_matches(name: str, patterns: str) -> bool:
    matched = False
    for pattern in patterns.split(","):
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("|1|"):
            hit = _hashed_matches(name, pattern)
        else:
            hit = _glob(pattern).fullmatch(name.lower()) is not None
        if hit and negate:
            return False
        matched = matched or hit
    return matched


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    """known_hosts wildcards: only `*` and `?` are special (`[host]:port` is literal)."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    )


def _hashed_matches(name: str, entry: str) -> bool:
    try:
        _, _, salt, digest = entry.split("|", 3)
        mac = hmac.new(b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, b64decode(digest))
    except (ValueError, TypeError):
        return False


@dataclass
class _KnownLine:
    line: int
    patterns: str
    key_type: str
    key_data: str
    revoked: bool
    key: paramiko.PKey | None = None
    damaged: bool = False

    def decoded(self) -> paramiko.PKey | None:
        if self.key is None and not self.damaged:
            try:
                self.key = paramiko.PKey.from_type_string(self.key_type, b64decode(self.key_data))
            except Exception:  # an unknown key type or a damaged line: OpenSSH skips it too
                self.damaged = True
        return self.key


class _KnownHostsFile:
    """One known_hosts file, parsed once: plain host names indexed, the other entries
    (hashed names, wildcards, negations) scanned. A fleet of N hosts then costs N lookups,
    not N reads and N x lines pattern matches."""

    def __init__(self, text: str) -> None:
        self.by_name: dict[str, list[_KnownLine]] = {}
        self.scanned: list[_KnownLine] = []
        for number, raw in enumerate(text.splitlines(), 1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            revoked = fields[0] == "@revoked"
            if fields[0].startswith("@"):
                if not revoked:
                    continue  # @cert-authority: host certificates are not supported
                fields = fields[1:]
            if len(fields) < 3:
                continue
            entry = _KnownLine(number, fields[0], fields[1], fields[2], revoked)
            names = fields[0].split(",")
            if any(n.startswith(("!", "|")) or "*" in n or "?" in n for n in names):
                self.scanned.append(entry)
            else:
                for n in dict.fromkeys(n.lower() for n in names):
                    self.by_name.setdefault(n, []).append(entry)

    def lookup(self, name: str) -> list[_KnownLine]:
        hits = list(self.by_name.get(name.lower(), ()))
        hits += [e for e in self.scanned if _host_matches(name, e.patterns)]
        return sorted(hits, key=lambda e: e.line) if len(hits) > 1 else hits


def known_keys(path: Path, name: str) -> list[KnownKey]:
    """Every key recorded for `name` in a known_hosts file (hashed names included)."""
    try:
        parsed: _KnownHostsFile = _parsed_once(
            "known_hosts", path, lambda: _KnownHostsFile(path.read_text(errors="replace"))
        )
    except FileNotFoundError:
        return []
    found = []
    for entry in parsed.lookup(name):
        key = entry.decoded()
        if key is not None:
            found.append(KnownKey(key, path, entry.line, entry.revoked))
    return found


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


_AEAD = ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com")


def _prefer_aead_ciphers(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first (OpenSSH servers accept it; the order only says what we prefer).
    It is authenticated encryption done inside OpenSSL, where paramiko's default
    aes-ctr + HMAC checks every packet's MAC with a byte-by-byte Python loop; on a fleet
    that check was the largest single cost of running a command."""
    options = transport.get_security_options()
    available = list(options.ciphers)
    first = [c for c in _AEAD if c in available]
    options.ciphers = first + [c for c in available if c not in first]


def _prefer_known_key_types(transport: paramiko.Transport, known: list[KnownKey]) -> None:
    """Ask the server for a key type we have on record, so a match is possible (like ssh)."""
    wanted: list[str] = []
    for k in known:
        name = k.key.get_name()
        wanted += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if name == "ssh-rsa" else [name]
    options = transport.get_security_options()
    available = list(options.key_types)
    first = [t for t in dict.fromkeys(wanted) if t in available]
    if first:
        options.key_types = first + [t for t in available if t not in first]


def verify_host_key(
    server_key: paramiko.PKey, endpoint: Endpoint, settings: SSHSettings, known: list[KnownKey]
) -> None:
    """Raise unless the server's key is on record (or the policy accepts it)."""
    if settings.host_key_policy == "off":
        return
    name = endpoint.known_hosts_name
    path = settings.known_hosts
    if any(k.revoked and k.key == server_key for k in known):
        raise HostKeyChangedError(
            f"host key for {name} ({_describe(server_key)}) is marked @revoked in {path}; "
            "refusing to connect",
            name,
        )
    good = [k for k in known if not k.revoked]
    if any(k.key == server_key for k in good):
        return
    if good:
        recorded = "; ".join(f"{_describe(k.key)} ({k.path}:{k.line})" for k in good)
        raise HostKeyChangedError(
            f"HOST KEY FOR {name} HAS CHANGED - possible man-in-the-middle attack! "
            f"known_hosts has {recorded}, but the server presented {_describe(server_key)}. "
            f"If the host was re-keyed on purpose, remove the old entry with "
            f"`ssh-keygen -R '{name}' -f {path}` and add the new key.",
            name,
        )
    if settings.host_key_policy == "accept-new":
        _append_known_host(path, name, server_key)
        return
    keyscan = f"ssh-keyscan{'' if endpoint.port == 22 else f' -p {endpoint.port}'} {endpoint.host}"
    raise HostKeyUnknownError(
        f"host key for {name} is not in known_hosts ({path}); the server offered "
        f"{_describe(server_key)}. Add it with `{keyscan} >> {path}` (after checking the "
        "fingerprint) or set opsbook_host_key_policy=accept-new",
        name,
    )


_KNOWN_HOSTS_LOCK = threading.Lock()  # serialises appends from connections in this process


def _append_known_host(path: Path, name: str, key: paramiko.PKey) -> None:
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _KNOWN_HOSTS_LOCK:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line)


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


def _load_key(path: str, passphrase: str | None) -> tuple[paramiko.PKey | None, str]:
    """A private key, unencrypted or opened with the passphrase (Ansible: ansible_password).
    Loaded once per version of the file: a fleet shares one key file, parsing it is not free."""
    try:
        result: tuple[paramiko.PKey | None, str] = _parsed_once(
            "key", path, lambda: _read_key(path, passphrase), passphrase
        )
    except OSError:
        return _read_key(path, passphrase)  # it says what is wrong with the file
    return result


def _read_key(path: str, passphrase: str | None) -> tuple[paramiko.PKey | None, str]:
    try:
        try:
            return paramiko.PKey.from_path(path), ""
        except (paramiko.PasswordRequiredException, TypeError):  # encrypted
            if passphrase is None:
                return None, f"key {path}: encrypted and no passphrase (ansible_password) given"
            return paramiko.PKey.from_path(path, passphrase.encode()), ""  # 3.x: passphrase=
    except FileNotFoundError:
        return None, f"key {path}: file not found"
    except PermissionError:
        return None, f"key {path}: not readable"
    except (paramiko.SSHException, ValueError, TypeError) as exc:
        return None, f"key {path}: cannot load ({exc})"


def _candidate_keys(
    endpoint: Endpoint, settings: SSHSettings
) -> tuple[list[tuple[str, paramiko.PKey]], list[str]]:
    keys: list[tuple[str, paramiko.PKey]] = []
    notes: list[str] = []
    files = list(endpoint.key_files)
    if not files and settings.look_for_keys:
        files = [
            str(p)
            for n in ("id_ed25519", "id_ecdsa", "id_rsa")
            if (p := Path(f"~/.ssh/{n}").expanduser()).is_file()
        ]
    for path in files:
        key, note = _load_key(path, endpoint.password)
        if key is not None:
            keys.append((f"key {path}", key))
        else:
            notes.append(note)
    if settings.allow_agent and os.environ.get("SSH_AUTH_SOCK"):
        try:
            keys += [(f"agent key {k.fingerprint}", k) for k in paramiko.Agent().get_keys()]
        except paramiko.SSHException:
            notes.append("ssh-agent: not reachable")
    return keys, notes


def _authenticate(transport: paramiko.Transport, endpoint: Endpoint, settings: SSHSettings) -> None:
    keys, tried = _candidate_keys(endpoint, settings)
    allowed: list[str] | None = None
    for label, key in keys:
        try:
            transport.auth_publickey(endpoint.user, key)
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
            tried.append(f"{label}: publickey not allowed")
            break
        except paramiko.AuthenticationException:
            tried.append(f"{label}: rejected")
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHConnectError(
                f"connection to {endpoint} lost during authentication: {exc}",
                endpoint.known_hosts_name,
            ) from None
        if transport.is_authenticated():
            return
    if endpoint.password is not None:
        if _password_auth(transport, endpoint):
            return
        tried.append("password: rejected")
    else:
        tried.append("password: not set (ansible_password)")
    methods = f"; the server accepts: {', '.join(allowed)}" if allowed else ""
    raise SSHAuthError(
        f"authentication failed for {endpoint}: {'; '.join(tried) or 'no credentials'}{methods}",
        endpoint.known_hosts_name,
    )


def _password_auth(transport: paramiko.Transport, endpoint: Endpoint) -> bool:
    password = endpoint.password or ""
    try:
        transport.auth_password(endpoint.user, password)
    except paramiko.BadAuthenticationType:
        try:  # many servers only offer keyboard-interactive for passwords
            transport.auth_interactive(
                endpoint.user, lambda _t, _i, prompts: [password] * len(prompts)
            )
        except paramiko.AuthenticationException:
            return False
    except paramiko.AuthenticationException:
        return False
    return transport.is_authenticated()


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


# -- the connection ----------------------------------------------------------------------


class SSHConnection:
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

    # files

    def _sftp_client(self) -> paramiko.SFTPClient:
        def open_(transport: paramiko.Transport) -> paramiko.SFTPClient:
            if self._sftp is None or self._sftp_transport is not transport:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
                self._sftp_transport = transport
            return self._sftp

        return self._with_reconnect(open_)

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        """Write a remote file atomically: a temp file beside it, then rename over it.

        An existing file keeps its permissions (and owner, where we may set it) unless
        `mode` is given.
        """
        folder, base = posixpath.split(remote_path)
        tmp = posixpath.join(folder, f".{base}.opsbook-{secrets.token_hex(4)}.tmp")
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                old = sftp.stat(remote_path)
            except FileNotFoundError:
                old = None
            try:
                with sftp.open(tmp, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(data)
                keep = stat.S_IMODE(old.st_mode) if old is not None and old.st_mode else None
                if mode is not None or keep is not None:
                    sftp.chmod(tmp, mode if mode is not None else keep)  # type: ignore[arg-type]
                if old is not None and old.st_uid is not None:
                    try:
                        sftp.chown(tmp, old.st_uid, old.st_gid)  # type: ignore[arg-type]
                    except OSError:
                        pass  # not ours to give away; the file stays ours
                sftp.posix_rename(tmp, remote_path)
            except BaseException as exc:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001 - the temp file may never have been created
                    pass
                if isinstance(exc, OSError) and exc.errno is not None:  # name dest, not the temp
                    raise OSError(exc.errno, exc.strerror, remote_path) from None
                raise

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Download a remote file; returns its size. With a `transfer`, the copy stops at its
        size limit, deadline or cancellation (a stalled read too: the SFTP channel is closed)
        and leaves no partial file."""
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh, exclusive temp file: never write through a symlink planted beside the target.
        fd, temp = tempfile.mkstemp(prefix=f".{local_path.name}.", suffix=".part", dir=local_path.parent)
        partial = Path(temp)
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                with os.fdopen(fd, "wb") as handle:
                    if transfer is None:
                        size = sftp.getfo(remote_path, handle, prefetch=True,
                                          max_concurrent_prefetch_requests=_PREFETCH)
                    else:
                        size = self._get_bounded(sftp, remote_path, handle, transfer)
                os.replace(partial, local_path)
            except BaseException:
                if transfer is not None:  # answers to a cut copy may still arrive: a fresh client next
                    self._forget_sftp(sftp)
                raise
            finally:
                partial.unlink(missing_ok=True)
        return int(size)

    def _get_bounded(self, sftp: paramiko.SFTPClient, remote_path: str, handle: Any,
                     transfer: Transfer) -> int:
        info = sftp.stat(remote_path)
        regular = info.st_mode is not None and stat.S_ISREG(info.st_mode)
        transfer.check(info.st_size if regular else None)  # too large: refused before a byte moves
        done = threading.Event()
        channel = sftp.get_channel()

        def cut_when_stopped() -> None:  # a read waiting on a stalled host is cut too
            while not done.wait(_POLL):
                if (transfer.cancelled is not None and transfer.cancelled.is_set()) or transfer.time_left() == 0:
                    if channel is not None:
                        channel.close()
                    return

        watcher = threading.Thread(target=cut_when_stopped, name="opsbook-fetch-watch", daemon=True)
        watcher.start()
        try:
            if regular:
                self._get_in_batches(sftp, remote_path, info.st_size or 0, handle, transfer)
            with sftp.open(remote_path, "rb") as remote:  # a device, or what a file grew by
                remote.seek(transfer.size)
                return copy_stream(remote, handle, transfer)
        except (OSError, EOFError, paramiko.SSHException):
            transfer.check()  # the channel was closed by the watcher: say why
            raise
        finally:
            done.set()
            watcher.join()

    @staticmethod
    def _get_in_batches(sftp: paramiko.SFTPClient, remote_path: str, size: int, handle: Any,
                        transfer: Transfer) -> None:
        """Read `size` bytes with many requests in flight, one handle per batch: paramiko's
        prefetch of a whole file can race into buffering all of it (its reader falls back to
        plain reads while the prefetch thread goes on), so at most a batch is ever held."""
        step = paramiko.SFTPFile.MAX_REQUEST_SIZE
        while transfer.size < size:
            start = transfer.size
            chunks = [(o, min(step, size - o)) for o in range(start, min(size, start + _BATCH), step)]
            with sftp.open(remote_path, "rb") as remote:
                for data in remote.readv(chunks, _PREFETCH):
                    if not data:
                        return  # the file shrank
                    transfer.add(data)
                    handle.write(data)

    def _forget_sftp(self, sftp: paramiko.SFTPClient) -> None:
        with self._lock:
            if self._sftp is sftp:
                self._sftp = None
        try:
            sftp.close()
        except Exception:  # noqa: BLE001 - its channel may be closed already
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
