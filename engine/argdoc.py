"""What an action's arguments are, as a runbook author writes them: the JSON Schema of the
argument model (names as written, `from:` not `from_`; real defaults, also those made by a
default factory) and its one-line text form for `opsbook plugins`.

`opsbook schema`, `opsbook plugins` and `opsbook plugins --format json` all read
`args_schema`, so they cannot tell different stories about one argument."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from opsbook.plugin import ActionSpec
from pydantic_core import to_jsonable_python

_YAML_TYPES = {"string": "string", "integer": "int", "number": "number", "boolean": "bool", "array": "list",
               "object": "map", "null": "null"}


def args_schema(spec: ActionSpec) -> dict[str, Any]:
    """The argument model's JSON Schema by alias, with the default of every optional argument
    whose default comes from a factory (pydantic leaves those out: `env` defaults to {})."""
    model: Any = spec.args_model
    schema: dict[str, Any] = model.model_json_schema(by_alias=True)
    props = schema.get("properties", {})
    for fname, field in model.model_fields.items():
        written = field.alias or fname
        prop = props.get(written)
        if prop is None or "default" in prop or field.is_required() or field.default_factory is None:
            continue
        with contextlib.suppress(Exception):  # a factory that needs validated data: no default to show
            prop["default"] = to_jsonable_python(field.get_default(call_default_factory=True))
    return schema


def written_names(spec: ActionSpec, fields: frozenset[str]) -> frozenset[str]:
    """Field names of the model (argv_fields, shell_fields) as a runbook writes them."""
    model: Any = spec.args_model
    return frozenset((model.model_fields[f].alias or f) if f in model.model_fields else f for f in fields)


def type_text(prop: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> str:
    """A schema node as a reader of YAML says it: `string | null`, `one of: started, stopped`,
    `list of int`, `map of string`, `{name (required), host, port}`."""
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        return type_text(target, defs, depth)
    if "enum" in prop:
        return "one of: " + ", ".join(_literal(v) for v in prop["enum"])
    if "const" in prop:
        return _literal(prop["const"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            parts: list[str] = []
            for sub in prop[key]:
                text = type_text(sub, defs, depth)
                if text not in parts:
                    parts.append(text)
            return " | ".join(parts)
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_YAML_TYPES.get(k, k) for k in kind)
    if kind == "array":
        items = prop.get("items")
        return "list" + (f" of {type_text(items, defs, depth + 1)}" if items else "")
    if kind == "object":
        if "properties" in prop and depth < 2:
            required = set(prop.get("required", ()))
            inner = ", ".join(name + (" (required)" if name in required else "") for name in prop["properties"])
            return "{" + inner + "}"
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"map of {type_text(extra, defs, depth + 1)}"
        return "map"
    text = _YAML_TYPES.get(kind, kind or "any")
    return text + _bounds(prop)


def _bounds(prop: dict[str, Any]) -> str:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    lo = "" if low is None else (">" if "exclusiveMinimum" in prop else "") + f"{low}"
    hi = "" if high is None else f"{high}"
    if lo and hi:
        return f" {lo}..{hi}"
    return f" >= {low}" if lo and not lo.startswith(">") else f" > {low}" if lo else f" <= {high}"


def _literal(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def argument_lines(spec: ActionSpec, indent: str = "      ") -> list[str]:
    """One line per argument: `name: type (required|default X) [argv|shell] - description`."""
    schema = args_schema(spec)
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    argv, shell = written_names(spec, spec.argv_fields), written_names(spec, spec.shell_fields)
    lines = []
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            how_set = "required"
        elif "default" in prop:
            how_set = f"default {json.dumps(prop['default'])}"
        else:
            how_set = "optional"
        how = " [argv]" if name in argv else " [shell]" if name in shell else ""
        shorthand = f" [short form: {spec.full_name}: <{name}>]" if name == _written(spec, spec.scalar_arg) else ""
        desc = f" - {prop['description']}" if prop.get("description") else ""
        lines.append(f"{indent}{name}: {type_text(prop, defs)} ({how_set}){how}{shorthand}{desc}")
    return lines


def _written(spec: ActionSpec, field: str | None) -> str | None:
    if field is None:
        return None
    return next(iter(written_names(spec, frozenset({field}))))
