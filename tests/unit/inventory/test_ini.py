"""The INI format: sections, ranges, ports, value types, and every error message."""

from __future__ import annotations

from pathlib import Path

import pytest
from opsbook.errors import InventoryError

from .helpers import errors, load, write


def test_hosts_before_any_section_are_ungrouped(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        # comment
        ; other comment
        solo
        [web]
        web1
    """,
    )
    assert inv.groups["ungrouped"].hosts == ("solo",)
    assert inv.groups["web"].hosts == ("web1",)
    assert inv.host("solo").groups == ("ungrouped",)


def test_ungrouped_host_listed_in_a_group_later_leaves_ungrouped(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        solo
        [web]
        solo
    """,
    )
    assert inv.groups["ungrouped"].hosts == ()
    assert inv.host("solo").groups == ("web",)


def test_inline_host_values_are_python_literals(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        h i=5 f=1.5 b=True n=None s='05' l="[1, 'a']" t="(1, 2)" y=yes e= x=0x10 c=1j w="a b"
    """,
    )
    assert dict(inv.host("h").vars) == {
        "i": 5, "f": 1.5, "b": True, "n": None, "s": "05", "l": [1, "a"], "t": [1, 2],
        "y": "yes", "e": "", "x": 16, "c": "1j", "w": "a b",
    }  # fmt: skip


def test_group_vars_section_values_are_literals_too_with_everything_after_equals(
    tmp_path: Path,
) -> None:
    # Ansible's docs say [g:vars] values are strings; ansible-core literal_evals them.
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [g]
        h
        [g:vars]
        port=8080
        on = True
        text = two words ; not a comment
        path=/srv # kept
        expr=1 # a Python comment, so literal_eval gives 1
        eq=a=b
    """,
    )
    assert dict(inv.host("h").vars) == {
        "port": 8080, "on": True, "text": "two words ; not a comment",
        "path": "/srv # kept", "expr": 1, "eq": "a=b",
    }  # fmt: skip


def test_hash_after_a_host_starts_a_comment_even_inside_a_word(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "h x=a#b y=2\n")
    assert dict(inv.host("h").vars) == {"x": "a"}


def test_ranges_ports_and_addresses(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [g]
        web[01:03]:2222
        db-[a:c]
        s[0:10:5]
        r[1:2]-[x:y]
        10.0.0.[1:2]
        [2001:db8::1]:22
        odd/name:22
    """,
    )
    assert inv.groups["g"].hosts == (
        "web01", "web02", "web03", "db-a", "db-b", "db-c", "s0", "s5", "s10",
        "r1-x", "r1-y", "r2-x", "r2-y", "10.0.0.1", "10.0.0.2", "2001:db8::1", "odd/name:22",
    )  # fmt: skip
    assert inv.host("web02").vars["ansible_port"] == 2222
    assert inv.host("2001:db8::1").vars["ansible_port"] == 22
    assert "ansible_port" not in inv.host("odd/name:22").vars


def test_port_counts_only_where_the_host_is_first_seen(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [a]
        h:2201
        [b]
        h:2202
    """,
    )
    assert inv.host("h").vars["ansible_port"] == 2201


def test_children_may_be_declared_before_their_group(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [top:children]
        mid
        [mid:children]
        leaf
        [leaf]
        h
        [mid:vars]
        v=1
    """,
    )
    assert inv.groups["top"].children == ("mid",)
    assert inv.groups["mid"].children == ("leaf",)
    assert inv.groups["leaf"].depth == 3
    assert inv.host("h").groups == ("leaf", "mid", "top")
    assert inv.groups["all"].children == ("ungrouped", "top")


def test_every_error_is_reported_with_line_and_column(tmp_path: Path) -> None:
    assert errors(tmp_path, "bad.ini", """
        host1 ; comment
        [web:var]
        ignored line
        [db group]
        [ok]
        web[1:]
        web[a:3]
        web[3:1]
        web[1:3:0]
        web[01:100]
        web[1:3
        web:
        h1 "unterminated
        h2   novalue
        ---
        [ok:vars]
        noequals
        =1
        [ok:children]
        a b
        ghost
        [orphan:vars]
        y=1
    """) == [
        '1:7: expected key=value after the host name, found ";"',
        '2:6: unknown section kind "var" in [web:var] (did you mean "vars"?)',
        "4:1: invalid section header '[db group]'",
        '6:1: invalid host range in "web[1:]": host range [1:] must have an end value',
        ('7:1: invalid host range in "web[a:3]": host range [a:3] must be numbers like '
        "[01:20] or single letters like [a:f]"),
        '8:1: invalid host range in "web[3:1]": host range [3:1] must have begin <= end',
        ('9:1: invalid host range in "web[1:3:0]": host range [1:3:0] must have a positive '
        "whole step"),
        ('10:1: invalid host range in "web[01:100]": host range [01:100] starts with a zero, '
        "so its begin and end must have the same number of digits"),
        ('11:1: invalid host range in "web[1:3": a host range needs a closing \']\' after '
        "its '['"),
        '12:1: invalid host "web:": a ":" after a host name must be followed by a port',
        "13:1: cannot read host line: no closing quotation",
        '14:6: expected key=value after the host name, found "novalue"',
        '15:1: "---" is not a host name',
        '17:1: expected "key=value" in [ok:vars], found "noequals"',
        '18:1: expected "key=value" in [ok:vars], found "=1"',
        '20:1: expected a group name in [ok:children], found "a b"',
        '21:1: [ok:children] includes undefined group "ghost"',
        "22:1: [orphan:vars] sets variables of an undefined group",
    ]  # fmt: skip


def test_hints_say_what_to_write(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.ini", "[web:child]\n")
    with pytest.raises(InventoryError) as caught:
        from opsbook.inventory import load_inventory

        load_inventory([path])
    assert caught.value.hint == "expected [web], [web:vars] or [web:children]"
    assert str(caught.value) == (
        f'{path}:1:6: error: unknown section kind "child" in [web:child] '
        '(did you mean "children"?)\n  hint: expected [web], [web:vars] or [web:children]'
    )


def test_undefined_child_suggests_a_close_group(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "bad.ini",
        """
        [webservers]
        w1
        [prod:children]
        webserver
    """,
    ) == ['4:1: [prod:children] includes undefined group "webserver" (did you mean "webservers"?)']


def test_group_loops_are_errors(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "bad.ini",
        """
        [a:children]
        b
        [b:children]
        a
        [c:children]
        c
    """,
    ) == [
        '4:1: making "a" a child of "b" creates a loop: "b" is already below "a"',
        '6:1: group "c" cannot be a child of itself',
    ]


def test_value_literal_eval_cannot_build_is_an_error(tmp_path: Path) -> None:
    assert errors(tmp_path, "bad.ini", 'h x="{[1]: 2}"\n') == [
        "1:3: cannot evaluate value '{[1]: 2}': unhashable type: 'list'"
    ]


def test_non_utf8_is_allowed_in_comments_only(tmp_path: Path) -> None:
    path = tmp_path / "latin.ini"
    path.write_bytes(b"# caf\xe9\n[g]\nh\n")
    from opsbook.inventory import load_inventory

    assert load_inventory([path]).groups["g"].hosts == ("h",)
    path.write_bytes(b"[g]\ncaf\xe9\n")
    with pytest.raises(InventoryError, match=r"latin.ini:2:4: error: line is not UTF-8 text"):
        load_inventory([path])


def test_smaller_mistakes_on_host_and_vars_lines(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "bad.ini",
        """
        ""
        h =x
        [g]
        h
        [g:vars]
        ansible_group_priority=high
        """,
    ) == [
        "1:1: expected a host name at the start of the line",
        '2:3: missing variable name before "=x"',
        "6:1: ansible_group_priority must be a whole number, found 'high'",
    ]
