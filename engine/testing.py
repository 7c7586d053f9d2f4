"""opsbook.testing: the supported kit for testing a plugin's actions (part of the public
plugin API, see docs/plugins.md).

    from opsbook.plugin import Status
    from opsbook.testing import ScriptedConnection, run_action

    conn = ScriptedConnection().when("svcadm status web", stdout="online\\n")
    done = run_action(plugin, "status", {"service": "web"}, connection=conn)
    assert done.result.status is Status.OK and done.result.data["state"] == "online"
    assert conn.commands == ["svcadm status web"]

`run_action` runs one action the way a runbook step does: the arguments are rendered as
templates with `variables` (argv fields word by word, as the engine does), validated by
the action's model (a mistake raises `ArgumentError` with the argument's name, as
`opsbook check` words it), the context is the one the executor gives (check mode, diff
mode, a timeout, a cancel event, an evidence folder, other hosts), and the inverse is
computed as the executor records it: from what the action declared with `ctx.changed(...)`
(kept in `declared`), else from a result that is ok or says `changed` (even a failed one). `ScriptedConnection` answers
commands from a script and records what the action ran and wrote. `registry_with(plugin)`
gives a registry of the installed plugins with yours in place of an installed one of the
same name (a plugin under development, pip-installed in editable mode or not).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.cancel import Cancelled, CancelToken
from opsbook.errors import OpsbookError, PluginError
from opsbook.plugin import ActionContext, ActionSpec, Become, CommandResult, HostInfo, Plugin, Result, Status, clashing_data
from opsbook.transfer import Transfer, copy_stream

__all__ = ["ActionRun", "ArgumentError", "CancelToken", "Cancelled", "ScriptedConnection", "registry_with", "run_action"]


class ArgumentError(OpsbookError):
    """The arguments a test gave do not pass the action's model (what `opsbook check` says)."""


@dataclass
class _Reply:
    pattern: re.Pattern[str]
    rc: int
    stdout: str
    stderr: str
    times: int | None  # None: every time


@dataclass
class ScriptedConnection:
    """A connection whose commands are answered from a script, in order of `when` calls:
    the first pattern that matches the whole command (a shell string, or an argv joined with
    spaces) answers. A command nothing matches fails the test with the commands it knows.
    `commands` lists every command run; `files` holds what `put` wrote; `stdin` what was fed."""

    default: CommandResult | None = None  # the answer when nothing matches (None: an error)
    commands: list[str] = field(default_factory=list)
    stdin: list[bytes | None] = field(default_factory=list)
    became: list[Become | None] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    remote_files: dict[str, bytes] = field(default_factory=dict)  # what `get` copies back
    _replies: list[_Reply] = field(default_factory=list)
    closed: bool = False

    def when(self, command: str | re.Pattern[str], *, rc: int = 0, stdout: str = "", stderr: str = "",
             times: int | None = None) -> ScriptedConnection:
        """Answer `command` (the exact text, or a compiled regular expression matching all of
        it) with rc/stdout/stderr; `times` answers only that many times."""
        pattern = command if isinstance(command, re.Pattern) else re.compile(re.escape(command))
        self._replies.append(_Reply(pattern, rc, stdout, stderr, times))
        return self

    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None,
            become: Become | None = None, cancel: threading.Event | None = None,
            on_output: Callable[[str], None] | None = None) -> CommandResult:
        text = command if isinstance(command, str) else " ".join(command)
        self.commands.append(text)
        self.stdin.append(stdin)
        self.became.append(become)
        for reply in self._replies:
            if reply.times == 0 or not reply.pattern.fullmatch(text):
                continue
            if reply.times is not None:
                reply.times -= 1
            if on_output is not None:
                for line in reply.stdout.splitlines():
                    on_output(line)
            return CommandResult(reply.rc, reply.stdout, reply.stderr)
        if self.default is not None:
            return self.default
        known = ", ".join(repr(r.pattern.pattern) for r in self._replies) or "none"
        raise AssertionError(f"the action ran {text!r}, which the script does not answer (scripted: {known})")

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        self.files[remote_path] = data

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Copy `remote_files[remote_path]` to `local_path`; with a `transfer` (the
        Connection protocol's), through its limits and hash, leaving no partial file."""
        if remote_path not in self.remote_files:
            raise AssertionError(f"the action fetched {remote_path}, which the script has no content for "
                                 "(set ScriptedConnection.remote_files)")
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if transfer is None:
            target.write_bytes(self.remote_files[remote_path])
            return len(self.remote_files[remote_path])
        try:
            with target.open("wb") as handle:
                return copy_stream(io.BytesIO(self.remote_files[remote_path]), handle, transfer)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        self.closed = True


@dataclass
class ActionRun:
    """What `run_action` gives back: the result, the inverse the executor would record
    (`(action, args)` or None), the arguments as the action received them, the context."""

    result: Result
    inverse: tuple[str, dict[str, Any]] | None
    args: Any
    context: ActionContext
    output: list[str]
    # the data the action gave `ctx.changed(...)` while it ran (its undo recorded before it
    # waited or verified), None when it declared nothing
    declared: dict[str, Any] | None = None


def _spec(plugin: Plugin, action: str) -> ActionSpec:
    name = action.split(".", 1)[1] if action.startswith(plugin.name + ".") else action
    spec = plugin.actions.get(name)
    if spec is None:
        import difflib

        close = difflib.get_close_matches(name, list(plugin.actions), n=1, cutoff=0.6)
        raise ArgumentError(f'plugin {plugin.name} has no action "{name}"'
                            + (f' (did you mean "{close[0]}"?)' if close else "")
                            + "; it has: " + ", ".join(sorted(plugin.actions)))
    return spec


def run_action(plugin: Plugin, action: str, args: Any = None, *, host: str | HostInfo = "localhost",
               host_vars: Mapping[str, Any] | None = None, variables: Mapping[str, Any] | None = None,
               check_mode: bool = False, diff_mode: bool = False, timeout: float | None = None,
               connection: Any = None, hosts: Mapping[str, Mapping[str, Any]] | None = None,
               evidence_dir: Path | None = None, runbook_dir: Path | None = None,
               cancelled: CancelToken | threading.Event | None = None) -> ActionRun:
    """Run `plugin`'s `action` once, as a runbook step on `host` would (see the module).

    `connection` answers every host's commands (a ScriptedConnection, or any Connection);
    `hosts` are other inventory hosts (`ctx.other_host`), name -> vars. `timeout` is the
    step's: `ctx.timeout` starts at it and `ctx.cancelled` is set once it has passed, as
    the engine does; `cancelled` is a token the test sets itself (an opsbook.cancel
    CancelToken; a threading.Event is followed too), e.g. to play an operator's Ctrl-C."""
    from opsbook.errors import UserError
    from opsbook.variables import render_args

    spec = _spec(plugin, action)
    target = host if isinstance(host, HostInfo) else HostInfo(host, dict(host_vars or {}))
    scope = {"inventory_hostname": target.name, **target.vars, **(variables or {})}
    from pydantic import ValidationError as PydanticError

    try:
        rendered = render_args(spec, args if args is not None else {}, scope, None)
        parsed = spec.parse_args(rendered)
    except UserError as exc:
        raise ArgumentError(f"{spec.full_name}: {exc}") from None
    except PydanticError as exc:
        words = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err.get("loc") or ()) or "arguments"
            words.append(f'missing required argument "{name}"' if err["type"] == "missing" else
                         f'unknown argument "{name}"' + _close(name, spec) if err["type"] == "extra_forbidden" else
                         f'argument "{name}": {err["msg"]}, found {err.get("input")!r}')
        raise ArgumentError(f"{spec.full_name}: " + "; ".join(words)) from None
    others = {name: HostInfo(name, dict(v)) for name, v in (hosts or {}).items()}

    def lookup(name: str) -> HostInfo:
        if name == target.name:
            return target
        if name not in others:
            raise OpsbookError(f'no host named "{name}" (run_action(hosts=...) gives other hosts)')
        return others[name]

    def connect(_host: HostInfo) -> Any:
        if connection is None:
            raise AssertionError(f"{spec.full_name} opened a connection; pass connection=ScriptedConnection()")
        return connection

    lines: list[str] = []
    declared: list[dict[str, Any]] = []  # what the action passed to ctx.changed (before it returned)
    token = _token(cancelled, timeout)
    ctx = ActionContext(host=target, step_name=f"test {spec.full_name}", check_mode=check_mode,
                        diff_mode=diff_mode, timeout=timeout, cancelled=token,
                        evidence_dir=evidence_dir, runbook_dir=runbook_dir, variables=dict(scope),
                        _connect=connect, _output=lines.append, _lookup_host=lookup,
                        _changed=lambda data: declared.append(dict(data)))
    try:
        result = spec.fn(ctx, parsed)
    finally:
        token.set("test over")  # ends the timer and any follower thread of a given Event
    if not isinstance(result, Result):
        raise AssertionError(f"{spec.full_name} returned {type(result).__name__}, not an opsbook.plugin.Result "
                             "(return Result.ok(...) or Result.failed(...))")
    if result.data:
        result = clashing_data(spec.full_name, result)
    inverse = None
    if spec.inverse is not None and not check_mode:
        # as opsbook.rollback.UndoSlot records it: from the first declaration, else from a
        # result that is ok or says it changed state (whatever its status)
        if declared:
            inverse = spec.inverse(parsed, Result(status=Status.OK, changed=True, data=declared[0]))
        elif result.status is Status.OK or result.changed:
            inverse = spec.inverse(parsed, result)
        allowed = spec.inverse_actions
        if inverse is not None and allowed is not None and inverse[0] not in allowed:
            raise PluginError(f"{spec.full_name}'s inverse named {inverse[0]}, which is not among the actions it "
                              f"declares (inverse_actions: {', '.join(sorted(allowed))}): a run fails the step")
    return ActionRun(result, inverse, parsed, ctx, lines, declared[0] if declared else None)


TIMEOUT_SLACK = 0.25  # seconds between ctx.timeout running out and ctx.cancelled being set


def _token(given: CancelToken | threading.Event | None, timeout: float | None) -> CancelToken:
    """The action's cancel token: the test's own, or one that follows a threading.Event the
    test sets, set too once `timeout` seconds have passed (the step's timeout)."""
    if isinstance(given, CancelToken):
        token = given.child()
    else:
        token = CancelToken()
        if given is not None:
            event = given

            def follow() -> None:
                while not token.is_set():
                    if event.wait(0.05):
                        token.set("cancelled by the test")

            threading.Thread(target=follow, name="opsbook-testing-follow", daemon=True).start()
    if timeout is not None:
        # shortly after the timeout: an action that bounds its own work by ctx.timeout ends
        # first and says so, as it should; one that does not is cancelled
        timer = threading.Timer(max(0.0, timeout) + TIMEOUT_SLACK, token.set, args=(f"timeout: {timeout:g}s",))
        timer.daemon = True
        timer.start()
    return token


def _close(name: str, spec: ActionSpec) -> str:
    import difflib

    fields = list(spec.args_model.model_fields)  # type: ignore[attr-defined]
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def registry_with(*plugins: Plugin) -> Any:
    """The installed plugins (entry points), with each of `plugins` in place of an installed
    plugin of the same name: a plugin under test, whether or not it is pip-installed."""
    from opsbook.registry import Registry

    registry = Registry.from_entry_points()
    for plugin in plugins:
        registry._pending.pop(plugin.name, None)
        registry.loaded[plugin.name] = plugin
    return registry
