"""Host names as Ansible reads them: `host:port`, `[v6]:port` and `web[01:20]` ranges.

The grammar follows Ansible's documented rules: a name with an optional `:port` is a
hostname (DNS-like labels, underscores allowed), an IPv4 or an IPv6 address, each of which
may contain `[begin:end(:step)]` ranges. A string that fits none of them is still a host
name, taken as written and without a port, exactly as Ansible does.
"""

from __future__ import annotations

import ipaddress
import re
import string

_NUM_RANGE = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]"
_HEX_RANGE = r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w-]|{_ALNUM_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z", re.IGNORECASE | re.UNICODE)
_V4_PART = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUM_RANGE})"
_IPV4 = re.compile(rf"(?:{_V4_PART}\.){{3}}{_V4_PART}\Z")
_HEX_RANGE_RE = re.compile(_HEX_RANGE, re.IGNORECASE)
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)\Z")
# Everything up to the last ':' that is not inside a [...] range, then digits.
_NAME_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)\Z")


class RangeError(ValueError):
    """A `[begin:end:step]` host range that cannot be expanded; the text says why."""


def _is_ipv6(text: str) -> bool:
    if "%" in text or ":" not in text:
        return False
    candidate = _HEX_RANGE_RE.sub("0", text)
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def is_address(text: str) -> bool:
    """True when `text` is a hostname, IPv4 or IPv6 address (ranges allowed), no port."""
    return bool(_IPV4.match(text) or _HOSTNAME.match(text) or _is_ipv6(text))


def parse_address(text: str) -> tuple[str, int | None] | None:
    """Split `host:port` / `[host]:port`; None when `text` is not a valid address."""
    host, port = text, None
    for pattern in (_BRACKETED_PORT, _NAME_PORT):
        found = pattern.match(host)
        if found:
            host, port = found.group(1), int(found.group(2))
    if not is_address(host):
        return None
    return host, port


def split_host_and_port(text: str) -> tuple[str, int | None]:
    """Host name and port as Ansible takes them from an inventory entry."""
    parsed = parse_address(text)
    return parsed if parsed is not None else (text, None)


def expand_ranges(name: str) -> list[str]:
    """Expand every `[a:b]`, `[a:b:step]` or `[x:z]` range in `name`; raise RangeError."""
    if "[" not in name:
        return [name]
    start = name.find("[")
    end = name.find("]")
    if end < 0 or end < start:
        raise RangeError("a host range needs a closing ']' after its '['")
    head, spec, tail = name[:start], name[start + 1 : end], name[end + 1 :]
    names: list[str] = []
    for item in _range_items(spec):
        names.extend(expand_ranges(head + item + tail))
    return names


def _range_items(spec: str) -> list[str]:
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise RangeError(f"host range [{spec}] must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    if not end:
        raise RangeError(f"host range [{spec}] must have an end value")
    step = _step(bounds[2] if len(bounds) == 3 else "1", spec)
    if len(begin) == 1 and len(end) == 1 and begin.isalpha() and end.isalpha():
        return _letters(begin, end, step, spec)
    if not (begin.isdigit() and end.isdigit()):
        raise RangeError(
            f"host range [{spec}] must be numbers like [01:20] or single letters like [a:f]"
        )
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise RangeError(
            f"host range [{spec}] starts with a zero, so its begin and end must have "
            "the same number of digits"
        )
    low, high = int(begin), int(end)
    if low > high:
        raise RangeError(f"host range [{spec}] must have begin <= end")
    return [str(number).zfill(width) for number in range(low, high + 1, step)]


def _step(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise RangeError(f"host range [{spec}] must have a positive whole step")
    return int(text)


def _letters(begin: str, end: str, step: int, spec: str) -> list[str]:
    letters = string.ascii_letters  # a..z then A..Z, the order Ansible counts in
    low, high = letters.find(begin), letters.find(end)
    if low < 0 or high < 0:
        raise RangeError(f"host range [{spec}] must use ASCII letters")
    if low > high:
        raise RangeError(f"host range [{spec}] must have begin <= end")
    return list(letters[low : high + 1 : step])
