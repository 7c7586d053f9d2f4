"""The plugin registry, built at start-up from the `opsbook.plugins` entry points.

Plugins are imported lazily, by name, the first time something asks for them: checking
a runbook that uses only `local` does not pay for importing paramiko or the docker SDK.
The entry point's name is the plugin's name (`ssh = "opsbook_plugins.ssh:plugin"`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from opsbook.errors import PluginError
from opsbook.plugin import ActionSpec, ConnectionFactory, InventorySource, Plugin

ENTRY_POINT_GROUP = "opsbook.plugins"


@dataclass
class Registry:
    """Plugins by name; one per process run, never a global."""

    loaded: dict[str, Plugin] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # entry point -> why it failed to load
    _pending: dict[str, EntryPoint] = field(default_factory=dict)
    # One lock for loading: a second thread asking for a plugin while the first imports it
    # waits for it, instead of finding it neither pending nor loaded ("unknown plugin").
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def from_entry_points(cls) -> Registry:
        registry = cls()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            registry._pending.setdefault(ep.name, ep)
        return registry

    def _load(self, name: str) -> Plugin | None:
        with self._lock:
            return self._load_locked(name)

    def _load_locked(self, name: str) -> Plugin | None:
        ep = self._pending.pop(name, None)
        if ep is None:
            return self.loaded.get(name)
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break opsbook
            self.broken[ep.name] = f"{type(exc).__name__}: {exc}"
            return None
        if not isinstance(plugin, Plugin):
            self.broken[ep.name] = f"{ep.value} is not an opsbook.plugin.Plugin"
            return None
        if plugin.name != ep.name:
            self.broken[ep.name] = f'entry point "{ep.name}" exposes a plugin named "{plugin.name}"; use the same name'
            return None
        self.loaded[plugin.name] = plugin
        return plugin

    @property
    def plugins(self) -> dict[str, Plugin]:
        """Every plugin (imports them all)."""
        for name in list(self._pending):
            self._load(name)
        return dict(sorted(self.loaded.items()))

    @property
    def names(self) -> list[str]:
        return sorted(set(self.loaded) | set(self._pending))

    def plugin(self, name: str) -> Plugin | None:
        return self.loaded.get(name) or self._load(name)

    def add(self, plugin: Plugin) -> None:
        if plugin.name in self.loaded or plugin.name in self._pending:
            raise PluginError(f'two plugins are named "{plugin.name}"')
        self.loaded[plugin.name] = plugin

    def action(self, full_name: str) -> ActionSpec | None:
        plugin_name, _, action_name = full_name.partition(".")
        plugin = self.plugin(plugin_name)
        return plugin.actions.get(action_name) if plugin else None

    def ansible_action(self, module: str) -> str | None:
        """The action an Ansible module name (`lineinfile`, `ansible.builtin.shell`) stands for,
        as a plugin declared it (`Plugin.ansible_module`); None when no plugin speaks it."""
        short = module.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        for plugin in self.plugins.values():  # by name: the first that declares it wins
            if short in plugin.ansible_modules:
                return f"{plugin.name}.{plugin.ansible_modules[short]}"
        return None

    def ansible_unlike(self, module: str) -> tuple[str, str] | None:
        """(action, how its arguments differ) for an Ansible module whose job an action does
        with other arguments (`Plugin.ansible_module(..., differs=)`); None otherwise."""
        for plugin in self.plugins.values():
            if module in plugin.ansible_unlike:
                action, differs = plugin.ansible_unlike[module]
                return f"{plugin.name}.{action}", differs
        return None

    def inverse_problems(self, spec: ActionSpec) -> list[str]:
        """What is wrong with the actions `spec`'s inverse declares it may name
        (`inverse_actions=`): each one that is not installed, said with a did-you-mean."""
        from opsbook.errors import did_you_mean

        out = []
        for full in sorted(a for a in spec.inverse_actions or () if self.action(a) is None):
            pname, _, aname = full.partition(".")
            plugin = self.plugin(pname)
            if plugin is not None:
                near = did_you_mean(aname, plugin.actions).replace('"', f'"{pname}.', 1)
                why = f'plugin "{pname}" has no action "{aname}"{near}'
            else:
                why = f'no plugin named "{pname}" is installed{did_you_mean(pname, self.names)}'
            out.append(f"its rollback runs {full}, which is not installed ({why.replace(' (', '; ', 1).rstrip(')')})")
        return out

    def action_names(self) -> list[str]:
        return [f"{p}.{a}" for p, plugin in self.plugins.items() for a in plugin.actions]

    def inventory_source(self, scheme: str) -> InventorySource | None:
        return self._provided(scheme, "inventory_sources")  # type: ignore[no-any-return]

    def connection_factory(self, kind: str) -> ConnectionFactory | None:
        return self._provided(kind, "connections")  # type: ignore[no-any-return]

    def _provided(self, name: str, table: str) -> object | None:
        """A connection kind or inventory scheme: usually its plugin's own name (ssh,
        docker, k8s), so that plugin is tried first and the rest only when needed."""
        first = self.plugin(name)
        if first is not None and name in getattr(first, table):
            return getattr(first, table)[name]
        for plugin in self.plugins.values():
            if name in getattr(plugin, table):
                return getattr(plugin, table)[name]
        return None
