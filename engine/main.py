"""Console entry point: answers `--version` before importing anything heavy."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from opsbook import __version__

        print(f"opsbook, version {__version__}")
        return
    from opsbook.cli import main as cli

    cli()
