"""10,000 hosts load and match well under a second (CPU time, so a busy machine is fair)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from opsbook.inventory import ansible_list, load_inventory

from .helpers import write


def _big_ini(root: Path) -> Path:
    lines = []
    for rack in range(100):
        lines.append(f"[rack{rack:03d}]")
        lines.append(f"node{rack:03d}-[00:99] rack={rack}")
        lines.append(f"[rack{rack:03d}:vars]")
        lines.append(f"rack_name=r{rack}")
    lines.append("[dc1:children]")
    lines.extend(f"rack{rack:03d}" for rack in range(50))
    lines.append("[dc2:children]")
    lines.extend(f"rack{rack:03d}" for rack in range(50, 100))
    lines.append("[all:vars]\nntp=ntp.example.com")
    write(root, "group_vars/dc1.yml", "dc: one\n")
    write(root, "host_vars/node000-00.yml", "special: true\n")
    return write(root, "big.ini", "\n".join(lines) + "\n")


def test_ten_thousand_hosts_load_and_match_fast(tmp_path: Path) -> None:
    source = _big_ini(tmp_path)
    started = time.process_time()
    inv = load_inventory([source])
    loaded = time.process_time() - started
    assert len(inv.hosts) == 10_000
    started = time.process_time()
    assert len(inv.match("all")) == 10_000
    assert len(inv.match("dc1:!rack000")) == 4_900
    assert len(inv.match("node0*-5*:&dc2")) == 500
    assert len(inv.match("~node09[0-9]-00")) == 10
    assert len(inv.match("rack042[10:19]")) == 10
    assert len(inv.match("node099-99")) == 1
    matched = time.process_time() - started
    started = time.process_time()
    for _ in range(1000):
        inv.match("dc1:!rack000")
    cached = time.process_time() - started
    assert inv.host("node000-00").vars["special"] is True
    assert inv.host("node010-10").vars == {
        "ntp": "ntp.example.com", "rack_name": "r10", "dc": "one", "rack": 10,
    }  # fmt: skip
    assert len(ansible_list(inv)["_meta"]["hostvars"]) == 10_000
    assert loaded < 1.0, f"loading took {loaded:.2f}s"
    assert matched < 0.5, f"matching took {matched:.2f}s"
    assert cached < 0.2, f"1000 cached matches took {cached:.2f}s"


def test_ten_thousand_host_lines_with_inline_vars(tmp_path: Path) -> None:
    lines = []
    for group in range(50):
        lines.append(f"[g{group}]")
        lines.extend(f"h{group}-{i} ansible_host=10.0.{group}.{i} idx={i}" for i in range(200))
    source = write(tmp_path, "hosts.ini", "\n".join(lines) + "\n")
    started = time.process_time()
    inv = load_inventory([source])
    took = time.process_time() - started
    assert inv.host("h7-9").vars == {"ansible_host": "10.0.7.9", "idx": 9}
    assert took < 1.0, f"loading took {took:.2f}s"


def test_yaml_inventory_costs_little_beyond_parsing_the_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parsing YAML with positions (opsbook.yamlsrc) is most of the time; what this module
    # adds on top is measured inside the same run, so a busy machine does not skew it.
    from opsbook.inventory import _sources
    from opsbook.yamlsrc import load_yaml

    parsing = 0.0

    def timed_load_yaml(text: str, filename: str = "<string>") -> Any:
        nonlocal parsing
        started = time.process_time()
        try:
            return load_yaml(text, filename)
        finally:
            parsing += time.process_time() - started

    monkeypatch.setattr(_sources, "load_yaml", timed_load_yaml)
    lines = ["all:", "  children:"]
    for group in range(50):
        lines += [f"    g{group}:", "      hosts:"]
        lines.extend(
            f"        h{group}-{i}: {{ansible_host: 10.0.{group}.{i}, idx: {i}}}"
            for i in range(200)
        )
    source = write(tmp_path, "hosts.yml", "\n".join(lines) + "\n")
    started = time.process_time()
    inv = load_inventory([source])
    total = time.process_time() - started
    assert len(inv.match("g4*")) == 2200
    assert total - parsing < 0.6, f"{total:.2f}s in all, {parsing:.2f}s of it parsing YAML"
