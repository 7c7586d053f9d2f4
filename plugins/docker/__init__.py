"""Docker: containers, exec, logs, facts, networks and limits; a `docker` connection; an inventory.

This package only declares the plugin: importing each module below registers its actions (or
the connection, or the inventory source) on the one `plugin` of `_plugin.py`.

- `daemons`: which daemon a host means (host vars, DOCKER_HOST, TLS), the client pool, the
  plugin's errors and the words for a daemon that is missing or hung;
- `target`: which container an action works on, `_api_call` and the `_guarded` wrapper;
- `container`: docker.container (state, wait_healthy);
- `execute`: the exec machinery and docker.exec;
- `logs`: docker.logs;
- `facts`: docker.inspect and docker.stats;
- `network`: docker.network;
- `update`: docker.update (limits, the memory guard);
- `evidence`: docker.events, docker.cp_out, docker.diff;
- `recreate`: docker.recreate and docker.run;
- `compose`: docker.service (compose projects without the compose binary);
- `connection`: the `docker` connection, with `archive` for the files it copies out;
- `inventory`: the `docker://` inventory source.

The names other code reasonably uses (daemon and container selection, the errors, the facts
and stats summaries, the connection and the inventory) are re-exported here.
"""

from __future__ import annotations

from opsbook_plugins.docker import (  # noqa: F401  importing them registers the actions
    compose,
    connection,
    container,
    evidence,
    execute,
    facts,
    inventory,
    logs,
    network,
    recreate,
    update,
)
from opsbook_plugins.docker._plugin import plugin
from opsbook_plugins.docker.connection import DockerConnection, docker_connection
from opsbook_plugins.docker.daemons import (
    ContainerNotFound,
    Daemon,
    DaemonUnreachable,
    DockerError,
    clients,
    daemon_for,
)
from opsbook_plugins.docker.facts import INSPECT_KEYS, STATS_KEYS, container_facts, stats_summary
from opsbook_plugins.docker.inventory import docker_inventory
from opsbook_plugins.docker.target import Target, container_name_for, target_for

__all__ = [
    "INSPECT_KEYS",
    "STATS_KEYS",
    "ContainerNotFound",
    "Daemon",
    "DaemonUnreachable",
    "DockerConnection",
    "DockerError",
    "Target",
    "clients",
    "container_facts",
    "container_name_for",
    "daemon_for",
    "docker_connection",
    "docker_inventory",
    "plugin",
    "stats_summary",
    "target_for",
]
