"""Console entry point: answers `--version` before importing anything heavy."""

from __future__ import annotations

import gc
import sys


def main() -> None:
    # Start-up (imports, the runbook, the plan) makes hundreds of thousands of objects that
    # live as long as the process and holds few cycles: the cyclic collector would only scan
    # them again and again (a full pass costs ~30 ms). It is switched back on, with those
    # objects frozen out of its way, before a run starts (opsbook.cli._with_signals) or at
    # the start of any other command.
    gc.disable()
    if sys.argv[1:] == ["--version"]:
        from opsbook import __version__

        print(f"opsbook, version {__version__}")
        return
    from opsbook.cli import main as cli

    cli()
