"""Host keys and authentication. known_hosts files (hashed names, wildcards, `@revoked`) and
`verify_host_key` with its messages: OpenSSH's ``StrictHostKeyChecking=yes`` by default (an
unknown key is refused with the `ssh-keyscan` line to add it; a changed key is a loud,
separate error naming both fingerprints), `accept-new` appending to known_hosts. Then the
credentials: key files (loaded once, encrypted ones opened with the passphrase), the agent,
the password, and one message listing every credential tried."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import threading
from base64 import b64decode
from dataclasses import dataclass
from pathlib import Path

from opsbook_plugins.ssh._paramiko import paramiko
from opsbook_plugins.ssh.errors import (
    HostKeyChangedError,
    HostKeyUnknownError,
    SSHAuthError,
    SSHConnectError,
)
from opsbook_plugins.ssh.settings import Endpoint, SSHSettings, _parsed_once

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
