"""Collecting inventory problems so that one run reports all of them, not just the first."""

from __future__ import annotations

from opsbook.errors import Diagnostic, InventoryError, Position


class InventoryErrors(InventoryError):
    """Several inventory problems at once; `diagnostics` lists each with its position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics_ = list(diagnostics)
        first = self.diagnostics_[0]
        super().__init__(first.message, first.position, first.hint)
        Exception.__init__(self, "\n".join(str(d) for d in self.diagnostics_))

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.diagnostics_


class Problems:
    """Diagnostics found while loading; `raise_if_any` turns them into one exception."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, message: str, position: Position | None, hint: str = "") -> None:
        self.items.append(Diagnostic(position, message, hint))

    def extend(self, error: InventoryError) -> None:
        self.items.extend(error.diagnostics)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        if len(self.items) == 1:
            only = self.items[0]
            raise InventoryError(only.message, only.position, only.hint)
        raise InventoryErrors(self.items)
