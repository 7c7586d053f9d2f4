"""Which container an action works on, and the guard every action runs inside.

The container is the action's ``name:``/``container:`` argument, else host var
``docker_container`` (or ``container``), else the host's ``ansible_host`` when it is a
docker-connection host, else the inventory name. `target_for` pairs it with its daemon and
pooled client; `_api_call` turns a vanished or hung daemon into a readable DockerError;
`_guarded` turns DockerError and API errors into failed Results. It registers nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.plugin import ActionContext, HostInfo, Result
from opsbook_plugins.docker.daemons import (
    DEFAULT_TIMEOUT,
    ContainerNotFound,
    Daemon,
    DaemonUnreachable,
    DockerError,
    _hung_message,
    _unreachable_message,
    clients,
    daemon_for,
)


def container_name_for(host: HostInfo, explicit: str | None = None) -> str:
    """The container an action means: the argument, docker_container/container, ansible_host, name."""
    if explicit:
        return explicit
    for var in ("docker_container", "container"):
        if host.vars.get(var):
            return str(host.vars[var])
    if host.connection_kind == "docker":
        return host.address
    return host.name


def _api_call(daemon: Daemon, fn: Callable[[], Any]) -> Any:
    """Run a docker SDK call; a vanished or hung daemon becomes a DockerError people can read."""
    import docker.errors
    import requests.exceptions

    try:
        return fn()
    except requests.exceptions.ReadTimeout as exc:
        raise DockerError(_hung_message(daemon)) from exc
    except requests.exceptions.ConnectionError as exc:
        clients.forget(daemon)
        raise DaemonUnreachable(_unreachable_message(daemon, exc)) from exc
    except docker.errors.APIError:
        raise
    except docker.errors.DockerException as exc:
        raise DockerError(f"Docker at {daemon.base_url}: {exc}") from exc


def _container_names(client: Any, daemon: Daemon) -> list[str]:
    listed = _api_call(daemon, lambda: client.api.containers(all=True))
    names = [n.lstrip("/") for c in listed for n in c.get("Names", [])[:1]]
    return sorted(names)


def missing_container_message(client: Any, daemon: Daemon, name: str) -> str:
    names = _container_names(client, daemon)
    text = f"no container named {name} on {daemon.base_url}"
    if not names:
        return text + "; there are no containers there at all"
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    text += f"; containers there: {shown}"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        text += f' (did you mean "{close[0]}"?)'
    return text


def get_container(client: Any, daemon: Daemon, name: str) -> Any:
    """The container object, or ContainerNotFound with the names that do exist."""
    import docker.errors

    try:
        return _api_call(daemon, lambda: client.containers.get(name))
    except docker.errors.NotFound:
        raise ContainerNotFound(missing_container_message(client, daemon, name)) from None


def _status(attrs: Mapping[str, Any]) -> str:
    """docker ps's word for a container's state: running, paused, exited, created, ..."""
    state = attrs.get("State") or {}
    return str(state.get("Status") or ("running" if state.get("Running") else "exited"))


def _health(attrs: Mapping[str, Any]) -> str | None:
    health = (attrs.get("State") or {}).get("Health")
    return str(health.get("Status")) if health else None


@dataclass
class Target:
    """The daemon, client and container name one action works on."""

    daemon: Daemon
    client: Any
    name: str

    def container(self) -> Any:
        return get_container(self.client, self.daemon, self.name)

    def where(self) -> str:
        return f"{self.name} on {self.daemon.base_url}"


def target_for(ctx: ActionContext, name: str | None) -> Target:
    daemon = daemon_for(ctx.host.vars)
    return Target(daemon, clients.get(daemon), container_name_for(ctx.host, name))


def _guarded(fn: Callable[[ActionContext, Any], Result]) -> Callable[[ActionContext, Any], Result]:
    """Turn DockerError and docker API errors into failed Results (failures are values)."""
    import functools

    @functools.wraps(fn)
    def wrapper(ctx: ActionContext, args: Any) -> Result:
        import docker.errors

        try:
            return fn(ctx, args)
        except DockerError as exc:
            return Result.failed(str(exc))
        except docker.errors.APIError as exc:
            return Result.failed(f"the Docker daemon refused: {_api_error_text(exc)}")

    return wrapper


def _api_error_text(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = str(explanation or exc)
    return f"{text} (HTTP {status})" if status else text


def _time_left(ctx: ActionContext, own: float | None, default: float = DEFAULT_TIMEOUT) -> float:
    """The tighter of the action's own timeout and what the step has left."""
    limits = [t for t in (own, ctx.timeout) if t is not None]
    return max(0.0, min(limits)) if limits else default
