"""The `docker://` inventory source (`-i 'docker://?label=role=web'`): the containers on a
daemon as hosts, in Ansible's `--list` JSON shape (`docker_inventory`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opsbook.errors import InventoryError
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.daemons import DockerError, _normalise_url, clients, daemon_for
from opsbook_plugins.docker.target import _api_call


def docker_inventory(
    filters: Mapping[str, Any],
    base_url: str | None = None,
    *,
    include_stopped: bool = False,
    group_label: str = "opsbook.groups",
) -> dict[str, Any]:
    """Containers matching `filters` as hosts, in Ansible's `--list` JSON shape.

    `filters` are the daemon's (``{"label": ["role=web"]}``, ``{"name": "web"}``); a label
    mapping ``{"label": {"role": "web"}}`` is accepted too. Every label becomes a host var, and
    the comma-separated value of the `group_label` label puts the host in those groups.
    """
    env_daemon = daemon_for({})
    if base_url:
        env_daemon = replace(env_daemon, base_url=_normalise_url(base_url), source="base_url given")
    try:
        client = clients.get(env_daemon)
        listed = _api_call(
            env_daemon,
            lambda: client.api.containers(all=include_stopped, filters=_filters(filters)),
        )
    except DockerError as exc:
        raise InventoryError(f"docker inventory: {exc}") from exc
    hostvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for item in sorted(listed, key=lambda c: c["Names"][0]):
        name = item["Names"][0].lstrip("/")
        labels = dict(item.get("Labels") or {})
        hostvars[name] = {
            **labels,
            "ansible_connection": "docker",
            "ansible_host": name,
            "docker_labels": labels,
            "docker_container_id": item["Id"][:12],
            "docker_image": item.get("Image"),
            "docker_status": item.get("State"),
        }
        if base_url:
            hostvars[name]["ansible_docker_host"] = env_daemon.base_url
        wanted = [g.strip() for g in str(labels.get(group_label, "")).split(",") if g.strip()]
        for group in wanted or ["ungrouped"]:
            groups.setdefault(group, []).append(name)
    document: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    document["all"] = {"children": sorted(set(groups) | {"ungrouped"})}
    document["ungrouped"] = {"hosts": []}
    for group, hosts in groups.items():
        document[group] = {"hosts": hosts}
    return document


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if isinstance(value, Mapping):
            out[key] = [
                f"{k}={v}" if v is not None and v != "" else str(k) for k, v in value.items()
            ]
        else:
            out[key] = value
    return out


@plugin.inventory("docker")
def docker_inventory_source(query: dict[str, list[str]]) -> dict[str, Any]:
    """`-i 'docker://?label=role=web&host=unix:///run/x.sock&all=1'`: containers as hosts.

    Query keys: `label` and `name` (daemon filters, repeatable), `host` (daemon URL, default
    DOCKER_HOST or the local socket), `all=1` to include stopped containers."""
    filters: dict[str, list[str]] = {key: values for key, values in query.items() if key in ("label", "name")}
    base_url = (query.get("host") or [None])[0]
    include_stopped = (query.get("all") or ["0"])[0] in ("1", "true", "yes")
    return docker_inventory(filters, base_url, include_stopped=include_stopped)
