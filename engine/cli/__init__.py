"""The `opsbook` command line. Heavy imports stay inside commands so `--version` is instant.

Exit codes (stable): 0 success; 1 the runbook is invalid or the run failed;
2 bad usage or input (file:line errors); 3 the run timed out or was aborted by a failure
threshold; 130/143 the run was stopped by SIGINT/SIGTERM (and rolled back); 4 the run needs a human (a denied approval, an in-doubt node);
70 an internal error (a bug: please report it with --debug output).

One module per group of commands, each registering its commands on `main` (base):
`authoring` (check, plan, graph), `running` (run, resume, retry), `gates` (approve, deny),
`history` (journal, runs, show, report, evidence), `watching` (watch), `describe`
(inventory, plugins, schema).

"""

from __future__ import annotations

from opsbook.cli import authoring, describe, gates, history, running, watching  # noqa: F401 - they register commands
from opsbook.cli.base import (
                              EXIT_ABORTED,
                              EXIT_BUG,
                              EXIT_FAILED,
                              EXIT_HUMAN,
                              EXIT_OK,
                              EXIT_SIGINT,
                              EXIT_SIGTERM,
                              EXIT_USAGE,
                              main,
)

def _ci_commands() -> None:
    from opsbook.cli_ci import diff

    main.add_command(diff)


_ci_commands()

__all__ = ["EXIT_ABORTED", "EXIT_BUG", "EXIT_FAILED", "EXIT_HUMAN", "EXIT_OK", "EXIT_SIGINT", "EXIT_SIGTERM",
           "EXIT_USAGE", "main"]
