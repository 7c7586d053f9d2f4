"""Variable precedence as Ansible's, and `var_sources` telling where each value came from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opsbook.inventory import Inventory, load_inventory

from .helpers import load, write


def fold(inv: Inventory, host: str) -> dict[str, object]:
    merged: dict[str, object] = {}
    for key, _, value in inv.var_sources(host):
        merged[key] = value
    return merged


def test_child_groups_beat_parents_and_names_break_ties(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [parent:children]
        child
        [child]
        h
        [b_peer]
        h
        [a_peer]
        h
        [all:vars]
        v=all
        [parent:vars]
        v=parent
        [a_peer:vars]
        v=a_peer
        peer=a
        [b_peer:vars]
        peer=b
        [child:vars]
        v=child
    """,
    )
    # depth: a_peer, b_peer and parent are 1, child is 2; same depth sorts by name
    assert inv.host("h").vars == {"v": "child", "peer": "b"}
    assert inv.groups["child"].depth == 2


def test_group_priority_beats_name_order_at_the_same_depth(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "hosts.ini",
        """
        [a]
        h
        [b]
        h
        [a:vars]
        ansible_group_priority=10
        v=a
        [b:vars]
        v=b
    """,
    )
    assert inv.host("h").vars == {"v": "a"}
    assert inv.groups["a"].priority == 10
    assert inv.groups["a"].vars == {"v": "a", "ansible_group_priority": 10}


def test_host_vars_beat_group_vars_and_host_vars_files_beat_inline(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "[g]\nh v=inline w=inline\n[g:vars]\nv=group\nu=group\n")
    write(tmp_path, "host_vars/h.yml", "w: file\n")
    assert load_inventory([source]).host("h").vars == {"v": "inline", "w": "file", "u": "group"}


def test_any_group_vars_file_beats_every_inventory_group_var(tmp_path: Path) -> None:
    # Ansible merges all inventory group vars first, then group_vars files: so a file of
    # the parent (or of all) beats an inventory var of the child.
    source = write(
        tmp_path,
        "hosts.ini",
        """
        [parent:children]
        child
        [child]
        h
        [child:vars]
        a=child_inventory
        b=child_inventory
    """,
    )
    write(tmp_path, "group_vars/parent.yml", "a: parent_file\n")
    write(tmp_path, "group_vars/all.yml", "b: all_file\n")
    assert load_inventory([source]).host("h").vars == {"a": "parent_file", "b": "all_file"}


def test_a_later_sources_group_vars_beat_an_earlier_sources_whatever_the_group(
    tmp_path: Path,
) -> None:
    first = write(tmp_path, "one/hosts.ini", "[parent:children]\nchild\n[child]\nh\n")
    write(tmp_path, "one/group_vars/child.yml", "v: one_child\n")
    second = write(tmp_path, "two/hosts.ini", "[parent]\n")
    write(tmp_path, "two/group_vars/parent.yml", "v: two_parent\n")
    assert load_inventory([first, second]).host("h").vars == {"v": "two_parent"}
    assert load_inventory([second, first]).host("h").vars == {"v": "one_child"}


def test_var_sources_lists_every_definition_lowest_first(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "hosts.ini",
        """
        [web]
        web1:2222 v=host
        [web:vars]
        v=web
        [all:vars]
        v=all
    """,
    )
    write(tmp_path, "group_vars/web.yaml", "v: web_file\n")
    write(tmp_path, "host_vars/web1/a.yml", "v: host_file\n")
    inv = load_inventory([source])
    base = str(tmp_path)
    assert inv.var_sources("web1") == [
        ("v", f"group all ({source}:6)", "all"),
        ("v", f"group web ({source}:4)", "web"),
        ("v", f"{base}/group_vars/web.yaml", "web_file"),
        ("ansible_port", f"host web1 ({source}:2)", 2222),
        ("v", f"host web1 ({source}:2)", "host"),
        ("v", f"{base}/host_vars/web1/a.yml", "host_file"),
    ]
    assert fold(inv, "web1") == dict(inv.host("web1").vars)


def test_var_sources_uses_paths_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "hosts.ini", "[web]\nw\n")
    write(tmp_path, "group_vars/web.yaml", "x: 1\n")
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(["hosts.ini"])
    assert inv.var_sources("w") == [("x", "group_vars/web.yaml", 1)]


def test_yaml_positions_in_var_sources(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "inv.yml",
        """
        all:
          children:
            web:
              vars:
                port: 80
              hosts:
                w1:
                  port: 8080
    """,
    )
    assert load_inventory([source]).var_sources("w1") == [
        ("port", f"group web ({source}:5)", 80),
        ("port", f"host w1 ({source}:8)", 8080),
    ]


def test_implicit_localhost_gets_all_vars_and_its_host_vars_file(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "[g]\nh\n[all:vars]\nv=all\n")
    write(tmp_path, "host_vars/localhost.yml", "mine: yes\n")
    inv = load_inventory([source])
    assert inv.host("localhost").vars == {
        "v": "all",
        "ansible_python_interpreter": sys.executable,
        "ansible_connection": "local",
        "mine": True,
    }
    assert [where for _, where, _ in inv.var_sources("localhost")] == [
        f"group all ({source}:4)",
        "implicit localhost",
        "implicit localhost",
        f"{tmp_path}/host_vars/localhost.yml",
    ]


def test_folding_var_sources_gives_vars_for_every_parity_host() -> None:
    data = Path(__file__).parent / "data" / "parity"
    inv = load_inventory(
        [
            data / "vars_dirs" / "hosts.ini",
            data / "multi" / "a" / "first.ini",
            data / "multi" / "b" / "second.yml",
            data / "priority",
        ]
    )
    for name in inv.hosts:
        assert fold(inv, name) == dict(inv.host(name).vars), name
