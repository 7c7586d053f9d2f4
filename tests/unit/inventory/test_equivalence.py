"""Shortcuts taken for speed give exactly what the slow, obviously-right way gives."""

from __future__ import annotations

import ast
import shlex
import warnings
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opsbook.errors import Position
from opsbook.inventory._builder import Builder
from opsbook.inventory._errors import Problems
from opsbook.inventory._ini import _coerce, _IniReader, _split_host_line

LINE_CHARS = st.sampled_from(list("ab =#\t;x:[]1\x0b\xa0'\"\\"))
VALUE_CHARS = st.sampled_from(list("0123456789abcxyzTrueFalsNo_.-+ej'\" [](){}:,"))


def literal_eval_like_ansible(text: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except Exception:  # noqa: BLE001 - the reader reports the other errors itself
        return text
    return _coerce(value)


@settings(max_examples=1000, deadline=None)
@given(st.text(LINE_CHARS, max_size=14).map(str.strip))
def test_host_line_split_equals_shlex(line: str) -> None:
    try:
        expected = shlex.split(line, comments=True)
    except ValueError:
        return
    assert _split_host_line(line) == expected


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.text(VALUE_CHARS, max_size=10),
        st.sampled_from(["True", "None", "-0", "00", "010", "1_0", "10.0.0.1", "1e5", "if"]),
    )
)
def test_value_shortcuts_equal_literal_eval(text: str) -> None:
    reader = _IniReader("x.ini", Builder(), Problems())
    got = reader._value(text, Position("x.ini", 1, 1))
    expected = literal_eval_like_ansible(text)
    assert got == expected
    assert type(got) is type(expected)
