"""Reuse at load time: include_tasks / import_tasks, roles (roles:, include_role, import_role).

The loader hands every list of steps to `Expander.steps` before reading it: each include
becomes an ordinary block of ordinary steps read from the other file (positions point
into that file), so the graph, plan, check, journal and resume see included steps as
the first-class steps they are. What Ansible makes dynamic stays dynamic where it shows:

- `import_tasks` / `import_role` (static): a block; its keywords (`when`, `tags`, `vars`,
  `become`, ...) apply to every included step, `when` evaluated at each of them.
- `include_tasks` / `include_role` (dynamic): the include is a step of its own (Ansible's
  "included" task, a `local.noop` here), its `when` and `tags` are its own, evaluated
  once, and the included steps run only on the hosts where it ran; `loop` includes the
  file once per item (items known when the plan is made: params, vars, groups).

Roles have Ansible's layout (tasks/ handlers/ defaults/ vars/ templates/ files/ meta/)
and are found in `roles/` beside the runbook (or beside the including file), then in
each folder of OPSBOOK_ROLES_PATH, or at a path. A role's tasks and handlers are named
"role : task" as Ansible shows them, its handlers answer to their bare names too, its
templates/ and files/ are where relative `src:` is found, meta/main.yml's dependencies
run first (each role once, unless it is asked again with other variables), defaults sit
below inventory and runbook variables and vars/ above them, as in Ansible.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from opsbook.errors import Diagnostic, Position, UserError, ValidationError
from opsbook.srcpath import FILE_ARG, SUBFOLDER, SearchPath, is_absolute, is_literal
from opsbook.template import is_template
from opsbook.yamlsrc import PosDict, PosList, key_position, load_yaml_file

ROLES_PATH_ENV = "OPSBOOK_ROLES_PATH"
INCLUDE_KEYS = ("include_tasks", "import_tasks", "include_role", "import_role")
_FQCN = "ansible.builtin."
MAX_DEPTH = 32
# Keywords an include_tasks/include_role keeps for its own step (Ansible applies them to
# the include, not to what it includes); the rest go on the block around the steps.
_GATE_ONLY = ("when", "tags")
_ROLE_ENTRY_KEYS = {"role", "name", "vars", "when", "tags", "become", "become_user", "ignore_errors", "tasks_from",
                    "defaults_from", "vars_from", "handlers_from", "apply", "public", "allow_duplicates"}


def include_key(data: PosDict) -> str | None:
    """Which include/import keyword a raw step uses (FQCN accepted), or None."""
    for key in data:
        if isinstance(key, str) and key.removeprefix(_FQCN) in INCLUDE_KEYS:
            return key
    return None


@dataclass
class Role:
    """A role found on the roles path, with what it brings besides its tasks."""

    name: str
    path: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    # The roles whose folders its steps' `src:` is searched in: itself, then the roles that
    # depend on it or include it (Ansible's dependency chain, innermost first).
    chain: tuple[Path, ...] = ()


def _pd(pos: Position, items: dict[str, Any], positions: dict[str, Position] | None = None) -> PosDict:
    out = PosDict(pos)
    for key, value in items.items():
        out[key] = value
        where = (positions or {}).get(key, pos)
        out.key_pos[key] = where
        out.value_pos[key] = getattr(value, "pos", where) if not isinstance(value, (str, int, float, bool)) else where
    return out


def _pl(pos: Position, items: list[Any]) -> PosList:
    out = PosList(pos)
    for item in items:
        out.append(item)
        out.item_pos.append(getattr(item, "pos", pos))
    return out


class Expander:
    """Expands includes and roles in raw (Pos-annotated) step lists, collecting problems."""

    def __init__(self, runbook_path: str, error: Callable[[Position | None, str, str], None]) -> None:
        self.runbook_dir = Path(runbook_path).resolve().parent if runbook_path not in ("", "<string>") else Path.cwd()
        self.error = error
        self.origins: dict[str, str] = {}  # included file -> "included from a.yaml:3 <- b.yaml:9"
        self.handlers: list[PosDict] = []  # handlers of every role used, in order
        self._roles_run: set[tuple[str, str, str]] = set()  # (role path, tasks_from, its variables) added
        self._handler_roles: set[str] = set()
        self._gates = 0
        self.read: list[str] = []  # every file read besides the runbook (part of its digest)
        self.unfound: list[Diagnostic] = []  # literal `src:` paths that no search folder holds
        self._role_chain: tuple[Path, ...] = ()  # the roles being expanded, innermost first
        # step position -> the folders its templated `src:` is searched in at run time
        self.src_dirs: dict[Position, tuple[str, ...]] = {}

    # -- entry points ----------------------------------------------------------------------
    def steps(self, raw: PosList, chain: tuple[Position, ...] = (), base: Path | None = None,
              role: Role | None = None) -> PosList:
        """The list with every include replaced by a block of the included steps."""
        out = PosList(raw.pos)
        for index, item in enumerate(raw):
            pos = raw.item_pos[index]
            if isinstance(item, PosDict):
                item = self._step(item, chain, base or self._dir_of(pos), role)
            out.append(item)
            out.item_pos.append(pos)
        return out

    def roles(self, raw: Any, where: Position) -> list[PosDict]:
        """A runbook's `roles:` as blocks (static, as Ansible's play roles), in order."""
        if not isinstance(raw, PosList):
            self.error(where, "roles must be a list of role names or {role: name, vars: ...}", "")
            return []
        blocks = []
        for index, entry in enumerate(raw):
            pos = raw.item_pos[index]
            if isinstance(entry, str):
                entry = _pd(pos, {"role": entry})
            if not isinstance(entry, PosDict) or not isinstance(entry.get("role", entry.get("name")), str):
                self.error(pos, "a role entry is a name or a mapping with `role: name`", "")
                continue
            block = self._role_block(entry, pos, (), self.runbook_dir, static=True, from_play=True)
            if block is not None:
                blocks.append(block)
        return blocks

    def chained(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Diagnostics in included files, with the chain of includes that led there."""
        out = []
        for d in diagnostics:
            origin = self.origins.get(d.position.file) if d.position else None
            out.append(replace(d, message=f"{d.message} ({origin})") if origin else d)
        return out

    def digest(self, runbook_digest: str) -> str:
        """The runbook's digest, covering the files it includes: a run resumes only on the same steps."""
        if not self.read:
            return runbook_digest
        total = hashlib.sha256(runbook_digest.encode())
        for path in self.read:
            try:
                data = Path(path).read_bytes()
            except OSError:
                data = b""
            total.update(f"\0{path}\0".encode() + hashlib.sha256(data).digest())
        return total.hexdigest()

    def _load(self, path: str) -> Any:
        self.read.append(path)
        return load_yaml_file(path)

    # -- one step ----------------------------------------------------------------------------
    def _dir_of(self, pos: Position) -> Path:
        return Path(pos.file).resolve().parent if pos.file and os.path.exists(pos.file) else self.runbook_dir

    def _step(self, data: PosDict, chain: tuple[Position, ...], base: Path, role: Role | None) -> PosDict:
        if role is not None:
            data = self._in_role(data, role)
        search = SearchPath((*(role.chain if role else ()), _plain(base)), self.runbook_dir)
        data = self._sources(data, search)
        if search.stack != (self.runbook_dir,) and _names_files(data):
            self.src_dirs[data.pos] = tuple(str(p) for p in search.stack)
        for part in ("block", "rescue", "always"):
            if isinstance(data.get(part), PosList):
                data[part] = self.steps(data[part], chain, base, role)
        key = include_key(data)
        if key is None:
            return data
        kind = key.removeprefix(_FQCN)
        if len(chain) >= MAX_DEPTH:
            self.error(key_position(data, key), f"includes nested deeper than {MAX_DEPTH} levels", "is a file including itself?")
            return self._empty(data, key)
        if kind.endswith("_role"):
            return self._role_step(data, key, chain, base, static=kind == "import_role")
        return self._tasks_step(data, key, chain, base, role, static=kind == "import_tasks")

    def _tasks_step(self, data: PosDict, key: str, chain: tuple[Position, ...], base: Path, role: Role | None,
                    static: bool) -> PosDict:
        value = data[key]
        where = data.value_pos.get(key, data.pos)
        apply = None
        if isinstance(value, PosDict):
            unknown = [k for k in value if k not in ("file", "apply")]
            for k in unknown:
                self.error(key_position(value, k), f'{key}: unknown argument "{k}"', "arguments: file, apply")
            apply = self._apply(value, key, static)
            value = value.get("file")
        if not isinstance(value, str) or not value:
            self.error(where, f"{key} needs a file name, found {type(value).__name__}", f"{key}: other-steps.yaml")
            return self._empty(data, key)
        if is_template(value):
            self.error(where, f'{key}: "{value}" is a template; opsbook reads included files when it loads the runbook',
                       "name the file as written (choose between files with `when:` on two includes)")
            return self._empty(data, key)
        if static and "loop" in data:
            self.error(key_position(data, "loop"), f"{key} cannot loop (it is static); use include_tasks", "")
            return self._empty(data, key)
        path = (base / value) if not os.path.isabs(value) else Path(value)
        if role is not None and not path.exists() and (role.path / "tasks" / value).exists():
            path = role.path / "tasks" / value
        steps = self._read_steps(path, where, chain, key, role)
        if steps is None:
            return self._empty(data, key)
        label = data.get("name") if isinstance(data.get("name"), str) else f"{key.removeprefix(_FQCN)} {value}"
        return self._wrap(data, key, steps, label, static, apply)

    def _read_steps(self, path: Path, where: Position, chain: tuple[Position, ...], what: str,
                    role: Role | None) -> PosList | None:
        shown = _shown(path)
        if any(p.file == shown for p in chain) or where.file == shown:
            self.error(where, f"{what}: {shown} includes itself ({' -> '.join(str(p) for p in (*chain, where))})", "")
            return None
        if not path.is_file():
            self.error(where, f"{what}: no file {shown}", "included files are found beside the file that includes them")
            return None
        self.origins.setdefault(shown, " <- ".join(f"included from {p}" if i == 0 else str(p)
                                                   for i, p in enumerate(reversed((*chain, where)))))
        try:
            data = self._load(shown)
        except ValidationError as exc:
            for d in exc.diagnostics:
                self.error(d.position, d.message, d.hint)
            return None
        except UserError as exc:
            self.error(exc.position or where, exc.message, exc.hint)
            return None
        if data is None:
            return PosList(Position(shown, 1, 1))
        if not isinstance(data, PosList):
            self.error(Position(shown, 1, 1), "an included file must be a list of steps", "each item: - name: ... with one action")
            return None
        return self.steps(data, (*chain, where), path.parent, role)

    def _apply(self, args: PosDict, key: str, static: bool) -> PosDict | None:
        """`apply:` of a dynamic include: keywords for the included steps (Ansible's)."""
        if "apply" not in args:
            return None
        value = args["apply"]
        if static:
            self.error(key_position(args, "apply"), f"{key} does not take apply (it is static: its keywords apply already)",
                       "write the keywords beside the import")
            return None
        if not isinstance(value, PosDict):
            self.error(args.value_pos.get("apply"), f"{key}: apply must be a mapping of step keywords", "")
            return None
        return value

    def _wrap(self, data: PosDict, key: str, steps: PosList, label: str, static: bool,
              apply: PosDict | None = None) -> PosDict:
        """The block an include becomes (see the module's docstring for static vs dynamic)."""
        if apply:  # keywords for the included steps: a block of its own around them
            steps = _pl(apply.pos, [_pd(apply.pos, {"name": f"{label} (applied)", **apply, "block": steps},
                                        dict(apply.key_pos))])
        keep = {k: v for k, v in data.items() if k != key}
        if "name" not in keep:
            keep["name"] = label
        if static:
            return _pd(data.pos, {**keep, "block": steps}, dict(data.key_pos))
        self._gates += 1
        flag = f"opsbook_included_{self._gates}"
        gate_keys = {"name": keep["name"], "local.noop": None, "register": flag}
        for k in _GATE_ONLY:
            if k in keep:
                gate_keys[k] = keep.pop(k)
        if "id" in keep:
            gate_keys["id"] = keep["id"]
            keep["id"] = f"{keep['id']}-steps"
        keep["name"] = f"{keep['name']} (include)"  # the gate has the include's own name and id
        if "loop" not in keep:
            gate = _pd(data.key_pos.get(key, data.pos), gate_keys, dict(data.key_pos))
            inner = _pd(data.pos, {"name": f"{gate_keys['name']} (included steps)", "when": f"{flag} is not skipped",
                                   "block": steps})
            return _pd(data.pos, {**keep, "block": _pl(data.pos, [gate, inner])}, dict(data.key_pos))
        # With a loop, as in Ansible: the include runs once over every item (its `when` per
        # item), then the file's steps once per item, in order. An item whose `when` was false
        # is left out by the same condition, evaluated again with that item.
        gate_keys.update({k: keep[k] for k in ("loop", "loop_control", "vars") if k in keep})
        gate = _pd(data.key_pos.get(key, data.pos), gate_keys, dict(data.key_pos))
        copies = {**keep, "block": steps}
        copies["when"] = gate_keys["when"] if "when" in gate_keys else f"{flag} is not skipped"
        return _pd(data.pos, {"name": f"{gate_keys['name']} (include)",
                              "block": _pl(data.pos, [gate, _pd(data.pos, copies, dict(data.key_pos))])})

    def _empty(self, data: PosDict, key: str) -> PosDict:
        keep = {k: v for k, v in data.items() if k not in (key, "loop")}
        keep.setdefault("name", str(key))
        return _pd(data.pos, {**keep, "block": PosList(data.pos)}, dict(data.key_pos))

    # -- roles ------------------------------------------------------------------------------
    def _role_step(self, data: PosDict, key: str, chain: tuple[Position, ...], base: Path, static: bool) -> PosDict:
        spec = data[key]
        where = data.value_pos.get(key, data.pos)
        if isinstance(spec, str):
            spec = _pd(where, {"name": spec})
        if not isinstance(spec, PosDict) or not isinstance(spec.get("name"), str):
            self.error(where, f"{key} needs `name:` (the role)", f"{key}: {{name: webserver}}")
            return self._empty(data, key)
        for k in spec:
            if k not in ("name", "tasks_from", "vars_from", "defaults_from", "handlers_from", "apply"):
                self.error(key_position(spec, k), f'{key}: unknown argument "{k}"',
                           "arguments: name, tasks_from, vars_from, defaults_from, handlers_from, apply"
                           + (" (public and allow_duplicates are not supported)"
                              if k in ("public", "allow_duplicates") else ""))
        apply = self._apply(spec, key, static)
        entry = _pd(spec.pos, {"role": spec["name"], **{k: v for k, v in spec.items() if k not in ("name", "apply")}},
                    dict(spec.key_pos))
        block = self._role_block(entry, where, chain, base, static=static, from_play=False)
        if block is None:
            return self._empty(data, key)
        steps = block["block"]
        label = data.get("name") if isinstance(data.get("name"), str) else f"{key.removeprefix(_FQCN)} {spec['name']}"
        wrapped = self._wrap(data, key, steps, label, static, apply)
        if block.get("vars"):  # the role's defaults and vars, below the step's own vars:
            wrapped["vars"] = {**block["vars"], **(data.get("vars") or {})}
            wrapped.key_pos.setdefault("vars", data.pos)
            wrapped.value_pos.setdefault("vars", data.pos)
        return wrapped

    def find_role(self, name: str, base: Path) -> Path | None:
        """A role folder: a path, roles/ beside the including file or the runbook, OPSBOOK_ROLES_PATH."""
        candidates = [Path(name)] if ("/" in name or name.startswith(".")) else []
        candidates += [base / "roles" / name, self.runbook_dir / "roles" / name]
        candidates += [Path(p) / name for p in os.environ.get(ROLES_PATH_ENV, "").split(os.pathsep) if p]
        for candidate in candidates:
            full = candidate if candidate.is_absolute() else (base / candidate)
            if (full / "tasks").is_dir() or (full / "meta").is_dir() or (full / "handlers").is_dir():
                return full.resolve()
        return None

    def _role_block(self, entry: PosDict, where: Position, chain: tuple[Position, ...], base: Path, static: bool,
                    from_play: bool) -> PosDict | None:
        name = str(entry.get("role", entry.get("name")))
        path = self.find_role(name, base)
        if path is None:
            searched = list(dict.fromkeys([_shown(base / "roles") + "/", _shown(self.runbook_dir / "roles") + "/"]))
            if os.environ.get(ROLES_PATH_ENV):
                searched.append(f"{ROLES_PATH_ENV}={os.environ[ROLES_PATH_ENV]}")
            self.error(where, f'role "{name}" not found', "searched " + ", ".join(searched)
                       + f"; a role is a folder with tasks/ (set {ROLES_PATH_ENV} for shared roles)")
            return None
        meta = (path / "meta").resolve()
        if len(chain) >= MAX_DEPTH or any(Path(p.file).resolve().parent == meta for p in chain):
            self.error(where, f'role "{name}" depends on itself', "")
            return None
        role = Role(name, path, chain=(path, *self._role_chain))
        outer, self._role_chain = self._role_chain, role.chain
        try:
            return self._role_contents(role, entry, where, chain, from_play)
        finally:
            self._role_chain = outer

    def _role_contents(self, role: Role, entry: PosDict, where: Position, chain: tuple[Position, ...],
                       from_play: bool) -> PosDict | None:
        """The block a role becomes: its dependencies, then its tasks, with its variables."""
        name, path = role.name, role.path
        role.defaults = self._role_vars(path, "defaults", entry.get("defaults_from", "main"))
        role.vars = self._role_vars(path, "vars", entry.get("vars_from", "main"))
        entry_vars = dict(entry.get("vars") or {})
        # Ansible's role parameters: other keys of a play's role entry are variables too
        if from_play:
            entry_vars.update({k: v for k, v in entry.items() if k not in _ROLE_ENTRY_KEYS})
        children: list[Any] = []
        for dep_pos, dep in self._dependencies(path):
            block = self._role_block(dep, dep_pos, (*chain, where), path.parent, static=True, from_play=True)
            if block is not None:
                children.append(block)
        key = (str(path), str(entry.get("tasks_from", "main")),
               repr(sorted(entry_vars.items(), key=lambda kv: str(kv[0]))))
        if from_play and key in self._roles_run:
            return _pd(where, {"name": f"{name} (already run)", "block": _pl(where, children)}) if children else None
        self._roles_run.add(key)
        tasks_file = _yaml_in(path / "tasks", str(entry.get("tasks_from", "main")))
        if tasks_file is not None:
            steps = self._read_steps(tasks_file, where, chain, f'role "{name}"', role)
            children.extend(steps or [])
        elif "tasks_from" in entry:
            self.error(where, f'role "{name}" has no tasks/{entry["tasks_from"]}.yml', "")
        self._add_handlers(role, where, chain, str(entry.get("handlers_from", "main")))
        block: dict[str, Any] = {"name": f"role {name}", "block": _pl(where, children)}
        variables = _defaults_below(name, role.defaults)
        variables.update(role.vars)
        variables.update(entry_vars)
        if variables:
            block["vars"] = variables
        for k in ("when", "tags", "become", "become_user", "ignore_errors"):
            if from_play and k in entry:
                block[k] = entry[k]
        return _pd(where, block)

    def _dependencies(self, path: Path) -> list[tuple[Position, PosDict]]:
        meta = _yaml_in(path / "meta", "main")
        if meta is None:
            return []
        try:
            data = self._load(str(meta))
        except UserError as exc:
            self.error(exc.position, exc.message, exc.hint)
            return []
        deps = data.get("dependencies") if isinstance(data, PosDict) else None
        out = []
        for index, dep in enumerate(deps or []):
            pos = deps.item_pos[index]
            if isinstance(dep, str):
                dep = _pd(pos, {"role": dep})
            if isinstance(dep, PosDict) and isinstance(dep.get("role", dep.get("name")), str):
                out.append((pos, dep))
            else:
                self.error(pos, "a role dependency is a name or {role: name, vars: ...}", "")
        return out

    def _role_vars(self, path: Path, folder: str, name: Any) -> dict[str, Any]:
        found = _yaml_in(path / folder, str(name))
        if found is None:
            return {}
        try:
            data = self._load(str(found))
        except UserError as exc:
            self.error(exc.position, exc.message, exc.hint)
            return {}
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.error(Position(str(found), 1, 1), f"{folder}/{found.name} must be a mapping of variables", "")
            return {}
        return dict(data)

    def _add_handlers(self, role: Role, where: Position, chain: tuple[Position, ...], name: str) -> None:
        found = _yaml_in(role.path / "handlers", name)
        if found is None or str(found) in self._handler_roles:
            return
        self._handler_roles.add(str(found))
        steps = self._read_steps(found, where, chain, f'role "{role.name}" handlers', role)
        variables = _defaults_below(role.name, role.defaults)
        variables.update(role.vars)
        for handler in steps or []:
            if not isinstance(handler, PosDict):
                continue
            if isinstance(handler.get("name"), str):  # answers to its bare name too, as in Ansible
                listen = handler.get("listen")
                names = [listen] if isinstance(listen, str) else list(listen or [])
                handler["listen"] = [*names, handler["name"].removeprefix(f"{role.name} : ")]
                handler.key_pos.setdefault("listen", handler.pos)
                handler.value_pos.setdefault("listen", handler.pos)
            if variables:
                handler["vars"] = {**variables, **(handler.get("vars") or {})}
                handler.key_pos.setdefault("vars", handler.pos)
                handler.value_pos.setdefault("vars", handler.pos)
            self.handlers.append(handler)

    def _in_role(self, data: PosDict, role: Role) -> PosDict:
        """A role's step as Ansible shows it ("role : name")."""
        out = _pd(data.pos, dict(data), dict(data.key_pos))
        out.value_pos.update(data.value_pos)
        if isinstance(data.get("name"), str) and not data["name"].startswith(f"{role.name} : "):
            out["name"] = f"{role.name} : {data['name']}"
        return out

    def _sources(self, data: PosDict, search: SearchPath) -> PosDict:
        """The step with each literal relative `src:` of template/copy (script's path) found
        on `search` (opsbook.srcpath); one found nowhere is recorded in `unfound`."""
        out = data
        for key, value in data.items():
            if key == "rollback" and isinstance(value, PosDict):
                fixed = self._sources(value, search)
            else:
                module = key.removeprefix(_FQCN).rsplit(".", 1)[-1] if isinstance(key, str) else ""
                if module not in SUBFOLDER:
                    continue
                if not isinstance(value, PosDict) and isinstance(data.get("args"), PosDict):
                    key, value = "args", data["args"]  # Ansible's `args:` keyword holds them
                fixed = self._file_arg(value, module, search, data.value_pos.get(key, data.pos))
            if fixed is not value:
                out = _copy(out) if out is data else out
                out[key] = fixed
        return out

    def _file_arg(self, args: Any, module: str, search: SearchPath, where: Position) -> Any:
        """`args` with the file argument found: a mapping's `src` (`path` of script), or a
        script's scalar form (`script: deploy.sh`)."""
        name = FILE_ARG[module]
        if isinstance(args, str) and module == "script" and args and not any(c.isspace() for c in args):
            return self._found(args, module, search, where)
        if not isinstance(args, PosDict) or not isinstance(args.get(name), str):
            return args
        found = self._found(args[name], module, search, args.value_pos.get(name, args.pos))
        if found == args[name]:
            return args
        fixed = _copy(args)
        fixed[name] = found
        return fixed

    def _found(self, src: str, module: str, search: SearchPath, where: Position) -> str:
        """Where `src` is (as written when that is where the action looks anyway)."""
        if not src or is_absolute(src) or not is_literal(src):
            return src
        subfolder = SUBFOLDER[module]
        found = search.find(src, subfolder)
        if found is None:
            tried = ", ".join(_shown(p) for p in search.candidates(src, subfolder))
            near = search.near(src, subfolder)
            diagnostic = Diagnostic(where, f'{module}: {FILE_ARG[module]} "{src}" not found'
                                    + (f' (did you mean "{near}"?)' if near else ""), f"searched {tried}")
            if diagnostic not in self.unfound:
                self.unfound.append(diagnostic)
            return src
        if found.resolve() == (self.runbook_dir / src).resolve():
            return src
        return str(found)


def _names_files(data: PosDict) -> bool:
    """Whether a step (or its rollback) is a template/copy/script, whose file is searched for."""
    for key, value in data.items():
        if key == "rollback" and isinstance(value, PosDict) and _names_files(value):
            return True
        if isinstance(key, str) and key.removeprefix(_FQCN).rsplit(".", 1)[-1] in SUBFOLDER:
            return True
    return False


def _copy(data: PosDict) -> PosDict:
    out = _pd(data.pos, dict(data), dict(data.key_pos))
    out.value_pos.update(data.value_pos)
    return out


def _plain(path: Path) -> Path:
    """An absolute, normalised path with symlinks kept (Ansible's unfrackpath(follow=False))."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _yaml_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.yml", folder / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _defaults_below(role: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Role defaults as step vars that give way to any value the name already has
    (inventory, runbook vars, facts): Ansible's lowest precedence."""
    out: dict[str, Any] = {}
    for index, (name, value) in enumerate(defaults.items()):
        hidden = f"opsbook_role_default_{index}_{''.join(c if c.isalnum() else '_' for c in role)}"
        out[hidden] = value
        out[name] = f"{{{{ {name} if {name} is defined else {hidden} }}}}"
    return out


def _shown(path: Path) -> str:
    """How a file is named in messages: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())

