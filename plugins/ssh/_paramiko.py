"""paramiko, imported once for every module of the connection: without `invoke` (see below),
and with its log silenced (the library never prints)."""

from __future__ import annotations

import logging
import sys

# paramiko's config module imports `invoke` (~50 ms, a third of paramiko's import, paid
# before every run's first connection) only to run `Match exec` lines of an ssh config.
# Import paramiko without it; `_parse_ssh_config` brings invoke in for a config that has
# such a line. (Nothing to do when something imported either of them already.)
_WITHOUT_INVOKE = "paramiko" not in sys.modules and "invoke" not in sys.modules
if _WITHOUT_INVOKE:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` fails at once
try:
    import paramiko  # noqa: F401  (re-exported)
    from paramiko.common import cMSG_CHANNEL_REQUEST  # noqa: F401
    from paramiko.message import Message  # noqa: F401
finally:
    if _WITHOUT_INVOKE and sys.modules.get("invoke", "") is None:
        del sys.modules["invoke"]

# paramiko logs transport failures itself; without a handler, logging's last resort would
# print them to stderr, and the library never prints. Our errors carry the same facts.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
