"""What `probe.http` and `local.http` check in an answer: status codes and the body.

Ansible's `uri` words where it has them: `status_code` (one code, a list, or "200,201"),
`return_content` (register the body as `content`, and a JSON body as `json`). Body checks
of both actions: `body_contains` (a string or a list: every one must occur), `body_regex`,
`json_path` (+ `json_value`), and `json_match` (a mapping of dotted paths to the values
expected there: `{status: ok, "checks.db": up}`). JSON paths are simple dotted paths
(`a.b[0].c`, a leading `$.` allowed, `"dotted.key"` quoted): no filters or wildcards, so
no library is needed. A failure quotes a bounded excerpt of the body (`EXCERPT` chars, on
one line); the engine redacts secrets from every message.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

EXCERPT = 80  # characters of a body quoted in a failure message
_TEXT_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                 "default": None}


def status_codes(value: Any) -> list[int] | None:
    """`status_code` as Ansible takes it: 200, [200, 201], "200,201" or ["200"]."""
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else [value]
    codes = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or not 100 <= int(text) <= 599:
            raise ValueError(f"status_code must be HTTP status codes (100-599), not {item!r}")
        codes.append(int(text))
    return codes


class BodyChecks(BaseModel):
    """The answer checks shared by probe.http and local.http (mixed into their arguments)."""

    status: int | str | list[int | str] | None = Field(
        None, description='expected status code(s): 200, [200, 204] or "200,204"')
    status_code: int | str | list[int | str] | None = Field(
        None, description="Ansible's uri name of `status` (give one of them)")
    return_content: bool = Field(False, description="register the body as `content` (and a JSON body as `json`)")
    # text, not a command line: a string is a list of one (the schema takes either)
    body_contains: Annotated[list[str] | None, WithJsonSchema(_TEXT_OR_LIST)] = Field(
        None, description="text the body must contain (a list: all of them)")
    body_regex: str | None = Field(None, description="the body must match this regular expression")
    json_path: str | None = Field(None, description="dotted path into a JSON body: a.b[0].c")
    json_value: Any = Field(None, description="the value expected at json_path (default: it exists)")
    json_match: dict[str, Any] | None = Field(
        None, description='dotted paths and the values expected there: {status: ok, "checks[0].name": db}')

    @field_validator("body_contains", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("status", "status_code", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> list[int] | None:
        return status_codes(value)

    @model_validator(mode="after")
    def _patterns_compile(self) -> BodyChecks:
        if self.status is not None and self.status_code is not None:
            raise ValueError("give status or status_code, not both (they are the same)")
        if self.status_code is not None:
            self.status, self.status_code = self.status_code, None
        if self.body_regex is not None:
            try:
                re.compile(self.body_regex)
            except re.error as exc:
                raise ValueError(f"body_regex is not a valid regular expression: {exc}") from None
        for path in [self.json_path, *(self.json_match or {})]:
            if path is not None:
                parse_json_path(path)
        return self

    def contains(self) -> list[str]:
        return list(self.body_contains or [])

    def wants_json(self) -> bool:
        return self.json_path is not None or bool(self.json_match)


def content_data(body: str, wanted: bool) -> dict[str, Any]:
    """What `return_content: true` registers: `content`, and `json` when the body is JSON."""
    if not wanted:
        return {}
    data: dict[str, Any] = {"content": body}
    try:
        data["json"] = json.loads(body)
    except ValueError:
        pass
    return data


def body_problem(checks: BodyChecks, body: str) -> str | None:
    """Why the body fails the checks (naming the first that fails), or None."""
    missing = [text for text in checks.contains() if text not in body]
    if missing:
        return f"the body does not contain {_quoted(missing)} (body starts: {excerpt(body)})"
    if checks.body_regex is not None and not re.search(checks.body_regex, body):
        return f"the body does not match /{checks.body_regex}/ (body starts: {excerpt(body)})"
    if not checks.wants_json():
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return f"the body is not JSON (body starts: {excerpt(body)})"
    expected = dict(checks.json_match or {})
    if checks.json_path is not None:
        expected[checks.json_path] = checks.json_value if "json_value" in checks.model_fields_set else _ANY
    for path, want in expected.items():
        try:
            value = json_path_get(document, path)
        except LookupError as exc:
            return f"the JSON has no {path} ({exc})"
        if want is not _ANY and not same(value, want):
            return f"JSON {path} is {_short(value)}, expected {_short(want)}"
    return None


_ANY = object()


def _quoted(items: list[str]) -> str:
    return ", ".join(repr(i) for i in items)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def excerpt(body: str, size: int = EXCERPT) -> str:
    """The start of a body on one line, at most `size` characters, quoted."""
    flat = " ".join(body.split())
    return repr(flat[:size] + ("..." if len(flat) > size else ""))


def same(found: Any, expected: Any) -> bool:
    """Equal, or equal as text for scalars: YAML and templates turn 3 into "3"."""
    if found == expected:
        return True
    return not isinstance(found, (dict, list)) and str(found) == str(expected)


_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][\w-]*|\"[^\"]*\")|\[(-?\d+)\]")


def parse_json_path(path: str) -> list[str | int]:
    """'a.b[0].c' -> ['a', 'b', 0, 'c']; a leading '$.' is allowed; quoted keys as "a.b"."""
    text = path[2:] if path.startswith("$.") else path.lstrip("$")
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None or (pos == 0 and text.startswith(".")):
            raise ValueError(f'json_path "{path}" is not a simple path like a.b[0].c (at "{text[pos:]}")')
        key, index = match.groups()
        steps.append(int(index) if index is not None else key.strip('"'))
        pos = match.end()
    if not steps:
        raise ValueError("json_path is empty")
    return steps


def json_path_get(document: Any, path: str) -> Any:
    """The value at a simple dotted path; LookupError says where the path stopped."""
    value = document
    walked = ""
    for step in parse_json_path(path):
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                raise LookupError(f"{walked or 'the document'} has no item [{step}]")
            value = value[step]
            walked += f"[{step}]"
        else:
            if not isinstance(value, dict) or step not in value:
                raise LookupError(f"{walked or 'the document'} has no key {step!r}")
            value = value[step]
            walked += f".{step}" if walked else step
    return value
