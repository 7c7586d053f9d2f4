"""The ssh plugin object itself, alone so that the package's `__init__` and every action
module can import it without importing each other: each action module registers its actions
(and `common` the `ssh` connection) on this one `plugin`."""

from __future__ import annotations

from opsbook.plugin import Plugin

plugin = Plugin("ssh", "Run commands, copy files and manage services on hosts over SSH.")
