"""Host patterns: Ansible's operators, order, subscripts, and errors for typos."""

from __future__ import annotations

from pathlib import Path

import pytest
from opsbook.errors import PatternError, Position
from opsbook.inventory import Inventory

from .helpers import load, names

INI = """
    lonely
    [web]
    web1
    web2
    web3
    [db]
    db1
    db2
    web1
    [prod:children]
    web
    db
    [prod]
    extra.example.com
    [canary]
    web3
"""


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return load(tmp_path, "hosts.ini", INI)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # breadth first: canary (depth 1) comes before web and db (depth 2)
        ("all", ["lonely", "extra.example.com", "web3", "web1", "web2", "db1", "db2"]),
        ("*", ["lonely", "extra.example.com", "web3", "web1", "web2", "db1", "db2"]),
        ("web", ["web1", "web2", "web3"]),
        ("web:db", ["web1", "web2", "web3", "db1", "db2"]),
        ("db,web", ["db1", "db2", "web1", "web2", "web3"]),
        ("web db", ["web1", "web2", "web3", "db1", "db2"]),
        ("web:&db", ["web1"]),
        ("prod:!web", ["extra.example.com", "db1", "db2"]),
        ("!web:db", ["db1", "db2"]),  # exclusions apply after every plain term
        ("&db:web", ["web1"]),
        ("!prod", ["lonely"]),  # only exclusions: start from all
        ("prod:!canary:!db1", ["extra.example.com", "web1", "web2", "db2"]),
        ("web*", ["web1", "web2", "web3"]),
        ("*.example.com", ["extra.example.com"]),
        ("~(web|db)[12]", ["web1", "web2", "db1", "db2"]),
        ("~eb|web1", ["web1"]),  # a regex matches at the start of the name
        ("web[0]", ["web1"]),
        ("web[-1]", ["web3"]),
        ("web[1:]", ["web2", "web3"]),
        ("web[0:1]", ["web1", "web2"]),
        ("web[0-1]", ["web1", "web2"]),
        ("prod[0]", ["extra.example.com"]),
        ("web2", ["web2"]),
        ("web2:web1", ["web2", "web1"]),
        ("ungrouped", ["lonely"]),
        ("db:web1", ["db1", "db2", "web1"]),
    ],
)
def test_pattern(inv: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(inv.match(pattern)) == expected


def test_an_empty_group_matches_no_host_without_error(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[empty]\n[web]\nw\n")
    assert inv.match("empty") == []
    assert inv.match("web:&empty") == []


def test_results_are_cached_but_callers_get_their_own_list(inv: Inventory) -> None:
    first = inv.match("web")
    first.clear()
    again = inv.match("web")
    assert names(again) == ["web1", "web2", "web3"]
    assert again[0] is inv.host("web1")


def test_unknown_name_is_an_error_with_did_you_mean(inv: Inventory) -> None:
    where = Position("runbook.yaml", 7, 12)
    with pytest.raises(PatternError) as caught:
        inv.match("wbe", position=where)
    assert str(caught.value) == (
        'runbook.yaml:7:12: error: host pattern "wbe" matches no host or group '
        '(did you mean "web"?)\n  hint: close names: web, web3, web2, web1'
    )


def test_unknown_term_in_a_larger_pattern_is_named(inv: Inventory) -> None:
    with pytest.raises(PatternError) as caught:
        inv.match("web:!web9:&prdo")
    assert caught.value.message == (
        'host pattern "web:!web9:&prdo": "prdo", "web9" match no host or group '
        '(did you mean "prod"?)'
    )


def test_no_close_name_lists_the_groups(inv: Inventory) -> None:
    with pytest.raises(PatternError) as caught:
        inv.match("zzzzzz")
    assert caught.value.hint == "groups: web, db, prod, canary"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty host pattern"),
        (" , ", "empty host pattern"),
        (
            "~(web",
            (
                'invalid regular expression in host pattern "~(web": '
                "missing ), unterminated subpattern at position 0"
            ),
        ),
        ("web[3]", 'host pattern "web[3]": index out of range, "web" has 3 hosts'),
        ("web[5:6]", 'host pattern "web[5:6]" selects no host: "web" has 3 hosts'),
    ],
)
def test_malformed_patterns(inv: Inventory, pattern: str, message: str) -> None:
    with pytest.raises(PatternError) as caught:
        inv.match(pattern)
    assert caught.value.message == message


def test_localhost_is_implicit_when_not_in_the_inventory(inv: Inventory) -> None:
    (local,) = inv.match("localhost")
    assert local.implicit and local.groups == ()
    assert local.vars["ansible_connection"] == "local"
    assert "localhost" not in inv.hosts
    assert names(inv.match("all")) == names(inv.hosts.values())
    assert names(inv.match("web:localhost")) == ["web1", "web2", "web3", "localhost"]


def test_an_inventory_localhost_stands_for_every_localhost_name(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "localhost ansible_connection=local\n[g]\nother\n")
    assert names(inv.match("127.0.0.1")) == ["localhost"]
    assert inv.host("::1") is inv.host("localhost")
    assert names(inv.match("all")) == ["localhost", "other"]


def test_exact_host_name_wins_over_a_group_of_that_name(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[g]\nsame\n[same]\nx\n")
    assert names(inv.match("same")) == ["same"]
    assert names(inv.match("sam*")) == ["x", "same"]
