"""The public plugin API: everything a plugin (built-in or third-party) may use.

A plugin is one module exposing a `Plugin` object through the `opsbook.plugins`
entry-point group::

    # my_plugin.py                       # pyproject: [project.entry-points."opsbook.plugins"]
    from pydantic import BaseModel       #            hello = "my_plugin:plugin"
    from opsbook.plugin import Plugin, ActionContext, Result

    plugin = Plugin("hello", "Greets people.")

    class GreetArgs(BaseModel):
        '''Arguments of hello.greet.'''
        who: str

    @plugin.action(check=True)
    def greet(ctx: ActionContext, args: GreetArgs) -> Result:
        '''Say hello to someone.'''
        if ctx.check_mode:
            return Result.ok(changed=True, msg=f"would greet {args.who}")
        return Result.ok(stdout=f"hello {args.who}")

The argument model is the schema: it validates the YAML (with line numbers), feeds
`opsbook plugins`, `opsbook schema` and the docs. Actions are plain blocking functions;
the executor decides how many run at once and enforces timeouts through `ctx.cancelled`.

This module owns `Plugin` and its decorators, `ActionContext` (what an action may use while
it runs), `HostInfo`, `Become`, the `Connection` protocol and `Seconds`; it re-exports the
rest of the API from where each piece lives: `opsbook.results` (`Result`, `Status`,
`Evidence`, `CommandResult`, `command_result`, `telling_line`), `opsbook.actionspec`
(`ActionSpec`, `arg_in`, `command_disrupts`), `opsbook.paths` (`evidence_file`,
`write_file_safely`) and `opsbook.transfer` (`Transfer`).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

# What moved into modules of their own stays importable from here: this module is the
# import path plugins use (docs/plugins.md, "What is public").
from opsbook.actionspec import (  # noqa: F401 - public API
    DISRUPTING_WORDS,
    ActionFn,
    ActionSpec,
    ArgsTest,
    EvidenceFn,
    RollbackFn,
    arg_in,
    command_disrupts,
)
from opsbook.cancel import CancelToken
from opsbook.errors import PluginError
from opsbook.paths import evidence_file, write_file_safely
from opsbook.results import (  # noqa: F401 - public API
    REGISTERED_KEYS,
    CommandResult,
    Evidence,
    Result,
    Status,
    clashing_data,
    command_result,
    telling_line,
)
from opsbook.results import reserved_keys_said as _reserved_keys_said
from opsbook.transfer import DEFAULT_MAX_SIZE, Transfer, TransferCut, TransferTooLarge  # noqa: F401 - public API


@dataclass(frozen=True, slots=True)
class Become:
    """Privilege escalation for a command (sudo)."""

    user: str = "root"
    password: str | None = None


@runtime_checkable
class Connection(Protocol):
    """A way to run commands and move files on one host; reused across all its steps."""

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: Become | None = None,
        cancel: CancelToken | threading.Event | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> CommandResult:
        """Run a shell string, or an argv list without a shell."""
        ...

    def put(self, data: bytes, remote_path: str, mode: int | None = None) -> None:
        """Write bytes to a remote file atomically (temp file + rename)."""
        ...

    def get(self, remote_path: str, local_path: Path, transfer: Transfer | None = None) -> int:
        """Copy a remote file to a local path; return its size. With a `transfer`, every chunk
        goes through `transfer.add` (size limit, deadline, cancellation, hash), and a copy it
        stops leaves no file behind."""
        ...

    def close(self) -> None: ...


class ConnectionFactory(Protocol):
    """Builds a Connection for a host from its inventory vars."""

    def __call__(self, host: HostInfo) -> Connection: ...


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The target of a node: its inventory name and effective vars."""

    name: str
    vars: Mapping[str, Any]

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def connection_kind(self) -> str:
        return str(self.vars.get("ansible_connection", "ssh"))


class Secrets(Protocol):
    def redact(self, text: str) -> str: ...


@dataclass
class ActionContext:
    """Everything an action may use while it runs on one host."""

    host: HostInfo
    step_name: str
    check_mode: bool = False
    diff_mode: bool = False
    timeout: float | None = None  # seconds left for this attempt, None = no limit
    # The node's cancel token (opsbook.cancel.CancelToken): set when the run is interrupted
    # (SIGINT/SIGTERM), its timeout passes, or the step's `timeout:` does. An action that
    # waits waits on it: `ctx.sleep(seconds)` or `ctx.cancelled.wait(seconds)`, never
    # `time.sleep`, so that a signal is answered within a second wherever the run stands.
    cancelled: CancelToken = field(default_factory=CancelToken)
    evidence_dir: Path | None = None  # the run's evidence folder
    become: Become | None = None
    secrets: Any = None  # opsbook.secrets.SecretStore
    run_id: str = ""
    runbook_dir: Path | None = None  # relative file arguments (src:, path:) resolve here
    # The step's folders searched before runbook_dir for a file in templates/ or files/
    # (local_path's `subfolder`; opsbook.srcpath): its roles' and its task file's folder.
    src_dirs: tuple[str, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)  # the step's template variables
    _connect: Callable[[HostInfo], Connection] | None = None
    _output: Callable[[str], None] | None = None
    _lookup_host: Callable[[str], HostInfo] | None = None
    _claim: Callable[[str], None] | None = None  # the run's record of who wrote which evidence file
    _changed: Callable[[Mapping[str, Any]], None] | None = None  # records the undo of this call now
    # when `timeout` was measured (the context is made just before the action is called)
    _started: float = field(default_factory=lambda: time.monotonic())

    def changed(self, **data: Any) -> None:
        """Say that this call has changed state, before it waits or verifies anything:
        `data` is what the action's inverse needs (it is called with
        `Result(changed=True, data=data)`, as it would be with the final result). The node
        runner computes the undo (the step's `rollback:`, else the inverse) and writes it to
        the journal now, so a failure, a timeout that abandons this thread, or a crash after
        this point still rolls the change back; the result the action returns later records
        no second undo. Does nothing in check mode; call it once the change is made."""
        if self._changed is not None and not self.check_mode:
            self._changed(data)

    def connection(self, host: HostInfo | None = None) -> Connection:
        """The pooled connection to this node's host (or another host, for delegation)."""
        if self._connect is None:
            raise PluginError("no connection provider in this context")
        return self._connect(host or self.host)

    def other_host(self, name: str) -> HostInfo:
        """Inventory host by name (e.g. probe vantage points)."""
        if self._lookup_host is None:
            raise PluginError("no inventory in this context")
        return self._lookup_host(name)

    def output(self, line: str) -> None:
        """Report a line of live output (shown as the node's latest line)."""
        if self._output is not None:
            self._output(line)

    @property
    def wants_output(self) -> bool:
        """Whether anyone looks at `output` lines: skip splitting output into lines if not."""
        return self._output is not None

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless the node is cancelled first: True when the whole wait ran
        (go on), False when cancelled (stop and return what you have)."""
        return self.cancelled.sleep(seconds)

    def raise_if_cancelled(self) -> None:
        """Raise opsbook.cancel.Cancelled when the node is cancelled (a failure of the step)."""
        self.cancelled.raise_if_cancelled()

    def deadline_left(self, default: float | None = None) -> float | None:
        """Seconds left now before the step's `timeout:` (0.0 once it has passed), or
        `default` when the step has no time limit: give it to every blocking call."""
        if self.timeout is None:
            return default
        return max(0.0, self.timeout - (time.monotonic() - self._started))

    def local_path(self, path: str, subfolder: str | None = None) -> Path:
        """A controller file named in an argument: relative paths are the runbook's folder's.
        With `subfolder` ("templates", "files"), a relative path is searched as Ansible
        searches a template's or a copied file's `src` (opsbook.srcpath), from the step's
        folders to the runbook's; the runbook's folder when none holds it."""
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or self.runbook_dir is None:
            return candidate
        if subfolder is not None:
            from opsbook.srcpath import SearchPath

            search = SearchPath(tuple(Path(d) for d in self.src_dirs), self.runbook_dir)
            found = search.find(path, subfolder)
            if found is not None:
                return found
        return self.runbook_dir / candidate

    def evidence_is_folder(self, relative: str) -> bool:
        """Whether `relative` is a folder of the evidence folder already (False for a path
        the folder refuses anyway, so that the refusal names it as written)."""
        if self.evidence_dir is None or relative.startswith(("/", "~")) or ".." in Path(relative).parts:
            return False
        return (self.evidence_dir / relative).is_dir()

    def evidence_file(self, dest: str | None, name: str) -> str:
        """Where this host's evidence goes (see `evidence_file`): `<host>/<name>` without
        `dest`, `<dest>/<host>/<name>` when `dest` is a folder, else `dest`."""
        return evidence_file(dest, self.host.name, name, self.evidence_is_folder)

    def write_evidence(self, relative: str, data: bytes | str | BinaryIO) -> Path:
        """Write an evidence file safely: the path is checked again now (a symlink planted
        while the command ran is refused), the file is written to a private temporary file
        in the same folder, opened without following links, and renamed into place."""
        path = self.evidence_path(relative)
        write_file_safely(path, data.encode() if isinstance(data, str) else data)
        return path

    def evidence_path(self, relative: str) -> Path:
        """A path inside the evidence folder to write to; refuses anything that escapes it,
        and a file another node (step x host) of this run already wrote."""
        if self.evidence_dir is None:
            raise PluginError("this run has no evidence folder")
        from opsbook.paths import safe_join

        path = safe_join(self.evidence_dir, relative)
        if self._claim is not None:
            self._claim(str(path.relative_to(self.evidence_dir.resolve())))
        return path


def _seconds(value: Any) -> Any:
    from opsbook.model import parse_duration

    return parse_duration(value) if value is not None else None


try:  # pydantic is a dependency; kept lazy-friendly for the typing import only
    from typing import Annotated

    from pydantic import BeforeValidator

    Seconds = Annotated[float, BeforeValidator(_seconds)]
    """An argument type for durations: accepts 30, 30.5, '30s', '5m', '1h30m', '500ms'."""
except ImportError:  # pragma: no cover
    Seconds = float  # type: ignore[misc]

InventorySource = Callable[[dict[str, list[str]]], dict[str, Any]]
TargetFn = Callable[[str, Any, Mapping[str, Any]], "str | None"]


class Plugin:
    """A named set of actions and connection kinds, exposed through an entry point."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self.actions: dict[str, ActionSpec] = {}
        self.connections: dict[str, ConnectionFactory] = {}
        self.inventory_sources: dict[str, InventorySource] = {}
        self.ansible_modules: dict[str, str] = {}  # Ansible module name -> action of this plugin
        # Ansible module name -> (action of this plugin doing its job, how its arguments differ)
        self.ansible_unlike: dict[str, tuple[str, str]] = {}
        # where a step of this plugin goes (a cluster, an API): shown by `plan` and the run's header
        self.target_of: TargetFn | None = None

    def ansible_module(self, module: str, action: str, differs: str = "") -> None:
        """Declare that an Ansible-style task's `module:` key (e.g. `lineinfile:`, also written
        `ansible.builtin.lineinfile:`) means this plugin's `action`, with the same arguments.

        With `differs` (how the arguments differ), the action does the module's job with
        other arguments: a step naming the module is refused at its line, pointing at the
        action and saying `differs`, rather than run with arguments read another way."""
        if differs:
            self.ansible_unlike[module] = (action, differs)
        else:
            self.ansible_modules[module] = action

    def target(self, fn: TargetFn) -> TargetFn:
        """Register fn(action, rendered args, host vars) -> "where it goes" (or None), e.g.
        the Kubernetes context and API server; it must not contact anything."""
        self.target_of = fn
        return fn

    def action(
        self,
        fn: ActionFn | None = None,
        *,
        name: str | None = None,
        check: bool = False,
        idempotent: bool = False,
        inverse: RollbackFn | None = None,
        inverse_actions: Sequence[str] | None = None,
        mutates: bool | ArgsTest = False,
        disrupts: bool | ArgsTest = False,
        scalar: str | None = None,
        shell: Sequence[str] = (),
        expressions: Sequence[str] = (),
        data: Sequence[str] | None = None,
        evidence: EvidenceFn | None = None,
        observes: bool = False,
        argv: Sequence[str] = (),
        reads_vars: bool = False,
        reads: Sequence[str] = (),
    ) -> Any:
        """Register an action; its second parameter's annotation is the argument model."""

        if inverse_actions is not None:
            if inverse is None:
                raise PluginError("inverse_actions= declares what an inverse= may name; give the inverse too")
            odd = [a for a in inverse_actions if not isinstance(a, str) or a.count(".") != 1]
            if odd:
                raise PluginError(f"inverse_actions= names actions as \"plugin.action\", not {odd[0]!r}")

        def register(func: ActionFn) -> ActionFn:
            model = _args_model(func)
            action_name = name or func.__name__.rstrip("_")
            reserved = sorted(REGISTERED_KEYS.intersection(data or ()))
            if reserved:
                raise PluginError(_reserved_keys_said(f"{self.name}.{action_name}", reserved, "declares"))
            self.actions[action_name] = ActionSpec(
                plugin=self.name,
                name=action_name,
                fn=func,
                args_model=model,
                doc=inspect.cleandoc(func.__doc__ or "").strip(),
                supports_check=check,
                idempotent=idempotent,
                inverse=inverse,
                mutates=mutates,
                scalar_arg=scalar,
                shell_fields=frozenset(shell),
                expression_fields=frozenset(expressions),
                data=None if data is None else frozenset(data),
                evidence=evidence,
                observes=observes,
                argv_fields=frozenset(argv),
                disrupts=disrupts,
                inverse_actions=None if inverse_actions is None else frozenset(inverse_actions),
                reads_vars=reads_vars or bool(reads),
                read_fields=frozenset(reads),
            )
            return func

        return register(fn) if fn is not None else register

    def inventory(self, scheme: str) -> Callable[[InventorySource], InventorySource]:
        """Register a dynamic inventory source for `-i SCHEME://...` (e.g. docker://?label=x).

        The function gets the parsed query (dict of lists, like urllib.parse.parse_qs) and
        returns hosts and groups in the shape of `ansible-inventory --list`."""

        def register(source: InventorySource) -> InventorySource:
            self.inventory_sources[scheme] = source
            return source

        return register

    def connection(self, kind: str) -> Callable[[ConnectionFactory], ConnectionFactory]:
        """Register a connection factory for hosts with `ansible_connection: kind`."""

        def register(factory: ConnectionFactory) -> ConnectionFactory:
            self.connections[kind] = factory
            return factory

        return register


def _args_model(func: Callable[..., Any]) -> type:
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 2:
        raise PluginError(f"action {func.__name__} must take (ctx, args)")
    hints = inspect.get_annotations(func, eval_str=True)
    model = hints.get(params[1].name)
    if model is None or not hasattr(model, "model_validate"):
        raise PluginError(
            f"action {func.__name__}: annotate its args parameter with a pydantic model"
        )
    return model  # type: ignore[no-any-return]


def truthy(value: Any) -> bool:
    """A condition's or flag's value as Ansible reads it: the strings true/yes/on/1 (any
    case, spaces ignored) are true, other strings false; other values by Python's bool."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
