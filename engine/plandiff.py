"""`opsbook diff OLD NEW`: what a change to a runbook changes in what a run does, at the
level of the plan (steps, their keywords, and each host's rendered arguments), for a
reviewer: text, Markdown (a pull-request comment) or JSON.

OLD and NEW are runbook files, or git revisions of one (`REV:PATH`, read with `git
show`, as `git show` reads it: PATH from the repository's root, or `./PATH` from the
current folder). Both sides are planned with the same inventory and parameters.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opsbook.errors import UserError
from opsbook.model import duration_text

_NODE_ONLY = ("id", "kind", "needs", "host", "args", "where", "step", "step_id", "approve")
_PER_HOST = ("args", "approve", "needs")
_IGNORED_TOP = ("path", "nodes")
_DURATIONS = ("timeout", "delay")  # keywords the plan holds in seconds (objectives: a mapping of them)
_DEFAULT_SHOWN = {"delay": "1s (default)", "backoff": "1 (default)", "loop_var": "item (default)"}  # left out of plans


@dataclass(frozen=True)
class Change:
    """One difference: the step (None: the runbook), the host (None: every host of the
    step), what changed, and the value before and after (None: absent)."""

    step: str | None
    host: str | None
    what: str
    old: Any
    new: Any


def read_side(spec: str) -> tuple[str, str]:
    """(path to report, text) of OLD or NEW: a file, or REV:PATH from git."""
    if Path(spec).is_file() or ":" not in spec:
        try:
            return spec, Path(spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{spec}: cannot read it: {exc.strerror}",
                            hint="give a runbook file, or REV:PATH for a git revision of one") from None
    rev, _, path = spec.partition(":")
    try:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise UserError(f"{spec}: reading a git revision needs the git program, which is not installed") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git show failed"])[-1]
        raise UserError(f"{spec}: {reason.removeprefix('fatal: ')}",
                        hint="REV:PATH as git show reads it (PATH from the repository root, or ./PATH from here)")
    local = path.removeprefix("./")
    return local, done.stdout


def _steps(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per step id: its keywords and its nodes by host, from plan_json."""
    out: dict[str, dict[str, Any]] = {}
    for node in plan["nodes"]:
        if node.get("kind") == "barrier" or "step_id" not in node:
            continue
        entry = out.setdefault(node["step_id"], {"name": node["step"], "keywords": {}, "hosts": {}})
        entry["keywords"] = {k: v for k, v in node.items() if k not in _NODE_ONLY}
        entry["keywords"]["action"] = node.get("action")
        entry["hosts"][node.get("host") or "-"] = {"args": node.get("args"), "approve": node.get("approve"),
                                                   "needs": [n.split("@")[0] for n in node.get("needs", [])]}
    return out


def _leaves(path: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """The differing values of two argument trees, by dotted path (`args.timeout`)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _leaves(f"{path}.{key}", old.get(key), new.get(key))
        return out
    return [(path, old, new)]


def diff_plans(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The plan-level differences, in the new file's step order (removed steps last)."""
    changes: list[Change] = []
    for key in sorted(set(old) | set(new)):
        if key not in _IGNORED_TOP and old.get(key) != new.get(key):
            changes.append(Change(None, None, key, old.get(key), new.get(key)))
    before, after = _steps(old), _steps(new)
    for sid, step in after.items():
        label = f"{step['name']} [{sid}]"
        if sid not in before:
            changes.append(Change(label, None, "step added", None, sorted(step["hosts"])))
            continue
        was = before[sid]
        for key in sorted(set(was["keywords"]) | set(step["keywords"])):
            if was["keywords"].get(key) != step["keywords"].get(key):
                changes.append(Change(label, None, key, was["keywords"].get(key), step["keywords"].get(key)))
        for host in sorted(set(was["hosts"]) | set(step["hosts"])):
            a, b = was["hosts"].get(host), step["hosts"].get(host)
            if a is None or b is None:
                changes.append(Change(label, host, "host", "runs" if a else None, "runs" if b else None))
                continue
            for key in _PER_HOST:
                changes += [Change(label, host, what, x, y) for what, x, y in _leaves(key, a[key], b[key])]
    for sid, step in before.items():
        if sid not in after:
            changes.append(Change(f"{step['name']} [{sid}]", None, "step removed", sorted(step["hosts"]), None))
    return changes


def _show(value: Any, what: str = "") -> str:
    if value is None:
        return _DEFAULT_SHOWN.get(what, "(none)")
    if what in _DURATIONS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return duration_text(value)  # as the runbook writes it: 5s, 1m30s (the plan holds seconds)
    if what == "objectives" and isinstance(value, dict):
        return ", ".join(f"{k} {_show(v, 'timeout')}" for k, v in value.items())
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def as_text(changes: list[Change], old: str, new: str) -> str:
    if not changes:
        return f"no plan-level difference between {old} and {new}"
    lines = [f"--- {old}", f"+++ {new}"]
    for c in changes:
        where = "runbook" if c.step is None else f"step {c.step}" + (f" @ {c.host}" if c.host else "")
        lines.append(f"{where}: {c.what}: {_show(c.old, c.what)} -> {_show(c.new, c.what)}")
    return "\n".join(lines)


def _cell(value: Any, what: str) -> str:
    text = _show(value, what).replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if value is not None else "—"


def as_markdown(changes: list[Change], old: str, new: str) -> str:
    head = f"### opsbook plan diff: `{old}` → `{new}`\n\n"
    if not changes:
        return head + "No plan-level difference.\n"
    rows = ["| step | host | what | before | after |", "|---|---|---|---|---|"]
    rows += [f"| {c.step or '(runbook)'} | {c.host or ''} | {c.what} | {_cell(c.old, c.what)} | {_cell(c.new, c.what)} |"
             for c in changes]
    return head + "\n".join(rows) + "\n"


def as_json(changes: list[Change], old: str, new: str) -> str:
    return json.dumps({"old": old, "new": new, "changes": [asdict(c) for c in changes]}, indent=2, default=str)


FORMATS = {"text": as_text, "md": as_markdown, "json": as_json}

__all__ = ["FORMATS", "Change", "as_json", "as_markdown", "as_text", "diff_plans", "read_side"]
