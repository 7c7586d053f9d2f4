"""What an action hands back: `Result` (its `Status`, `Evidence`, the value `register:`
stores and the keys that value reserves), `CommandResult` (what a connection returns for one
command) and `command_result`, the one way a command's outcome becomes a `Result` (ok when
its exit status is allowed, else failed with the line of its output that says why:
`telling_line`).

Part of the public plugin API: plugins import these names from `opsbook.plugin`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any


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


def reserved_keys_said(action: str, keys: Sequence[str], verb: str) -> str:
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
    said = reserved_keys_said(action, clash, "returned")
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


def command_result(
    res: CommandResult,
    ok_rc: Collection[int] = (0,),
    *,
    what: str = "command",
    exited: str = "",
    data: dict[str, Any] | None = None,
    duration: float = 0.0,
) -> Result:
    """A command's outcome as an action's `Result`: ok when its exit status is in `ok_rc`,
    else failed with `"<what> <exited>: <telling line of stderr>"` (`exited` says how it
    ended, by default `exited with rc=N`). The command ran, so the result is changed; its
    rc, stdout and stderr are the result's, `data` is added to what `register:` stores."""
    ok = res.rc in ok_rc
    msg = ""
    if not ok:
        told = telling_line(res.stderr)
        msg = f"{what} {exited or f'exited with rc={res.rc}'}" + (f": {told}" if told else "")
    return Result(status=Status.OK if ok else Status.FAILED, changed=True, rc=res.rc, stdout=res.stdout,
                  stderr=res.stderr, msg=msg, data={} if data is None else data, duration=duration)


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
