"""`group_vars/` and `host_vars/` beside an inventory source, found as Ansible finds them.

For an entity NAME, the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that exists
is used; when it is a directory, every file in it (recursively, sorted, skipping hidden
files, `~` backups and other extensions) is loaded in order. Empty files are ignored.
"""

from __future__ import annotations

import re

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbook.errors import LoadError, Position, ValidationError
from opsbook.inventory._errors import Problems
from opsbook.yamlsrc import load_yaml

EXTENSIONS = (".yml", ".yaml", ".json")
_VAULT = "$ANSIBLE_VAULT;"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class VarsFile:
    """The variables of one group_vars/host_vars file and where it is."""

    where: str
    data: Mapping[str, Any]


class VarsFileCache:
    """Each vars file is read once per load, however many sources or entities use it."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.loaded: dict[str, VarsFile | None] = {}

    def load(self, path: str) -> VarsFile | None:
        if path not in self.loaded:
            self.loaded[path] = self._read(path)
        return self.loaded[path]

    def _read(self, path: str) -> VarsFile | None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            self.problems.add(f"cannot read variables file: {exc.strerror}", Position(path))
            return None
        except UnicodeDecodeError as exc:
            self.problems.add(f"variables file is not UTF-8 text ({exc.reason})", Position(path))
            return None
        if text.lstrip().startswith(_VAULT):
            self.problems.add(
                "vault-encrypted variables files are not supported",
                Position(path, 1, 1),
                "decrypt it (ansible-vault decrypt) or move the secret to a secrets store",
            )
            return None
        try:
            data = load_yaml(text, path)
        except (LoadError, ValidationError) as exc:
            for diagnostic in exc.diagnostics:
                self.problems.add(diagnostic.message, diagnostic.position, diagnostic.hint)
            return None
        if not data:
            return None
        if not isinstance(data, Mapping):
            self.problems.add(
                "a variables file must be a mapping of variable names to values",
                getattr(data, "pos", Position(path, 1, 1)),
            )
            return None
        bad = [key for key in data if not isinstance(key, str) or not _NAME.match(key)]
        if bad:
            # e.g. a symlink to a file that is not YAML variables (a password file parses as
            # `line: null` keys): never show its content as variables, nor in the message
            where = data.key_pos.get(bad[0]) if hasattr(data, "key_pos") else None
            self.problems.add(f"{len(bad)} key(s) of this variables file are not variable names (letters, digits "
                              "and _); it does not look like a variables file, so none of it is used or shown",
                              where or Position(path, 1, 1), "check what this file (or the link to it) is")
            return None
        return VarsFile(path, data)


class VarsDir:
    """The group_vars/ and host_vars/ directories beside one inventory source."""

    def __init__(
        self, basedir: str, cache: VarsFileCache, warnings: list[tuple[str, Position | None]]
    ) -> None:
        self.basedir = basedir
        self.cache = cache
        self.listing: dict[str, frozenset[str] | None] = {}
        for kind in ("group_vars", "host_vars"):
            self.listing[kind] = self._list(kind, warnings)

    def _list(
        self, kind: str, warnings: list[tuple[str, Position | None]]
    ) -> frozenset[str] | None:
        path = os.path.join(self.basedir, kind)
        if os.path.isdir(path):
            try:
                return frozenset(os.listdir(path))
            except OSError as exc:
                self.cache.problems.add(f"cannot list directory: {exc.strerror}", Position(path))
                return None
        if os.path.exists(path):
            warnings.append((f"{kind} is not a directory, skipped", Position(path)))
        return None

    def files(self, kind: str, name: str) -> tuple[VarsFile, ...]:
        """The loaded vars files for group or host `name`; kind is group_vars or host_vars."""
        listing = self.listing[kind]
        if listing is None or not name or name.startswith(os.sep):
            return ()
        found = self._find(os.path.join(self.basedir, kind), name, listing)
        loaded = (self.cache.load(path) for path in found)
        return tuple(item for item in loaded if item is not None)

    @staticmethod
    def _find(root: str, name: str, listing: frozenset[str]) -> list[str]:
        nested = os.sep in name or (os.altsep is not None and os.altsep in name)
        for candidate in (name, *(name + ext for ext in EXTENSIONS)):
            path = os.path.join(root, candidate)
            if nested:
                if not os.path.exists(path):
                    continue
            elif candidate not in listing:
                continue
            return _dir_files(path) if os.path.isdir(path) else [path]
        return []


def _dir_files(path: str) -> list[str]:
    found: list[str] = []
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return found
    for entry in entries:
        if entry.startswith(".") or entry.endswith("~"):
            continue
        ext = os.path.splitext(entry)[1]
        full = os.path.join(path, entry)
        if os.path.isdir(full):
            if not ext:
                found.extend(_dir_files(full))
        elif os.path.isfile(full) and (not ext or ext in EXTENSIONS):
            found.append(full)
    return found
