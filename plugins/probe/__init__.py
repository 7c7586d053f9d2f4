"""Health checks at three layers: L3 ping (probe.icmp), L4 port (probe.tcp), L7 HTTP (probe.http).

Every probe measures latency (``data.latency_ms``) and says what it expected and what it found.
Probes are read-only, so they run the same in check mode.

**Vantage points.** ``from: [controller, web2]`` runs the probe from several places and passes
when ``quorum`` of them agree (default: a majority). ``controller`` is the machine opsbook runs
on; any other name is an inventory host, probed from *inside* it over its connection (ssh,
docker exec, ...) with ``ping``, ``bash``'s ``/dev/tcp`` (or ``nc``) and ``curl``. A host seen
from inside the network usually has another address than from the controller, so an entry may
override the target for that vantage point::

    probe.http:
      url: "http://127.0.0.1:18080/healthz"
      from:
        - controller
        - {name: web2, url: "http://172.30.0.11:8080/healthz"}

Without an override, a non-controller vantage point targets the host var ``internal_address``
of the probed host if it has one, else its ``ansible_host``.

This package only declares the plugin: importing each layer module below registers its action
on the one `plugin` of `_plugin.py`.

- `vantage`: what every probe shares: `ProbeArgs` (from, quorum, timeout, max_latency), the
  vantage points, one vote (`Outcome`) each, `run_probe` and the quorum's `verdict`;
- `icmp`: probe.icmp (ping); `tcp`: probe.tcp (connect); `http`: probe.http (a request,
  its answer judged by the checks of `opsbook_plugins.http_checks`, shared with local.http).

The names other code reasonably uses (the argument models, `Outcome`, `run_probe`,
`verdict`, `judge_http`) are re-exported here; the action functions are not, so that
`opsbook_plugins.probe.http` means one thing, the module (its action is `http.http`).
"""

from __future__ import annotations

from opsbook_plugins.probe import http, icmp, tcp  # noqa: F401  importing them registers the actions
from opsbook_plugins.probe._plugin import plugin
from opsbook_plugins.probe.http import HttpAnswer, HttpArgs, judge_http
from opsbook_plugins.probe.icmp import IcmpArgs
from opsbook_plugins.probe.tcp import TcpArgs
from opsbook_plugins.probe.vantage import (
    CONTROLLER,
    Outcome,
    ProbeArgs,
    Vantage,
    VantageOverride,
    run_probe,
    verdict,
)

__all__ = [
    "CONTROLLER",
    "HttpAnswer",
    "HttpArgs",
    "IcmpArgs",
    "Outcome",
    "ProbeArgs",
    "TcpArgs",
    "Vantage",
    "VantageOverride",
    "judge_http",
    "plugin",
    "run_probe",
    "verdict",
]
