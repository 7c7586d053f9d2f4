"""Ansible host patterns: `web:&prod:!web3`, `web*`, `~re`, `web[0]`, `web[1:2]`, `a,b`.

Semantics as Ansible's: a pattern is split on `,` (or, when there is no comma, on `:`
outside `[...]`, unless the whole pattern is one host address such as `::1` or
`web[1:3]`); terms are applied in the order plain terms, then `&` intersections, then `!`
exclusions; a pattern of only `&`/`!` terms starts from `all`. A term matches the hosts of
every group whose name it matches (fnmatch, or a regex after `~` matched at the start),
and also host names when it matched no group or contains one of `~ . ? * [`. A trailing
`[i]`, `[i:j]` (inclusive) or `[i:]` picks from that term's hosts.
"""

from __future__ import annotations

import fnmatch
import re

from opsbook.inventory._address import parse_address

_SPLIT = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]\Z")
_GLOB = frozenset("*?[")
_HOST_HINTS = (".", "?", "*", "[")

Subscript = tuple[int, int | None]


def split_pattern(pattern: str) -> list[str]:
    """The terms of a pattern, as Ansible splits them."""
    if "," in pattern:
        parts = pattern.split(",")
    elif parse_address(pattern) is not None:
        parts = [pattern]
    else:
        parts = _SPLIT.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def order_terms(terms: list[str]) -> list[str]:
    """Plain terms first, then `&` terms, then `!` terms; `all` when there is no plain one."""
    plain = [term for term in terms if term[0] not in "&!"]
    both = [term for term in terms if term[0] == "&"]
    excluded = [term for term in terms if term[0] == "!"]
    return (plain or ["all"]) + both + excluded


def split_subscript(term: str) -> tuple[str, Subscript | None]:
    """`web[1:2]` -> ("web", (1, 2)); `web[1:]` -> ("web", (1, -1)); regexes keep theirs."""
    if term.startswith("~"):
        return term, None
    found = _SUBSCRIPT.match(term)
    if found is None:
        return term, None
    expr, index, start, _, end = found.groups()
    if index is not None:
        return expr, (int(index), None)
    return expr, (int(start), int(end) if end else -1)


def apply_subscript(hosts: list[str], subscript: Subscript | None) -> list[str]:
    """Pick hosts by position; raise IndexError when a single index is out of range."""
    if not hosts or subscript is None:
        return hosts
    start, end = subscript
    if end is None:
        return [hosts[start]]
    if end == -1:
        end = len(hosts) - 1
    return hosts[start : end + 1]


def compile_term(expr: str) -> re.Pattern[str]:
    """The regex a term stands for; raise re.error for a bad `~regex`."""
    if expr.startswith("~"):
        return re.compile(expr[1:])
    return re.compile(fnmatch.translate(expr))


def is_literal(expr: str) -> bool:
    """True when a term has no glob or regex syntax, so it can only match itself."""
    return not expr.startswith("~") and not _GLOB.intersection(expr)


def searches_hosts(expr: str) -> bool:
    """Whether Ansible also looks at host names for a term that matched groups."""
    return expr.startswith("~") or any(hint in expr for hint in _HOST_HINTS)
