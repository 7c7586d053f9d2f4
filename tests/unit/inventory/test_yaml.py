"""The YAML format: structure, ranges in host names, and structure errors with positions."""

from __future__ import annotations

from pathlib import Path

from .helpers import errors, load


def test_all_with_hosts_vars_and_nested_children(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "inv.yml",
        """
        all:
          vars: {level: all}
          hosts:
            bastion:
          children:
            web:
              hosts:
                web[1:2]:8080: {role: web}
                web3:
            db:
              children:
                primary: {hosts: db1}
    """,
    )
    assert list(inv.groups) == ["all", "ungrouped", "web", "db", "primary"]
    assert inv.groups["all"].children == ("ungrouped", "web", "db")
    assert inv.groups["ungrouped"].hosts == ("bastion",)
    assert dict(inv.host("web2").vars) == {"level": "all", "ansible_port": 8080, "role": "web"}
    assert inv.host("db1").groups == ("db", "primary")
    assert list(inv.hosts) == ["bastion", "web1", "web2", "web3", "db1"]


def test_top_level_groups_outside_all_go_under_all(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        "inv.yaml",
        """
        staging:
          hosts: {s1: null}
    """,
    )
    assert inv.groups["all"].children == ("ungrouped", "staging")


def test_empty_yaml_file_is_an_empty_inventory(tmp_path: Path) -> None:
    inv = load(tmp_path, "inv.yml", "# nothing yet\n")
    assert list(inv.hosts) == []
    assert list(inv.groups) == ["all", "ungrouped"]


def test_structure_errors_name_the_key_and_what_was_expected(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "bad.yml",
        """
        all:
          host:
            web1:
          children:
            web:
              hosts:
                - web1
            db: [a]
            ok:
              hosts:
                123:
                good: "string"
                bad[1:: {}
              vars:
                ansible_group_priority: high
                7: seven
            7: {}
            loop:
              children:
                loop:
    """,
    ) == [
        '2:3: unknown key "host" in group "all" (did you mean "hosts"?)',
        '6:7: "hosts" of group "web" must be a mapping, found a list',
        '8:5: group "db" must be a mapping with "hosts", "vars" or "children", found a list',
        "11:9: host name must be a non-empty string, found 123",
        '12:9: variables of host "good" must be a mapping, found a string',
        "13:9: invalid host range in \"bad[1:\": a host range needs a closing ']' after its '['",
        "15:9: ansible_group_priority must be a whole number, found 'high'",
        "16:9: variable name must be a string, found 7",
        "17:5: group name must be a non-empty string, found 7",
        '20:9: group "loop" cannot be a child of itself',
    ]


def test_yaml_syntax_errors_are_inventory_errors(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "bad.yml",
        """
        all:
          hosts:
            a: {x: 1
    """,
    ) == ["4:1: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping)"]


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "dup.yml",
        """
        all:
          hosts:
            a:
            a:
    """,
    ) == ['4:5: duplicate key "a" (first defined at line 3)']


def test_list_at_top_is_not_an_inventory(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "play.yml",
        """
        - hosts: all
          tasks: []
    """,
    ) == ["1:1: a YAML inventory must be a mapping of group names, found a list"]


def test_inventory_plugin_configs_are_refused(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        "aws_ec2.yml",
        """
        plugin: amazon.aws.aws_ec2
        regions: [eu-west-1]
    """,
    ) == [
        (
            "1:1: this is the configuration of inventory plugin 'amazon.aws.aws_ec2'; "
            "opsbook reads only static INI and YAML inventories"
        )
    ]
