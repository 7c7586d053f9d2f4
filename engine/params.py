"""Runbook parameters: typed values from -e key=value, defaults and secrets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from opsbook.errors import Diagnostic, ParamError, TemplateError, ValidationError, did_you_mean
from opsbook.model import ActionCall, Param, Runbook, parse_duration

MAX_DEPTH = 64  # nesting levels accepted in -e values; deeper would exhaust Python's recursion
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def coerce(param: Param, value: Any) -> Any:
    """Convert a CLI string (or a YAML value) to the parameter's type; ValueError if it can't."""
    kind = param.type
    if kind in ("string", "host", "secret"):
        return value if isinstance(value, str) else str(value)
    if kind == "hosts":  # a host pattern; a list of names or patterns is their union
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return value if isinstance(value, str) else str(value)
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        return int(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected true or false")
    if kind == "duration":
        return parse_duration(value)
    if kind == "list":
        if isinstance(value, list):
            return value
        text = str(value).strip()
        if text.startswith("["):
            parsed = _json(text, "expected a JSON list")
            if isinstance(parsed, list):
                return parsed
        return [v.strip() for v in text.split(",") if v.strip()]
    if kind == "dict":
        if isinstance(value, dict):
            return value
        parsed = _json(str(value), "expected a JSON object")
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object")
        return parsed
    return value


def _json(text: str, expected: str) -> Any:
    """json.loads whose failures are ValueErrors a person can read, nesting included."""
    try:
        return check_depth(json.loads(text))
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{expected}: {exc}") from None


def check_depth(value: Any) -> Any:
    """The value itself; ValueError when lists/mappings are nested more than MAX_DEPTH deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return value


def resolve_params(runbook: Runbook, given: dict[str, Any], also_known: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults + given values, typed; every problem reported at once.

    A given name that is not a parameter is an extra variable (Ansible's `-e`): accepted
    when the runbook reads it somewhere, when it is in `also_known` (the inventory's
    variable names), or when the runbook says `extra_vars: any`; anything else is a typo
    that would otherwise be ignored while the run goes on with a default."""
    problems: list[Diagnostic] = []
    known = {p.name: p for p in runbook.params}
    resolved: dict[str, Any] = {}
    problems += unknown_extra_vars(runbook, [n for n in given if n not in known], also_known)
    for name, value in given.items():
        if name not in known:
            resolved[name] = value
    for param in runbook.params:
        if param.name in given:
            try:
                value = coerce(param, given[param.name])
            except (ValueError, TypeError) as exc:
                shown = "the value given" if param.secret or param.type == "secret" else _clip(repr(given[param.name]))
                problems.append(Diagnostic(param.pos, f'parameter "{param.name}" ({param.type}): '
                                           f"cannot use {shown}: {exc}"))
                continue
        elif param.default is not None:
            value = coerce(param, param.default) if not isinstance(param.default, str) or "{{" not in param.default else param.default
        elif param.required:
            secret = param.secret or param.type == "secret"
            problems.append(Diagnostic(param.pos, f'missing required parameter "{param.name}"'
                                       + (f" ({param.description})" if param.description else ""),
                                       f"pass it with --secret {param.name}=env:VAR or file:PATH (not -e: a value "
                                       "typed on the command line stays in your shell history)" if secret else
                                       f"pass it with -e {param.name}=VALUE"))
            continue
        else:
            value = None
        if param.choices and value not in param.choices:
            if param.secret or param.type == "secret":  # an error never quotes a secret, nor hints at it
                problems.append(Diagnostic(param.pos, f'parameter "{param.name}" (secret) is not one of its '
                                           f"{len(param.choices)} allowed values"))
            else:
                problems.append(Diagnostic(param.pos, f'parameter "{param.name}" must be one of '
                                           f"{', '.join(map(str, param.choices))}, found {value!r}"
                                           + did_you_mean(str(value), map(str, param.choices))))
        resolved[param.name] = value
    if problems:
        raise ValidationError(problems)
    return resolved


_PATTERN_CHARS = frozenset("*?~:,![]&")


def check_host_params(runbook: Runbook, values: dict[str, Any], inventory: Any) -> list[Diagnostic]:
    """`type: host` is exactly one inventory host; `type: hosts` a valid host pattern. Checked
    against the inventory, at the parameter's position (plan, check, run, resume)."""
    from opsbook.errors import PatternError
    from opsbook.template import is_template

    problems: list[Diagnostic] = []
    if not getattr(inventory, "sources", ()):
        return problems  # no -i: `opsbook check` of a runbook alone; its patterns say the rest
    for param in runbook.params:
        value = values.get(param.name)
        if param.type not in ("host", "hosts") or value is None or is_template(value):
            continue
        if param.type == "hosts":
            try:
                inventory.match(str(value))
            except PatternError as exc:
                problems.append(Diagnostic(param.pos, f'parameter "{param.name}" (hosts): {exc.message}', exc.hint))
            continue
        try:
            inventory.host(str(value))
            continue
        except PatternError:
            pass
        problems.append(_not_one_host(param, str(value), inventory))
    return problems


def _not_one_host(param: Param, value: str, inventory: Any) -> Diagnostic:
    hosts = list(inventory.hosts)
    listing = ", ".join(hosts[:8]) + (f", ... ({len(hosts)} hosts)" if len(hosts) > 8 else "")
    if value in inventory.groups or value == "all" or _PATTERN_CHARS & set(value):
        what = f'the group "{value}"' if value in inventory.groups or value == "all" else "a host pattern"
        return Diagnostic(param.pos, f'parameter "{param.name}" is one host (type: host), but "{value}" is {what}',
                          "give one inventory host name"
                          + (f" (one of: {listing})" if hosts else "")
                          + f"; to accept patterns, declare it {{type: hosts}}")
    return Diagnostic(param.pos, f'parameter "{param.name}" (type: host): "{value}" is not a host of the inventory'
                      + did_you_mean(value, hosts),
                      f"inventory hosts: {listing}" if hosts else "the inventory has no hosts (is -i missing?)")


# Variables the engine itself reads from a host's variables (so `-e` can set them).
ENGINE_VARS = frozenset({"ansible_become", "ansible_become_user", "ansible_become_password",
                         "ansible_become_pass"})


def unknown_extra_vars(runbook: Runbook, names: Iterable[str], also_known: Iterable[str] = ()) -> list[Diagnostic]:
    """`-e` names that nothing declares or reads: typos of a parameter, most likely."""
    names = list(names)
    if not names or runbook.extra_vars == "any":
        return []
    used = names_used(runbook)
    if used is None:  # a template file we cannot read: anything may be used there
        return []
    allowed = used | set(also_known) | ENGINE_VARS
    declared = [p.name for p in runbook.params]
    problems = []
    for name in names:
        if name in allowed:
            continue
        guess = did_you_mean(name, declared) or did_you_mean(name, used)
        problems.append(Diagnostic(
            runbook.pos, f'-e {name}: not a parameter of runbook "{runbook.name}", and nothing in it reads '
            f'"{name}"{guess}',
            "declared parameters: " + (", ".join(declared) or "none")
            + "; a runbook that takes free-form extra variables says `extra_vars: any`"))
    return problems


def check_extra_vars(runbooks: Iterable[Runbook], given: Iterable[str], also_known: Iterable[str] = ()) -> None:
    """ValidationError for -e names that none of `runbooks` declares or reads (a command
    that runs several runbooks with one set of -e, as `opsbook watch` does)."""
    runbooks, also_known = list(runbooks), set(also_known)
    problems = []
    for name in given:
        if any(name in {p.name for p in rb.params} for rb in runbooks):
            continue
        found = [unknown_extra_vars(rb, [name], also_known) for rb in runbooks]
        if all(found):
            problems.append(found[0][0])
    if problems:
        raise ValidationError(problems)


_CONDITIONS = frozenset({"when", "until", "failed_when", "changed_when"})


def names_used(runbook: Runbook) -> frozenset[str] | None:
    """Every variable name the runbook's templates read (top level, and `params.x` keys),
    including the template files of `*.template` actions; None when one cannot be read."""
    from opsbook.template import is_template, key_reads, referenced_names

    names: set[str] = set()
    for source, expression in _sources(runbook):
        if not (expression or is_template(source)):
            continue
        try:
            names |= referenced_names(source, expression=expression)
        except TemplateError:
            continue
        names |= {r.key for r in key_reads(source, expression) if r.name == "params"}
    files = _template_files(runbook)
    if files is None:
        return None
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            if "{% include" in text or "{% import" in text or "{% from" in text or "{% extends" in text:
                return None
            names |= referenced_names(text) | {r.key for r in key_reads(text) if r.name == "params"}
        except (OSError, UnicodeDecodeError, TemplateError):
            return None
    return frozenset(names)


def _sources(value: Any, expression: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string of the runbook model, and whether it is a bare expression."""
    if isinstance(value, str):
        yield value, expression
    elif isinstance(value, ActionCall):
        args = value.args
        fields = set(value.expression_fields)
        if isinstance(args, dict):
            for key, item in args.items():
                yield from _sources(item, key in fields)
        else:
            yield from _sources(args, bool(fields))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _sources(getattr(value, f.name), f.name in _CONDITIONS)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _sources(item, expression)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _sources(item, expression)


def _template_files(runbook: Runbook) -> list[Path] | None:
    """Local template files that actions render with the run's variables (ssh.template);
    None when one is named by a template itself (known only at run time)."""
    from opsbook.template import is_template

    folder = Path(runbook.path).resolve().parent
    found = []
    calls = [c for step in runbook.all_steps() + list(runbook.handlers) for c in (step.action, step.rollback)]
    for call in calls:
        if call is None or not call.name.endswith(".template") or not isinstance(call.args, dict):
            continue
        src = call.args.get("src")
        if not isinstance(src, str) or is_template(src):
            return None
        path = Path(src).expanduser()
        found.append(path if path.is_absolute() else folder / path)
    return found


def parse_extra_vars(pairs: list[str]) -> dict[str, Any]:
    """-e key=value (repeatable) or -e '{"json": ...}' or -e @file.yaml."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if pair.startswith("@"):
            import yaml

            try:
                with open(pair[1:], encoding="utf-8") as handle:
                    data = check_depth(yaml.safe_load(handle) or {})
            except OSError as exc:
                raise ParamError(f"-e {pair}: cannot read {pair[1:]}: {exc.strerror}") from None
            except RecursionError:
                raise ParamError(f"-e {pair}: nested more than {MAX_DEPTH} levels deep") from None
            except ValueError as exc:
                raise ParamError(f"-e {pair}: {exc}") from None
            except yaml.YAMLError as exc:
                raise ParamError(f"-e {pair}: not valid YAML: {exc}".splitlines()[0]) from None
            if not isinstance(data, dict):
                raise ParamError(f"{pair[1:]} must contain a mapping of variables")
            out.update(data)
        elif pair.lstrip().startswith("{"):
            try:
                data = _json(pair, "invalid JSON")
            except ValueError as exc:
                raise ParamError(f"-e {_clip(pair)}: {exc}") from None
            if not isinstance(data, dict):
                raise ParamError(f"-e {_clip(pair)}: expected a JSON object")
            out.update(data)
        elif "=" in pair:
            key, _, value = pair.partition("=")
            out[key.strip()] = value
        else:
            raise ParamError(f"-e {_clip(pair)!r}: expected key=value, a JSON object or @file")
    return out


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width] + f"... ({len(text)} characters)"
