"""The public API: the implicit inventory, lookups, read-only results, graph options."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opsbook.errors import PatternError
from opsbook.inventory import Group, Host, ansible_graph, ansible_list, load_inventory

from .helpers import load


def test_localhost_inventory_is_what_ansible_uses_without_inventory() -> None:
    inv = load_inventory([])
    assert list(inv.groups) == ["all", "ungrouped"]
    assert dict(inv.hosts) == {}
    assert inv.match("all") == []
    (local,) = inv.match("localhost")
    assert isinstance(local, Host) and local.name == "localhost" and local.implicit
    assert dict(local.vars) == {
        "ansible_python_interpreter": sys.executable,
        "ansible_connection": "local",
    }
    assert ansible_list(inv) == {
        "all": {"children": ["ungrouped"]},
        "_meta": {"hostvars": {}, "profile": "inventory_legacy"},
    }


def test_unknown_host_suggests_a_name(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[web]\nweb1\n")
    with pytest.raises(PatternError) as caught:
        inv.host("wbe1")
    assert caught.value.message == 'unknown host "wbe1" (did you mean "web1"?)'


def test_results_are_read_only(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[web]\nweb1 x=1\n")
    with pytest.raises(TypeError):
        inv.hosts["other"] = inv.host("web1")  # type: ignore[index]
    with pytest.raises(TypeError):
        inv.host("web1").vars["x"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        inv.host("web1").name = "x"  # type: ignore[misc]


def test_groups_describe_the_tree(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [web]
        w1
        [prod:children]
        web
        [web:vars]
        a=1
    """,
    )
    web = inv.groups["web"]
    assert isinstance(web, Group)
    assert (web.hosts, web.children, web.parents, web.depth) == (("w1",), (), ("prod",), 2)
    assert dict(web.vars) == {"a": 1}
    assert web.position is not None and (web.position.line, web.position.column) == (1, 1)
    assert inv.host("w1").position is not None and inv.host("w1").position.line == 2
    assert [h.name for h in inv.hosts_of("prod")] == ["w1"]


def test_graph_of_one_group(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[web]\nw1 a=1\n[prod:children]\nweb\n")
    assert ansible_graph(inv, group="prod") == "@prod:\n  |--@web:\n  |  |--w1"
    assert ansible_graph(inv, vars=True, group="web") == "@web:\n  |--w1\n  |  |--{a = 1}"
    with pytest.raises(PatternError, match='unknown group "wbe"'):
        ansible_graph(inv, group="wbe")


def test_host_and_group_with_one_name_is_a_warning(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.ini", "[g]\ndual\n[dual]\nx\n")
    assert [w.message for w in inv.warnings] == ['"dual" is both a group and a host name']
    assert inv.warnings[0].severity == "warning"
