"""Keyword values as the loader accepts them: each `_as_*` turns a YAML value into the typed
value a `Runbook`/`Step` holds, or raises TypeError/ValueError (the loader then reports
what was expected, at the value's line); counts and percentages (`serial`, keep_healthy's
`min`); a parameter's type inferred from its default; a step's default id from its name.
"""

from __future__ import annotations

import re
from typing import Any


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError()


def _as_identifier(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return value
    raise ValueError()


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError()


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TypeError()


def _as_number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise TypeError()


def _as_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError()


def _as_conditions(value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bool)):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, bool)) for v in value):
        return tuple(value)
    raise TypeError()


def _as_serial(value: Any) -> tuple[int | str, ...]:
    items = value if isinstance(value, list) else [value]
    out: list[int | str] = []
    for item in items:
        count, percent = _count_or_percent(item)
        if count is None and percent is None:
            raise TypeError()
        out.append(count if count is not None else f"{percent:g}%")
        if count == 0:
            raise ValueError("a batch size must be at least 1")
    return tuple(out)


def _as_approve(value: Any) -> str | None:
    if value is True:
        return ""
    if value is False:
        return None
    if isinstance(value, str):
        return value
    raise TypeError()


def count_or_percent(value: Any) -> tuple[int | None, float | None]:
    """keep_healthy's `min`: a count (2, "2") or a percentage ("50%"); (None, None) if neither."""
    return _count_or_percent(value)


def _count_or_percent(value: Any) -> tuple[int | None, float | None]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                return None, None
            return (None, pct) if 0 < pct <= 100 else (None, None)
        if text.isdigit():
            return int(text), None
    return None, None


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "string"


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "step"
