"""Recreating containers: docker.recreate (from the current configuration, or with a new
image, environment, command or limits; image rollback) and docker.run (a new container
from an image), each with check mode and an inverse.

A recreate keeps what a person configured: networks with their aliases and static
addresses, volumes (named, bind and the anonymous ones, which are carried over rather than
replaced by empty ones), port bindings, restart policy, health check, labels, user,
working directory, entrypoint. The old container is renamed and stopped first, and comes
back (renamed and started again) if the new one cannot be created, started or made
healthy; only then is it removed. The new container carries the image it replaced in the
labels `org.opsbook.previous-image` (the reference) and `org.opsbook.previous-image-id`, so
`image: previous` rolls back to it exactly.

This module registers its actions on the docker plugin (the package's `__init__` imports it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from opsbook.plugin import ActionContext, Result, Seconds
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.container import wait_healthy
from opsbook_plugins.docker.daemons import ContainerNotFound, DockerError
from opsbook_plugins.docker.network import _user_aliases
from opsbook_plugins.docker.target import (
    Target,
    _api_call,
    _api_error_text,
    _guarded,
    _status,
    _time_left,
    target_for,
)
from opsbook_plugins.docker.update import _bytes
from pydantic import BaseModel, ConfigDict, Field

PREVIOUS_IMAGE = "org.opsbook.previous-image"
PREVIOUS_IMAGE_ID = "org.opsbook.previous-image-id"
IMAGE_HISTORY = "org.opsbook.image-history"  # image ids it ran before, oldest first: `previous` steps back
_HISTORY = 10  # image ids remembered

# Config keys copied to the new container as they are (create_container keyword -> Config key).
_CONFIG = {"hostname": "Hostname", "domainname": "Domainname", "user": "User", "working_dir": "WorkingDir",
           "entrypoint": "Entrypoint", "stop_signal": "StopSignal", "tty": "Tty", "stdin_open": "OpenStdin",
           "healthcheck": "Healthcheck", "mac_address": "MacAddress"}


@dataclass
class Spec:
    """What creating a container needs, read from `docker inspect` (or built for docker.run)."""

    name: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    host_config: dict[str, Any]
    networks: dict[str, dict[str, Any]]  # name -> {aliases, ipv4_address}
    config: dict[str, Any] = field(default_factory=dict)  # the _CONFIG keys that are set
    ports: list[tuple[int, str]] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


def spec_of(attrs: dict[str, Any]) -> Spec:
    """The configuration of an existing container, as create_container takes it back."""
    config = attrs.get("Config") or {}
    host = dict(attrs.get("HostConfig") or {})
    binds = list(host.get("Binds") or [])
    bound = {b.split(":")[1] for b in binds if b.count(":") >= 1}
    actual = {m.get("Destination"): m.get("Name") for m in attrs.get("Mounts") or [] if m.get("Type") == "volume"}
    mounts = []
    for mount in host.get("Mounts") or []:  # --mount volumes: an anonymous one keeps its volume
        mount = dict(mount)
        if mount.get("Type") == "volume" and not mount.get("Source") and actual.get(mount.get("Target")):
            mount["Source"] = actual[mount["Target"]]
        bound.add(mount.get("Target"))
        mounts.append(mount)
    host["Mounts"] = mounts or None
    for mount in attrs.get("Mounts") or []:  # the image's VOLUMEs: carried over, not replaced by empty ones
        if mount.get("Type") == "volume" and mount.get("Destination") not in bound and mount.get("Name"):
            binds.append(f"{mount['Name']}:{mount['Destination']}{'' if mount.get('RW', True) else ':ro'}")
    host["Binds"] = binds or None
    networks = {}
    for name, endpoint in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
        ipam = endpoint.get("IPAMConfig") or {}
        networks[name] = {"aliases": [a for a in _user_aliases(attrs, endpoint) if a != attrs.get("Name", "")[1:]],
                          "ipv4_address": ipam.get("IPv4Address") or None}
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in config.get("Env") or [])
    ports = [(int(p.split("/")[0]), p.split("/")[1] if "/" in p else "tcp") for p in config.get("ExposedPorts") or {}]
    return Spec(name=str(attrs.get("Name", "")).lstrip("/"), image=str(config.get("Image") or attrs.get("Image")),
                command=config.get("Cmd"), env=env, labels=dict(config.get("Labels") or {}), host_config=host,
                networks=networks, config={k: config[v] for k, v in _CONFIG.items() if config.get(v) is not None},
                ports=ports, volumes=list(config.get("Volumes") or {}))


def create(target: Target, spec: Spec) -> Any:
    """Create (not start) a container from `spec`; its first network at creation, the others
    connected afterwards with their aliases and addresses."""
    api = target.client.api
    names = list(spec.networks)
    first = names[0] if names else None
    endpoints = {}
    if first:
        ep = spec.networks[first]
        endpoints[first] = api.create_endpoint_config(aliases=ep["aliases"] or None,
                                                      ipv4_address=ep["ipv4_address"])
    created = _api_call(target.daemon, lambda: api.create_container(
        spec.image, command=spec.command, name=spec.name, environment=[f"{k}={v}" for k, v in spec.env.items()],
        labels=spec.labels, host_config=spec.host_config, ports=spec.ports or None, volumes=spec.volumes or None,
        networking_config=api.create_networking_config(endpoints) if endpoints else None, detach=True,
        **spec.config))
    for name in names[1:]:
        ep = spec.networks[name]
        _api_call(target.daemon, lambda n=name, e=ep: api.connect_container_to_network(
            created["Id"], n, aliases=e["aliases"] or None, ipv4_address=e["ipv4_address"]))
    return created["Id"]


# --------------------------------------------------------------------------- docker.recreate


class RecreateArgs(BaseModel):
    """Arguments of docker.recreate."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    container: str | None = Field(None, description="Container name (default: see the plugin).")
    image: str | None = Field(None, description="A new image (tag or digest), or `previous`: the image the last "
                              "recreate replaced (image rollback). Default: the current one.")
    env: dict[str, str | None] | None = Field(None, description="Environment variables to set; null removes one. "
                                              "The others are kept.")
    command: str | list[str] | None = Field(None, description="A new command (argv list, or a string split as a "
                                            "shell would). Default: the current one.")
    cpus: float | None = Field(None, description="A new CPU limit in CPUs.")
    memory: int | str | None = Field(None, description="A new memory limit: bytes or 512m, 1g.")
    wait_healthy: bool = Field(True, description="Wait until the new container is healthy (or running, without "
                               "a HEALTHCHECK); if it is not, the old container comes back.")
    timeout: Seconds | None = Field(None, description="How long wait_healthy waits (default 60s).")
    stop_timeout: Seconds = Field(10.0, description="Grace before SIGKILL when the old container is stopped.")


def _recreate_inverse(args: RecreateArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    """Back to the recorded configuration: the exact previous image, environment, command
    and limits. A plain recreate (nothing changed) needs no undo."""
    undo = result.data.get("undo")
    if not result.changed or not undo:
        return None
    return "docker.recreate", {"container": result.data["container"], **undo}


def _changes(spec: Spec, args: RecreateArgs, attrs: dict[str, Any], target: Target) -> tuple[Spec, dict[str, Any],
                                                                                          dict[str, Any], list[str]]:
    """(the new spec, the undo arguments, the image rollback labels, what changes, for people)."""
    import shlex

    new = Spec(**{**spec.__dict__, "env": dict(spec.env), "labels": dict(spec.labels),
                  "host_config": dict(spec.host_config)})
    undo: dict[str, Any] = {}
    said: list[str] = []
    if args.image:
        history = [i for i in spec.labels.get(IMAGE_HISTORY, "").split(",") if i]
        image, back = args.image, args.image == "previous"
        if back:
            if not history:
                raise DockerError(f"{target.name} has no earlier image recorded (label {IMAGE_HISTORY}): "
                                  + ("every image it had was rolled back already" if PREVIOUS_IMAGE_ID in spec.labels
                                     else "it was not created by docker.recreate with another image")
                                  + "; give the image by tag or digest")
            image = history.pop()
        if image not in (spec.image, attrs.get("Image")):
            new.image = image
            undo["image"] = attrs.get("Image")  # the exact image id, even if the tag has moved since
            if not back:  # a step forward remembers where it came from; a step back forgets it
                history = (history + [str(attrs.get("Image"))])[-_HISTORY:]
            new.labels[IMAGE_HISTORY] = ",".join(history)
            new.labels[PREVIOUS_IMAGE] = spec.image
            new.labels[PREVIOUS_IMAGE_ID] = history[-1] if history else ""
            shown = f"{_image_name(target, image)} (previous)" if back else args.image
            said.append(f"image {spec.image} -> {shown}")
    if args.env:
        before: dict[str, str | None] = {}
        for key, value in args.env.items():
            if spec.env.get(key) != value and not (value is None and key not in spec.env):
                before[key] = spec.env.get(key)
                said.append(f"env {key}" + (" removed" if value is None else " set"))
                if value is None:
                    new.env.pop(key, None)
                else:
                    new.env[key] = value
        if before:
            undo["env"] = before
    if args.command is not None:
        command = shlex.split(args.command) if isinstance(args.command, str) else list(args.command)
        if command != spec.command:
            new.command = command
            undo["command"] = spec.command or []
            said.append(f"command {shlex.join(spec.command or [])!r} -> {shlex.join(command)!r}")
    if args.cpus is not None:
        nano = int(round(args.cpus * 1e9))
        if nano != (spec.host_config.get("NanoCpus") or 0):
            old = spec.host_config.get("NanoCpus") or 0
            new.host_config.update(NanoCpus=nano, CpuQuota=0, CpuPeriod=0)
            undo["cpus"] = old / 1e9 if old else 0.0
            said.append(f"cpus {old / 1e9 if old else 'unlimited'} -> {args.cpus}")
    if args.memory is not None:
        memory = _bytes(args.memory) or 0
        if memory != (spec.host_config.get("Memory") or 0):
            old = spec.host_config.get("Memory") or 0
            new.host_config.update(Memory=memory, MemorySwap=memory * 2 if memory else 0)
            undo["memory"] = old
            said.append(f"memory {old or 'unlimited'} -> {memory or 'unlimited'}")
    return new, undo, {}, said


@plugin.action(check=True, idempotent=False, inverse=_recreate_inverse, inverse_actions=["docker.recreate"], mutates=True, argv=["command"],
               data=["container", "before", "after", "image", "previous_image", "changes", "undo", "id"])
@_guarded
def recreate(ctx: ActionContext, args: RecreateArgs) -> Result:
    """Recreate a container from its configuration, or with a new image, env, command or
    limits (`image: previous` rolls the image back); the old one comes back if the new one
    does not start healthy. The inverse recreates the previous configuration."""
    target = target_for(ctx, args.container)
    obj = target.container()
    attrs = obj.attrs
    spec = spec_of(attrs)
    new, undo, _, said = _changes(spec, args, attrs, target)
    what = ", ".join(said) or "same configuration"
    data: dict[str, Any] = {"container": target.name, "before": attrs.get("Id", "")[:12], "image": new.image,
                            "previous_image": spec.image, "changes": said, "undo": undo}
    if ctx.check_mode:
        return Result.ok(changed=True, msg=f"would recreate {target.name} ({what})", data=data,
                         diff=f"{target.name}: " + "; ".join(said) if ctx.diff_mode and said else None)
    if new.image != spec.image:
        _image_present(target, new.image)
    api = target.client.api
    was_running = _status(attrs) in ("running", "restarting", "paused")
    parked = f"{target.name}-opsbook-old-{uuid.uuid4().hex[:6]}"
    _api_call(target.daemon, lambda: api.rename(obj.id, parked))
    created: str | None = None
    try:
        if was_running:
            grace = int(max(0.0, min(args.stop_timeout, _time_left(ctx, None, args.stop_timeout))))
            _api_call(target.daemon, lambda: api.stop(obj.id, timeout=grace))
        created = create(target, new)
        _api_call(target.daemon, lambda: api.start(created))
        if args.wait_healthy:
            waited = wait_healthy(ctx, target, _time_left(ctx, args.timeout))
            if waited.failed_:
                raise DockerError(f"the new container did not come up: {waited.msg}")
    except Exception as exc:  # noqa: BLE001 - every failure puts the old container back
        reason = exc.explanation if hasattr(exc, "explanation") else str(exc)
        back = _put_back(target, obj.id, parked, created, was_running)
        return Result.failed(f"could not recreate {target.name} ({what}): {reason}; {back}", data=data)
    _api_call(target.daemon, lambda: api.remove_container(obj.id, force=True, v=False))
    data["after"] = data["id"] = created[:12]
    return Result.ok(changed=True, msg=f"recreated {target.name} ({what})", data=data)


def _image_name(target: Target, image: str) -> str:
    """An image id as people know it: its first tag, else the short id."""
    try:
        tags = _api_call(target.daemon, lambda: target.client.api.inspect_image(image)).get("RepoTags") or []
    except Exception:  # noqa: BLE001 - only for the message
        tags = []
    return f"{tags[0]} ({image.removeprefix('sha256:')[:12]})" if tags else image.removeprefix("sha256:")[:12]


def _image_present(target: Target, image: str) -> None:
    import docker.errors

    try:
        _api_call(target.daemon, lambda: target.client.api.inspect_image(image))
    except docker.errors.ImageNotFound:
        raise DockerError(f"no image {image} on {target.daemon.base_url}: pull or load it first "
                          "(nothing was changed)") from None


def _put_back(target: Target, old_id: str, parked: str, created: str | None, was_running: bool) -> str:
    """Remove the new container and bring the old one back under its name; say how it went."""
    api = target.client.api
    try:
        if created:
            _api_call(target.daemon, lambda: api.remove_container(created, force=True))
        _api_call(target.daemon, lambda: api.rename(old_id, target.name))
        if was_running:
            _api_call(target.daemon, lambda: api.start(old_id))
        return f"the old container is back{' and running' if was_running else ''}"
    except Exception as exc:  # noqa: BLE001 - said to the operator with the name to look for
        text = getattr(exc, "explanation", None) or str(exc)
        return f"PUTTING THE OLD CONTAINER BACK FAILED ({text}): it is {parked} ({old_id[:12]})"


# --------------------------------------------------------------------------- docker.run


class RunArgs(BaseModel):
    """Arguments of docker.run."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(description="The new container's name.")
    image: str = Field(description="Image (tag or digest); it must be on the daemon already.")
    command: str | list[str] | None = Field(None, description="Command (argv list, or a string split as a shell "
                                            "would); default: the image's.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    networks: list[str] = Field(default_factory=list, description="Networks to join (the first at creation).")
    aliases: list[str] = Field(default_factory=list, description="DNS aliases on every network.")
    ports: dict[str, str] = Field(default_factory=dict, description='Published ports: {"8080/tcp": '
                                  '"127.0.0.1:18080"}.')
    volumes: list[str] = Field(default_factory=list, description="Volumes and binds: NAME_OR_PATH:DEST[:ro].")
    restart_policy: str = Field("no", description="no, always, unless-stopped, on-failure.")
    memory: int | str | None = Field(None, description="Memory limit: bytes or 512m, 1g.")
    cpus: float | None = Field(None, description="CPU limit in CPUs.")
    wait_healthy: bool = Field(True, description="Wait until healthy (or running, without a HEALTHCHECK).")
    timeout: Seconds | None = Field(None, description="How long wait_healthy waits (default 60s).")


def _run_inverse(args: RunArgs, result: Result) -> tuple[str, dict[str, Any]] | None:
    if not result.changed:
        return None
    return "docker.container", {"name": args.name, "state": "absent"}


@plugin.action(check=True, idempotent=True, inverse=_run_inverse, inverse_actions=["docker.container"], mutates=True, argv=["command"],
               data=["container", "id", "image"])
@_guarded
def run(ctx: ActionContext, args: RunArgs) -> Result:
    """Create and start a container from an image with a configuration; the inverse removes it.
    A container of that name that already runs the image is left alone."""
    import shlex

    target = target_for(ctx, args.name)
    try:
        existing = target.container().attrs
    except ContainerNotFound:
        existing = None
    data: dict[str, Any] = {"container": args.name, "image": args.image}
    if existing is not None:
        same = (existing.get("Config") or {}).get("Image") == args.image and _status(existing) == "running"
        if same:
            data["id"] = existing["Id"][:12]
            return Result.ok(msg=f"{args.name} already runs {args.image}", data=data)
        return Result.failed(f"a container named {args.name} exists ({_status(existing)}, image "
                             f"{(existing.get('Config') or {}).get('Image')}); docker.recreate changes it, "
                             "docker.container state: absent removes it", data=data)
    if ctx.check_mode:
        return Result.ok(changed=True, msg=f"would create and start {args.name} from {args.image}", data=data)
    _image_present(target, args.image)
    api = target.client.api
    bindings: dict[str, Any] = {}
    for port, where in args.ports.items():
        ip, _, host_port = where.rpartition(":")
        bindings[port] = (ip or "0.0.0.0", int(host_port) if host_port else None)  # noqa: S104 - what was asked
    host_config = api.create_host_config(
        binds=args.volumes or None, port_bindings=bindings or None, restart_policy={"Name": args.restart_policy}
        if args.restart_policy != "no" else None, mem_limit=_bytes(args.memory),
        nano_cpus=int(args.cpus * 1e9) if args.cpus else None,
        network_mode=args.networks[0] if args.networks else None)
    spec = Spec(name=args.name, image=args.image,
                command=(shlex.split(args.command) if isinstance(args.command, str) else args.command),
                env=dict(args.env), labels=dict(args.labels), host_config=host_config,
                networks={n: {"aliases": list(args.aliases), "ipv4_address": None} for n in args.networks},
                ports=[(int(p.split("/")[0]), p.split("/")[1] if "/" in p else "tcp") for p in args.ports])
    try:
        created = create(target, spec)
        _api_call(target.daemon, lambda: api.start(created))
    except Exception as exc:  # noqa: BLE001 - nothing half-made is left behind
        import contextlib

        with contextlib.suppress(Exception):
            api.remove_container(args.name, force=True)
        return Result.failed(f"could not create {args.name} from {args.image}: "
                             f"{_api_error_text(exc) if hasattr(exc, 'explanation') else exc}", data=data)
    data["id"] = created[:12]
    result = Result.ok(changed=True, msg=f"created and started {args.name} from {args.image}", data=data)
    if args.wait_healthy:
        waited = wait_healthy(ctx, target, _time_left(ctx, args.timeout))
        if waited.failed_:
            return Result(status=waited.status, changed=True, msg=waited.msg, data=data)
        result.msg += f"; {waited.msg}"
    return result
