"""Load stage: a runbook file -> a validated `Runbook`, or every problem in it at once.

The keywords it checks against are described once, in opsbook.keywords (which `opsbook
schema` reads too); the conversions of their values are opsbook.keyvalues; includes and
roles are expanded by opsbook.reuse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from typing import Any

from opsbook.errors import Diagnostic, LoadError, Position, ValidationError, did_you_mean
from opsbook.facts import with_gathering
from opsbook.keyvalues import (
    _as_approve,
    _as_bool,
    _as_conditions,
    _as_identifier,
    _as_int,
    _as_number,
    _as_serial,
    _as_str,
    _as_str_list,
    _count_or_percent,
    _infer_type,
    _slug,
)
from opsbook.keywords import (
    ACTION_KEY,
    ANSIBLE_PLAY_KEYS,
    APPROVED_BY,
    EXTRA_VARS,
    LOOP_CONTROL_KEYS,
    PARAM_KEYWORDS,
    RESERVED_NAMES,
    RUNBOOK_KEYWORDS,
    STEP_KEYWORDS,
)
from opsbook.model import (
    PARAM_TYPES,
    PHASES,
    ActionCall,
    KeepHealthy,
    Objectives,
    Param,
    Runbook,
    Step,
    parse_duration,
)
from opsbook.registry import Registry
from opsbook.reuse import Expander
from opsbook.template import holds_template, is_template
from opsbook.yamlsrc import PosDict, PosList, key_position, load_yaml


class _Collector:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Diagnostic] = []

    def error(self, pos: Position | None, message: str, hint: str = "") -> None:
        self.problems.append(Diagnostic(pos or Position(self.filename), message, hint))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}".lower()
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{short}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class RunbookLoader:
    """Builds a Runbook from YAML text, collecting every problem of the file."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def load_file(self, path: str) -> Runbook:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise LoadError(f"cannot read runbook: {exc.strerror}", Position(path)) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError(f"runbook is not UTF-8 text ({exc.reason})", Position(path)) from None
        return self.load_text(text, path, hashlib.sha256(raw).hexdigest())

    def load_text(self, text: str, filename: str, digest: str | None = None) -> Runbook:
        self._suffix: dict[str, int] = {}
        self._notifies: list[tuple[str, Position]] = []  # every notify: name, where it is written
        data = load_yaml(text, filename)
        digest = digest or hashlib.sha256(text.encode()).hexdigest()
        c = _Collector(filename)
        if not isinstance(data, PosDict):
            play = isinstance(data, list) and bool(data) and isinstance(data[0], dict) and \
                bool({"hosts", "tasks"} & set(data[0]))
            raise ValidationError([Diagnostic(Position(filename, 1, 1),
                                  f"a runbook must be a mapping with opsbook/name/steps, found {_kind(data)}",
                                  "an Ansible playbook is a list of plays; a runbook is one play as a mapping: "
                                  "opsbook: 1, name:, hosts:, and steps: (Ansible's tasks:)" if play else "")])
        self._reuse = Expander(filename, c.error)
        runbook = self._runbook(data, filename, digest, c)
        if self._reuse.read:  # included files and roles are part of what a resume must find again
            runbook = dataclasses.replace(runbook, digest=self._reuse.digest(digest))
        if self._reuse.unfound:
            runbook = dataclasses.replace(runbook, unfound_sources=tuple(self._reuse.chained(self._reuse.unfound)))
        if c.problems:
            raise ValidationError(sorted(self._reuse.chained(c.problems),
                                         key=lambda d: (d.position.file != filename, d.position.file, d.position.line,
                                                        d.position.column) if d.position else (False, "", 0, 0)))
        return runbook

    # -- runbook level -------------------------------------------------------------------
    def _runbook(self, data: PosDict, filename: str, digest: str, c: _Collector) -> Runbook:
        for key in data:
            if key in ANSIBLE_PLAY_KEYS:  # an Ansible play's word for one of ours
                ours = ANSIBLE_PLAY_KEYS[key]
                c.error(key_position(data, key), f'unknown runbook key "{key}" (did you mean "{ours}"?): '
                        f"opsbook calls Ansible's `{key}:` `{ours}:`", f"rename `{key}:` to `{ours}:`")
            elif key not in RUNBOOK_KEYWORDS:
                c.error(key_position(data, key), f'unknown runbook key "{key}"{did_you_mean(str(key), RUNBOOK_KEYWORDS)}',
                        "expected one of: " + ", ".join(RUNBOOK_KEYWORDS))
        version = data.get("opsbook")
        if version != 1:
            found = "missing" if "opsbook" not in data else f"found {_kind(version)}"
            c.error(data.value_pos.get("opsbook", data.pos), f"expected `opsbook: 1` (format version), {found}")
        name = self._str(data, "name", c, required=True) or "?"
        phase = self._choice(data, "phase", PHASES, c, default="other")
        steps_raw = data.get("steps")
        if "roles" in data and (steps_raw is None or steps_raw == []):
            steps_raw = PosList(data.pos)  # a runbook of roles only, as a play of roles only
        elif steps_raw is None and "tasks" in data:  # said at `tasks:` already
            steps_raw = PosList(data.pos)
        elif not isinstance(steps_raw, PosList) or not steps_raw:
            c.error(data.value_pos.get("steps", data.pos), "expected `steps:` with a list of steps, found "
                    + ("nothing" if steps_raw is None else _kind(steps_raw)))
            steps_raw = PosList(data.pos)
        ids: dict[str, Position] = {}
        steps_raw = self._reuse.steps(steps_raw)
        gather = self._bool(data, "gather_facts", c)
        if gather:  # Ansible's implicit first task of a play
            steps_raw = with_gathering(steps_raw, data.value_pos.get("gather_facts", data.pos))
        if "roles" in data:  # a play's roles run before its tasks
            roles = self._reuse.roles(data["roles"], data.value_pos.get("roles", data.pos))
            expanded = PosList(steps_raw.pos)
            for item in [*roles, *steps_raw]:
                expanded.append(item)
                expanded.item_pos.append(item.pos if isinstance(item, PosDict) else steps_raw.pos)
            steps_raw = expanded
        steps = self._steps(steps_raw, c, ids)
        handlers_raw = data.get("handlers") or PosList(data.pos)
        if isinstance(handlers_raw, PosList):
            handlers_raw = self._reuse.steps(handlers_raw)
            for handler in self._reuse.handlers:  # the roles' handlers, after the runbook's
                handlers_raw.append(handler)
                handlers_raw.item_pos.append(handler.pos)
        handlers = self._steps(handlers_raw, c, ids, handler=True) if isinstance(handlers_raw, PosList) else ()
        if not isinstance(handlers_raw, PosList):
            c.error(data.value_pos.get("handlers"), f"handlers must be a list of steps, found {_kind(handlers_raw)}")
        self._check_notifies(handlers, c)
        vars_ = data.get("vars") or {}
        if not isinstance(vars_, dict):
            c.error(data.value_pos.get("vars"), f"vars must be a mapping, found {_kind(vars_)}")
            vars_ = {}
        params = self._params(data, c)
        self._check_register_names(params, steps, handlers, c)
        return Runbook(
            path=filename, name=name, digest=digest,
            description=self._str(data, "description", c) or "",
            phase=phase,
            objectives=self._objectives(data, c),
            params=params,
            vars=vars_,
            hosts=self._str(data, "hosts", c) or "localhost",
            steps=steps, handlers=handlers,
            lock=self._str(data, "lock", c),
            timeout=self._duration(data, "timeout", c),
            max_fail_percentage=self._number(data, "max_fail_percentage", c),
            max_errors=self._int(data, "max_errors", c),
            extra_vars=self._choice(data, "extra_vars", EXTRA_VARS, c, hint="any: accept every -e name as a variable "
                                    "(Ansible's extra vars); used: only names the runbook reads"),
            approved_by=self._choice(data, "approved_by", APPROVED_BY, c, hint="another: a user other than the one "
                                     "who started the run must approve (four eyes)"),
            gather_facts=gather,
            force_handlers=self._bool(data, "force_handlers", c) if "force_handlers" in data else True,
            pos=data.pos,
        )

    @staticmethod
    def _check_register_names(params: tuple[Param, ...], steps: tuple[Step, ...], handlers: tuple[Step, ...],
                              c: _Collector) -> None:
        """A `register:` named like a parameter is never read: parameters win as bare names,
        so `primary.failed` reads the parameter (a string) and fails only at run time."""
        names = {p.name for p in params}
        if not names:
            return

        def walk(items: tuple[Step, ...]) -> None:
            for step in items:
                if step.register in names:
                    c.error(step.pos, f'register: {step.register} has the name of a parameter; parameters win as '
                            f'bare names, so "{step.register}" in later steps is the parameter, never this result',
                            f"rename the register, e.g. register: {step.register}_result")
                walk(step.block)
                walk(step.rescue)
                walk(step.always)

        walk(steps)
        walk(handlers)

    def _choice(self, data: PosDict, key: str, choices: tuple[str, ...], c: _Collector,
                default: str | None = None, hint: str = "") -> str:
        """The word `data[key]` holds, one of `choices`; `default` (else the first choice)
        when it is absent, or after saying where it is none of them."""
        fallback = choices[0] if default is None else default
        value = data.get(key, fallback)
        if value not in choices:
            expected = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
            c.error(data.value_pos.get(key), f"{key} must be {expected}, found {_kind(value)}"
                    + did_you_mean(str(value), choices), hint)
            return fallback
        return str(value)

    def _objectives(self, data: PosDict, c: _Collector) -> Objectives:
        raw = data.get("objectives")
        if raw is None:
            return Objectives()
        if not isinstance(raw, PosDict):
            c.error(data.value_pos.get("objectives"), f"objectives must be a mapping like {{rto: 5m, rpo: 1m}}, found {_kind(raw)}")
            return Objectives()
        for key in raw:
            if key not in ("rto", "rpo"):
                c.error(key_position(raw, key), f'unknown objective "{key}"{did_you_mean(str(key), ("rto", "rpo"))}', "expected rto and/or rpo")
        return Objectives(rto=self._duration(raw, "rto", c), rpo=self._duration(raw, "rpo", c))

    def _params(self, data: PosDict, c: _Collector) -> tuple[Param, ...]:
        raw = data.get("params")
        if raw is None:
            return ()
        if not isinstance(raw, PosDict):
            c.error(data.value_pos.get("params"), f"params must be a mapping of name: {{type, default}}, found {_kind(raw)}")
            return ()
        params = []
        for name, spec in raw.items():
            pos = raw.key_pos.get(name)
            if name in RESERVED_NAMES:
                c.error(pos, f'parameter "{name}" would hide the built-in variable of the same name',
                        "rename it, e.g. target_" + str(name))
            if not isinstance(spec, PosDict):  # shorthand `name: default`
                params.append(Param(str(name), _infer_type(spec), spec, spec is None, pos=pos))
                continue
            for key in spec:
                if key not in PARAM_KEYWORDS:
                    c.error(key_position(spec, key), f'unknown parameter key "{key}"{did_you_mean(str(key), PARAM_KEYWORDS)}',
                            "expected " + ", ".join(sorted(PARAM_KEYWORDS)))
            ptype = spec.get("type", "string")
            if ptype not in PARAM_TYPES:
                c.error(spec.value_pos.get("type"), f'parameter type must be one of {", ".join(PARAM_TYPES)}, found {_kind(ptype)}'
                        + did_you_mean(str(ptype), PARAM_TYPES))
                ptype = "string"
            choices = spec.get("choices") or ()
            params.append(Param(
                name=str(name), type=ptype, default=spec.get("default"),
                required=bool(spec.get("required", "default" not in spec)),
                description=str(spec.get("description", "")),
                secret=bool(spec.get("secret", ptype == "secret")),
                choices=tuple(choices) if isinstance(choices, list) else (), pos=pos,
            ))
        return tuple(params)

    # -- steps -----------------------------------------------------------------------------
    def _steps(self, raw: PosList, c: _Collector, ids: dict[str, Position], handler: bool = False) -> tuple[Step, ...]:
        out = []
        for index, item in enumerate(raw):
            pos = raw.item_pos[index]
            if not isinstance(item, PosDict):
                c.error(pos, f"a step must be a mapping with a name and one action, found {_kind(item)}")
                continue
            step = self._step(item, c, ids, handler)
            if step is not None:
                out.append(step)
        return tuple(out)

    def _step(self, data: PosDict, c: _Collector, ids: dict[str, Position], handler: bool) -> Step | None:
        actions: list[str] = []
        written: dict[str, str] = {}  # action -> the key it is written as (an Ansible module name)
        refused: list[str] = []  # Ansible module names whose arguments opsbook's action reads otherwise
        for key in data:
            if key in STEP_KEYWORDS:
                continue
            if isinstance(key, str) and ACTION_KEY.match(key):
                self._check_action_name(key, data, c)
                actions.append(key)
                continue
            mapped = self.registry.ansible_action(key) if isinstance(key, str) else None
            if mapped is not None:  # `lineinfile:` in an Ansible-style task: the action that speaks it
                written[mapped] = key
                actions.append(mapped)
                continue
            unlike = self.registry.ansible_unlike(key) if isinstance(key, str) else None
            if unlike is not None:  # Ansible's module, done here by an action with other arguments
                c.error(key_position(data, key), f'opsbook does what Ansible\'s "{key}" does with {unlike[0]}, '
                        f"whose arguments differ: {unlike[1]}", f"write {unlike[0]}: {{...}}; its arguments: opsbook plugins {unlike[0].split('.')[0]}")
                refused.append(key)
                continue
            suggestion = did_you_mean(str(key), list(STEP_KEYWORDS) + self.registry.action_names()
                                      + [m for p in self.registry.plugins.values() for m in p.ansible_modules])
            c.error(key_position(data, key), f'unknown step key "{key}"{suggestion}',
                    "a step has one action `plugin.action:` plus keywords such as name, hosts, when, register")
        is_block = "block" in data
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            c.error(data.value_pos.get("name"), f"name must be a string, found {_kind(name)}")
            name = str(name)
        if len(actions) > 1:
            c.error(key_position(data, actions[1]), f"a step has exactly one action, found {len(actions)}: {', '.join(actions)}",
                    "split it into several steps")
        if not actions and not is_block and not refused:
            c.error(data.pos, f'step "{name or "?"}" has no action', "add one `plugin.action:` key, e.g. local.command: ...")
        if actions and is_block:
            c.error(key_position(data, "block"), "a step cannot have both an action and a block")
        for key in ("rescue", "always"):
            if key in data and not is_block:
                c.error(key_position(data, key), f"`{key}:` only goes with `block:`")
        action = self._action_call(actions[0], data, c, written.get(actions[0])) if actions else None
        if "args" in data and (not actions or actions[0] not in written):
            c.error(key_position(data, "args"), "`args:` goes with an Ansible module name (command:, template:, ...)",
                    f"write the arguments in {actions[0]}: {{...}} itself" if actions else "")
        if name is None:
            name = actions[0] if actions else "block"
        step_id = data.get("id")
        if step_id is not None and not isinstance(step_id, str):
            c.error(data.value_pos.get("id"), f"id must be a string, found {_kind(step_id)}")
            step_id = None
        step_id = step_id or _slug(name)
        if step_id in ids:
            if "id" in data:
                c.error(data.value_pos.get("id"), f'duplicate step id "{step_id}" (first at line {ids[step_id].line})')
            # Continue from the last suffix used for this name: linear even for a hostile
            # file with tens of thousands of steps of the same name.
            n = self._suffix.get(step_id, 1) + 1
            while f"{step_id}-{n}" in ids:
                n += 1
            self._suffix[step_id] = n
            step_id = f"{step_id}-{n}"
        ids[step_id] = data.pos
        loop_control = self._loop_control(data, c)
        children = {key: self._children(data, key, c, ids) for key in ("block", "rescue", "always")}
        return Step(
            id=step_id, name=name, pos=data.pos, action=action, src_dirs=self._reuse.src_dirs.get(data.pos, ()),
            block=children["block"], rescue=children["rescue"], always=children["always"],
            hosts=self._str(data, "hosts", c),
            needs=self._str_list(data, "needs", c) if "needs" in data else None,
            when=self._cond(data, "when", c),
            loop=data.get("loop"),
            loop_var=str(loop_control.get("loop_var", "item")),
            loop_label=loop_control.get("label"),
            register=self._identifier(data, "register", c),
            retries=self._int(data, "retries", c) if "retries" in data else (3 if "until" in data else 0),
            delay=self._duration(data, "delay", c) if "delay" in data else 1.0,  # type: ignore[arg-type]
            backoff=self._number(data, "backoff", c) or 1.0,
            until=self._str(data, "until", c),
            timeout=self._duration(data, "timeout", c),
            ignore_errors=self._bool(data, "ignore_errors", c),
            failed_when=self._cond(data, "failed_when", c),
            changed_when=self._cond(data, "changed_when", c),
            serial=self._serial(data, c),
            max_fail_percentage=self._number(data, "max_fail_percentage", c),
            max_errors=self._int(data, "max_errors", c),
            run_once=self._bool(data, "run_once", c),
            delegate_to=self._str(data, "delegate_to", c),
            become=self._bool(data, "become", c) if "become" in data else None,
            become_user=self._str(data, "become_user", c),
            tags=self._str_list(data, "tags", c),
            approve=self._approve(data, c),
            approve_pos=data.value_pos.get("approve") if "approve" in data else None,
            text_pos=_text_positions(data, data.pos),
            rollback=self._rollback(data, c),
            notify=self._notify(data, c),
            listen=self._str_list(data, "listen", c) + ((name,) if handler else ()),
            vars=data.get("vars") if isinstance(data.get("vars"), dict) else {},
            no_log=self._bool(data, "no_log", c),
            check_mode=self._bool(data, "check_mode", c) if "check_mode" in data else None,
            gather_facts=self._bool(data, "gather_facts", c) if "gather_facts" in data else None,
            keep_healthy=self._keep_healthy(data, c),
            restores=self._str_list(data, "restores", c),
            undoes=self._str_list(data, "undoes", c),
            marks=self._str_list(data, "marks", c),
            explicit=frozenset(k for k in data if k in STEP_KEYWORDS),
        )

    def _notify(self, data: PosDict, c: _Collector) -> tuple[str, ...]:
        names = self._str_list(data, "notify", c)
        raw = data.get("notify")
        where = data.value_pos.get("notify", data.pos)
        for index, name in enumerate(names):
            pos = raw.item_pos[index] if isinstance(raw, PosList) else where
            self._notifies.append((name, pos))
        return names

    def _check_notifies(self, handlers: tuple[Step, ...], c: _Collector) -> None:
        """Every notify: names a handler (its name, id or a listen: name), as Ansible requires."""
        shown = {h.name for h in handlers} | {n for h in handlers for n in h.listen}
        known = shown | {h.id for h in handlers}
        hint = ("handlers answer to their name, id or listen: names: " + ", ".join(sorted(shown)) if handlers
                else "this runbook has no handlers: add them under `handlers:`")
        for name, pos in self._notifies:
            if is_template(name):
                c.error(pos, f'notify: "{name}" is a template; handler names are matched as written, not rendered',
                        "write the handler's name (or one of its listen: names)")
            elif name not in known:
                c.error(pos, f'notify: no handler is called "{name}"{did_you_mean(name, known)}', hint)

    def _children(self, data: PosDict, key: str, c: _Collector, ids: dict[str, Position]) -> tuple[Step, ...]:
        raw = data.get(key)
        if raw is None:
            return ()
        if not isinstance(raw, PosList):
            c.error(data.value_pos.get(key), f"`{key}:` must be a list of steps, found {_kind(raw)}")
            return ()
        return self._steps(raw, c, ids)

    def _check_action_name(self, key: str, data: PosDict, c: _Collector) -> None:
        plugin_name, _, action_name = key.partition(".")
        plugin = self.registry.plugin(plugin_name)
        pos = key_position(data, key)
        if plugin is None:
            why = self.registry.broken.get(plugin_name)
            if why:
                c.error(pos, f'plugin "{plugin_name}" is installed but failed to load: {why}')
                return
            c.error(pos, f'unknown plugin "{plugin_name}" in "{key}"{did_you_mean(plugin_name, self.registry.names)}',
                    "installed plugins: " + (", ".join(self.registry.names) or "none") + " (see `opsbook plugins`)")
        elif action_name not in plugin.actions:
            c.error(pos, f'plugin "{plugin_name}" has no action "{action_name}"{did_you_mean(action_name, plugin.actions)}',
                    f"{plugin_name} actions: " + ", ".join(sorted(plugin.actions)))

    def _action_call(self, key: str, data: PosDict, c: _Collector, written: str | None = None) -> ActionCall:
        args = data[written or key]
        pos = data.key_pos.get(written or key, data.pos)
        if "args" in data and written is not None:  # Ansible's `args:` keyword: more arguments
            args = self._merged_args(key, args, data, c)
        self._check_args(key, args, data.value_pos.get(written or key, pos), c)
        spec = self.registry.action(key)
        if spec is None:
            return ActionCall(key, args, pos)
        return ActionCall(key, args, pos, tuple(sorted(spec.expression_fields)), tuple(sorted(spec.read_fields)))

    def _merged_args(self, key: str, args: Any, data: PosDict, c: _Collector) -> Any:
        """An Ansible-style task's `args:` merged into its module's arguments (as Ansible does:
        `command: make` + `args: {chdir: /src}`)."""
        extra = data["args"]
        if not isinstance(extra, PosDict):
            c.error(data.value_pos.get("args"), f"args must be a mapping of arguments, found {_kind(extra)}")
            return args
        spec = self.registry.action(key)
        merged = PosDict(getattr(args, "pos", None) or data.value_pos.get("args", data.pos))
        if isinstance(args, PosDict):
            for name, value in args.items():
                merged[name] = value
                merged.key_pos[name], merged.value_pos[name] = args.key_pos[name], args.value_pos[name]
        elif args is not None and spec is not None and spec.scalar_arg:
            merged[spec.scalar_arg] = args
            merged.key_pos[spec.scalar_arg] = merged.value_pos[spec.scalar_arg] = merged.pos
        elif args is not None:
            c.error(data.value_pos.get("args"), f"args: {key} takes a mapping of arguments, found {_kind(args)}")
            return args
        for name, value in extra.items():
            merged[name] = value
            merged.key_pos[name], merged.value_pos[name] = extra.key_pos[name], extra.value_pos[name]
        return merged

    def _check_args(self, key: str, args: Any, pos: Position, c: _Collector) -> None:
        spec = self.registry.action(key)
        if spec is None:
            return
        from pydantic import ValidationError as PydanticError

        if args is None:
            args = {}
        if not isinstance(args, dict):
            if spec.scalar_arg is None:
                c.error(pos, f"{key} takes a mapping of arguments, found {_kind(args)}",
                        "arguments: " + ", ".join(spec.args_model.model_fields))  # type: ignore[attr-defined]
                return
            if isinstance(args, str):
                _refuse_key_value(key, spec, args, pos, c)
            args = {spec.scalar_arg: args}
        if is_template(args) or any(is_template(k) for k in args):
            return
        try:
            spec.args_model.model_validate(dict(args))  # type: ignore[attr-defined]
        except PydanticError as exc:
            fields = spec.args_model.model_fields  # type: ignore[attr-defined]
            for err in exc.errors():
                if holds_template(err.get("input")) and err["type"] != "extra_forbidden":
                    continue  # rendered at run time; checked again then (a name is known now)
                loc = err.get("loc") or ()
                where = _arg_pos(args, loc, pos)
                field_name = ".".join(str(p) for p in loc) or "arguments"
                if err["type"] == "missing":
                    c.error(where, f"{key}: missing required argument \"{field_name}\"",
                            "arguments: " + ", ".join(f"{n}{'' if f.is_required() else '?'}" for n, f in fields.items()))
                elif err["type"] == "extra_forbidden":
                    hint = "arguments: " + ", ".join(fields)
                    if len(loc) == 1 and loc[0] in STEP_KEYWORDS and loc[0] not in fields:
                        hint = (f'"{loc[0]}:" is a step keyword: indent it like "{key}:", not inside its '
                                f"arguments ({hint})")
                    c.error(key_position(args, loc[0]) if len(loc) == 1 else where,
                            f'{key}: unknown argument "{field_name}"{did_you_mean(str(loc[-1]), fields)}', hint)
                elif not loc:  # the arguments as a whole (a model validator): its own sentence
                    c.error(where, f"{key}: {str(err['msg']).removeprefix('Value error, ')}")
                else:
                    near = ""
                    if err["type"] in ("literal_error", "enum") and isinstance(err.get("input"), str):
                        allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
                        near = did_you_mean(err["input"], allowed)  # state: restart -> restarted
                    c.error(where, f"{key}: argument \"{field_name}\": {err['msg']}, found {_kind(err.get('input'))}{near}")

    def _rollback(self, data: PosDict, c: _Collector) -> ActionCall | None:
        raw = data.get("rollback")
        if raw is None:
            return None
        pos = data.value_pos.get("rollback")
        if not isinstance(raw, PosDict) or len(raw) != 1:
            c.error(pos, f"rollback must be a mapping with exactly one action (plugin.action: args), found {_kind(raw)}")
            return None
        (key,) = raw.keys()
        if not isinstance(key, str) or not ACTION_KEY.match(key):
            c.error(key_position(raw, key), f'rollback must name an action like local.command, found "{key}"')
            return None
        self._check_action_name(key, raw, c)
        return self._action_call(key, raw, c)

    def _keep_healthy(self, data: PosDict, c: _Collector) -> KeepHealthy | None:
        raw = data.get("keep_healthy")
        if raw is None:
            return None
        pos = data.value_pos.get("keep_healthy")
        spec = raw if isinstance(raw, PosDict) else {"min": raw}
        minimum, percent = _count_or_percent(spec.get("min"))
        template = spec.get("min") if isinstance(spec.get("min"), str) and is_template(spec["min"]) else None
        if minimum is None and percent is None and template is None:
            c.error(pos, f"keep_healthy needs a minimum like 2 or '50%', found {_kind(spec.get('min'))}")
            return None
        probe = None
        if isinstance(raw, PosDict):
            for key in raw:
                if key not in ("min", "group", "probe"):
                    c.error(key_position(raw, key), f'unknown keep_healthy key "{key}"', "expected min, group, probe")
            if isinstance(raw.get("probe"), PosDict) and len(raw["probe"]) == 1:
                (pkey,) = raw["probe"].keys()
                self._check_action_name(pkey, raw["probe"], c)
                probe = self._action_call(pkey, raw["probe"], c)
            elif "probe" in raw:
                c.error(raw.value_pos.get("probe"), "keep_healthy.probe must be one action, e.g. probe.tcp: {port: 80}")
        return KeepHealthy(minimum, percent, spec.get("group") if isinstance(raw, PosDict) else None, probe, template)

    # -- typed fields ------------------------------------------------------------------------
    def _loop_control(self, data: PosDict, c: _Collector) -> dict[str, Any]:
        """loop_control's keys; one opsbook does not know (index_var, extended, ...) is an
        error, as for every other key, rather than silently meaning nothing."""
        value = data.get("loop_control") or {}
        if not isinstance(value, dict):
            c.error(data.value_pos.get("loop_control"), f"loop_control must be a mapping, found {_kind(value)}")
            return {}
        for key in value:
            if key not in LOOP_CONTROL_KEYS:
                c.error(key_position(value, key), f'unknown loop_control key "{key}"{did_you_mean(str(key), LOOP_CONTROL_KEYS)}',
                        "opsbook's loop_control takes " + " and ".join(LOOP_CONTROL_KEYS))
        return dict(value)

    def _typed(self, data: PosDict, key: str, c: _Collector, check: Callable[[Any], Any], expected: str) -> Any:
        if key not in data:
            return None
        value = data[key]
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            detail = f" ({exc})" if str(exc) and "found" not in str(exc) else ""
            c.error(data.value_pos.get(key), f"{key} must be {expected}, found {_kind(value)}{detail}")
            return None

    def _str(self, data: PosDict, key: str, c: _Collector, required: bool = False) -> str | None:
        if required and key not in data:
            c.error(data.pos, f"missing required key `{key}`")
        return self._typed(data, key, c, _as_str, "a string")

    def _identifier(self, data: PosDict, key: str, c: _Collector) -> str | None:
        return self._typed(data, key, c, _as_identifier, "a name made of letters, digits and _")

    def _bool(self, data: PosDict, key: str, c: _Collector) -> bool:
        return bool(self._typed(data, key, c, _as_bool, "true or false"))

    def _int(self, data: PosDict, key: str, c: _Collector) -> int | None:
        return self._typed(data, key, c, _as_int, "a whole number")  # type: ignore[no-any-return]

    def _number(self, data: PosDict, key: str, c: _Collector) -> float | None:
        return self._typed(data, key, c, _as_number, "a number")  # type: ignore[no-any-return]

    def _duration(self, data: PosDict, key: str, c: _Collector) -> float | None:
        return self._typed(data, key, c, parse_duration, "a duration like 30s, 5m or 1h")  # type: ignore[no-any-return]

    def _str_list(self, data: PosDict, key: str, c: _Collector) -> tuple[str, ...]:
        return self._typed(data, key, c, _as_str_list, "a string or a list of strings") or ()

    def _cond(self, data: PosDict, key: str, c: _Collector) -> tuple[Any, ...]:
        return self._typed(data, key, c, _as_conditions, "an expression, true/false, or a list of them") or ()

    def _serial(self, data: PosDict, c: _Collector) -> tuple[int | str, ...]:
        return self._typed(data, "serial", c, _as_serial, "a number, a percentage like '30%', or a list of them") or ()

    def _approve(self, data: PosDict, c: _Collector) -> str | None:
        value = self._typed(data, "approve", c, _as_approve, "true or a message to show")
        return value  # type: ignore[no-any-return]


def _arg_pos(args: Any, loc: tuple[Any, ...], fallback: Position) -> Position:
    from opsbook.yamlsrc import position_of

    if isinstance(args, PosDict) and loc and loc[0] not in args:
        return fallback
    return position_of(args, loc, fallback) or fallback


# Ansible's free-form `key=value` words (command/shell/script, debug, setup, service ...):
# opsbook reads a string argument whole, so `command: rm -f x chdir=/tmp` would run `rm` here.
_ANSIBLE_FREE_FORM = frozenset({"chdir", "creates", "removes", "executable", "stdin", "warn", "msg", "var",
                                "verbosity", "filter", "name", "state", "src", "dest", "content", "path"})


def _refuse_key_value(key: str, spec: Any, text: str, pos: Position, c: _Collector) -> None:
    """An error for Ansible's `module: word key=value` short form, which would be read as one
    string (a command with `chdir=...` as an argument: run in the wrong folder)."""
    import re
    import shlex

    fields = set(spec.args_model.model_fields)  # type: ignore[attr-defined]
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        words = text.split()
    found = [w for w in words if re.fullmatch(r"[a-z_]+=.*", w, re.S) and w.split("=", 1)[0] in fields
             and (w.split("=", 1)[0] in _ANSIBLE_FREE_FORM or w.split("=", 1)[0] != spec.scalar_arg)]
    if not found:
        return
    names = list(dict.fromkeys(w.split("=", 1)[0] for w in found))
    keys = ([spec.scalar_arg, *(n for n in names if n != spec.scalar_arg)] if len(found) < len(words)
            else names)
    c.error(pos, f"{key}: {names[0]}= in {text!r} is Ansible's key=value form, which opsbook does not read: "
            f"the whole line would be the {spec.scalar_arg}",
            "write the arguments as a mapping: {" + ", ".join(f"{n}: ..." for n in keys) + "}")


def _text_positions(value: Any, pos: Position, out: dict[str, Position] | None = None) -> dict[str, Position]:
    """Each string written in a step (its conditions, arguments, messages) and where it is
    written, the first occurrence of a text winning (see Step.text_pos)."""
    out = {} if out is None else out
    if isinstance(value, str):
        out.setdefault(value, pos)
    elif isinstance(value, dict):
        where = getattr(value, "value_pos", {})
        for key, item in value.items():
            if key not in ("block", "rescue", "always"):  # nested steps have their own
                _text_positions(item, where.get(key) or pos, out)
    elif isinstance(value, list):
        items = getattr(value, "item_pos", [])
        for i, item in enumerate(value):
            _text_positions(item, items[i] if i < len(items) and items[i] else pos, out)
    return out
