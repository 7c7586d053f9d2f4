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
"""

from __future__ import annotations

import enum
import inspect
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from opsbook.cancel import CancelToken
from opsbook.errors import PluginError
from opsbook.paths import evidence_file
from opsbook.transfer import DEFAULT_MAX_SIZE, Transfer, TransferCut, TransferTooLarge  # noqa: F401 - public API


class Status(str, enum.Enum):
    """Outcome of one node (step x host)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    UNKNOWN = "unknown"  # check mode: the action cannot tell without acting


@dataclass(frozen=True, slots=True)
class Evidence:
    """A file a step collected into the run's evidence folder."""

    path: str  # relative to the run's evidence folder
    source: str  # where it came from, e.g. "web1:/var/log/nginx/error.log"
    description: str = ""


# The keys `Result.registered()` fills from the result itself, whatever the action's `data`
# holds. A plugin may not declare one in `data=` (PluginError when it registers) nor return
# one that register: would replace with another value (its node fails, saying so): the
# value would be lost without a word. `status` is the action's to use (an HTTP status, as
# Ansible's uri has); `outcome` always says the node's status.
REGISTERED_KEYS = frozenset({
    "outcome", "changed", "failed", "skipped", "unknown", "timed_out", "ok", "msg", "duration",
    "attempts", "diff", "rc", "stdout", "stderr", "stdout_lines", "stderr_lines",
})


def _reserved_keys_said(action: str, keys: Sequence[str], verb: str) -> str:
    """One message for a plugin whose data uses keys that `register:` sets itself."""
    listed = ", ".join(f'"{key}"' for key in keys)
    return (f"{action} {verb} data key{'s' if len(keys) > 1 else ''} {listed}, which register: sets itself "
            f"(from the Result's own fields); the plugin must name {'them' if len(keys) > 1 else 'it'} "
            f'differently, e.g. "{keys[0]}_count" or a nested mapping')


def clashing_data(action: str, result: Result) -> Result:
    """`result` of `action`, failed with why when its data holds a key that `register:`
    would replace with another value (those keys dropped); unchanged otherwise. The
    executor's check of what an action returned, and `opsbook.testing.run_action`'s."""
    if REGISTERED_KEYS.isdisjoint(result.data):
        return result
    own = Result(result.status, result.changed, result.rc, result.stdout, result.stderr, result.msg,
                 diff=result.diff, duration=result.duration, attempts=result.attempts).registered()
    clash = sorted(key for key in REGISTERED_KEYS.intersection(result.data)
                   if key in own and (key in ("duration", "attempts") or result.data[key] != own[key]))
    if not clash:
        return result
    result.data = {key: value for key, value in result.data.items() if key not in clash}
    result.status = Status.FAILED
    said = _reserved_keys_said(action, clash, "returned")
    result.msg = said + (f"; its message: {result.msg}" if result.msg else "")
    return result


@dataclass(slots=True)
class Result:
    """What an action did on one host: returned, never printed."""

    status: Status = Status.OK
    changed: bool = False
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    msg: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # extra fields for `register`
    facts: dict[str, Any] = field(default_factory=dict)  # become host variables (set_fact)
    diff: str | None = None
    show: bool = False  # `msg` is for people (debug): shown at normal verbosity, not only with -v
    evidence: list[Evidence] = field(default_factory=list)
    # Set by the executor:
    duration: float = 0.0
    attempts: int = 1

    @classmethod
    def ok(cls, **kw: Any) -> Result:
        return cls(status=Status.OK, **kw)

    @classmethod
    def failed(cls, msg: str, **kw: Any) -> Result:
        return cls(status=Status.FAILED, msg=msg, **kw)

    @classmethod
    def unknown(cls, msg: str, **kw: Any) -> Result:
        return cls(status=Status.UNKNOWN, msg=msg, **kw)

    @property
    def failed_(self) -> bool:
        return self.status in (Status.FAILED, Status.TIMED_OUT)

    def registered(self) -> dict[str, Any]:
        """The value `register:` stores: Ansible's shape, plus `status`."""
        # The action's own data may use `status` (e.g. an HTTP status, as Ansible's uri
        # module does); the outcome flags below always come from the engine.
        value: dict[str, Any] = {"status": self.status.value}
        value.update(self.data)
        value.update(
            outcome=self.status.value,
            changed=self.changed,
            failed=self.failed_,
            skipped=self.status is Status.SKIPPED,
            unknown=self.status is Status.UNKNOWN,
            timed_out=self.status is Status.TIMED_OUT,
            ok=self.status is Status.OK,
            msg=self.msg,
            duration=self.duration,
            attempts=self.attempts,
        )
        if self.diff:
            value["diff"] = self.diff  # what --diff shows (a unified diff)
        if self.rc is not None or self.stdout or self.stderr:
            # Ansible's command modules strip the trailing newlines (`echo 20%` registers
            # "20%"); the journal keeps the output as it came.
            stdout, stderr = self.stdout.rstrip("\r\n"), self.stderr.rstrip("\r\n")
            value.update(
                rc=self.rc,
                stdout=stdout,
                stderr=stderr,
                stdout_lines=stdout.splitlines(),
                stderr_lines=stderr.splitlines(),
            )
        return value


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a Connection returns for one command."""

    rc: int
    stdout: str
    stderr: str
    duration: float = 0.0


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


def write_file_safely(path: Path, data: bytes | BinaryIO) -> None:
    """Write `path` (0600) through its folder opened with O_NOFOLLOW, via a temporary file and
    a rename: neither a link planted at the file nor one at its folder is followed."""
    import os
    import uuid

    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        tmp = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:  # a spooled file (local.collect): copied in chunks
                import shutil

                shutil.copyfileobj(data, handle)
        os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


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

ActionFn = Callable[[ActionContext, Any], Result]
InventorySource = Callable[[dict[str, list[str]]], dict[str, Any]]
RollbackFn = Callable[[Any, Result], "tuple[str, dict[str, Any]] | None"]
# A capability that depends on the arguments as written (templates not rendered):
# `mutates=lambda args: args.get("method", "GET") != "GET"`. A template counts as "may".
ArgsTest = Callable[[Mapping[str, Any]], bool]
EvidenceFn = Callable[[Any, HostInfo], "list[str] | None"]


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
        if isinstance(data, dict) and key in data:
            if not steps:
                if isinstance(data[key], int | float) and not isinstance(data[key], bool):
                    data[key] = str(data[key])
                return
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            if not steps:
                if isinstance(data[key], int | float) and not isinstance(data[key], bool):
                    data[key] = str(data[key])
                return
            data = data[key]
        elif isinstance(key, str) and not (isinstance(data, dict) and key in data):
            continue  # a union branch's name, not a place in the data
        else:
            return


TargetFn = Callable[[str, Any, Mapping[str, Any]], "str | None"]


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


class Plugin:
    """A named set of actions and connection kinds, exposed through an entry point."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self.actions: dict[str, ActionSpec] = {}
        self.connections: dict[str, ConnectionFactory] = {}
        self.inventory_sources: dict[str, InventorySource] = {}
        self.ansible_modules: dict[str, str] = {}  # Ansible module name -> action of this plugin
        # where a step of this plugin goes (a cluster, an API): shown by `plan` and the run's header
        self.target_of: TargetFn | None = None

    def ansible_module(self, module: str, action: str) -> None:
        """Declare that an Ansible-style task's `module:` key (e.g. `lineinfile:`, also written
        `ansible.builtin.lineinfile:`) means this plugin's `action`, with the same arguments."""
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
                reads_vars=reads_vars,
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


_BOILERPLATE = re.compile(r"^(Try '.*--help'|Try `.*--help`|See '.*--help'|Run '.*--help'|For more information|"
                          r"(try|see)\b.*\bman\b|"
                          r"usage:|Usage:|nginx: configuration file .* test failed)", re.IGNORECASE)
_TELLING = re.compile(r"\[(emerg|alert|crit|error)\]|\b(error|fatal|failed|denied|refused|not found|no such|"
                      r"cannot|can't|unable|invalid|unknown|unrecognized|illegal|missing)\b", re.IGNORECASE)


def telling_line(text: str, limit: int = 300) -> str:
    """The line of a failed command's output that says what went wrong: the first line that
    reads like an error (`[emerg] unknown directive ...`, `error: ...`, `No such file`),
    else the last line that is not boilerplate (`Try 'ls --help' ...`, `... test failed`)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if not _BOILERPLATE.match(line)]
    if not useful:
        return ""  # only a help hint: it says nothing of what went wrong
    line = next((line for line in useful if _TELLING.search(line)), useful[-1])
    return line if len(line) <= limit else line[:limit - 3] + "..."


def truthy(value: Any) -> bool:
    """A condition's or flag's value as Ansible reads it: the strings true/yes/on/1 (any
    case, spaces ignored) are true, other strings false; other values by Python's bool."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
