"""Errors raised by opsbook, each carrying where the user wrote the thing that failed.

The tree::

    OpsbookError                  every error opsbook raises on purpose
    ├── UserError                 bad input: has a Position and a hint; printed without traceback
    │   ├── LoadError             YAML syntax, duplicate keys, alias bombs, unreadable files
    │   ├── ValidationError       a runbook that loads but does not make sense (many Diagnostics)
    │   ├── InventoryError        malformed inventory line or file
    │   ├── TemplateError         a template that does not render (undefined, sandbox violation)
    │   ├── PatternError          a host pattern that is malformed or matches nothing
    │   ├── CompileError          runbook + inventory cannot be made into a plan (cycles, ...)
    │   ├── ParamError            missing/ill-typed runbook parameter given on the CLI
    │   └── OutputError           an output file (-o, --junit) that cannot be written
    ├── PluginError               a plugin could not be loaded or declared itself wrongly
    ├── JournalError              the journal cannot be opened, is locked, or is corrupt
    │   └── RunLockedError        another process drives this run
    └── RunError                  a run could not start or continue (unknown run id, ...)

Failures of *actions* on hosts are not exceptions: they are Result values (see opsbook.plugin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a source file; line and column are 1-based like editors show them."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        if self.column <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a source file: where, what, and how to fix it."""

    position: Position | None
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"
    rule: str = ""  # the policy rule that found it (opsbook.policy), if any

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    matches = get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""


class OpsbookError(Exception):
    """Base of every error opsbook raises on purpose."""


class UserError(OpsbookError):
    """Bad input from the user: printed as 'file:line:col: message' without a traceback."""

    def __init__(self, message: str, position: Position | None = None, hint: str = "") -> None:
        self.message = message
        self.position = position
        self.hint = hint
        super().__init__(str(self.diagnostic))

    @property
    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.position, self.message, self.hint)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [self.diagnostic]


class LoadError(UserError):
    """The file could not be read or parsed as YAML."""


class InventoryError(UserError):
    """An inventory source is malformed."""


class TemplateError(UserError):
    """A template failed to render: undefined name, filter error, sandbox violation."""


class PatternError(UserError):
    """A host pattern is malformed or matches no host.

    `unmatched` lists the names of the pattern that no host or group of the inventory
    carries (empty when the pattern itself is wrong): with another inventory, the same
    pattern may be fine, which `opsbook check` without `-i` relies on."""

    def __init__(self, message: str, position: Position | None = None, hint: str = "",
                 unmatched: tuple[str, ...] = ()) -> None:
        self.unmatched = unmatched
        super().__init__(message, position, hint)


class CompileError(UserError):
    """The runbook and inventory cannot be compiled into a plan."""


class ParamError(UserError):
    """A runbook parameter is missing or has the wrong type."""


class OutputError(UserError):
    """A file opsbook was asked to write (-o, --junit) cannot be written: missing folder, a
    folder given as the file, no permission."""


class ValidationError(UserError):
    """Many problems found in one file; all of them are reported at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics_ = list(diagnostics)
        first = self.diagnostics_[0] if self.diagnostics_ else Diagnostic(None, "invalid")
        UserError.__init__(self, first.message, first.position, first.hint)
        Exception.__init__(self, "\n".join(str(d) for d in self.diagnostics_))

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.diagnostics_


class PluginError(OpsbookError):
    """A plugin failed to load or declared an action incorrectly."""


class JournalError(OpsbookError):
    """The journal cannot be opened, written or read."""


class RunLockedError(JournalError):
    """Another live process holds the lock of this run (or of a named runbook lock)."""


class RunError(OpsbookError):
    """A run cannot be started or continued."""
