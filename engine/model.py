"""The runbook model: immutable, typed, and every piece knows where it was written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsbook.errors import Diagnostic, Position

PHASES = ("first-response", "failover", "permanent-fix", "disaster-recovery", "other")
PARAM_TYPES = ("string", "int", "bool", "duration", "host", "hosts", "list", "dict", "secret")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """'90s', '5m', '1h30m', '500ms' or a number of seconds -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    text = str(value).strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f'"{value}" is not a duration like 90s, 5m, 1h30m or 500ms') from None
    return total


def duration_or_none(value: Any) -> float | None:
    """`value` in seconds when it reads as a duration (see parse_duration); None when it is
    None or does not (an objective or a timeout that cannot be measured against)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except (ValueError, TypeError):
        return None


def parse_timestamp(value: Any) -> float | None:
    """Epoch seconds, or an ISO time (2026-11-25T03:12:00+00:00), as epoch seconds; None if neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def duration_text(seconds: float) -> str:
    """Seconds as a runbook writes a duration, exactly (parse_duration reads it back):
    5 -> 5s, 90 -> 1m30s, 300 -> 5m, 5400 -> 1h30m, 0.5 -> 500ms, 2.5 -> 2.5s."""
    if seconds != int(seconds):
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


@dataclass(frozen=True, slots=True)
class ActionCall:
    """`plugin.action: args` as written: args are still templates."""

    name: str  # "plugin.action"
    args: Any
    pos: Position
    expression_fields: tuple[str, ...] = ()  # arguments that are bare Jinja expressions
    read_fields: tuple[str, ...] = ()  # arguments the action evaluates itself as expressions (debug's var)

    @property
    def plugin(self) -> str:
        return self.name.partition(".")[0]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str = "string"
    default: Any = None
    required: bool = False
    description: str = ""
    secret: bool = False
    choices: tuple[Any, ...] = ()
    pos: Position | None = None


@dataclass(frozen=True, slots=True)
class Objectives:
    rto: float | None = None
    rpo: float | None = None


@dataclass(frozen=True, slots=True)
class KeepHealthy:
    """Pre-flight: at least `minimum` members of `group` must pass `probe` before acting."""

    minimum: int | None = None
    percent: float | None = None
    group: str | None = None  # default: the step's hosts
    probe: ActionCall | None = None  # default: the host var `health_probe` / a tcp probe
    template: str | None = None  # `min` written as a template: rendered before each pre-flight


@dataclass(frozen=True, slots=True)
class Step:
    """One step (an action) or a block of steps, with Ansible's keywords and ours."""

    id: str
    name: str
    pos: Position
    action: ActionCall | None = None
    block: tuple[Step, ...] = ()
    rescue: tuple[Step, ...] = ()
    always: tuple[Step, ...] = ()
    hosts: str | None = None
    needs: tuple[str, ...] | None = None  # None: the previous step; (): nothing
    when: tuple[Any, ...] = ()
    loop: Any = None
    loop_var: str = "item"
    loop_label: str | None = None
    register: str | None = None
    retries: int = 0
    delay: float = 1.0
    backoff: float = 1.0
    until: str | None = None
    timeout: float | None = None
    ignore_errors: bool = False
    failed_when: tuple[Any, ...] = ()
    changed_when: tuple[Any, ...] = ()
    serial: tuple[int | str, ...] = ()
    max_fail_percentage: float | None = None
    max_errors: int | None = None
    run_once: bool = False
    delegate_to: str | None = None
    become: bool | None = None
    become_user: str | None = None
    tags: tuple[str, ...] = ()
    approve: str | None = None
    rollback: ActionCall | None = None
    notify: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    no_log: bool = False
    check_mode: bool | None = None  # Ansible's per-step check mode: true = always dry-run this step
    gather_facts: bool | None = None  # gather the host's facts before this step (None: the runbook's)
    keep_healthy: KeepHealthy | None = None
    restores: tuple[str, ...] = ()  # keep_healthy steps whose members this step puts back
    undoes: tuple[str, ...] = ()  # steps whose recorded rollback (on the same host) this step performs
    marks: tuple[str, ...] = ()  # "mitigation", "verification": feed RTO accounting
    listen: tuple[str, ...] = ()  # handlers only: extra names they answer to
    explicit: frozenset[str] = frozenset()  # keywords written on this step (vs inherited/defaults)
    approve_scope: str | None = None  # id of the block whose `approve` this step carries
    # Folders a relative `src:` that is a template is searched in when the action runs, before
    # the runbook's (opsbook.srcpath): its roles' and its file's; () for the runbook's only.
    src_dirs: tuple[str, ...] = ()
    approve_pos: Position | None = None  # where its `approve:` message is written (a block's, if inherited)
    # Where each string written on the step is (its first occurrence): `check` points at the
    # line of a faulty condition or argument rather than at the step.
    text_pos: Mapping[str, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_block(self) -> bool:
        return self.action is None


@dataclass(frozen=True, slots=True)
class Runbook:
    """A validated runbook file."""

    path: str
    name: str
    digest: str  # sha256 of the file's bytes
    description: str = ""
    phase: str = "other"
    objectives: Objectives = Objectives()
    params: tuple[Param, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    hosts: str = "localhost"
    steps: tuple[Step, ...] = ()
    handlers: tuple[Step, ...] = ()
    lock: str | None = None
    timeout: float | None = None
    max_fail_percentage: float | None = None
    max_errors: int | None = None
    extra_vars: str = "used"  # -e names accepted besides params: "used" (read somewhere) or "any"
    approved_by: str = "anyone"  # who may approve its gates: "anyone" or "another" (not the run's starter)
    gather_facts: bool = False  # a first "Gathering Facts" step, and facts before every node
    force_handlers: bool = True  # notified handlers run on failed hosts too (false: Ansible's default)
    pos: Position | None = None
    # Literal `src:` paths that no folder of Ansible's search holds (opsbook.srcpath): `check`
    # reports them, `run` and `plan` refuse to start.
    unfound_sources: tuple[Diagnostic, ...] = ()

    def all_steps(self) -> list[Step]:
        """Every step in file order, blocks before their children."""
        out: list[Step] = []

        def walk(steps: tuple[Step, ...]) -> None:
            for step in steps:
                out.append(step)
                walk(step.block)
                walk(step.rescue)
                walk(step.always)

        walk(self.steps)
        return out
