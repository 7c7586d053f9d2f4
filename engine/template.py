"""Jinja2 templates in a sandbox, with Ansible's common filters and shell quoting.

- `ImmutableSandboxedEnvironment` + `StrictUndefined`: a runbook cannot reach Python
  internals, cannot change a variable in place (`groups.lb.reverse()`, `params.update(...)`:
  `hostvars`, `groups`, `params`, facts and registered results are shared by the whole run),
  and an undefined name is an error, not an empty string.
- A string that is exactly one expression (`"{{ groups.web }}"`) renders to the native
  value (list, dict, int), as Ansible does; anything else renders to a string.
- In shell contexts every `{{ }}` value is shell-quoted unless the author writes `| raw`.
- In a command line split into an argv (`render_argv`), every `{{ }}` value is one word
  whatever it holds (spaces, quotes, `;`, newlines): the line is split around the values,
  never through them.
- Jinja2 is imported on the first template, not at start-up: a run whose runbook holds
  none never pays for it.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import shlex
import types
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opsbook.errors import Position, TemplateError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

_SINGLE_EXPR = re.compile(r"^\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}$", re.DOTALL)


class RawShell(str):
    """A value the author explicitly allowed into a shell command unquoted (`| raw`)."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("yes", "on", "1", "true", "y", "t")


def _regex_search(value: str, pattern: str, *groups: str, ignorecase: bool = False) -> Any:
    match = re.search(pattern, str(value), re.IGNORECASE if ignorecase else 0)
    if match is None:
        return None
    if not groups:
        return match.group(0)
    picked = [match.group(int(g[1:]) if g.startswith("\\") else g) for g in groups]
    return picked


def _regex_replace(value: str, pattern: str = "", replacement: str = "", ignorecase: bool = False) -> str:
    return re.sub(pattern, replacement, str(value), flags=re.IGNORECASE if ignorecase else 0)


def _ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def _combine(*dicts: Mapping[str, Any], recursive: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            if recursive and isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                result[key] = _combine(result[key], value, recursive=True)
            else:
                result[key] = value
    return result


def _flatten(value: Iterable[Any], levels: int | None = None) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)) and (levels is None or levels > 0):
            out.extend(_flatten(item, None if levels is None else levels - 1))
        else:
            out.append(item)
    return out


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if value is None or value == "":
        raise TemplateError(msg or "mandatory variable is empty")
    return value


def _unique(value: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


def _to_yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False)


def _from_yaml(value: str) -> Any:
    import yaml

    return yaml.safe_load(value)


FILTERS: dict[str, Any] = {
    "bool": _bool,
    "quote": lambda v: shlex.quote(str(v)),
    "raw": lambda v: RawShell(v),
    "to_json": lambda v, **kw: json.dumps(v, **kw),
    "to_nice_json": lambda v, indent=4: json.dumps(v, indent=indent, sort_keys=True),
    "from_json": lambda v: json.loads(v),
    "to_yaml": _to_yaml,
    "from_yaml": _from_yaml,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
    "regex_findall": lambda v, p: re.findall(p, str(v)),
    "regex_escape": lambda v: re.escape(str(v)),
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "basename": lambda v: os.path.basename(str(v)),
    "dirname": lambda v: os.path.dirname(str(v)),
    "ternary": _ternary,
    "combine": _combine,
    "dict2items": lambda d: [{"key": k, "value": v} for k, v in d.items()],
    "items2dict": lambda items: {i["key"]: i["value"] for i in items},
    "flatten": _flatten,
    "unique": _unique,
    "difference": lambda a, b: [x for x in a if x not in b],
    "intersect": lambda a, b: [x for x in a if x in b],
    "union": lambda a, b: _unique(list(a) + list(b)),
    "mandatory": _mandatory,
    "split": lambda v, sep=None: str(v).split(sep),
}

def _result(r: Any) -> Any:
    """A registered result for the result tests; an undefined name is an error, as in
    Ansible (`when: nginx_pid is succeeded` with a typo must not read as false and skip)."""
    return _defined(r)


TESTS: dict[str, Any] = {
    "match": lambda v, p: re.match(p, str(v)) is not None,
    "search": lambda v, p: re.search(p, str(v)) is not None,
    "regex": lambda v, p: re.search(p, str(v)) is not None,
    "failed": lambda r: bool(r.get("failed")) if isinstance(_result(r), Mapping) else False,
    "succeeded": lambda r: not r.get("failed") if isinstance(_result(r), Mapping) else False,
    "success": lambda r: not r.get("failed") if isinstance(_result(r), Mapping) else False,
    "changed": lambda r: bool(r.get("changed")) if isinstance(_result(r), Mapping) else False,
    "skipped": lambda r: bool(r.get("skipped")) if isinstance(_result(r), Mapping) else False,
    "unknown": lambda r: bool(r.get("unknown")) if isinstance(_result(r), Mapping) else False,
}

BUILTIN_NAMES = frozenset(
    {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none", "omit"}
)


def _a_value(value: Any) -> Any:
    """Refuse to print a function, class or module (`{{ namespace }}`, `{{ dict }}`): it is
    no value, and its repr shows Python internals."""
    if isinstance(value, (type, types.ModuleType)) or inspect.isroutine(value):
        raise TemplateError(f"{getattr(value, '__name__', 'it')} is a function or a class, not a value",
                            hint="call it, or use it inside an expression")
    return value


def _shell_finalize(value: Any) -> Any:
    _a_value(value)
    if isinstance(value, RawShell):
        return str(value)
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return shlex.quote("" if value is None else str(value))


# render_argv: each {{ }} value is set aside and replaced by a placeholder made of characters
# shlex treats as word characters, so splitting the rendered line never looks inside a value.
_WORD_OPEN, _WORD_CLOSE = "\ue000", "\ue001"  # Unicode private use: not in real commands
_WORD = re.compile(_WORD_OPEN + r"(\d+)" + _WORD_CLOSE)
_argv_values: ContextVar[list[str] | None] = ContextVar("opsbook_argv_values", default=None)


def _argv_placeholder(value: Any) -> str:
    values = _argv_values.get()
    if values is None:  # pragma: no cover - only render_argv renders with this environment
        raise TemplateError("internal: argv template rendered outside render_argv")
    values.append("" if value is None else str(value))
    return f"{_WORD_OPEN}{len(values) - 1}{_WORD_CLOSE}"


def _argv_finalize_fn() -> Any:
    from jinja2 import pass_context

    @pass_context  # evaluated at render time, never folded into the compiled template
    def finalize(_context: Any, value: Any) -> Any:
        _a_value(value)
        if isinstance(value, RawShell):
            return str(value)  # the author opted out: split like the literal text
        if isinstance(value, (list, tuple)):
            return " ".join(_argv_placeholder(v) for v in value)  # a list is its items, one word each
        return _argv_placeholder(value)

    return finalize


@lru_cache(maxsize=3)
def _env(mode: str) -> SandboxedEnvironment:
    """The sandboxed environment (plain, shell-quoting or argv), built on first use."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Sandbox(ImmutableSandboxedEnvironment):
        """Sandbox that refuses methods changing a list, dict or set in place, str.format
        tricks and underscore attributes outright."""

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            if attr.startswith("_") or attr in ("format", "format_map", "mro"):
                return False
            return bool(super().is_safe_attribute(obj, attr, value))

    finalize = {"plain": _a_value, "shell": _shell_finalize, "argv": _argv_finalize_fn()}[mode]
    env = _Sandbox(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=finalize,
    )
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    # lipsum/cycler/joiner are harmless inside the sandbox, but nothing needs them and
    # they are the classic first step of template-injection attacks.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.globals["omit"] = "__omit__"
    return env


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def holds_template(value: Any) -> bool:
    """Whether a value, or anything nested in its dicts (keys too) and lists, is a template."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(holds_template(v) or (isinstance(k, str) and is_template(k)) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_template(v) for v in value)
    return False


def _mode(mode: str | bool) -> str:
    if isinstance(mode, bool):
        return "shell" if mode else "plain"
    return mode


@lru_cache(maxsize=8192)
def _compiled(source: str, shell: bool | str) -> Any:
    mode = _mode(shell)
    env = _env(mode)
    match = _SINGLE_EXPR.match(source.strip()) if mode == "plain" else None
    if match:
        return ("expr", env.compile_expression(match.group("expr"), undefined_to_none=False))
    return ("tmpl", env.from_string(source))


def _error(exc: Exception, source: str, pos: Position | None) -> TemplateError:
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    if isinstance(exc, UndefinedError):
        return TemplateError(
            f"undefined variable in template {source!r}: {exc.message}",
            pos,
            "define it under vars:/params:, register it in an earlier step, or use | default(...)",
        )
    if isinstance(exc, SecurityError):
        changes = _MUTATION.search(str(exc))
        if changes and changes.group(1) in _mutators():
            return TemplateError(
                f"template {source!r} cannot change a variable: .{changes.group(1)}() would modify "
                f"the {changes.group(2)} in place for the rest of the run; use a filter that returns "
                "a new value (| reverse | list, | sort, | combine({...}), x + [y])", pos,
                "templates only read variables: hostvars, groups, params, facts and registered "
                "results are shared by every step")
        return TemplateError(f"template {source!r} is not allowed: {exc}", pos,
                             "templates run in a sandbox without access to Python internals")
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"template syntax error in {source!r}: {exc.message}", pos)
    if isinstance(exc, TemplateError):
        return TemplateError(f"{exc.message} in template {source!r}", pos, exc.hint)
    return TemplateError(f"template {source!r} failed: {type(exc).__name__}: {exc}", pos)


_MUTATION = re.compile(r"attribute '(\w+)' of '(\w+)' object is unsafe")


@lru_cache(maxsize=1)
def _mutators() -> frozenset[str]:
    from jinja2.sandbox import _mutable_spec

    return frozenset(name for _, names in _mutable_spec for name in names)


def _defined(value: Any) -> Any:
    """A native expression can return an Undefined instead of raising; make it raise."""
    if isinstance(value, _undefined()):
        str(value)  # raises UndefinedError, or SecurityError for unsafe attributes
    return _a_value(value)


@lru_cache(maxsize=1)
def _undefined() -> type:
    from jinja2 import Undefined

    return Undefined


def render(value: Any, context: Mapping[str, Any], *, shell: bool = False,
           pos: Position | None = None) -> Any:
    """Render a value (str, or nested dict/list of them) against `context`."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            kind, compiled = _compiled(value, shell)
            if kind == "expr":
                return _defined(compiled(**context))
            return compiled.render(context)
        except Exception as exc:  # every failure inside a template becomes a TemplateError
            raise _error(exc, value, pos) from None
    if isinstance(value, dict):
        return {k: render(v, context, shell=shell, pos=pos) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, shell=shell, pos=pos) for v in value]
    return value


def render_argv(source: str, context: Mapping[str, Any], pos: Position | None = None) -> list[str]:
    """A command line split into an argv like a shell would, each `{{ }}` value one word.

    The line is split around the values, never through them: `rm -f {{ f }}` with
    f = "a b; c" is ["rm", "-f", "a b; c"]. Quotes and backslashes written in the line
    itself work as in a shell (`grep "{{ p }}" f`); a list value gives one word per item;
    `| raw` opts a value out (it is split like the literal text). Raises TemplateError.
    """
    if _WORD_OPEN in source or _WORD_CLOSE in source:
        raise TemplateError(f"command line {source!r} holds the reserved characters U+E000/U+E001", pos)
    values: list[str] = []
    if "{{" in source or "{%" in source:
        token = _argv_values.set(values)
        try:
            text = _compiled(source, "argv")[1].render(context)
        except Exception as exc:  # every failure inside a template becomes a TemplateError
            raise _error(exc, source, pos) from None
        finally:
            _argv_values.reset(token)
    else:
        text = source
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise TemplateError(f"cannot split the command line {source!r} into words: {exc}", pos,
                            "close the quote, or give the command as a list (argv)") from None
    if not values:
        return words
    return [_WORD.sub(lambda m: values[int(m.group(1))], word) for word in words]


def bare_expression(expression: str) -> str:
    """A condition as Ansible reads it: `when: "{{ x }}"` is `when: x` (with a warning from
    `opsbook check`, as Ansible gives one)."""
    expr = expression.strip()
    if has_delimiters(expr):
        expr = expr[2:-2]
    return expr


def has_delimiters(expression: str) -> bool:
    """Whether a condition is wrapped in {{ }} (which conditions do not need)."""
    expr = expression.strip()
    return expr.startswith("{{") and expr.endswith("}}")


def evaluate(expression: str, context: Mapping[str, Any], pos: Position | None = None) -> Any:
    """Evaluate a bare Jinja expression (as in `when:` / `until:`), Ansible style."""
    expr = bare_expression(expression)
    try:
        return _defined(_expression(expr)(**context))
    except Exception as exc:
        raise _error(exc, expression, pos) from None


@lru_cache(maxsize=8192)
def _expression(expr: str) -> Any:
    # Compiled as an expression, not as "{{" + expr + "}}": an expression ending with a dict
    # literal (`x == {'a': 1}`) would close the braces early.
    return _env("plain").compile_expression(expr, undefined_to_none=False)


_EXPRESSIONS = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def referenced_names(source: str, expression: bool = False) -> frozenset[str]:
    """Top-level names a template (or bare expression) reads; raises TemplateError on syntax."""
    if expression:
        return _names_of("{{ " + bare_expression(source) + " }}")
    if "{%" in source or "{#" in source:
        return _names_of(source)
    # Only {{ }} parts: parse each expression once (many templates share them).
    names: frozenset[str] = frozenset()
    for expr in _EXPRESSIONS.findall(source):
        names |= _names_of("{{" + expr + "}}")
    if "{{" in _EXPRESSIONS.sub("", source):
        return _names_of(source)  # unbalanced braces: let Jinja report the syntax error
    return names


@lru_cache(maxsize=8192)
def _names_of(text: str) -> frozenset[str]:
    from jinja2 import TemplateSyntaxError, meta

    source = text
    try:
        ast = _env("plain").parse(text)
        # Compiling (not parsing) is what finds a filter or test that does not exist.
        return frozenset(meta.find_undeclared_variables(ast))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error in {source!r}: {_unknown_name(exc.message)}") from None


_NO_SUCH = re.compile(r"No (filter|test) named '([^']*)'\.?")


def _unknown_name(message: str | None) -> str:
    """Jinja's "No filter named 'uper'." with a did-you-mean among the filters (or tests) there are."""
    from opsbook.errors import did_you_mean

    found = _NO_SUCH.fullmatch(message or "")
    if not found:
        return message or ""
    kind, name = found.groups()
    env = _env("plain")
    names = env.filters if kind == "filter" else env.tests
    return f'no {kind} named "{name}"{did_you_mean(name, names)}'


@lru_cache(maxsize=8192)
def parsed(source: str, expression: bool = False) -> Any:
    """The Jinja syntax tree of a template (an `expression` is a bare one, as `when:` holds),
    or None when it does not parse (reporting a syntax error is `check`'s job); cached."""
    from jinja2 import TemplateSyntaxError

    text = "{{ " + bare_expression(source) + " }}" if expression else source
    try:
        return _env("plain").parse(text)
    except TemplateSyntaxError:
        return None


def attribute_paths(source: str, expression: bool = False) -> set[tuple[str, str]]:
    """(name, attribute) pairs like ("params", "primary") read by a template."""
    from jinja2 import nodes

    ast = parsed(source, expression)
    if ast is None:
        return set()
    found: set[tuple[str, str]] = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            found.add((node.node.name, node.attr))
    return found


def hostvars_names(source: str, expression: bool = False) -> frozenset[str]:
    """Variables read through another host's `hostvars`: `x` in `hostvars[h].x`,
    `hostvars['web1']['x'].stdout` (a step that reads them waits for the step that registers
    them, as for a bare `x`)."""
    from jinja2 import nodes

    ast = parsed(source, expression) if "hostvars" in source else None
    if ast is None:
        return frozenset()
    found = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if not (isinstance(inner, nodes.Getitem) and isinstance(inner.node, nodes.Name)
                and inner.node.name == "hostvars"):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return frozenset(found)


def optional_names(source: str, expression: bool = False) -> frozenset[str]:
    """Names read only behind `| default(...)` (or as the fallback of a default that is
    itself defaulted) or tested with `is defined`: not required."""
    from jinja2 import nodes

    ast = parsed(source, expression)
    if ast is None:
        return frozenset()
    found = set()
    for node in ast.find_all(nodes.Filter):
        if node.name not in ("default", "d"):
            continue
        if isinstance(node.node, nodes.Name):
            found.add(node.node.name)
        # `a | default(b) | default(c)`: the outer default also catches an undefined `b`
        inner = node.node
        while isinstance(inner, nodes.Filter) and inner.name in ("default", "d"):
            found.update(arg.name for arg in inner.args if isinstance(arg, nodes.Name))
            inner = inner.node
    for node in ast.find_all(nodes.Test):
        if node.name in ("defined", "undefined") and isinstance(node.node, nodes.Name):
            found.add(node.node.name)
    return frozenset(found)


# -- static reads of keys (`params.x`, `hostvars['web1']`) for `opsbook check` -------------

DICT_METHODS = frozenset({"get", "keys", "values", "items", "copy", "pop", "popitem", "update",
                          "setdefault", "clear", "fromkeys"})


@dataclass(frozen=True, slots=True)
class KeyRead:
    """`name.key` or `name['key']` read by a template, the key written literally."""

    name: str
    key: str
    guarded: bool  # behind `| default(...)`, `is defined` or `'key' in name` somewhere in the source


@lru_cache(maxsize=8192)
def key_reads(source: str, expression: bool = False) -> tuple[KeyRead, ...]:
    """First-level literal key reads on top-level names; names the template assigns itself
    (`{% set %}`, `{% for %}`) are left out. Raises nothing: syntax errors are check's job."""
    from jinja2 import nodes

    ast = parsed(source, expression)
    if ast is None:
        return ()
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx != "load"}
    reads: list[tuple[str, str]] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        pair = _key_of(node)
        if pair is not None and pair[0] not in assigned:
            reads.append(pair)
    guarded = _guarded_pairs(ast)
    return tuple(KeyRead(name, key, (name, key) in guarded) for name, key in dict.fromkeys(reads))


@lru_cache(maxsize=8192)
def guarded_keys(source: str, expression: bool = False) -> frozenset[tuple[str, str]]:
    """(name, key) pairs a condition tests for (`params.x is defined`, `'x' in params`):
    a step whose `when` says so may read them."""
    ast = parsed(source, expression)
    return frozenset() if ast is None else frozenset(_guarded_pairs(ast))


def _key_of(node: Any) -> tuple[str, str] | None:
    from jinja2 import nodes

    if not isinstance(node.node, nodes.Name) or node.node.ctx != "load":
        return None
    if isinstance(node, nodes.Getattr):
        return node.node.name, node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.node.name, node.arg.value
    return None


def _guarded_pairs(ast: Any) -> set[tuple[str, str]]:
    """Keys read behind `| default`, tested with `is defined`/`is undefined`, or tested with
    `'key' in name`: reading them is the author's deliberate choice, not a typo."""
    from jinja2 import nodes

    out: set[tuple[str, str]] = set()
    roots: list[Any] = [f.node for f in ast.find_all(nodes.Filter) if f.name in ("default", "d") and f.node is not None]
    roots += [t.node for t in ast.find_all(nodes.Test) if t.name in ("defined", "undefined")]
    for root in roots:
        for node in [root, *root.find_all((nodes.Getattr, nodes.Getitem))]:
            if isinstance(node, (nodes.Getattr, nodes.Getitem)):
                pair = _key_of(node)
                if pair is not None:
                    out.add(pair)
    for compare in ast.find_all(nodes.Compare):
        for operand in compare.ops:
            if operand.op in ("in", "notin") and isinstance(operand.expr, nodes.Name) \
                    and isinstance(compare.expr, nodes.Const) and isinstance(compare.expr.value, str):
                out.add((operand.expr.name, compare.expr.value))
    return out


# -- what a condition saw: `out.rc = 1, out.stdout = 'x'` for failure and skip messages ----

_VALUE_WIDTH = 40


def expression_values(expressions: Iterable[Any], context: Mapping[str, Any], limit: int = 5,
                      redact: Callable[[Any], Any] | None = None) -> str:
    """The values of the variables (and their keys) that bare expressions read, short:
    `out.rc = 1, out.stdout = 'Traceback (most rec...' (812 chars)`. Empty when none.
    `redact` (SecretStore.redact_any) sees each whole value before it is shown and cut, so
    no part of a secret shows."""
    paths: list[str] = []
    for expression in expressions:
        if isinstance(expression, str):
            for path in _paths_read(expression):
                if path not in paths:
                    paths.append(path)
    shown = []
    for path in paths[:limit]:
        try:
            value = evaluate(path, context)
        except TemplateError:
            shown.append(f"{path} is undefined")
            continue
        shown.append(f"{path} = {short_value(value if redact is None else redact(value))}")
    if len(paths) > limit:
        shown.append("...")
    return ", ".join(shown)


def short_value(value: Any, width: int = _VALUE_WIDTH) -> str:
    """repr() of a value, cut to about `width` characters (the full length said when cut)."""
    text = repr(value)
    if len(text) <= width:
        return text
    size = f" ({len(value)} chars)" if isinstance(value, str) else ""
    return text[:width - 3] + "..." + size


def _paths_read(expression: str) -> list[str]:
    """`out.rc`, `out.stdout`, `item` for `out.rc != 0 and item in out.stdout`."""
    from jinja2 import nodes

    ast = parsed(expression, True)
    if ast is None:
        return []
    found: list[str] = []

    def visit(node: Any) -> None:
        path = _path_text(node)
        if path is not None:
            if path not in found and path.partition(".")[0].partition("[")[0] not in BUILTIN_NAMES:
                found.append(path)
            return
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            visit(node.node.node)  # `out.stdout.startswith(...)`: the value is out.stdout
            for child in [*node.args, *node.kwargs]:
                visit(child)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(ast)
    return found


def _path_text(node: Any) -> str | None:
    from jinja2 import nodes

    if isinstance(node, nodes.Name):
        return node.name if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        base = _path_text(node.node)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _path_text(node.node)
        return None if base is None else f"{base}[{node.arg.value!r}]"
    return None
