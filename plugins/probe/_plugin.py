"""The probe plugin object itself, alone so that the package's `__init__` and every layer
module can import it without importing each other: each layer module registers its action
on this one `plugin`."""

from __future__ import annotations

from opsbook.plugin import Plugin

plugin = Plugin(
    "probe", "Health checks: L3 ICMP ping, L4 TCP port, L7 HTTP; from many vantage points."
)
