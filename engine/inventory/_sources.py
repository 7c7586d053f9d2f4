"""Inventory sources as Ansible reads `-i`: files, directories and `host1,host2` lists.

A file is tried as YAML when its extension is empty, .yml, .yaml or .json and the YAML is
a mapping; otherwise (or when that YAML is not a mapping at all) it is read as INI, which
is Ansible's plugin order too. A directory loads every entry in sorted order, recursively,
skipping hidden names, host_vars/, group_vars/, vars_plugins/ and backup or documentation
extensions. Unlike Ansible, which warns and carries on with whatever it could read, every
source that cannot be read is an InventoryError: a runbook should not run on a guess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from opsbook.errors import InventoryError, LoadError, Position, ValidationError, did_you_mean
from opsbook.inventory._address import parse_address
from opsbook.inventory._assemble import assemble
from opsbook.inventory._builder import UNGROUPED, Builder
from opsbook.inventory._errors import Problems
from opsbook.inventory._ini import decode_ini, parse_ini
from opsbook.inventory._varsfiles import VarsDir, VarsFileCache
from opsbook.inventory._yaml import parse_yaml, type_name
from opsbook.inventory.model import Inventory
from opsbook.yamlsrc import load_yaml

YAML_EXTENSIONS = ("", ".yml", ".yaml", ".json")
IGNORED_NAMES = ("host_vars", "group_vars", "vars_plugins")
IGNORED_EXTENSIONS = (
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
    ".orig", ".cfg", ".retry",
)  # fmt: skip
_YAMLISH = re.compile(r"(---|\.\.\.|[^\s\[#;=][^=]*:(\s|$))")


def ignored_in_directory(name: str) -> bool:
    """Whether a directory source skips this entry, as Ansible's defaults do."""
    return name.startswith(".") or name in IGNORED_NAMES or name.endswith(IGNORED_EXTENSIONS)


class _Loader:
    def __init__(self) -> None:
        self.builder = Builder()
        self.problems = Problems()

    def source(self, given: str) -> None:
        path = os.path.expanduser(os.path.expandvars(given))
        if "," in given and not os.path.exists(path):
            self._host_list(given)
        elif os.path.isdir(path):
            self._directory(path)
        elif os.path.exists(path):
            self._file(path)
        else:
            self._missing(path)

    def _missing(self, path: str) -> None:
        folder = os.path.dirname(path) or "."
        try:
            near = did_you_mean(os.path.basename(path), os.listdir(folder))
        except OSError:
            near = ""
        self.problems.add(f"inventory source not found: {path}{near}", Position(path))

    def _host_list(self, text: str) -> None:
        for part in text.split(","):
            item = part.strip()
            if not item:
                continue
            parsed = parse_address(item)
            host, port = parsed if parsed is not None and "[" not in parsed[0] else (item, None)
            if host not in self.builder.hosts:
                self.builder.add_host(host, UNGROUPED, port, None)

    def _directory(self, path: str) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.problems.add(f"cannot list inventory directory: {exc.strerror}", Position(path))
            return
        for name in names:
            if ignored_in_directory(name):
                continue
            full = os.path.join(path, name)
            if os.path.isdir(full):
                self._directory(full)
            else:
                self._file(full)

    def _file(self, path: str) -> None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            self.problems.add(f"cannot read inventory file: {exc.strerror}", Position(path))
            return
        ext = os.path.splitext(path)[1]
        if ext == ".toml":
            self.problems.add(
                "TOML inventories are not supported", Position(path), "use INI or YAML"
            )
        elif raw.startswith(b"#!") and os.access(path, os.X_OK):
            self.problems.add(
                "dynamic inventory scripts are not supported",
                Position(path, 1, 1),
                "run the script once and save its output as a YAML inventory",
            )
        elif ext in YAML_EXTENSIONS:
            self._yaml_or_ini(path, raw, ext)
        else:
            self._ini(path, raw, self.problems)

    def _ini(self, path: str, raw: bytes, problems: Problems) -> None:
        lines = decode_ini(raw, path, problems)
        if lines is not None:
            parse_ini(lines, path, self.builder, problems)

    def _yaml_or_ini(self, path: str, raw: bytes, ext: str) -> None:
        yaml_problem: InventoryError | None = None
        data: Any = None
        try:
            data = load_yaml(raw.decode("utf-8"), path)
        except UnicodeDecodeError:
            pass  # the INI reader reports where the bad bytes are
        except (LoadError, ValidationError) as exc:
            yaml_problem = _as_inventory_error(exc)
        if isinstance(data, Mapping):
            self._yaml(path, data)
            return
        if data not in (None, "") and yaml_problem is None:
            yaml_problem = InventoryError(
                f"a YAML inventory must be a mapping of group names, found {type_name(data)}",
                getattr(data, "pos", Position(path, 1, 1)),
                "start with the group all: and its hosts:, vars: and children:",
            )
        ini_problems = Problems()
        self._ini(path, raw, ini_problems)
        if not ini_problems:
            return
        if yaml_problem is not None and (ext or _looks_like_yaml(raw)):
            self.problems.extend(yaml_problem)
        else:
            self.problems.items.extend(ini_problems.items)

    def _yaml(self, path: str, data: Mapping[Any, Any]) -> None:
        if data.get("plugin"):
            self.problems.add(
                f"this is the configuration of inventory plugin {data['plugin']!r}; "
                "opsbook reads only static INI and YAML inventories",
                getattr(data, "key_pos", {}).get("plugin", Position(path, 1, 1)),
                "export it with ansible-inventory --list -y and use that file",
            )
            return
        parse_yaml(data, path, self.builder, self.problems)


def _looks_like_yaml(raw: bytes) -> bool:
    for line in raw.decode("utf-8", errors="replace").splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;":
            return bool(_YAMLISH.match(stripped))
    return False


def _as_inventory_error(exc: LoadError | ValidationError) -> InventoryError:
    problems = Problems()
    for diagnostic in exc.diagnostics:
        problems.add(diagnostic.message, diagnostic.position, diagnostic.hint)
    try:
        problems.raise_if_any()
    except InventoryError as converted:
        return converted
    return InventoryError(str(exc))


def _vars_dir(
    given: str, cache: VarsFileCache, warnings: list[tuple[str, Position | None]]
) -> VarsDir | None:
    path = os.path.expanduser(os.path.expandvars(given))
    if "," in given and not os.path.exists(path):
        return None  # a host list has no directory beside it
    base = path if os.path.isdir(path) else os.path.dirname(path)
    return VarsDir(base, cache, warnings)


def load_inventory(sources: Iterable[str | os.PathLike[str]]) -> Inventory:
    """Read Ansible inventory sources (files, directories, `a,b` host lists) in order.

    Later sources add to earlier ones as with several `-i` options. Raises
    InventoryError listing every problem found (with file:line:column).
    """
    given = tuple(os.fspath(source) for source in sources)
    loader = _Loader()
    for source in given:
        loader.source(source)
    loader.problems.raise_if_any()
    loader.builder.reconcile()
    cache = VarsFileCache(loader.problems)
    warnings: list[tuple[str, Position | None]] = []
    dirs = [_vars_dir(source, cache, warnings) for source in given]
    inventory = assemble(loader.builder, dirs, given, warnings)
    loader.problems.raise_if_any()
    return inventory
