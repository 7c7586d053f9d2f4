"""What the engine knows of one action (`ActionSpec`): its function, argument model and
capabilities, and how its arguments are rendered (`render_field`) and validated
(`parse_args`: pydantic, a number rendered into a text argument read as its text). Also the
capability tests a plugin passes to `@plugin.action(mutates=..., disrupts=...)`: `arg_in`,
`command_disrupts`.

`Plugin.action` builds the specs; the loader, `check`, `plan` and the run read them.
Plugins import these names from `opsbook.plugin`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsbook.errors import PluginError
from opsbook.results import Result

if TYPE_CHECKING:
    from opsbook.plugin import ActionContext, HostInfo

ActionFn = Callable[["ActionContext", Any], Result]
RollbackFn = Callable[[Any, Result], "tuple[str, dict[str, Any]] | None"]
# A capability that depends on the arguments as written (templates not rendered):
# `mutates=lambda args: args.get("method", "GET") != "GET"`. A template counts as "may".
ArgsTest = Callable[[Mapping[str, Any]], bool]
EvidenceFn = Callable[[Any, "HostInfo"], "list[str] | None"]


_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ActionSpec:
    """One action of a plugin: its function, argument model and capabilities."""

    plugin: str
    name: str
    fn: ActionFn
    args_model: type
    doc: str
    supports_check: bool  # the function itself honours ctx.check_mode read-only
    idempotent: bool  # safe to run again after a crash without confirmation
    inverse: RollbackFn | None  # declared inverse for rollback: (args, result) -> (action, args)
    mutates: bool | ArgsTest  # changes state on a target (opsbook.policy: needs a gate and a rollback)
    scalar_arg: str | None  # `plugin.action: "text"` fills this argument
    shell_fields: frozenset[str]  # argument names rendered with shell quoting
    expression_fields: frozenset[str] = frozenset()  # bare Jinja expressions (like assert's `that`)
    # Keys the action may add to its registered value besides the standard ones (None: not
    # declared). Declared keys let `opsbook check` call `out.stdot` a typo.
    data: frozenset[str] | None = None
    # The evidence files (relative paths) the action writes for its arguments on a host, when
    # that is known without running it, else None; `check` and `run` refuse two nodes
    # writing the same file before anything runs.
    evidence: EvidenceFn | None = None
    observes: bool = False  # only looks at (or waits for) state: probes, waits (see opsbook.dryrun)
    argv_fields: frozenset[str] = frozenset()  # a string here is a command line: rendered to an argv
    # takes capacity out of service (drain, stop, isolate): `keep_healthy` applies
    disrupts: bool | ArgsTest = False
    # The actions its inverse may name ("plugin.action"), None when not declared: `opsbook
    # check` and `opsbook plugins` say when one is not installed, and a run fails the step
    # whose inverse names another (see docs/plugins.md, "Rollback").
    inverse_actions: frozenset[str] | None = None
    reads_vars: bool = False  # reads the host's variables through ctx.variables (debug's `var`, setup)
    # Arguments holding a bare expression the action evaluates itself on ctx.variables
    # (debug's `var: out.stdout`): the names they read order the step after the steps that
    # register them, as a template would (opsbook.compile).
    read_fields: frozenset[str] = frozenset()

    def mutates_with(self, args: Any) -> bool:
        """Whether this call, with its arguments as written, may change state on a target."""
        return _capability(self.mutates, args, self.scalar_arg)

    def disrupts_with(self, args: Any) -> bool:
        """Whether this call, with its arguments as written, may take capacity out of service."""
        return _capability(self.disrupts, args, self.scalar_arg)

    def render_field(self, name: str, value: Any, context: Mapping[str, Any], pos: Any = None) -> Any:
        """One argument rendered as this action declares it: a command line that is split into
        an argv keeps each templated value one word; a shell command line quotes each value."""
        from opsbook.template import render, render_argv

        if isinstance(value, str):
            if name in self.argv_fields:
                return render_argv(value, context, pos)
            if name in self.shell_fields:
                return render(value, context, shell=True, pos=pos)
        return render(value, context, pos=pos)  # a list in a shell field is an argv: no quoting

    @property
    def full_name(self) -> str:
        return f"{self.plugin}.{self.name}"

    def without_expressions(self) -> ActionSpec:
        import dataclasses

        return dataclasses.replace(self, expression_fields=frozenset())

    def prepare(self) -> None:
        """Build the argument model's validator now, once, in this thread: models declared
        with pydantic's `defer_build` are built on first use, and a step's first use is
        otherwise many worker threads at once."""
        model: Any = self.args_model
        if not getattr(model, "__pydantic_complete__", True):
            with _BUILD_LOCK:
                if not model.__pydantic_complete__:
                    model.model_rebuild()

    def parse_args(self, raw: Any) -> Any:
        """Validate rendered arguments into the args model (pydantic)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            if self.scalar_arg is None:
                raise PluginError(f"{self.full_name} takes a mapping of arguments")
            raw = {self.scalar_arg: raw}
        self.prepare()
        from pydantic import ValidationError

        try:
            return self.args_model.model_validate(dict(raw))  # type: ignore[attr-defined]
        except ValidationError as exc:
            # A template renders "{{ n }}" to the number 3; where the action wants text, it is
            # the number's text, as Ansible passes it (never a bool: `yes` is not "True").
            numbers = [e["loc"] for e in exc.errors() if e["type"] == "string_type"
                       and isinstance(e.get("input"), int | float) and not isinstance(e.get("input"), bool)]
            if not numbers:
                raise
            import copy

            data = copy.deepcopy(dict(raw))
            for loc in numbers:
                _set_text(data, loc)
            return self.args_model.model_validate(data)  # type: ignore[attr-defined]


def _set_text(data: Any, loc: tuple[Any, ...]) -> None:
    """Replace the number at `loc` (a pydantic error location, whose union branch names such
    as 'list[str]' are skipped) in nested dicts/lists by its text, in place."""
    steps = list(loc)
    while steps:
        key = steps.pop(0)
        if (isinstance(data, dict) and key in data) or (
                isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)):
            if not steps:
                if isinstance(data[key], int | float) and not isinstance(data[key], bool):
                    data[key] = str(data[key])
                return
            data = data[key]
        elif isinstance(key, str) and not (isinstance(data, dict) and key in data):
            continue  # a union branch's name, not a place in the data
        else:
            return


def _capability(flag: bool | ArgsTest, args: Any, scalar: str | None) -> bool:
    if isinstance(flag, bool):
        return flag
    if not isinstance(args, Mapping):
        args = {scalar: args} if scalar else {}
    try:
        return bool(flag(args))
    except Exception:  # noqa: BLE001 - an argument the test did not expect: assume the worst
        return True


# words of a command line that take capacity out of service (`systemctl stop`, a balancer's
# `drain`, `kubectl cordon`): a shell or command step with one of them disrupts
DISRUPTING_WORDS = frozenset({"drain", "cordon", "stop", "disable", "shutdown", "poweroff", "halt", "isolate"})


def command_disrupts(name: str) -> ArgsTest:
    """A capability test for shell and command actions: the command line in argument `name`
    (a string or an argv list, as written) has a word of DISRUPTING_WORDS. What a template
    expands to is not known, and counts as not disrupting (a step still says so with
    keep_healthy:)."""
    import re

    def test(args: Mapping[str, Any]) -> bool:
        value = args.get(name)
        words = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        return any(w.lower() in DISRUPTING_WORDS for word in words if isinstance(word, str)
                   for w in re.findall(r"[A-Za-z_-]+", word))

    return test


def arg_in(name: str, values: Sequence[str], default: str | None = None) -> ArgsTest:
    """A capability test: argument `name` (as written) is one of `values`, or a template."""
    from opsbook.template import is_template

    def test(args: Mapping[str, Any]) -> bool:
        value = args.get(name, default)
        return isinstance(value, str) and (is_template(value) or value in values)

    return test
