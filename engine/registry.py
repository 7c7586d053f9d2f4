"""The plugin registry, built at start-up from the `opsbook.plugins` entry points."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from opsbook.errors import PluginError
from opsbook.plugin import ActionSpec, ConnectionFactory, Plugin

ENTRY_POINT_GROUP = "opsbook.plugins"


@dataclass
class Registry:
    """Plugins by name; one per process run, never a global."""

    plugins: dict[str, Plugin] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # entry point -> why it failed to load

    @classmethod
    def from_entry_points(cls) -> "Registry":
        registry = cls()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break opsbook
                registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            if not isinstance(plugin, Plugin):
                registry.broken[ep.name] = f"{ep.value} is not an opsbook.plugin.Plugin"
                continue
            registry.add(plugin)
        return registry

    def add(self, plugin: Plugin) -> None:
        if plugin.name in self.plugins:
            raise PluginError(f'two plugins are named "{plugin.name}"')
        self.plugins[plugin.name] = plugin

    def action(self, full_name: str) -> ActionSpec | None:
        plugin_name, _, action_name = full_name.partition(".")
        plugin = self.plugins.get(plugin_name)
        return plugin.actions.get(action_name) if plugin else None

    def action_names(self) -> list[str]:
        return [f"{p}.{a}" for p, plugin in self.plugins.items() for a in plugin.actions]

    def connection_factory(self, kind: str) -> ConnectionFactory | None:
        for plugin in self.plugins.values():
            if kind in plugin.connections:
                return plugin.connections[kind]
        return None
