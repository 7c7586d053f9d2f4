"""Which Docker daemon a host means, and one API client per daemon.

Daemon selection, first match wins (the same for actions, the connection and the inventory):

1. host var ``docker_host`` (``unix:///...``, ``tcp://host:2376``, ``ssh://user@host``);
2. host var ``ansible_docker_host`` (Ansible's docker connection variable);
3. ``-H``/``--host`` inside host var ``ansible_docker_extra_args``;
4. the ``DOCKER_HOST`` environment variable;
5. the local socket ``unix:///var/run/docker.sock``.

TLS comes from host vars ``docker_tls_verify`` / ``docker_cert_path`` (or ``--tlsverify``,
``--tlscacert``, ``--tlscert``, ``--tlskey`` in ``ansible_docker_extra_args``), else from
``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``. One API client per daemon is kept (``clients``)
and reused by every step and host that talks to that daemon. This module also owns the
plugin's errors and the words for a daemon that is missing or hung; it registers nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.errors import OpsbookError
from opsbook.model import parse_duration
from opsbook.plugin import truthy

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60.0  # seconds, when neither the step nor the action says
_POLL = 0.25  # seconds between state polls (wait_healthy)


# --------------------------------------------------------------------------- errors


class DockerError(OpsbookError):
    """Something about Docker went wrong; the message is written for the person on call."""


class DaemonUnreachable(DockerError, ConnectionError):
    """The Docker daemon does not answer at the address we were given."""


class ContainerNotFound(DockerError):
    """No container of that name on the daemon."""


# --------------------------------------------------------------------------- durations


# Durations: the engine's parser and argument type (30, "30s", "1m30s", "500ms").



def _fmt_s(seconds: float) -> str:
    return f"{seconds:g} s"


# --------------------------------------------------------------------------- daemons


@dataclass(frozen=True)
class Daemon:
    """How to reach one Docker daemon; the key of the client pool."""

    base_url: str
    source: str  # why this address, for error messages
    tls_verify: bool = False
    cert_path: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT  # seconds one API request may take (host var docker_timeout)

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_verify or self.cert_path or self.client_cert or self.ca_cert)


def _extra_args(host_vars: Mapping[str, Any]) -> dict[str, str | bool]:
    """The daemon options found in `ansible_docker_extra_args` (docker CLI flags)."""
    raw = host_vars.get("ansible_docker_extra_args") or ""
    words = shlex.split(raw) if isinstance(raw, str) else [str(w) for w in raw]
    found: dict[str, str | bool] = {}
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, inline = word.partition("=")
        if flag in ("-H", "--host", "--tlscacert", "--tlscert", "--tlskey"):
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else "")
            found["host" if flag in ("-H", "--host") else flag.lstrip("-")] = value
            i += 1 if eq else 2
            continue
        if flag in ("--tlsverify", "--tls"):
            found["tlsverify"] = inline.lower() not in ("false", "0") if eq else True
        i += 1
    return found



def daemon_for(host_vars: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Daemon:
    """Where the Docker daemon for a host is, from its vars, then the environment."""
    env = os.environ if env is None else env
    extra = _extra_args(host_vars)
    if host_vars.get("docker_host"):
        url, source = str(host_vars["docker_host"]), "host var docker_host"
    elif host_vars.get("ansible_docker_host"):
        url, source = str(host_vars["ansible_docker_host"]), "host var ansible_docker_host"
    elif extra.get("host"):
        url, source = str(extra["host"]), "-H in ansible_docker_extra_args"
    elif env.get("DOCKER_HOST"):
        url, source = env["DOCKER_HOST"], f"DOCKER_HOST={env['DOCKER_HOST']}"
    else:
        url, source = DEFAULT_SOCKET, "the default socket; DOCKER_HOST is not set"
    if source.startswith(("host var", "-H")):
        source += f"; DOCKER_HOST={env.get('DOCKER_HOST') or '(not set)'}"
    verify = host_vars.get("docker_tls_verify", extra.get("tlsverify"))
    if verify is None:
        env_verify = env.get("DOCKER_TLS_VERIFY")
        verify = env_verify is not None and env_verify != ""
    cert_path = host_vars.get("docker_cert_path") or env.get("DOCKER_CERT_PATH") or None
    return Daemon(
        base_url=_normalise_url(url),
        source=source,
        tls_verify=truthy(verify),
        cert_path=str(cert_path) if cert_path else None,
        ca_cert=_opt_str(extra.get("tlscacert")),
        client_cert=_opt_str(extra.get("tlscert")),
        client_key=_opt_str(extra.get("tlskey")),
        timeout=float(parse_duration(host_vars.get("docker_timeout") or DEFAULT_TIMEOUT)),
    )


def _opt_str(value: Any) -> str | None:
    return str(value) if value else None


def _normalise_url(url: str) -> str:
    url = url.strip()
    if url.startswith("/"):  # a bare socket path
        return "unix://" + url
    return url


def _tls_config(daemon: Daemon) -> Any:
    from docker.tls import TLSConfig

    cert_dir = daemon.cert_path or os.path.join(os.path.expanduser("~"), ".docker")
    ca = daemon.ca_cert or os.path.join(cert_dir, "ca.pem")
    cert = daemon.client_cert or os.path.join(cert_dir, "cert.pem")
    key = daemon.client_key or os.path.join(cert_dir, "key.pem")
    client_cert = (cert, key) if os.path.exists(cert) and os.path.exists(key) else None
    return TLSConfig(
        client_cert=client_cert,
        ca_cert=ca if daemon.tls_verify and os.path.exists(ca) else None,
        verify=daemon.tls_verify,
    )


def _unreachable_message(daemon: Daemon, exc: BaseException) -> str:
    reason = _root_reason(exc)
    path = daemon.base_url[len("unix://") :] if daemon.base_url.startswith("unix://") else ""
    if path and "Permission denied" in reason:
        return (
            f"permission denied on the Docker socket {path}: is your user in the docker group? "
            f"({daemon.source})"
        )
    return (
        f"cannot reach the Docker daemon at {daemon.base_url}: is dockerd running? "
        f"({daemon.source}; {reason})"
    )


def _hung_message(daemon: Daemon) -> str:
    return (
        f"the Docker daemon at {daemon.base_url} accepted the connection but did not answer "
        f"within {daemon.timeout:g} s: is it overloaded or hung? ({daemon.source})"
    )


def _caused_by_read_timeout(exc: BaseException) -> bool:
    import requests.exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.ReadTimeout) or "Read timed out" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _root_reason(exc: BaseException) -> str:
    """The innermost cause of a chained requests/urllib3 error, in one short phrase."""
    seen: set[int] = set()
    current: BaseException | None = exc
    last = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    text = str(last) or type(last).__name__
    for pattern in (r"\[Errno \d+\] [^')\"]+", r"Connection refused", r"timed out"):
        match = re.search(pattern, str(exc)) or re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return text[:200]


class ClientPool:
    """One docker API client per daemon, created on first use and shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Daemon, Any] = {}

    def get(self, daemon: Daemon) -> Any:
        with self._lock:
            client = self._clients.get(daemon)
            if client is None:
                client = self._open(daemon)
                self._clients[daemon] = client
            return client

    def forget(self, daemon: Daemon) -> None:
        """Drop a client (after the daemon went away) so the next use reconnects."""
        with self._lock:
            client = self._clients.pop(daemon, None)
        if client is not None:
            client.close()

    def close_all(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    @staticmethod
    def _open(daemon: Daemon) -> Any:
        import docker

        kwargs: dict[str, Any] = {"base_url": daemon.base_url, "timeout": daemon.timeout}
        if daemon.uses_tls:
            kwargs["tls"] = _tls_config(daemon)
        try:
            # version="auto" asks the daemon at once: an unreachable daemon fails here.
            return docker.DockerClient(version="auto", **kwargs)
        except Exception as exc:  # docker.errors.DockerException wraps requests' errors
            if _caused_by_read_timeout(exc):
                raise DockerError(_hung_message(daemon)) from exc
            raise DaemonUnreachable(_unreachable_message(daemon, exc)) from exc


# The engine has no per-run resource hook for plugins yet; the pool lives with the plugin
# module so that every step and host talking to one daemon shares one client.
clients = ClientPool()
