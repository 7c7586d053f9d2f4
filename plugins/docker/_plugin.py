"""The docker plugin object itself, alone so that the package's `__init__` and every action
module can import it without importing each other: each action module registers its actions,
the connection and the inventory source on this one `plugin`."""

from __future__ import annotations

from opsbook.plugin import Plugin

plugin = Plugin("docker", "Docker containers: state, exec, logs, facts, networks, limits.")
