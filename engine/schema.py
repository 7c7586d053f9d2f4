"""The JSON Schema of runbooks, generated from the loader's keyword tables and the
installed plugins' argument models (so editors validate and complete actions too)."""

from __future__ import annotations

from typing import Any

from opsbook.load import ACTION_KEY, RUNBOOK_KEYWORDS, STEP_KEYWORDS
from opsbook.registry import Registry

SCHEMA_ID = "https://opsbook.dev/schema/runbook-v1.json"


def runbook_schema(registry: Registry) -> dict[str, Any]:
    actions: dict[str, Any] = {}
    for full_name in sorted(registry.action_names()):
        spec = registry.action(full_name)
        assert spec is not None
        args = spec.args_model.model_json_schema()  # type: ignore[attr-defined]
        args.setdefault("description", spec.doc)
        variants = [args]
        if spec.scalar_arg:
            variants.append({"type": "string", "description": f"shorthand for {{{spec.scalar_arg}: ...}}"})
        variants.append({"type": "null"})
        actions[full_name] = {"anyOf": variants, "description": spec.doc}
    step_props = {k: {**v.schema, "description": v.help} for k, v in STEP_KEYWORDS.items()}
    for key in ("block", "rescue", "always"):
        step_props[key] = {"type": "array", "items": {"$ref": "#/$defs/step"}, "description": STEP_KEYWORDS[key].help}
    step_props.update(actions)
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
            "step": step,
            "param": {"anyOf": [
                {"type": "object", "additionalProperties": False, "properties": {
                    "type": {"enum": ["string", "int", "bool", "duration", "host", "list", "dict", "secret"]},
                    "default": {}, "required": {"type": "boolean"}, "description": {"type": "string"},
                    "secret": {"type": "boolean"}, "choices": {"type": "array"}}},
                {"type": ["string", "number", "boolean", "array", "null"]}]},
        },
    }
