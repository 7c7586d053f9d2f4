"""Sources: several -i, directories, host lists, group_vars/host_vars, and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opsbook.errors import InventoryError
from opsbook.inventory import load_inventory

from .helpers import write


def messages(caught: pytest.ExceptionInfo[InventoryError]) -> list[str]:
    return [f"{d.position}: {d.message}" for d in caught.value.diagnostics]


def test_sources_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "a/one.ini", "[web]\nw1 src=a\n")
    second = write(tmp_path, "b/two.yml", "web:\n  hosts:\n    w1: {src: b}\n    w2:\n")
    inv = load_inventory([first, second])
    assert inv.groups["web"].hosts == ("w1", "w2")
    assert inv.host("w1").vars["src"] == "b"
    assert inv.sources == (str(first), str(second))


def test_directory_loads_files_sorted_and_skips_what_ansible_skips(tmp_path: Path) -> None:
    write(tmp_path, "inv/b.ini", "[b]\nhb\n")
    write(tmp_path, "inv/a.yml", "a:\n  hosts: {ha: }\n")
    write(tmp_path, "inv/sub/c", "[c]\nhc\n")
    for skipped in (
        "README.md",
        "x.txt",
        "x.bak",
        "x~",
        ".hidden",
        "x.retry",
        "x.cfg",
        "x.orig",
        "x.pyc",
        "x.swp",
        "x.rst",
        "x.rpm",
        "x.pyo",
    ):
        write(tmp_path, f"inv/{skipped}", "[broken\n")
    write(tmp_path, "inv/group_vars/a.yml", "from_dir: 1\n")
    write(tmp_path, "inv/host_vars/hb.yml", "hb_file: 1\n")
    inv = load_inventory([tmp_path / "inv"])
    assert list(inv.groups) == ["all", "ungrouped", "a", "b", "c"]
    assert inv.host("ha").vars == {"from_dir": 1}
    assert inv.host("hb").vars == {"hb_file": 1}


def test_host_list_source(tmp_path: Path) -> None:
    inv = load_inventory(["h1, h2:2222,,[::1]:22,web[1:2]"])
    assert list(inv.hosts) == ["h1", "h2", "::1", "web[1:2]"]
    assert inv.host("h2").vars == {"ansible_port": 2222}
    assert inv.host("::1").vars == {"ansible_port": 22}
    assert inv.groups["ungrouped"].hosts == ("h1", "h2", "::1", "web[1:2]")


def test_file_without_extension_is_tried_as_yaml_then_ini(tmp_path: Path) -> None:
    yaml_one = write(tmp_path, "yaml_hosts", "g:\n  hosts: {y1: }\n")
    ini_one = write(tmp_path, "ini_hosts", "[g]\ni1\n")
    assert list(load_inventory([yaml_one, ini_one]).hosts) == ["y1", "i1"]


def test_yml_file_holding_ini_is_read_as_ini_like_ansible(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "hosts.yml", "[web]\nw1 x=1\n")])
    assert inv.host("w1").vars == {"x": 1}


def test_missing_source_suggests_a_close_name(tmp_path: Path) -> None:
    write(tmp_path, "hosts.ini", "h\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([tmp_path / "host.ini"])
    assert messages(caught) == [
        (
            f"{tmp_path}/host.ini: inventory source not found: {tmp_path}/host.ini "
            '(did you mean "hosts.ini"?)'
        )
    ]


def test_errors_of_several_sources_are_reported_together(tmp_path: Path) -> None:
    one = write(tmp_path, "one.ini", "[a:b]\n")
    two = write(tmp_path, "two.yml", "all:\n  hostz: {}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([one, two, tmp_path / "three"])
    assert messages(caught) == [
        f'{one}:1:4: unknown section kind "b" in [a:b]',
        f'{two}:2:3: unknown key "hostz" in group "all" (did you mean "hosts"?)',
        f"{tmp_path}/three: inventory source not found: {tmp_path}/three",
    ]


def test_unsupported_kinds_of_source(tmp_path: Path) -> None:
    script = write(tmp_path, "ec2.py", "#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o755)
    toml = write(tmp_path, "hosts.toml", "[web]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([script, toml])
    assert messages(caught) == [
        f"{script}:1:1: dynamic inventory scripts are not supported",
        f"{toml}: TOML inventories are not supported",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "h\n")
    path.chmod(0)
    with pytest.raises(InventoryError, match="cannot read inventory file: Permission denied"):
        load_inventory([path])


def test_unreadable_file_as_a_directory_entry_is_reported(tmp_path: Path) -> None:
    # A dangling symlink cannot be opened: same path as an unreadable file, even as root.
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InventoryError) as caught:
        load_inventory([tmp_path / "inv"])
    assert messages(caught) == [
        f"{tmp_path}/inv/hosts: cannot read inventory file: No such file or directory"
    ]


def test_vars_files_lookup_order_and_directories(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "[web]\nw1\n")
    write(tmp_path, "group_vars/web", "pick: no_extension\n")
    write(tmp_path, "group_vars/web.yml", "pick: yml_loses\n")
    write(tmp_path, "group_vars/all/01.yml", "a: 1\nb: 1\n")
    write(tmp_path, "group_vars/all/02/deeper.yaml", "b: 2\n")
    write(tmp_path, "group_vars/all/03.json", '{"c": 3}')
    write(tmp_path, "group_vars/all/04.txt", "c: ignored\n")
    write(tmp_path, "group_vars/all/.05.yml", "c: hidden\n")
    write(tmp_path, "group_vars/all/06.yml~", "c: backup\n")
    write(tmp_path, "group_vars/all/07.yml", "")
    write(tmp_path, "host_vars/w1.json", '{"h": true}')
    inv = load_inventory([source])
    assert inv.host("w1").vars == {"a": 1, "b": 2, "c": 3, "pick": "no_extension", "h": True}


def test_vars_file_errors(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "[web]\nw1\n[db]\nd1\n[vault]\nv1\n")
    write(tmp_path, "group_vars/web.yml", "- not\n- a mapping\n")
    write(tmp_path, "group_vars/db.yml", "x: [unclosed\n")
    write(tmp_path, "group_vars/vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([source])
    found = messages(caught)
    assert found[0] == (
        f"{tmp_path}/group_vars/web.yml:1:1: a variables file must be a mapping of variable "
        "names to values"
    )
    assert found[1].startswith(f"{tmp_path}/group_vars/db.yml:2:1: invalid YAML:")
    assert found[2] == (
        f"{tmp_path}/group_vars/vault.yml:1:1: vault-encrypted variables files are not supported"
    )


def test_host_vars_that_is_a_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "h\n")
    write(tmp_path, "host_vars", "x: 1\n")
    inv = load_inventory([source])
    assert inv.host("h").vars == {}
    assert [w.message for w in inv.warnings] == ["host_vars is not a directory, skipped"]


def test_vars_file_that_is_not_utf8(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.ini", "[web]\nw1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_bytes(b"x: caf\xe9\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([source])
    assert messages(caught) == [
        f"{tmp_path}/group_vars/web.yml: variables file is not UTF-8 text (invalid continuation byte)"
    ]


def test_a_host_vars_link_to_a_file_that_is_not_variables_is_an_error_not_printed(tmp_path: Path) -> None:
    """Issue 24 item 7: a `host_vars/web2` symlink to a password file parsed leniently as
    `line: null` keys, and `opsbook inventory --host` printed them."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tHash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    (tmp_path / "host_vars").mkdir()
    os.symlink(secret, tmp_path / "host_vars" / "web2")
    inv = write(tmp_path, "inv.ini", "[web]\nweb2\n")
    with pytest.raises(InventoryError) as err:
        load_inventory([str(inv)])
    text = str(err.value)
    assert "host_vars/web2:1:1" in text and "not variable names" in text and "s3cr3tHash" not in text
