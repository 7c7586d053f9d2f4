"""The JSON Schema of runbooks, generated from the loader's keyword tables and the
installed plugins' argument models (so editors validate and complete actions too)."""

from __future__ import annotations

from typing import Any

from opsbook.argdoc import args_schema
from opsbook.keywords import ACTION_KEY, RUNBOOK_KEYWORDS, STEP_KEYWORDS
from opsbook.model import PARAM_TYPES
from opsbook.registry import Registry

SCHEMA_ID = "https://opsbook.dev/schema/runbook-v1.json"


# Non-string arguments may also be written as text: a Jinja2 template rendered at run time,
# or a form the action converts itself (durations like 30s, sizes like 512m).
TEMPLATE = {"type": "string", "description": "a template rendered at run time, or text the action converts"}


def _hoist(schema: Any, prefix: str, defs: dict[str, Any]) -> Any:
    """Move a model schema's own $defs to the root (prefixed) and rewrite its $refs."""
    if isinstance(schema, dict):
        local = schema.pop("$defs", {})
        for name, sub in local.items():
            defs[prefix + name] = _hoist(sub, prefix, defs)
        out = {}
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = "#/$defs/" + prefix + value[len("#/$defs/"):]
            else:
                out[key] = _hoist(value, prefix, defs)
        return out
    if isinstance(schema, list):
        return [_hoist(v, prefix, defs) for v in schema]
    return schema


def _allow_templates(args: dict[str, Any]) -> dict[str, Any]:
    """Any argument may be a template string that renders to the right type at run time."""
    for name, prop in list(args.get("properties", {}).items()):
        if prop.get("type") != "string":
            args["properties"][name] = {"anyOf": [prop, TEMPLATE]}
    return args


def runbook_schema(registry: Registry) -> dict[str, Any]:
    actions: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for full_name in sorted(registry.action_names()):
        spec = registry.action(full_name)
        assert spec is not None
        args = args_schema(spec)
        args = _allow_templates(_hoist(args, full_name.replace(".", "_") + "_", defs))
        args.setdefault("description", spec.doc)
        variants = [args]
        if spec.scalar_arg:
            scalar = dict(args.get("properties", {}).get(spec.scalar_arg) or {"type": "string"})
            scalar["description"] = f"shorthand for {{{spec.scalar_arg}: ...}}"
            variants.append(scalar)
        variants.append({"type": "null"})
        actions[full_name] = {"anyOf": variants, "description": spec.doc}
    step_props = {k: {**v.schema, "description": v.help} for k, v in STEP_KEYWORDS.items()}
    for key in ("block", "rescue", "always"):
        step_props[key] = {"type": "array", "items": {"$ref": "#/$defs/step"}, "description": STEP_KEYWORDS[key].help}
    step_props.update(actions)
    for plugin in registry.plugins.values():  # Ansible's module names, as the plugins declare them
        for module, action in plugin.ansible_modules.items():
            full = f"{plugin.name}.{action}"
            if full in actions and module not in step_props:
                for key in (module, f"ansible.builtin.{module}"):
                    step_props[key] = {**actions[full], "description": f"Ansible's {module}: {full}. {actions[full]['description']}"}
    step = {"type": "object", "properties": step_props, "additionalProperties": False,
            "patternProperties": {} if actions else {ACTION_KEY.pattern: {}}}
    top = {k: {**v.schema, "description": v.help} for k, v in RUNBOOK_KEYWORDS.items()}
    top["steps"] = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}, "description": RUNBOOK_KEYWORDS["steps"].help}
    top["handlers"] = {"type": "array", "items": {"$ref": "#/$defs/step"}, "description": RUNBOOK_KEYWORDS["handlers"].help}
    top["params"] = {"type": "object", "additionalProperties": {"$ref": "#/$defs/param"},
                     "description": RUNBOOK_KEYWORDS["params"].help}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "opsbook runbook",
        "type": "object",
        "required": ["opsbook", "name", "steps"],
        "properties": top,
        "additionalProperties": False,
        "$defs": {
            **defs,
            "step": step,
            "param": {"anyOf": [
                {"type": "object", "additionalProperties": False, "properties": {
                    "type": {"enum": list(PARAM_TYPES)},
                    "default": {}, "required": {"type": "boolean"}, "description": {"type": "string"},
                    "secret": {"type": "boolean"}, "choices": {"type": "array"}}},
                {"type": ["string", "number", "boolean", "array", "null"]}]},
        },
    }
