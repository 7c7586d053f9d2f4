"""Text meant for a person's terminal, with every control character made visible.

What a target prints, what a template renders and what an inventory holds reach the
terminal through opsbook's output (live lines, `show`, `report`, approval prompts, errors).
Raw, an escape sequence there clears the screen, writes the clipboard (OSC 52), plants a
link (OSC 8) or redraws a `failed` line as `ok`; a Unicode direction override reorders what
is read. `visible()` shows each such character as an escape (`\\x1b`, `\\u202e`) instead.
Newlines and tabs are kept where text has lines (an output tail), and shown as `\\n` where
one line is expected (a prompt, a message).
"""

from __future__ import annotations

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LINES = {code: _escape(code) for code in [*_CONTROLS, *_BIDI] if code not in (0x09, 0x0A)}
_ONE_LINE = {**_LINES, 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}


def visible(text: str, lines: bool = True) -> str:
    """`text` with control characters shown as escapes; with lines=False newlines too."""
    return text.translate(_LINES if lines else _ONE_LINE)
