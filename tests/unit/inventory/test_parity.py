"""Parity with the real ansible-core over the inventories in data/parity.yaml.

For each case, `ansible-inventory --list`, `--graph`, `--graph --vars` and `ansible
PATTERN --list-hosts` are run once (in one batch, see conftest) and compared with
opsbook's reading of the same sources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from opsbook.errors import InventoryError, PatternError
from opsbook.inventory import Inventory, ansible_graph, ansible_list, load_inventory

from .conftest import DATA, Ansible

CASES: dict[str, dict[str, Any]] = yaml.safe_load((DATA / "parity.yaml").read_text())
PARITY = DATA / "parity"
REJECTED = sorted((DATA / "rejected").iterdir())
NO_MATCH = "Could not match supplied host pattern"


def sources_of(case: str) -> list[str]:
    return [s if "," in s else str(PARITY / s) for s in CASES[case]["sources"]]


def patterns_of(case: str) -> list[str]:
    return [*CASES[case].get("patterns", []), *CASES[case].get("unordered_patterns", [])]


def commands(case: str) -> dict[str, list[str]]:
    args = [arg for source in sources_of(case) for arg in ("-i", source)]
    found = {
        "list": ["ansible-inventory", *args, "--list"],
        "graph": ["ansible-inventory", *args, "--graph"],
        "graph-vars": ["ansible-inventory", *args, "--graph", "--vars"],
    }
    for group in CASES[case].get("graph_groups", []):
        found[f"graph {group}"] = ["ansible-inventory", *args, "--graph", "--vars", group]
    for pattern in patterns_of(case):
        found[f"pattern {pattern}"] = ["ansible", *args, pattern, "--list-hosts"]
    return found


@pytest.fixture(scope="session")
def outputs(ansible: Ansible) -> dict[tuple[str, str], dict[str, Any]]:
    keys: list[tuple[str, str]] = []
    argvs: list[list[str]] = []
    for case in CASES:
        for kind, argv in commands(case).items():
            keys.append((case, kind))
            argvs.append(argv)
    for path in REJECTED:
        keys.append(("rejected", path.name))
        argvs.append(["ansible-inventory", "-i", str(path), "--list"])
    return dict(zip(keys, ansible.run_many(argvs)))


def _ok(result: dict[str, Any]) -> str:
    assert result["rc"] == 0, result["stderr"]
    stdout: str = result["stdout"]
    return stdout


def ansible_order_is_stable(inventory: Inventory, group: str) -> bool:
    """False when Ansible's order of the group's hosts depends on Python set order.

    Ansible walks child groups breadth first, but iterates each level as a set of Group
    objects: when two groups of one level both bring new child groups, their order
    changes from run to run (it follows memory addresses).
    """
    if group not in inventory.groups:
        return True
    seen = {group}
    level = [group]
    while level:
        bringing = [g for g in level if set(inventory.groups[g].children) - seen]
        if len(bringing) > 1:
            return False
        below = [c for g in level for c in inventory.groups[g].children if c not in seen]
        seen.update(below)
        level = list(dict.fromkeys(below))
    return True


def listed_hosts(stdout: str) -> list[str]:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    assert lines and lines[0].startswith("hosts ("), stdout
    return lines[1:]


@pytest.mark.parametrize("case", list(CASES))
def test_list_matches_ansible_inventory(case: str, outputs: dict[tuple[str, str], Any]) -> None:
    expected = json.loads(_ok(outputs[case, "list"]))
    assert ansible_list(load_inventory(sources_of(case))) == expected


@pytest.mark.parametrize("case", list(CASES))
def test_graph_matches_ansible_inventory(case: str, outputs: dict[tuple[str, str], Any]) -> None:
    inventory = load_inventory(sources_of(case))
    assert ansible_graph(inventory) == _ok(outputs[case, "graph"]).rstrip("\n")
    assert ansible_graph(inventory, vars=True) == _ok(outputs[case, "graph-vars"]).rstrip("\n")


GRAPH_CASES = [(case, group) for case in CASES for group in CASES[case].get("graph_groups", [])]


@pytest.mark.parametrize(("case", "group"), GRAPH_CASES)
def test_graph_of_a_group_matches_ansible_inventory(
    case: str, group: str, outputs: dict[tuple[str, str], Any]
) -> None:
    expected = _ok(outputs[case, f"graph {group}"]).rstrip("\n")
    assert ansible_graph(load_inventory(sources_of(case)), vars=True, group=group) == expected


PATTERN_CASES = [(case, p) for case in CASES for p in patterns_of(case)]


@pytest.mark.parametrize(
    ("case", "pattern"), PATTERN_CASES, ids=[f"{c}:{p}" for c, p in PATTERN_CASES]
)
def test_pattern_matches_ansible(
    case: str, pattern: str, outputs: dict[tuple[str, str], Any]
) -> None:
    result = outputs[case, f"pattern {pattern}"]
    inventory = load_inventory(sources_of(case))
    if NO_MATCH in result["stderr"]:
        with pytest.raises(PatternError):
            inventory.match(pattern)
        return
    expected = listed_hosts(_ok(result))
    found = [host.name for host in inventory.match(pattern)]
    unordered = CASES[case].get("unordered_patterns", [])
    if pattern in unordered or not ansible_order_is_stable(inventory, pattern):
        assert sorted(found) == sorted(expected)
        assert len(found) == len(set(found))
    else:
        assert found == expected


def test_driver_agrees_with_the_real_command(ansible: Ansible) -> None:
    """The forking driver gives what the ansible-inventory executable prints."""
    import subprocess

    from .conftest import ansible_env

    source = str(PARITY / "ini_children" / "hosts")
    binary = Path(str(ansible.python)).parent / "ansible-inventory"
    real = subprocess.run(
        [str(binary), "-i", source, "--graph", "--vars"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ansible.cwd,
        env=ansible_env(ansible.cwd),
    )
    driven = ansible.run(["ansible-inventory", "-i", source, "--graph", "--vars"])
    assert driven["stdout"] == real.stdout


@pytest.mark.parametrize("path", REJECTED, ids=[path.name for path in REJECTED])
def test_inventories_ansible_rejects_are_errors(
    path: Path, outputs: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """What Ansible cannot parse is an error here too; "stricter_" files are the cases
    where Ansible only warns and drops part of the inventory, which opsbook refuses."""
    stderr = outputs["rejected", path.name]["stderr"]
    if path.name.startswith("stricter_"):
        assert "[WARNING]: Skipping" in stderr
    else:
        assert "Failed to parse" in stderr
    with pytest.raises(InventoryError):
        load_inventory([path])
