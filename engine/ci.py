"""What `opsbook check` adds for a CI gate: the project's policy, `--strict`, and the
outputs CI reads (text, JSON without timings unless asked, JUnit). The CLI calls
`gate`; everything here returns data and writes only through the callbacks it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsbook.errors import Diagnostic

STRICT_HINT = "--strict counts warnings as failures"


@dataclass(frozen=True)
class GateOptions:
    """How `check` runs: the policy config file (None: the project's `.opsbook.yaml`, if
    any), whether the policy runs at all, whether warnings fail, and the policy profile
    (None: the config file's, else every rule)."""

    config: str | None = None
    policy: bool = True
    strict: bool = False
    profile: str | None = None


def gate(paths: Sequence[str], registry: Any, inventories: Sequence[str], extra: dict[str, Any],
         options: GateOptions) -> list[Any]:
    """Check runbooks with the policy and strictness asked for; the reports, warnings made
    errors under --strict."""
    from opsbook.check import check_files
    from opsbook.policy_config import config_for

    policy = config_for(options.config, profile=options.profile) if options.policy else None
    reports = check_files(list(paths), registry, list(inventories), extra, policy=policy)
    if options.strict:
        for report in reports:
            report.diagnostics = [strict(d) for d in report.diagnostics]
    return reports


def strict(diag: Diagnostic) -> Diagnostic:
    """A warning as a failure (what --strict does); other diagnostics unchanged."""
    if diag.severity != "warning":
        return diag
    hint = f"{diag.hint}; {STRICT_HINT}" if diag.hint else STRICT_HINT
    return dataclasses.replace(diag, severity="error", message=f"{diag.message} (a warning; --strict)", hint=hint)


__all__ = ["GateOptions", "gate", "strict"]
